"""rewardkit split: train/test split of a data file by prompt."""
from __future__ import annotations

import argparse
import json

from .common import output_dir
from .flags import open_fraction

HELP = "split a data file into train.jsonl / test.jsonl by prompt (no prompt on both sides)"
EPILOG = """Rows sharing a prompt (several solutions to one question) always land on the same side; the side
is a hash of the prompt and --seed, so the split is the same on every machine and in any row order.

example:
  rewardkit split ../data/gsm8k_model_solution_pairs.jsonl --test-fraction 0.2 --out data/gsm8k
  rewardkit train --data data/gsm8k/train.jsonl --out runs/rm && rewardkit eval --reward classifier:runs/rm/model --data data/gsm8k/test.jsonl --out runs/eval"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("split", help=HELP, description=HELP, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("data", metavar="FILE", help="JSONL/JSON/Parquet data file (pairs, best-of-N or samples)")
    p.add_argument("--out", required=True, type=output_dir, metavar="DIR")
    p.add_argument("--test-fraction", type=open_fraction, default=0.2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--format", default="auto", help="override format detection")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..data.split import split_file

    summary = split_file(args.data, args.out, test_fraction=args.test_fraction, seed=args.seed, format=args.format)
    print(json.dumps(summary, indent=2))
    return 0
