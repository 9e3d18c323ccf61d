"""rewardkit search: PRM-guided step-level beam search vs best-of-N at the same generator token
budget, on math questions checked by a verifier (accuracy of both in one run)."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .common import add_policy_options, output_dir, quiet_libraries
from .flags import Flag, add_flags, non_negative_float, positive_int, values

HELP = "PRM-guided step-level beam search, compared with best-of-N at equal generator tokens"
EPILOG = """examples:
  rewardkit search --data gsm8k_test.jsonl --limit 20 --prm prm:default --out runs/search
  rewardkit search --data gsm8k_test.jsonl --beam-width 4 --expansions 4 --max-steps 10 --out runs/search4

--data: math rows {"question","answer"}. For each question the search runs first; best-of-N then
samples whole solutions until it has spent the same number of generated tokens and keeps the one
the PRM prefers. Both answers are checked by --verifier (rule:math), and so is every best-of-N
sample: results.json puts the PRM's pick next to pass@N (any sample right), the first sample alone
and a random pick from the same pool, so the PRM's reranking gain is visible. Writes OUT/search.jsonl (one
row per question, appended as it goes; a rerun resumes) and OUT/results.json."""


def add_parser(sub: argparse._SubParsersAction) -> None:
    from ..use.search import SearchConfig

    p = sub.add_parser("search", help=HELP, description=HELP, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_policy_options(p, "writes the solutions")
    p.add_argument("--out", required=True, type=output_dir, metavar="DIR")
    p.add_argument("--prm", default="prm:default", help="process reward spec that ranks the beams")
    add_flags(p, SearchConfig, [*(Flag(f, type=positive_int) for f in ("beam_width", "expansions", "max_steps", "max_step_tokens")),
                                Flag("temperature", type=non_negative_float), "seed"])
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from .common import generator_from_args
    from ..data.io import question_rows
    from ..specs import load_reward
    from ..use.search import SearchConfig, search_vs_best_of_n

    quiet_libraries()
    cfg = SearchConfig(**values(SearchConfig, args))
    rows = [(rid, row["question"], str(row["answer"])) for _, rid, row in question_rows(args.data, limit=args.limit, purpose="search")]
    client = generator_from_args(args)
    prm = load_reward(args.prm)
    if getattr(prm, "score", None) is None:
        print(f"error: {args.prm} is not a reward", file=sys.stderr)
        return 2
    verifier = load_reward(args.verifier)
    about = {"data": args.data, "prm": args.prm, "generator": args.generator}
    result = search_vs_best_of_n(rows, client, prm, verifier, cfg, Path(args.out), about=about)
    print(json.dumps(result, indent=2))
    return 0
