"""rewardkit suite: write the built-in suite to files."""
from __future__ import annotations

import argparse

from .common import output_dir
from .flags import positive_int

HELP = "write the built-in generated suite (train.jsonl, test.jsonl) to a folder"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("suite", help=HELP, description=HELP + ". Deterministic: the same seed gives the same files.")
    p.add_argument("--out", required=True, type=output_dir, metavar="DIR")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--train-size", type=positive_int, default=None, metavar="N", help="pairs per subset in train (default 400)")
    p.add_argument("--test-size", type=positive_int, default=None, metavar="N", help="pairs per subset in test (default 60)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..data.synth import write_suite

    sizes = {k: v for k, v in (("train", args.train_size), ("test", args.test_size)) if v is not None}
    for path in write_suite(args.out, seed=args.seed, sizes=sizes):
        n = sum(1 for _ in path.open(encoding="utf-8"))
        print(f"wrote {path} ({n} pairs)")
    return 0
