"""rewardkit score: score every row of a file and write one JSONL line per input row, in order."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .common import JsonlWriter, add_reward_options, quiet_libraries, reward_options

HELP = "score a data file with a reward (one JSONL line per input row, in input order)"
EPILOG = """examples:
  rewardkit score --reward loglik:default --data pairs.jsonl --out pairs.scores.jsonl
  rewardkit score --reward length --data completions.jsonl --out scored.jsonl

Pairwise rows give {"id","subset","chosen_score","rejected_score", ...}; best-of-N rows give
{"id","subset","scores","num_correct"}; {"prompt","completion"} rows give {"id","score"}. Per-sample
details (truncation, token counts, reasons for a null score) are kept. Pairwise and best-of-N output
can be evaluated later with `rewardkit eval --scores FILE`. Rows are written as they are scored."""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("score", help=HELP, description=HELP, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--reward", required=True, metavar="SPEC", help="reward spec; see `rewardkit ls`")
    p.add_argument("--data", required=True, metavar="DATA", help="data file or built-in benchmark (suite, suite:train)")
    p.add_argument("--format", default="auto", help="auto, pairwise, hh-rlhf, best-of-n, samples (default auto)")
    p.add_argument("--limit", type=int, default=None, metavar="N", help="score only the first N rows")
    p.add_argument("--out", required=True, metavar="FILE", help="output JSONL file")
    add_reward_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..data.benchmarks import resolve_data
    from ..evals.runner import score_dataset
    from ..specs import load_reward

    quiet_libraries()
    data = resolve_data(args.data, format=args.format, limit=args.limit, seed=args.seed)
    if data.kind == "scores":
        print(f"error: {args.data} already holds scores", file=sys.stderr)
        return 2
    reward = load_reward(args.reward, **reward_options(args))
    out = Path(args.out)
    writer = JsonlWriter(out)
    try:
        run_ = score_dataset(reward, data.records, on_rows=writer)
    finally:
        writer.close()
    none = sum(1 for r in run_.rows for s in (r.get("scores") or [r.get("score", 0), r.get("chosen_score", 0), r.get("rejected_score", 0)]) if s is None)
    print(f"wrote {len(run_.rows)} rows to {out} ({run_.samples} samples in {run_.seconds:.1f}s; "
          f"{run_.truncated} truncated; {none} unscored)", file=sys.stderr)
    return 0
