"""Scoring on Ray Data (``--engine ray``) vs. the local engine, on the same rows, in the same run.

Rows: real GSM8K model solutions (chosen and rejected of
../shared/data/pairwise/gsm8k_model_solution_pairs.jsonl), each once with its gold answer (joined from
math/gsm8k_test.jsonl on the question) and once with the next question's (a wrong answer the string
fast path cannot settle), as ``{"prompt", "completion", "answer"}`` samples in file order, cycled to
--rows (default 2,000), parsed by rewardkit's own reader as ``rewardkit score`` parses them.

Runs, each timed end to end from the parsed rows to the scored rows:

  local        ``score_dataset(load_reward(SPEC), rows)``: this process (reward load timed apart).
  ray xN       ``rewardkit.engines.ray.run_sharded`` with N actors (--actors, default 1 and 2), one
               shard per --batch-size rows; includes starting the actor pool and loading the reward
               in each actor (that is what a user waits for), not starting the cluster (timed apart).
  ray no-op    the same engine with a worker that returns a constant row per input row (2 actors), on
               a quarter of the rows and on all of them: the engine's own cost (pickling shards to
               the object store, scheduling, actor start, JSON rows back, shard files, the merge),
               split by a straight line through the two into a fixed cost and a cost per row.

Reported: rows/s of each run, the ratio ray x2 / local, the scaling x2 / x1, the share of each Ray
run's actor time spent inside the reward (the rest is start-up and the engine), Ray's fixed cost and
per-row overhead, and a check that every Ray run gives the local scores (max |diff| <= --tolerance;
exit 1 if not).
On a 2-core machine a model reward cannot go much faster on 2 actors than in one process (both cores
are already busy in a local forward pass); the numbers say what the engine costs, honestly.

Why: ``--engine ray`` is for data too big for one machine; this shows its fixed and per-row costs
where they can be measured, so the README can say when it pays off.

Run: .venv/bin/python bench/ray_scoring.py --reward rule:math           (about a minute on 2 cores)
     .venv/bin/python bench/ray_scoring.py --reward default --rows 500  (the embedded reward model)
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("REWARDKIT_SHARED_DATA", REPO.parent / "shared" / "data"))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--reward", default="rule:math", help="reward spec (default rule:math; `default` for the embedded reward model)")
    p.add_argument("--rows", type=int, default=2000)
    p.add_argument("--actors", default="1,2", help="actor counts to run, comma-separated (default 1,2)")
    p.add_argument("--batch-size", type=int, default=250, help="rows per Ray call / shard (default 250)")
    p.add_argument("--num-cpus", type=int, default=None, help="CPUs of the local Ray cluster (default: all)")
    p.add_argument("--tolerance", type=float, default=1e-5, help="largest |score difference| accepted between engines")
    p.add_argument("--data", type=Path, default=DATA)
    p.add_argument("--out", type=Path, default=REPO / "runs" / "bench" / "ray_scoring.json")
    return p.parse_args(argv)


def write_rows(data: Path, n: int, path: Path) -> dict:
    """``n`` sample rows from the GSM8K model-solution pairs, cycled; returns their composition."""
    def read(p: Path) -> list[dict]:
        with p.open(encoding="utf-8") as fh:
            return [json.loads(line) for line in fh if line.strip()]

    gold = {r["question"]: r["answer"] for r in read(data / "math" / "gsm8k_test.jsonl")}
    questions = list(gold)
    following = {q: gold[questions[(i + 1) % len(questions)]] for i, q in enumerate(questions)}
    base = []
    for pair in read(data / "pairwise" / "gsm8k_model_solution_pairs.jsonl"):
        for side in ("chosen", "rejected"):
            # against its own gold answer, and against the next question's (a realistic wrong answer that
            # the string fast path cannot settle, so rule:math does real work)
            for which, answer in (("own", gold[pair["prompt"]]), ("next", following[pair["prompt"]])):
                base.append({"prompt": pair["prompt"], "completion": pair[side], "answer": answer, "id": f"{pair['id']}-{side}-{which}"})
    rows = [{**base[i % len(base)], "id": f"{base[i % len(base)]['id']}-{i // len(base)}"} for i in range(n)]
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return {"distinct": len(base), "rows": n}


class NoOp:
    """A worker that scores nothing: one constant row per input row (the engine's own cost)."""

    def __call__(self, records: list) -> list[dict]:
        return [{"id": r.id, "score": 0.0} for r in records]


class Timed:
    """Wraps a worker; the first row of each shard carries the seconds the worker spent on it."""

    def __init__(self, make) -> None:
        self.work = make()

    def __call__(self, records: list) -> list[dict]:
        t = time.perf_counter()
        rows = self.work(records)
        rows[0] = {**rows[0], "_busy_s": time.perf_counter() - t}
        return rows


def scores_of(rows: list[dict]) -> list:
    return [r.get("score") for r in rows]


def max_diff(a: list, b: list) -> float:
    worst = 0.0
    for x, y in zip(a, b, strict=True):
        if (x is None) != (y is None):
            return float("inf")
        if x is not None:
            worst = max(worst, abs(x - y))
    return worst


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not (args.data / "math" / "gsm8k_test.jsonl").is_file():
        print(f"shared data not found at {args.data} (set REWARDKIT_SHARED_DATA or --data)", file=sys.stderr)
        return 2
    os.environ["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), str(Path(__file__).resolve().parent), os.environ.get("PYTHONPATH", "")])
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import ray

    from rewardkit.data.formats import load_dataset
    from rewardkit.engines.ray import RayConfig, run_sharded
    from rewardkit.evals.runner import RecordScorer, column_names, record_digest, score_dataset
    from rewardkit.specs import load_reward

    tmp = Path(tempfile.mkdtemp(prefix="rk-ray-bench-"))
    composition = write_rows(args.data, args.rows, tmp / "rows.jsonl")
    records = load_dataset(tmp / "rows.jsonl").records
    print(f"{args.rows} rows ({composition['distinct']} distinct GSM8K solution/answer rows, cycled); reward {args.reward}; "
          f"{args.batch_size} rows per Ray call")

    t = time.perf_counter()
    reward = load_reward(args.reward)
    load_s = time.perf_counter() - t
    t = time.perf_counter()
    local = score_dataset(reward, records, progress=False)
    local_s = time.perf_counter() - t
    del reward
    runs = [{"engine": "local", "actors": None, "seconds": local_s, "rows_per_s": args.rows / local_s, "reward_load_s": load_s}]

    t = time.perf_counter()
    ray.init(num_cpus=args.num_cpus, include_dashboard=False, log_to_driver=False)
    init_s = time.perf_counter() - t
    ray.data.DataContext.get_current().enable_progress_bars = False
    from functools import partial

    failed = False
    for actors in [int(a) for a in args.actors.split(",")]:
        cfg = RayConfig(ray_actors=actors, ray_batch_size=args.batch_size)
        make = partial(Timed, partial(RecordScorer, args.reward, {}, column_names(records), args.batch_size))
        t = time.perf_counter()
        rows = list(run_sharded(make, records, tmp / f"shards-{actors}", cfg, key=args.reward, digest=record_digest, progress=False))
        seconds = time.perf_counter() - t
        busy = sum(r.pop("_busy_s", 0.0) for r in rows)
        diff = max_diff(scores_of(rows), scores_of(local.rows))
        failed |= diff > args.tolerance
        runs.append({"engine": "ray", "actors": actors, "seconds": seconds, "rows_per_s": args.rows / seconds,
                     "in_reward_share": busy / (seconds * actors), "max_abs_diff_vs_local": diff})
    cfg = RayConfig(ray_actors=2, ray_batch_size=args.batch_size)
    noop_s = {}
    for n in (args.rows // 4, args.rows):
        t = time.perf_counter()
        noop = list(run_sharded(NoOp, records[:n], tmp / f"shards-noop-{n}", cfg, key="noop", digest=record_digest, progress=False))
        noop_s[n] = time.perf_counter() - t
        assert [r["id"] for r in noop] == [r.id for r in records[:n]]
    ray.shutdown()
    small, full = args.rows // 4, args.rows
    per_row = (noop_s[full] - noop_s[small]) / (full - small)
    fixed = noop_s[full] - per_row * full

    print(f"\n{'engine':<12}{'actors':>7}{'seconds':>10}{'rows/s':>10}{'in reward':>11}{'max |diff|':>12}")
    for r in runs:
        diff = "" if r["engine"] == "local" else f"{r['max_abs_diff_vs_local']:.1e}"
        share = "" if r["engine"] == "local" else f"{r['in_reward_share']:.0%}"
        print(f"{r['engine']:<12}{r['actors'] or '':>7}{r['seconds']:>10.2f}{r['rows_per_s']:>10.0f}{share:>11}{diff:>12}")
    for n, sec in noop_s.items():
        print(f"{'ray no-op':<12}{2:>7}{sec:>10.2f}{n / sec:>10.0f}   ({n} rows)")
    by_actors = {r["actors"]: r for r in runs if r["engine"] == "ray"}
    summary = {"ray_cluster_start_s": init_s, "local_reward_load_s": load_s, "noop_seconds": {str(k): v for k, v in noop_s.items()},
               "ray_fixed_s": fixed, "ray_overhead_ms_per_row": 1000 * per_row}
    if 2 in by_actors:
        summary["ray2_over_local"] = local_s / by_actors[2]["seconds"]
        summary["ray2_over_local_with_load"] = (load_s + local_s) / by_actors[2]["seconds"]  # Ray's runs load the reward in each actor
    if 1 in by_actors and 2 in by_actors:
        summary["ray2_over_ray1"] = by_actors[1]["seconds"] / by_actors[2]["seconds"]
    print(f"\ncluster start {init_s:.1f}s (not in the Ray rows above); local reward load {load_s:.1f}s (not in the local row)")
    if "ray2_over_local" in summary:
        print(f"ray x2 / local: {summary['ray2_over_local']:.2f}x rows/s ({summary['ray2_over_local_with_load']:.2f}x counting the local reward load, "
              "as the Ray runs count theirs)")
    if "ray2_over_ray1" in summary:
        print(f"ray x2 / ray x1: {summary['ray2_over_ray1']:.2f}x rows/s")
    print(f"Ray's own cost (no-op worker, 2 actors): {fixed:.2f}s fixed (actor start, scheduling) + {1000 * per_row:.3f} ms per row")
    print("scores identical to local within tolerance: " + ("yes" if not failed else "NO"))

    result = {"machine": platform.machine(), "cpus": os.cpu_count(), "python": platform.python_version(), "ray": ray.__version__,
              "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}, "rows": composition,
              "runs": runs, "summary": summary, "scores_match": not failed}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
