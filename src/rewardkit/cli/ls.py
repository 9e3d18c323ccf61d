"""rewardkit ls: the reward kinds and built-in benchmarks this install knows."""
from __future__ import annotations

import argparse
import json

HELP = "list reward kinds (for --reward SPEC) and built-in benchmarks (for --data)"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ls", help=HELP, description=HELP)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..data.benchmarks import describe_builtin
    from ..specs import ALIASES, DESCRIPTIONS

    kinds = [{"kind": k, "class": ALIASES.get(k, "(any importable function or class)"), "description": DESCRIPTIONS.get(k, "")} for k in [*ALIASES, "py"]]
    benches = describe_builtin()
    if args.json:
        print(json.dumps({"rewards": kinds, "benchmarks": benches}, indent=2))
        return 0
    print("reward kinds (use as --reward KIND[:ARG]; 'default' = the embedded SmolLM2-135M-Instruct):")
    width = max(len(k["kind"]) for k in kinds)
    for k in kinds:
        print(f"  {k['kind'].ljust(width)}  {k['description']}")
    print("\nbuilt-in benchmarks (use as --data NAME or NAME:SPLIT):")
    for b in benches:
        print(f"  {b['name']}  {b['description']}")
        for sec, parts in b["sections"].items():
            print(f"      section {sec}: " + ", ".join(f"{s} x{w:g}" for s, w in parts.items()))
    print("\nany .jsonl/.json/.parquet file also works as --data (formats: pairwise, hh-rlhf, best-of-n, samples, scores)")
    return 0
