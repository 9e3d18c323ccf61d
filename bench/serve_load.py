"""Reward server under load: dynamic micro-batching vs. one model call per request.

What it measures, in one run on the same machine, model and data:

  Two `rewardkit serve` processes on loopback with the same reward (default ``classifier:default``, the
  embedded SmolLM2-135M-Instruct with a scalar head): one with micro-batching (the default settings),
  one with ``--no-batching`` (every request is its own model call: the baseline). Both are started
  first; then for each concurrency level (1, 8, 32) the same requests go to the baseline and then to
  the batching server, so both see the same machine conditions. A request is one (question,
  solution) sample from GSM8K test, the shape of an RL trainer scoring rollouts one by one.

Reported per cell: requests completed, throughput (requests/s over the cell's wall time), p50 and
p99 latency, and the mean samples per model call (from the server's /metrics). The headline on a CPU is
served samples/s at concurrency 32 (batching on, one sample per request: what OpenRLHF sends) over
in-process scoring of the same samples in the same run (target >= --target-in-process, 0.9x: the
server should cost almost nothing). The batching/baseline ratio at concurrency 32 (--target, 4x) is a
GPU target: on a 2-core CPU one 135M sample already saturates it. Scores from the two servers
must agree (max |diff| < --tolerance, 1e-5 as in tests/invariant: a merged batch differs from single
calls in the last fp32 bits) or the exit code is 1; missing the throughput target is printed but does
not change the exit code.

A second, smaller section runs the same comparison with a tiny random classifier (2 layers, width 64,
the embedded model's tokenizer) built into a temporary folder: there a model call costs little next to
its fixed overhead (tokenizing, chat template, Python, dispatch), the regime of a reward model on a GPU,
so it shows what merging requests buys when the hardware is not already saturated by one sample.
Skip it with --no-tiny.

Bounded: --requests per level (scaled: 1 -> N/4, 8 -> N/2, 32 -> N) and --max-seconds per cell.

Why the classifier and not ``loglik:default``: the likelihood reward's readout builds a
[completion tokens x 49k vocabulary] logits matrix per model call, which on a CPU makes large batches
memory-bound, so it measures that readout rather than the server (pass --reward loglik:default to see).

Run: .venv/bin/python bench/serve_load.py   (about 3 minutes on a 2-core CPU)
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("REWARDKIT_SHARED_DATA", REPO.parent / "shared" / "data")) / "math" / "gsm8k_test.jsonl"
LEVELS = (1, 8, 32)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def load_samples(path: Path, n: int) -> list[dict]:
    rows = []
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            rows.append({"prompts": [row["question"]], "completions": [row["solution"]]})
            if len(rows) >= n:
                break
    return rows


def build_tiny_classifier(folder: Path) -> Path:
    """A tiny random LlamaForSequenceClassification with the embedded model's tokenizer."""
    import torch
    from transformers import LlamaConfig, LlamaForSequenceClassification

    from rewardkit.models.loading import load_tokenizer, resolve_source

    tokenizer = load_tokenizer(resolve_source("default"))
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=2, max_position_embeddings=2048, num_labels=1,
                         pad_token_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id)
    LlamaForSequenceClassification(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


class Server:
    def __init__(self, reward: str, batching: bool, extra: list[str]):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cmd = [sys.executable, "-m", "rewardkit.cli.main", "serve", "--reward", reward, "--host", "127.0.0.1", "--port", str(self.port),
               "--log-level", "warning", "--max-queue", "8192", *extra]
        if not batching:
            cmd.append("--no-batching")
        self.cmd = cmd
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    def wait_ready(self, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.proc.stderr.read()[-2000:]}")
            try:
                if httpx.get(f"{self.url}/ready", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError("server did not become ready")

    def batch_stats(self) -> tuple[float, float]:
        """(sum, count) of the samples-per-model-call histogram."""
        text = httpx.get(f"{self.url}/metrics", timeout=10).text
        total = float(re.search(r"^rewardkit_batch_size_samples_sum (\S+)$", text, re.M).group(1))
        count = float(re.search(r"^rewardkit_batch_size_samples_count (\S+)$", text, re.M).group(1))
        return total, count

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


async def run_cell(url: str, samples: list[dict], concurrency: int, n_requests: int, max_seconds: float) -> dict:
    """``n_requests`` requests from ``concurrency`` clients in a closed loop (each sends its next
    request when the previous answer arrives); no new request after ``max_seconds``."""
    latencies: list[float] = []
    scores: dict[int, float] = {}
    errors = 0
    next_index = 0
    start = time.perf_counter()
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=300, limits=limits) as client:
        async def worker() -> None:
            nonlocal next_index, errors
            while next_index < n_requests and time.perf_counter() - start < max_seconds:
                i = next_index
                next_index += 1
                t0 = time.perf_counter()
                r = await client.post("/v1/score", json=samples[i % len(samples)])
                latencies.append(time.perf_counter() - t0)
                if r.status_code == 200:
                    scores[i % len(samples)] = r.json()["scores"][0]
                else:
                    errors += 1

        await asyncio.gather(*[worker() for _ in range(concurrency)])
    wall = time.perf_counter() - start
    latencies.sort()
    return {
        "concurrency": concurrency,
        "requests": len(latencies),
        "errors": errors,
        "seconds": round(wall, 3),
        "throughput_rps": round(len(latencies) / wall, 3),
        "p50_ms": round(1000 * statistics.median(latencies), 1),
        "p99_ms": round(1000 * latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))], 1),
        "_scores": scores,
    }

