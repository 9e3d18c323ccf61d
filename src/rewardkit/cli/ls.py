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
    from ..assets import packaged
    from ..rewards.rules import RULES
    from ..specs import ALIASES, PY_DESCRIPTION

    kinds = [{"kind": k, "class": target, "description": text} for k, (target, text) in ALIASES.items()]
    kinds.append({"kind": "py", "class": "(any importable function or class)", "description": PY_DESCRIPTION})
    rules = [{"spec": f"rule:{name}", "check": target, "description": text} for name, (target, text) in RULES.items()]
    benches = describe_builtin()
    if args.json:
        print(json.dumps({"default": str(packaged("default_rm") or ""), "rewards": kinds, "rules": rules, "benchmarks": benches}, indent=2))
        return 0
    shipped = packaged("default_rm")
    print("reward kinds (use as --reward KIND[:ARG]; in KIND:default, default = the embedded SmolLM2-135M-Instruct):")
    width = max(len(k["kind"]) for k in kinds)
    if shipped is not None:
        print(f"  {'default'.ljust(width)}  the packaged trained reward model (LoRA adapter + head over the embedded model; card: {shipped / 'README.md'})")
    for k in kinds:
        print(f"  {k['kind'].ljust(width)}  {k['description']}")
    print("\nverifiable rules (gold data comes from dataset columns; rows without it are reported as not applicable):")
    width = max(len(r["spec"]) for r in rules)
    for r in rules:
        print(f"  {r['spec'].ljust(width)}  {r['description']}")
    print("\ncompositions nest any specs, e.g. 'ensemble:lcb(loglik:default, length, k=0.5)', 'gate(rule:math, loglik:default)',")
    print("or a YAML file naming a kind and its arguments (examples/rewards/*.yaml)")
    print("\nbuilt-in benchmarks (use as --data NAME or NAME:SPLIT; NAME:PATH where marked):")
    for b in benches:
        also = f" (also: {', '.join(b['aliases'])})" if b["aliases"] else ""
        print(f"  {b['name']}{':PATH' if b['argument'] == 'path' else ''}  {b['description']}{also}")
        for sec, parts in b["sections"].items():
            print(f"      section {sec}: " + ", ".join(f"{s} x{w:g}" for s, w in parts.items()))
    print("\nany .jsonl/.json/.parquet file also works as --data (formats: pairwise, hh-rlhf, best-of-n, samples, scores, steps)")
    return 0
