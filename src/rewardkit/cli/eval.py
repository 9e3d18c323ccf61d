"""rewardkit eval: accuracy of one or more rewards on pairwise / best-of-N data, or of precomputed scores."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Callable

from .common import (JsonlWriter, add_engine_options, add_image_options, add_reward_options, command_line, engine_config, image_policy_of,
                     output_dir, quiet_libraries, reward_options, slug)
from .flags import finite_float, open_fraction, positive_int, ratio

HELP = "evaluate rewards on preference data (pairwise or best-of-N accuracy, bootstrap intervals, report)"
EPILOG = """examples:
  rewardkit eval --reward loglik:default --reward length --data suite --out runs/demo
  rewardkit eval --reward classifier:./my-rm --data pairs.jsonl --limit 200 --out runs/my-rm
  rewardkit eval --scores judgebench_reference_rm_scores.jsonl --out runs/judgebench
  rewardkit eval --reward default --reward length --data rm_bench_chat.jsonl --diagnose --out runs/diag
  rewardkit eval --scores runs/diag/default/scores.jsonl --data rm_bench_chat.jsonl --diagnose --out runs/again
  rewardkit eval --engine ray --ray-actors 4 --ray-gpus-per-actor 1 --reward classifier:./my-rm \\
      --data rm_bench.parquet --out runs/rm-eval            # scored on a Ray cluster, same results.json

--data takes a built-in benchmark (suite, suite:train), a benchmark declaration (.yaml) or a data file
(.jsonl/.json/.parquet; format auto-detected, see --format). Output: results.json, scores.jsonl
(per-item scores, readable by --scores), report.md and plot.svg in --out; with several rewards (or
several models in a scores file) one folder per reward plus lineup.json and a combined report.

