"""rewardkit eval: accuracy of one or more rewards on pairwise / best-of-N data, or of precomputed scores."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Callable

from .common import JsonlWriter, add_image_options, add_reward_options, command_line, image_policy_of, output_dir, quiet_libraries, reward_options, slug
from .flags import finite_float, open_fraction, positive_int

HELP = "evaluate rewards on preference data (pairwise or best-of-N accuracy, bootstrap intervals, report)"
EPILOG = """examples:
  rewardkit eval --reward loglik:default --reward length --data suite --out runs/demo
  rewardkit eval --reward classifier:./my-rm --data pairs.jsonl --limit 200 --out runs/my-rm
  rewardkit eval --scores judgebench_reference_rm_scores.jsonl --out runs/judgebench

--data takes a built-in benchmark (suite, suite:train), a benchmark declaration (.yaml) or a data file
(.jsonl/.json/.parquet; format auto-detected, see --format). Output: results.json, scores.jsonl
(per-item scores, readable by --scores), report.md and plot.svg in --out; with several rewards (or
several models in a scores file) one folder per reward plus lineup.json and a combined report."""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help=HELP, description=HELP, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--reward", action="append", metavar="SPEC", help="reward spec (repeat for a lineup); see `rewardkit ls`")
    src.add_argument("--scores", metavar="PATH", help="evaluate precomputed scores instead of running a reward")
    p.add_argument("--data", metavar="DATA", help="benchmark name, declaration .yaml, or data file (required with --reward; "
                   "with --scores, a benchmark whose sections define the overall score)")
    p.add_argument("--format", default="auto", help="data format: auto, pairwise, hh-rlhf, best-of-n, scores, vl-rewardbench (default auto)")
    p.add_argument("--limit", type=positive_int, default=None, metavar="N", help="use the first N rows (for the suite: N per subset)")
    p.add_argument("--out", required=True, type=output_dir, metavar="DIR", help="output folder")
    p.add_argument("--bootstrap", type=positive_int, default=1000, metavar="N", help="bootstrap resamples for the 95%% intervals (default 1000)")
    add_image_options(p)
    add_reward_options(p)
    g = p.add_argument_group("process data (step-labelled solutions: ProcessBench/PRM800K/Math-Shepherd rows, arith-steps): "
                             "first-error F1 and step AUROC")
    g.add_argument("--threshold", type=finite_float, default=None, help="fixed step threshold (default: chosen on a dev split of the questions)")
    g.add_argument("--dev-fraction", type=open_fraction, default=0.3, help="share of questions for choosing the threshold (default 0.3)")
    g.add_argument("--skip-invalid", action="store_true", help="leave out rows that fail validation (listed in results.json) instead of stopping")
    g = p.add_argument_group("verifier data (single completions with an `expected` verdict column): agreement, false-positive and "
                             "false-negative rates")
    g.add_argument("--verdict-threshold", type=finite_float, default=0.5, metavar="X",
                   help="a score >= X counts as a pass (default 0.5; 1.0 for all-tests-pass on partial-credit rules)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    with image_policy_of(args):
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    from ..data.benchmarks import resolve_data
    from ..data.formats import load_dataset
    from ..evals.report import clean_nan, results_table, write_json
    from ..evals.runner import evaluate, evaluate_scored

    out = Path(args.out)
    if args.scores:
        data = load_dataset(args.scores, "scores" if args.format == "auto" else args.format, limit=args.limit)
        if data.kind != "scores":
            print(f"error: {args.scores} does not hold precomputed scores", file=sys.stderr)
            return 2
        # Sections (and so the overall definition) come from the benchmark, when one is named.
        sections = resolve_data(args.data, limit=1, seed=args.seed).sections if args.data else None
        per_model = evaluate_scored(data.records, sections, n_boot=args.bootstrap, seed=args.seed)
        results = {}
        for model, result in per_model.items():
            result.update(scores=str(args.scores), data=str(args.scores))
            results[model or Path(args.scores).stem] = clean_nan(result)
        return _finish(out, results, f"Precomputed scores: {Path(args.scores).name}", command_line(args.argv))

    if not args.data:
        print("error: --data is required with --reward", file=sys.stderr)
        return 2
    duplicates = sorted({spec for spec in args.reward if args.reward.count(spec) > 1})
    if duplicates:
        print(f"error: --reward given more than once: {', '.join(duplicates)}", file=sys.stderr)
        return 2
    quiet_libraries()
    data = resolve_data(args.data, format=args.format, limit=args.limit, seed=args.seed, skip_invalid=args.skip_invalid)
    if data.kind == "steps":
        return _run_process(args, data, out)
    from ..evals.verdicts import has_verdicts
    if data.kind == "samples" and has_verdicts(data.records):
        return _run_verdicts(args, data, out)
    print(f"data: {data.source} ({len(data)} {data.kind} records, format {data.format})", file=sys.stderr)
    several = len(args.reward) > 1

    def one(spec: str, reward: Any, folder: Path) -> dict:
        writer = JsonlWriter(folder / "scores.jsonl")
        try:
            result, _ = evaluate(reward, data, n_boot=args.bootstrap, seed=args.seed, on_rows=writer)
        finally:
            writer.close()
        result = clean_nan({"spec": spec, **result, "seed": args.seed})
        write_json(folder / "results.json", result)
        if several:
            print(results_table(result, title=f"\n== {spec}"))
        return result

    results, failures = _lineup(args, out, one)
    if results:
        title = f"{next(iter(results))} on {data.source}" if len(results) == 1 else f"Lineup on {data.source}"
        _finish(out, results, title, command_line(args.argv), per_reward_written=True)
    return _failed(failures)


def _write_one(folder: Path, result: dict, rows: list[dict], table: str) -> dict:
    """One reward's files for step or verdict data: its scored rows, its results, and the table printed."""
    from ..evals.report import write_json

    writer = JsonlWriter(folder / "scores.jsonl")
    writer(rows)
    writer.close()
    write_json(folder / "results.json", result)
    print(table)
    return result


