"""``rewardkit eval`` on step-labelled data: first-error F1 and per-step AUROC for each reward
(see :mod:`rewardkit.evals.process`). Kept apart from eval.py so the pairwise path stays as it is."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def add_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("process data (step-labelled solutions: ProcessBench/PRM800K/Math-Shepherd rows, arith-steps)")
    g.add_argument("--threshold", type=float, default=None, help="fixed step threshold (default: chosen on a dev split of the questions)")
    g.add_argument("--dev-fraction", type=float, default=0.3, help="share of questions for choosing the threshold (default 0.3)")
    g.add_argument("--skip-invalid", action="store_true", help="leave out rows that fail validation (listed in results.json) instead of stopping")


def step_data(args: argparse.Namespace) -> Any:
    """The step-labelled dataset named by ``--data``, or None when it is not step data."""
    from ..data.formats import iter_rows
    from ..data.steps import detect_step_format, resolve_step_data

    spec = args.data
    name = spec.partition(":")[0]
    if name == "arith-steps" and not Path(spec).exists():
        return resolve_step_data(spec, limit=args.limit, seed=args.seed)
    path = Path(spec)
    if not path.is_file() or path.suffix in (".yaml", ".yml"):
        return None
    if args.format not in ("auto", "steps"):
        return None
    for _, row in iter_rows(path):
        if detect_step_format(row) is None and args.format != "steps":
            return None
        break
    return resolve_step_data(spec, limit=args.limit, seed=args.seed, skip_invalid=args.skip_invalid)


def run_process(args: argparse.Namespace, data: Any) -> int:
    from ..evals.process import evaluate_process, process_table
    from ..evals.report import clean_nan, write_json
    from ..specs import load_reward
    from .common import JsonlWriter, command_line, reward_options, slug

    skipped = list(getattr(data, "skipped", []))
    print(f"data: {data.source} ({len(data)} step-labelled solutions{f', {len(skipped)} invalid rows skipped' if skipped else ''})", file=sys.stderr)
    out = Path(args.out)
    several = len(args.reward) > 1
    lineup, failures = {}, []
    for spec in args.reward:
        folder = out / slug(spec) if several else out
        try:
            print(f"loading reward {spec} ...", file=sys.stderr)
            reward = load_reward(spec, **reward_options(args))
            result, rows = evaluate_process(reward, data, dev_fraction=args.dev_fraction, threshold=args.threshold, seed=args.seed)
        except Exception as err:  # one broken reward must not lose the others' results
            failures.append((spec, err))
            print(f"error: reward {spec}: {type(err).__name__}: {err}", file=sys.stderr)
            continue
        result = clean_nan({"spec": spec, **result, "seed": args.seed, "skipped_invalid_rows": skipped, "command": command_line(args.argv)})
        writer = JsonlWriter(folder / "scores.jsonl")
        writer(rows)
        writer.close()
        write_json(folder / "results.json", result)
        lineup[spec] = {k: result[k] for k in ("f1", "auroc", "error_accuracy", "correct_accuracy", "threshold", "n")}
        print(process_table(result, title=f"\n== {spec}"))
    if several and lineup:
        write_json(out / "lineup.json", lineup)
    for spec, err in failures:
        print(f"FAILED: {spec}: {err}", file=sys.stderr)
    return 1 if failures else 0