def run_section(reward: str, args: argparse.Namespace, samples: list[dict], label: str | None = None) -> dict:
    """Both servers for ``reward``, every concurrency level; prints the table, returns the rows."""
    t0 = time.perf_counter()
    servers = {"off": Server(reward, False, args.server_arg), "on": Server(reward, True, args.server_arg)}
    rows: list[dict] = []
    try:
        for s in servers.values():
            s.wait_ready()
        print(f"{label or reward}: servers ready in {time.perf_counter() - t0:.1f}s; {len(samples)} GSM8K samples", file=sys.stderr)
        for s in servers.values():  # warm up (first forwards allocate)
            asyncio.run(run_cell(s.url, samples, 1, args.warmup, 60))
        for c in LEVELS:
            n = {1: max(4, args.requests // 4), 8: max(8, args.requests // 2)}.get(c, args.requests)
            for mode in ("off", "on"):
                before = servers[mode].batch_stats()
                row = asyncio.run(run_cell(servers[mode].url, samples, c, n, args.max_seconds))
                after = servers[mode].batch_stats()
                calls = after[1] - before[1]
                row["mean_batch_samples"] = round((after[0] - before[0]) / calls, 2) if calls else None
                row["batching"] = mode
                rows.append(row)
                print(f"  c={c:>2} batching={mode:<3} {row['requests']:>4} req  {row['throughput_rps']:7.2f} req/s  "
                      f"p50 {row['p50_ms']:8.1f} ms  p99 {row['p99_ms']:8.1f} ms  samples/call {row['mean_batch_samples']}", file=sys.stderr)
    finally:
        for s in servers.values():
            s.stop()

    # both servers must give the same score for the same sample
    by_mode: dict[str, dict[int, float]] = {"off": {}, "on": {}}
    for row in rows:
        by_mode[row["batching"]].update(row.pop("_scores"))
    common = sorted(set(by_mode["off"]) & set(by_mode["on"]))
    max_diff = max((abs(by_mode["off"][i] - by_mode["on"][i]) for i in common), default=0.0)

    def cell(c: int, mode: str) -> dict:
        return next(r for r in rows if r["concurrency"] == c and r["batching"] == mode)

    ratios = {c: round(cell(c, "on")["throughput_rps"] / cell(c, "off")["throughput_rps"], 2) for c in LEVELS}
    print()
    print(f"{label or reward}: 1 GSM8K sample per request, loopback, "
          f"{platform.machine()}, {os.cpu_count()} CPUs")
    print("| concurrency | micro-batching | requests | throughput (req/s) | p50 (ms) | p99 (ms) | samples / model call |")
    print("|---:|:---:|---:|---:|---:|---:|---:|")
    for row in rows:
        print(f"| {row['concurrency']} | {row['batching']} | {row['requests']} | {row['throughput_rps']:.2f} | {row['p50_ms']:.0f} | "
              f"{row['p99_ms']:.0f} | {row['mean_batch_samples']} |")
    print("throughput ratio (on / off): " + ", ".join(f"c={c}: {r:.2f}x" for c, r in ratios.items()))
    print(f"scores agree between the two servers on {len(common)} samples: max |diff| = {max_diff:.2e}")
    return {"reward": reward, "label": label or reward, "rows": rows, "throughput_ratio": {str(c): r for c, r in ratios.items()},
            "max_score_diff": max_diff, "samples_compared": len(common), "_scores_on": by_mode["on"]}


def in_process(reward: str, samples: list[dict], repeats: int = 2) -> dict:
    """The same samples scored in this process, as `rewardkit score` does (one reward, batched by its
    token budget): the ceiling a server is measured against. Best of ``repeats``, after a warm-up."""
    from rewardkit.evals.runner import score_dataset
    from rewardkit.specs import load_reward
    from rewardkit.types import SampleRecord

    model = load_reward(reward)
    records = [SampleRecord(str(i), s["prompts"][0], s["completions"][0]) for i, s in enumerate(samples)]
    score_dataset(model, records[:4], progress=False)
    best, scores = float("inf"), {}
    for _ in range(repeats):
        t0 = time.perf_counter()
        run = score_dataset(model, records, progress=False)
        best = min(best, time.perf_counter() - t0)
        scores = {i: row["score"] for i, row in enumerate(run.rows)}
    del model
    return {"samples": len(records), "seconds": round(best, 3), "samples_per_s": round(len(records) / best, 3), "_scores": scores}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reward", default="classifier:default")
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--requests", type=int, default=128, help="requests at concurrency 32 (1: a quarter, 8: half)")
    ap.add_argument("--max-seconds", type=float, default=40.0, help="stop sending new requests in a cell after this long")
    ap.add_argument("--warmup", type=int, default=4)
    ap.add_argument("--target", type=float, default=4.0, help="micro-batching on/off at concurrency 32 (a GPU target)")
    ap.add_argument("--target-in-process", type=float, default=0.9,
                    help="served samples/s at concurrency 32 (batching on, one sample per request, as OpenRLHF sends) over "
                         "in-process scoring of the same samples")
    ap.add_argument("--tolerance", type=float, default=1e-5,
                    help="largest allowed score difference between the servers (merged batches differ from single calls in the "
                         "last fp32 bits; tests/invariant pins 1e-5)")
    ap.add_argument("--no-tiny", action="store_true", help="skip the tiny random classifier section")
    ap.add_argument("--server-arg", action="append", default=[], help="extra `rewardkit serve` option for both servers (repeatable)")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "serve_load.json")
    args = ap.parse_args()

    samples = load_samples(args.data, args.requests)
    t_start = time.perf_counter()
    sections = [run_section(args.reward, args, samples)]
    if not args.no_tiny:
        with tempfile.TemporaryDirectory() as tmp:
            tiny = build_tiny_classifier(Path(tmp) / "tiny-classifier")
            sections.append(run_section(f"classifier:{tiny}", args, samples, label="tiny random classifier (overhead-bound)"))
    main_section = sections[0]
    ratio32 = main_section["throughput_ratio"]["32"]
    base = in_process(args.reward, samples)  # after the servers stopped: nothing else on the CPU
    served32 = next(r for r in main_section["rows"] if r["concurrency"] == 32 and r["batching"] == "on")
    served_ratio = served32["throughput_rps"] / base["samples_per_s"]
    base_scores = base.pop("_scores")
    served_scores = main_section.pop("_scores_on")
    shared = sorted(set(base_scores) & set(served_scores))
    main_section["in_process_max_diff"] = max((abs(base_scores[i] - served_scores[i]) for i in shared), default=0.0)
    print()
    print(f"{args.reward}: served at concurrency 32 (one sample per request) {served32['throughput_rps']:.2f} samples/s vs in-process "
          f"{base['samples_per_s']:.2f} samples/s: {served_ratio:.2f}x (target >= {args.target_in_process:g}x): "
          f"{'PASS' if served_ratio >= args.target_in_process else 'FAIL'}; p50 {served32['p50_ms']:.0f} ms, p99 {served32['p99_ms']:.0f} ms")
    verdict = "PASS" if ratio32 >= args.target else "FAIL (expected on a CPU: each sample already saturates it; a GPU target)"
    print(f"{args.reward}: micro-batching on/off {ratio32:.2f}x at concurrency 32 (target >= {args.target:g}x): {verdict}")
    if len(sections) > 1:
        sections[1].pop("_scores_on", None)
        print(f"tiny random classifier: {sections[1]['throughput_ratio']['32']:.2f}x at concurrency 32")
    print(f"scores: served vs in-process max |diff| = {main_section['in_process_max_diff']:.2e} on {len(shared)} samples")
    max_diff = max([sec["max_score_diff"] for sec in sections] + [main_section["in_process_max_diff"]])
    result = {
        "benchmark": "serve_load",
        "reward": args.reward,
        "data": str(args.data.name),
        "samples_per_request": 1,
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version(),
                    "load_average_at_end": list(os.getloadavg()) if hasattr(os, "getloadavg") else None},
        "server_args": args.server_arg,
        "sections": sections,
        "target_ratio_at_32": args.target,
        "target_met": ratio32 >= args.target,
        "in_process": base,
        "served_over_in_process_at_32": round(served_ratio, 3),
        "target_in_process": args.target_in_process,
        "target_in_process_met": served_ratio >= args.target_in_process,
        "in_process_max_score_diff": main_section.get("in_process_max_diff"),
        "score_tolerance": args.tolerance,
        "max_score_diff": max_diff,
        "seconds": round(time.perf_counter() - t_start, 1),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out} ({result['seconds']}s)")
    return 0 if max_diff < args.tolerance else 1


if __name__ == "__main__":
    sys.exit(main())