def _run_verdicts(args: argparse.Namespace, data: Any, out: Path) -> int:
    """Verifier data: agreement with the labelled verdicts per reward (:mod:`rewardkit.evals.verdicts`)."""
    from ..evals.report import clean_nan, write_json
    from ..evals.verdicts import evaluate_verdicts, verdict_table

    print(f"data: {data.source} ({len(data)} completions with labelled verdicts)", file=sys.stderr)

    def one(spec: str, reward: Any, folder: Path) -> dict:
        result, rows = evaluate_verdicts(reward, data.records, threshold=args.verdict_threshold, n_boot=args.bootstrap, seed=args.seed)
        result = clean_nan({"spec": spec, **result, "data": data.source, "seed": args.seed, "command": command_line(args.argv)})
        return _write_one(folder, result, rows, verdict_table(result, title=f"\n== {spec}"))

    results, failures = _lineup(args, out, one)
    if len(args.reward) > 1 and results:
        write_json(out / "lineup.json", {spec: r["overall"] for spec, r in results.items()})
    return _failed(failures)


def _run_process(args: argparse.Namespace, data: Any, out: Path) -> int:
    """Step-labelled data: first-error F1 and step AUROC per reward (:mod:`rewardkit.evals.process`)."""
    from ..evals.process import evaluate_process, process_table
    from ..evals.report import clean_nan, write_json

    skipped = list(getattr(data, "skipped", []))
    print(f"data: {data.source} ({len(data)} step-labelled solutions{f', {len(skipped)} invalid rows skipped' if skipped else ''})", file=sys.stderr)

    def one(spec: str, reward: Any, folder: Path) -> dict:
        result, rows = evaluate_process(reward, data, dev_fraction=args.dev_fraction, threshold=args.threshold, seed=args.seed)
        result = clean_nan({"spec": spec, **result, "seed": args.seed, "skipped_invalid_rows": skipped, "command": command_line(args.argv)})
        return _write_one(folder, result, rows, process_table(result, title=f"\n== {spec}"))

    results, failures = _lineup(args, out, one)
    if len(args.reward) > 1 and results:
        write_json(out / "lineup.json", {spec: {k: r[k] for k in ("f1", "auroc", "error_accuracy", "correct_accuracy", "threshold", "n")}
                                         for spec, r in results.items()})
    return _failed(failures)


def _lineup(args: argparse.Namespace, out: Path, one: Callable[[str, Any, Path], dict]) -> tuple[dict[str, dict], list]:
    """Load and evaluate each ``--reward`` in turn with ``one(spec, reward, folder)``, one folder per
    reward when there are several; a reward that fails is reported and does not lose the others."""
    from ..specs import load_reward

    folders = _folders(args.reward)
    results, failures = {}, []
    for spec in args.reward:
        folder = out / folders[spec] if len(args.reward) > 1 else out
        try:
            print(f"loading reward {spec} ...", file=sys.stderr)
            results[spec] = one(spec, load_reward(spec, **reward_options(args)), folder)
        except Exception as err:  # one broken reward must not lose the others' results
            failures.append((spec, err))
            print(f"error: reward {spec}: {type(err).__name__}: {err}", file=sys.stderr)
    return results, failures


def _failed(failures: list) -> int:
    for spec, err in failures:
        print(f"FAILED: {spec}: {err}", file=sys.stderr)
    return 1 if failures else 0


def _folders(specs: list[str]) -> dict[str, str]:
    """One output folder per spec; specs that slug alike get a numeric suffix, never a shared folder."""
    folders: dict[str, str] = {}
    for spec in specs:
        base = name = slug(spec)
        k = 2
        while name in folders.values():
            name, k = f"{base}_{k}", k + 1
        folders[spec] = name
    return folders


def _finish(out: Path, results: dict, title: str, command: str, per_reward_written: bool = False) -> int:
    from ..evals.report import lineup_table, results_table, write_json, write_report

    if len(results) == 1:
        (name, result), = results.items()
        if not per_reward_written:
            write_json(out / "results.json", result)
        print(results_table(result, title=f"\n== {name}"))
    else:
        if not per_reward_written:
            folders = _folders(list(results))
            for name, result in results.items():
                write_json(out / folders[name] / "results.json", result)
        write_json(out / "lineup.json", {name: {"overall": r["overall"], "overall_ci95": r["overall_ci95"], "subsets": {s: v["accuracy"] for s, v in r["subsets"].items()}} for name, r in results.items()})
        print("\n== lineup (accuracy %)")
        print(lineup_table(results))
    report = write_report(out, results, title=title, command=command)
    print(f"\nwrote {out / 'results.json' if len(results) == 1 else out / 'lineup.json'}, {report}", file=sys.stderr)
    return 0
