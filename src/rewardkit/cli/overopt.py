"""rewardkit overopt: best-of-N overoptimization curve (gold score of a proxy reward's pick against N)."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .common import add_reward_options, command_line, output_dir, quiet_libraries
from .flags import finite_float, positive_int

HELP = "best-of-N overoptimization curve: the gold score of the proxy reward's pick as N grows (exact, with bootstrap bands)"
EPILOG = """examples:
  rewardkit overopt --proxy default --gold rule:math --gold-none-as 0 --candidates gsm8k_test_pools.jsonl --out runs/overopt
  rewardkit overopt --proxy default --gold rule:math --gold-none-as 0 --generator default --data gsm8k_test.jsonl \\
      --limit 100 --n 16 --out runs/overopt16
  rewardkit overopt --proxy default --gold rule:math --samples runs/annotate/samples.jsonl --out runs/overopt-annotated

The responses come from --candidates (as for `rewardkit annotate`), are sampled from --generator for the
--data prompts, or are taken from an annotate run's samples.jsonl (--samples). For N = 1, 2, 4, ...,
--n-max: the expected gold and proxy score of the proxy's pick over uniformly random N-subsets of each
prompt's pool, computed exactly from order statistics (the sample ranked i-th of n by the proxy is the
pick with probability C(i-1, N-1) / C(n, N); proxy ties are broken at random, i.e. tied samples share
their gold mean), averaged over prompts, against KL_bon = log N - (N-1)/N. A generated sample drawn
twice counts twice (the pool is i.i.d. draws). Gold can be any reward: rule:math with an "answer"
column, a stronger RM, a judge. rule:math leaves a response without a final answer unscored:
--gold-none-as 0 counts it as wrong (otherwise it is left out of the pool, and counted). A prompt the
gold reward does not apply to (rule:math on a row without "answer") is left out of the curve whatever
--gold-none-as says, and counted as "gold not applicable".

Writes OUT/curve.json, OUT/report.md, OUT/curve.svg and OUT/curve.png (the PNG needs Pillow:
pip install 'rewardkit[images]'); with --data or --candidates also OUT/samples.jsonl (resumable, as annotate's)."""


def add_parser(sub: argparse._SubParsersAction) -> None:
    from .annotate import add_sources

    p = sub.add_parser("overopt", help=HELP, description=HELP, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--proxy", required=True, metavar="SPEC", help="the reward that picks the best of N")
    p.add_argument("--gold", required=True, metavar="SPEC", help="the reward that judges the pick (rule:math, a stronger RM, a judge)")
    add_sources(p, samples=True)
    p.add_argument("--n-max", type=positive_int, default=None, metavar="N",
                   help="largest N (default: the largest pool); prompts with fewer scored samples are left out of the whole curve, and counted")
    p.add_argument("--gold-none-as", type=finite_float, default=None, metavar="X",
                   help="score of a sample the gold reward leaves unscored (default: leave it out of the pool)")
    p.add_argument("--bootstrap", type=positive_int, default=1000, metavar="N", help="bootstrap resamples over prompts (default 1000)")
    p.add_argument("--out", required=True, type=output_dir, metavar="DIR")
    p.add_argument("--overwrite", action="store_true", help="start OUT/samples.jsonl afresh instead of resuming it")
    add_reward_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..evals.report import write_json
    from ..use.annotate import SamplingConfig, collect, read_rows
    from ..use.overopt import curve, plot, pools_from_rows, report
    from .annotate import load_pools, loaders, settings
    from .flags import values

    quiet_libraries()
    if args.proxy == args.gold:
        raise ValueError("--proxy and --gold are the same reward; the curve would only show the proxy against itself")
    out = Path(args.out)
    others = 0
    if args.samples:
        rows = read_rows(Path(args.samples))
        source = args.samples
    else:
        pools, source = load_pools(args)
        specs = [args.proxy, args.gold]
        load_client, load_rewards = loaders(args, specs)
        run_ = collect(pools, out, load_client=load_client, load_rewards=load_rewards, sampling=SamplingConfig(**values(SamplingConfig, args)),
                       seed=args.seed, settings=settings(args, specs), generator=f"candidates:{args.candidates}" if args.candidates else args.generator,
                       overwrite=args.overwrite)
        rows, others = run_.rows, run_.others
    pools, dropped, gold_na = pools_from_rows(rows, args.proxy, args.gold, gold_none_as=args.gold_none_as)
    if not pools and gold_na:
        raise ValueError(f"--gold {args.gold} does not apply to any of the {gold_na} prompts (a rule needs its gold column, e.g. 'answer')")
    result = curve(pools, n_max=args.n_max, n_boot=args.bootstrap, seed=args.seed)
    result = {"proxy": args.proxy, "gold": args.gold, "data": source, "command": command_line(args.argv), "seed": args.seed,
              "gold_none_as": args.gold_none_as, "dropped": dropped, "prompts_gold_not_applicable": gold_na,
              "rows_not_in_this_input": others, **result}
    drawing = plot(result, args.proxy, args.gold)
    out.mkdir(parents=True, exist_ok=True)
    (out / "curve.svg").write_text(drawing.svg(), encoding="utf-8")
    png = drawing.png(out / "curve.png")
    if not png:
        print("note: curve.png needs Pillow (pip install 'rewardkit[images]'); wrote curve.svg", file=sys.stderr)
    write_json(out / "curve.json", result)
    (out / "report.md").write_text(report(result, args.proxy, args.gold, png=png, command=result["command"]), encoding="utf-8")
    table = [{k: p[k] for k in ("n", "kl_bon", "gold", "proxy")} for p in result["points"]]
    print(json.dumps({"prompts": result["prompts"], "peak_n": result["peak_n"], "points": table, "dropped": dropped}, indent=2))
    return 0
