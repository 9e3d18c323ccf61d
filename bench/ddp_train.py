"""Data-parallel training: the Bradley-Terry recipe on 2 CPU processes (DDP over gloo) vs 1 process.

Same run, same machine, same model (the embedded SmolLM2-135M-Instruct as a one-label sequence
classifier, or a tiny random model with --tiny), same token ids (tokenized once, as in
bench/train_throughput.py), same global batch (--pairs-per-step pairs per optimizer step, which the
processes split), same number of steps, same cores: the one process gets --threads threads, each of
the N processes --threads / N, so the comparison is of the same hardware used two ways, not of more
hardware. Each configuration runs in fresh processes (``--worker``), --repeats times alternately; the
best run of each is kept, because this machine is shared and noisy.

Reported: pairs/s over the steps after --warmup, the ratio of the N-process run to the one-process
run, and the peak RSS of every process (DDP keeps a whole model, its gradients and optimizer state in
each process, plus gradient buckets). No target: on a 2-core CPU the processes share the cores the one
process already used, so the ratio shows the cost of the all-reduce and of smaller forwards more than a
speed-up; on N GPUs each process adds a device.

Run: .venv/bin/python bench/ddp_train.py            (embedded model; about 15 minutes on a 2-core CPU)
     .venv/bin/python bench/ddp_train.py --tiny     (seconds; checks the harness)
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
from train_throughput import DATA, REPO, build_model_dir, encode_pairs, worker_rewardkit  # noqa: E402  (one data and model setup)


def run_worker(args) -> None:
    """One process of a measured run: the recipe, then this process's peak RSS (and, from the first
    process, the step times) as ``rank-R.json`` in --results."""
    pairs = json.loads(Path(args.pairs_file).read_text())
    result = worker_rewardkit(args, pairs)
    rank = int(os.environ.get("RANK", "0"))
    out = {"rank": rank, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    if rank == 0:
        out["step_end_times"] = result["step_end_times"]
    (Path(args.results) / f"rank-{rank}.json").write_text(json.dumps(out))


def measure(n: int, args, pairs_file: Path, model: str, workdir: Path) -> dict:
    results = workdir / f"results-{n}-{time.time_ns()}"
    results.mkdir()
    worker = [str(Path(__file__).resolve()), "--worker", "--pairs-file", str(pairs_file), "--model", model, "--results", str(results),
              "--out-dir", str(workdir / f"out-{n}-{time.time_ns()}"), "--mode", args.mode, "--lora-r", str(args.lora_r), "--lr", str(args.lr),
              "--steps", str(args.steps), "--pairs-per-step", str(args.pairs_per_step), "--max-length", str(args.max_length),
              "--max-tokens-per-micro-batch", str(args.max_tokens_per_micro_batch), "--seed", str(args.seed)]
    threads = max(1, args.threads // n)
    env = {**os.environ, "TQDM_DISABLE": "1", "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": str(threads)}
    if n == 1:
        cmd = [sys.executable, *worker]
    else:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(n), "--num_machines", "1",
               "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(port),
               "--num_cpu_threads_per_process", str(threads), *worker]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    ranks = sorted(results.glob("rank-*.json"))
    if proc.returncode or len(ranks) != n:
        sys.exit(f"{n}-process run failed:\n{proc.stderr[-3000:]}")
    per_rank = [json.loads(p.read_text()) for p in ranks]
    t = next(r["step_end_times"] for r in per_rank if r["rank"] == 0)
    if len(t) != args.steps:
        sys.exit(f"{n} processes: expected {args.steps} steps, saw {len(t)}")
    return {"processes": n, "threads_per_process": threads,
            "pairs_per_s": (args.steps - args.warmup) * args.pairs_per_step / (t[-1] - t[args.warmup - 1]),
            "peak_rss_mb_per_process": [round(r["peak_rss_mb"]) for r in sorted(per_rank, key=lambda r: r["rank"])]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tiny", action="store_true", help="a tiny random model (harness check, seconds)")
    ap.add_argument("--processes", type=int, default=2, help="processes of the data-parallel run")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="CPU threads in total, shared by the processes of a run")
    ap.add_argument("--mode", choices=["lora", "full", "head"], default="lora")
    ap.add_argument("--lora-r", type=int, default=16)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--pairs", type=int, default=256, help="pairs in the training set")
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--pairs-per-step", type=int, default=16, help="the global batch, split over the processes")
    ap.add_argument("--max-length", type=int, default=384)
    ap.add_argument("--max-tokens-per-micro-batch", type=int, default=4096)
    ap.add_argument("--repeats", type=int, default=2, help="alternating runs per configuration; the best of each is kept")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "ddp_train.json")
    # worker-only
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--pairs-file", help=argparse.SUPPRESS)
    ap.add_argument("--model", default="default", help=argparse.SUPPRESS)
    ap.add_argument("--out-dir", help=argparse.SUPPRESS)
    ap.add_argument("--results", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        run_worker(args)
        return 0
    if args.tiny:
        args.steps, args.pairs = min(args.steps, 6), min(args.pairs, 64)

    with tempfile.TemporaryDirectory(prefix="rk-ddp-bench-") as tmp:
        workdir = Path(tmp)
        model = build_model_dir(args.tiny, workdir)
        pairs = encode_pairs(model, [DATA / "hh_rlhf_harmless.jsonl", DATA / "gsm8k_model_solution_pairs.jsonl"],
                             args.pairs, args.max_length, args.seed)
        pairs_file = workdir / "pairs.json"
        pairs_file.write_text(json.dumps(pairs))
        print(f"{len(pairs)} pairs; {args.steps} steps x {args.pairs_per_step} pairs (global batch), mode {args.mode}, "
              f"model {'tiny' if args.tiny else 'SmolLM2-135M'}, {args.threads} threads in total", flush=True)
        runs: dict[int, list[dict]] = {1: [], args.processes: []}
        for i in range(args.repeats):
            for n in (1, args.processes) if i % 2 == 0 else (args.processes, 1):
                r = measure(n, args, pairs_file, model, workdir)
                runs[n].append(r)
                print(f"  run {i + 1}: {n} process(es) x {r['threads_per_process']} thread(s): {r['pairs_per_s']:.2f} pairs/s, "
                      f"peak RSS per process {r['peak_rss_mb_per_process']} MB", flush=True)
    best = {n: max(v, key=lambda r: r["pairs_per_s"]) for n, v in runs.items()}
    one, many = best[1], best[args.processes]
    ratio = many["pairs_per_s"] / one["pairs_per_s"]
    import accelerate
    import torch

    report = {
        "config": {k: v for k, v in vars(args).items() if k not in ("worker", "pairs_file", "out_dir", "out", "results")},
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "torch": torch.__version__, "accelerate": accelerate.__version__},
        "one_process": one, "data_parallel": many, "ratio": ratio,
        "all_runs": {str(n): [round(r["pairs_per_s"], 3) for r in v] for n, v in runs.items()},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(f"\nDDP, {args.processes} processes: {many['pairs_per_s']:.2f} pairs/s vs 1 process {one['pairs_per_s']:.2f} pairs/s: {ratio:.2f}x; "
          f"peak RSS per process {many['peak_rss_mb_per_process']} MB vs {one['peak_rss_mb_per_process']} MB")
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