--diagnose (pairwise / best-of-N data) adds diagnostics.json, diagnostics.md and SVG plots: correlation
of each reward with response length and its accuracy on length-matched pairs and by which response is
longer; agreement between the rewards (Kendall tau, same pair order, top-1); accuracy by tercile of
ensemble disagreement (a lineup, or an ensemble: reward's members); RM-Bench hard/normal/easy accuracy
and the 3x3 style matrix when rows carry item_id/chosen_style/rejected_style. With --scores, --data
names the file the scores were computed on (texts matched on id)."""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help=HELP, description=HELP, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--reward", action="append", metavar="SPEC", help="reward spec (repeat for a lineup); see `rewardkit ls`")
    src.add_argument("--scores", metavar="PATH", help="evaluate precomputed scores instead of running a reward")
    p.add_argument("--data", metavar="DATA", help="benchmark name, declaration .yaml, or data file (required with --reward; "
                   "with --scores, a benchmark whose sections define the overall score, and the texts --diagnose reads)")
    p.add_argument("--format", default="auto", help="data format: auto, pairwise, hh-rlhf, best-of-n, scores, vl-rewardbench (default auto)")
    p.add_argument("--limit", type=positive_int, default=None, metavar="N", help="use the first N rows (for the suite: N per subset)")
    p.add_argument("--out", required=True, type=output_dir, metavar="DIR", help="output folder")
    p.add_argument("--bootstrap", type=positive_int, default=1000, metavar="N", help="bootstrap resamples for the 95%% intervals (default 1000)")
    add_image_options(p)
    add_reward_options(p)
    g = p.add_argument_group("diagnostics (pairwise and best-of-N data)")
    g.add_argument("--diagnose", action="store_true",
                   help="also write diagnostics.json/.md and plots: length bias, agreement, ensemble disagreement, RM-Bench style probe")
    g.add_argument("--length-ratio", type=ratio, default=1.1, metavar="R",
                   help="pairs whose chosen and rejected lengths (characters) are within this ratio count as length-matched (default 1.1)")
    g = p.add_argument_group("process data (step-labelled solutions: ProcessBench/PRM800K/Math-Shepherd rows, arith-steps): "
                             "first-error F1 and step AUROC")
    g.add_argument("--threshold", type=finite_float, default=None, help="fixed step threshold (default: chosen on a dev split of the questions)")
    g.add_argument("--dev-fraction", type=open_fraction, default=0.3, help="share of questions for choosing the threshold (default 0.3)")
    g.add_argument("--skip-invalid", action="store_true", help="leave out rows that fail validation (listed in results.json) instead of stopping")
    g = p.add_argument_group("verifier data (single completions with an `expected` verdict column): agreement, false-positive and "
                             "false-negative rates")
    g.add_argument("--verdict-threshold", type=finite_float, default=0.5, metavar="X",
                   help="a score >= X counts as a pass (default 0.5; 1.0 for all-tests-pass on partial-credit rules)")
    add_engine_options(p)
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
        texts = None
        if args.diagnose and args.data:
            texts = resolve_data(args.data, seed=args.seed)
            if texts.kind not in ("pairs", "best-of-n"):
                print(f"error: --diagnose needs the pairwise or best-of-N data the scores were computed on; {args.data} holds {texts.kind} records", file=sys.stderr)
                return 2
        per_model = evaluate_scored(data.records, sections, n_boot=args.bootstrap, seed=args.seed)
        results = {}
        for model, result in per_model.items():
            result.update(scores=str(args.scores), data=str(args.scores))
            results[model or Path(args.scores).stem] = clean_nan(result)
        code = _finish(out, results, f"Precomputed scores: {Path(args.scores).name}", command_line(args.argv))
        if args.diagnose:
            by_model: dict[str, list] = {}
            for s in data.records:
                by_model.setdefault(s.model or Path(args.scores).stem, []).append(s)
            records = {} if texts is None else _by_id(texts.records)
            notes = [] if texts is not None else ["no --data: length and style statistics need the texts the scores were computed on"]
            _diagnose(args, out, by_model, records, {}, texts.source if texts is not None else str(args.scores), notes)
        return code

    if not args.data:
        print("error: --data is required with --reward", file=sys.stderr)
        return 2
    duplicates = sorted({spec for spec in args.reward if args.reward.count(spec) > 1})
    if duplicates:
        print(f"error: --reward given more than once: {', '.join(duplicates)}", file=sys.stderr)
        return 2
    quiet_libraries()
    ray = engine_config(args)
    data = resolve_data(args.data, format=args.format, limit=args.limit, seed=args.seed, skip_invalid=args.skip_invalid)
    if ray is not None and data.kind not in ("pairs", "best-of-n"):
        print(f"error: --engine ray evaluates pairwise and best-of-N data; {data.source} holds {data.kind} records (run it with the local engine)",
              file=sys.stderr)
        return 2
    if args.diagnose and data.kind not in ("pairs", "best-of-n"):
        print(f"error: --diagnose needs pairwise or best-of-N data; {data.source} holds {data.kind} records", file=sys.stderr)
        return 2
    if data.kind == "steps":
        return _run_process(args, data, out)
    from ..evals.verdicts import has_verdicts
    if data.kind == "samples" and has_verdicts(data.records):
        return _run_verdicts(args, data, out)
    print(f"data: {data.source} ({len(data)} {data.kind} records, format {data.format})", file=sys.stderr)
    several = len(args.reward) > 1
    scored: dict[str, list] = {}
    members: dict[str, dict] = {}

    def one(spec: str, reward: Any, folder: Path) -> dict:
        writer = JsonlWriter(folder / "scores.jsonl")
        try:
            if ray is None:
                result, run = evaluate(reward, data, n_boot=args.bootstrap, seed=args.seed, on_rows=writer)
                in_vector = getattr(reward, "members_in_vector", False)
            else:
                result, run, in_vector = _evaluate_on_ray(args, ray, spec, data, folder)
                writer(run.rows)
        finally:
            writer.close()
        if ray is not None:
            from ..engines.ray import discard

            discard(folder / "scores.jsonl.shards")
        if args.diagnose:
            scored[spec] = run.scored
            if in_vector:
                from ..evals.diagnose import members_from_rows
                members[spec] = members_from_rows(run.rows)
        result = clean_nan({"spec": spec, **result, "seed": args.seed})
        write_json(folder / "results.json", result)
        if several:
            print(results_table(result, title=f"\n== {spec}"))
        return result

    from contextlib import nullcontext

    from ..engines.ray import connected

    with connected(ray) if ray is not None else nullcontext():  # one cluster connection for the whole lineup
        results, failures = _lineup(args, out, one, load=ray is None)
    if results:
        title = f"{next(iter(results))} on {data.source}" if len(results) == 1 else f"Lineup on {data.source}"
        _finish(out, results, title, command_line(args.argv), per_reward_written=True)
    if scored:
        _diagnose(args, out, scored, _by_id(data.records), members, data.source, [])
    return _failed(failures)


def _evaluate_on_ray(args: argparse.Namespace, ray: Any, spec: str, data: Any, folder: Path) -> tuple[dict, Any, bool]:
    """One reward's evaluation with ``--engine ray``: the rows scored on the cluster (shards in
    ``scores.jsonl.shards``, which a rerun resumes), the results computed here by the local code."""
    import json

    from ..evals.runner import check_evaluable, evaluation, score_on_ray

    check_evaluable(data)
    key = json.dumps({"reward": spec, "options": reward_options(args), "data": data.source}, sort_keys=True, default=str)
    run, info = score_on_ray(spec, reward_options(args), data.records, folder / "scores.jsonl.shards", ray, key=key, summary=True)
    result = evaluation(run, data, info["eval_summary"], n_boot=args.bootstrap, seed=args.seed)
    return result, run, info["members_in_vector"]


def _by_id(records: list) -> dict[str, Any]:
    """Records by id for matching scores to their texts; a repeated id keeps its first record."""
    out: dict[str, Any] = {}
    for r in records:
        out.setdefault(r.id, r)
    return out


def _diagnose(args: argparse.Namespace, out: Path, scored: dict, records: dict, members: dict, source: str, notes: list[str]) -> None:
    """``eval --diagnose``: :mod:`rewardkit.evals.diagnose` over the scores just computed or read."""
    from ..evals.diagnose import diagnose, diagnostics_table, write_diagnostics

    diag = diagnose(scored, records, members=members, length_ratio=args.length_ratio, n_boot=args.bootstrap, seed=args.seed, source=source)
    diag.result["notes"] = notes + diag.result["notes"]
    path = write_diagnostics(out, diag, command=command_line(args.argv))
    print("\n== diagnostics")
    print(diagnostics_table(diag.result))
    report = out / "report.md"
    if report.exists():
        with report.open("a", encoding="utf-8") as fh:
            fh.write("\n## Diagnostics\n\nLength bias, agreement, ensemble disagreement and style: [diagnostics.md](diagnostics.md).\n")
    print(f"wrote {out / 'diagnostics.json'}, {path}", file=sys.stderr)


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


def _lineup(args: argparse.Namespace, out: Path, one: Callable[[str, Any, Path], dict], load: bool = True) -> tuple[dict[str, dict], list]:
    """Load and evaluate each ``--reward`` in turn with ``one(spec, reward, folder)``, one folder per
    reward when there are several; a reward that fails is reported and does not lose the others.
    ``load=False``: ``one`` gets ``None`` and loads the reward where it runs (the Ray engine's actors)."""
    from ..specs import load_reward

    folders = _folders(args.reward)
    results, failures = {}, []
    for spec in args.reward:
        folder = out / folders[spec] if len(args.reward) > 1 else out
        try:
            print(f"loading reward {spec} ..." if load else f"scoring with {spec} on Ray ...", file=sys.stderr)
            results[spec] = one(spec, load_reward(spec, **reward_options(args)) if load else None, folder)
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
