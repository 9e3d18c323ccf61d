"""Scoring throughput: rewardkit's token-budget scorer vs. the usual fixed-batch baseline.

What it measures, all in one run on the same machine, model and token ids:

  (a) ``ClassifierReward("default").score(prompts, completions)``: inputs sorted by length and packed
      into batches of at most ``--max-tokens-per-batch`` padded tokens; head read at the last real token.
  (b) the common baseline (how the most-used RM evaluation tool scores): a fixed batch of 8 in input
      order, right-padded to the longest row of the batch, one forward of the full model per batch.
      It is written here by hand with the *same* loaded model and the *same* token ids, so the two
      paths must give the same scores (checked: max |diff| < --tolerance, else exit code 1).

Both timings include tokenization. The data is real mixed-length pairwise data (HH-RLHF harmless,
RM-Bench chat), shuffled with a fixed seed, so the baseline pays for padding the way it does in practice.

Reported: real (non-pad) tokens/s of both paths and their ratio (target >= --target-speedup), padding
efficiency (real / padded tokens), and the scorer's achieved FLOP/s as a share of this machine's fp32
matmul peak (best of repeated large square matmuls), counting a forward as 2 x non-embedding
parameters FLOPs per real token (goal >= --target-peak-share). Missing a target is printed as FAIL but
does not change the exit code; only a score disagreement does.

Why: sorting + token-budget batching is rewardkit's claim to be faster than the baseline; this shows
by how much on realistic data, and how far the scorer is from what the hardware could do.

Run: .venv/bin/python bench/score_throughput.py  (about 2-3 minutes on a 2-core CPU)
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import time
import warnings
from pathlib import Path

import torch

from rewardkit.data import load_dataset
from rewardkit.models import make_batches, pad_batch
from rewardkit.rewards.classifier import ClassifierReward

REPO = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("REWARDKIT_SHARED_DATA", REPO.parent / "shared" / "data")) / "pairwise"
DEFAULT_FILES = [DATA / "hh_rlhf_harmless.jsonl", DATA / "rm_bench_chat.jsonl"]


# --------------------------------------------------------------------------------------------- data
def load_pairs(files: list[Path], pairs_per_file: int, seed: int) -> tuple[list, list]:
    """Flatten the first ``pairs_per_file`` pairs of each file to (prompt, completion) rows, chosen
    and rejected each one row, then shuffle them so lengths are mixed in input order."""
    rows = []
    for path in files:
        for rec in load_dataset(path, limit=pairs_per_file).records:
            rows.append((rec.prompt, rec.chosen))
            rows.append((rec.prompt, rec.rejected))
    random.Random(seed).shuffle(rows)
    return [p for p, _ in rows], [c for _, c in rows]


# ----------------------------------------------------------------------------------------- scoring
def combine(reward: ClassifierReward, logits: list[float]) -> float:
    """Same reduction of the head's outputs to one score as ``ClassifierReward.score``."""
    if reward.num_labels == 1:
        return float(logits[0])
    if reward.weights is not None:
        return float(sum(w * v for w, v in zip(reward.weights, logits)))
    return float(sum(logits) / len(logits))


def score_rewardkit(reward: ClassifierReward, prompts, completions) -> tuple[list[float], list[list[float]]]:
    out = reward.score(prompts, completions)
    vectors = out.vector if out.vector is not None else [[s] for s in out.scores]
    return list(out.scores), vectors


def score_baseline(reward: ClassifierReward, prompts, completions, batch_size: int) -> tuple[list[float], list[list[float]]]:
    """Fixed-size batches in input order, right padding to the batch's longest row, and the head read
    at each row's last real token. Like ``model(input_ids, attention_mask)`` no position ids are
    passed: with right padding the default 0..T-1 positions are the right ones for every real token."""
    encoded = reward.encode(prompts, completions)
    model = reward.model
    vectors: list[list[float]] = []
    with torch.inference_mode():
        for start in range(0, len(encoded), batch_size):
            rows = encoded[start : start + batch_size]
            batch = pad_batch([e.input_ids for e in rows], list(range(len(rows))), reward.pad_id, "right", reward.device)
            hidden = model.base_model(
                input_ids=batch.input_ids, attention_mask=batch.attention_mask, use_cache=False
            ).last_hidden_state
            last = torch.tensor([n - 1 for n in batch.lengths], device=hidden.device)
            pooled = hidden[torch.arange(len(rows), device=hidden.device), last]
            vectors.extend(model.score(pooled).float().tolist())
    return [combine(reward, v) for v in vectors], vectors


def timed(fn, repeats: int):
    """Run ``fn`` ``repeats`` times; return (best seconds, result of the last run)."""
    best, result = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    return best, result


# ------------------------------------------------------------------------------------- accounting
def padded_tokens_rewardkit(lengths: list[int], reward: ClassifierReward) -> int:
    """Padded tokens of the scorer's own batching (same ``make_batches`` call as ``TransformerReward.run``)."""
    batches = make_batches(lengths, reward.max_tokens_per_batch, reward.batch_size, reward.max_padding)
    return sum(len(b) * max(lengths[i] for i in b) for b in batches)


def padded_tokens_baseline(lengths: list[int], batch_size: int) -> int:
    return sum(len(lengths[s : s + batch_size]) * max(lengths[s : s + batch_size]) for s in range(0, len(lengths), batch_size))


def non_embedding_params(model) -> int:
    """All parameters minus the input embedding matrix (a lookup, not a matmul). A sequence
    classifier has no LM head, so tied embeddings do not matter here; the score head is counted."""
    total = sum(p.numel() for p in model.parameters())
    return total - model.get_input_embeddings().weight.numel()


def matmul_peak_gflops(size: int, repeats: int) -> float:
    """Best fp32 GFLOP/s of ``size x size @ size x size`` over ``repeats`` runs. The first few
    matmuls run well below peak (thread pool and clocks ramping up), so they are not timed."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    out = torch.empty(size, size)
    for _ in range(3):
        torch.mm(a, b, out=out)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        torch.mm(a, b, out=out)
        best = min(best, time.perf_counter() - t0)
    return 2 * size**3 / best / 1e9


def _busy_cpu_seconds() -> float | None:
    """CPU seconds all processes have spent busy since boot (Linux /proc/stat; None elsewhere)."""
    try:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


class OtherLoad:
    """Share of the machine's CPU time used by *other* processes (and the hypervisor) while the
    block runs. Anything much above zero means the timings were slowed by a neighbour."""

    def __enter__(self):
        self._busy, self._own, self._wall = _busy_cpu_seconds(), time.process_time(), time.perf_counter()
        return self

    def __exit__(self, *exc):
        busy = _busy_cpu_seconds()
        wall = time.perf_counter() - self._wall
        own = time.process_time() - self._own
        self.share = None if busy is None else max(0.0, (busy - self._busy - own) / (wall * (os.cpu_count() or 1)))
        return False


# ------------------------------------------------------------------------------------------- main
def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description=(
            "Compare rewardkit's token-budget ClassifierReward scorer with the fixed-batch-of-8, "
            "input-order baseline on the same mixed-length pairwise data, model and token ids; check "
            "they give the same scores; report tokens/s, the speedup, padding efficiency and the "
            "scorer's share of the machine's fp32 matmul peak."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    ap.add_argument("--data", type=Path, nargs="+", default=DEFAULT_FILES, help="pairwise JSONL files (prompt/chosen/rejected)")
    ap.add_argument("--pairs-per-file", type=int, default=30, help="pairs read from the start of each file (2 sequences per pair)")
    ap.add_argument("--max-length", type=int, default=1024, help="truncate longer sequences (passed to ClassifierReward)")
    ap.add_argument("--max-tokens-per-batch", type=int, default=8192, help="padded-token budget of one rewardkit forward")
    ap.add_argument("--baseline-batch-size", type=int, default=8, help="fixed batch size of the baseline")
    ap.add_argument("--repeats", type=int, default=1, help="timed runs of each path after warm-up (best is kept)")
    ap.add_argument("--warmup", type=int, default=8, help="sequences scored by each path before timing")
    ap.add_argument("--seed", type=int, default=0, help="shuffle seed for the input order")
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's choice)")
    ap.add_argument("--matmul-size", type=int, default=2048, help="side of the square matmuls used to measure the peak")
    ap.add_argument("--matmul-repeats", type=int, default=20, help="timed matmuls for the peak (best is kept)")
    ap.add_argument("--tolerance", type=float, default=1e-4, help="max allowed |score difference| between the paths")
    ap.add_argument("--target-speedup", type=float, default=2.0, help="target tokens/s ratio rewardkit / baseline")
    ap.add_argument("--target-peak-share", type=float, default=0.70, help="target share of the fp32 matmul peak")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "score_throughput.json", help="JSON result file")
    return ap.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()

    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        reward = ClassifierReward("default", max_tokens_per_batch=args.max_tokens_per_batch, max_length=args.max_length)
    load_s = time.perf_counter() - t0
    notes = [str(w.message) for w in caught if "classification head" in str(w.message)]

    prompts, completions = load_pairs(args.data, args.pairs_per_file, args.seed)
    t0 = time.perf_counter()
    encoded = reward.encode(prompts, completions)
    encode_s = time.perf_counter() - t0
    lengths = [len(e) for e in encoded]
    real_tokens = sum(lengths)

    # The peak is measured before and after the timed runs, and the CPU time of other processes is
    # watched throughout: either moving means a neighbour shared the CPU and the numbers are suspect.
    with OtherLoad() as other:
        peak_before = matmul_peak_gflops(args.matmul_size, args.matmul_repeats)

        # Warm up both paths (allocator, thread pool, first-call overheads).
        w = args.warmup
        score_rewardkit(reward, prompts[:w], completions[:w])
        score_baseline(reward, prompts[:w], completions[:w], args.baseline_batch_size)

        rk_s, (rk_scores, rk_vec) = timed(lambda: score_rewardkit(reward, prompts, completions), args.repeats)
        bl_s, (bl_scores, bl_vec) = timed(lambda: score_baseline(reward, prompts, completions, args.baseline_batch_size), args.repeats)

        peak_after = matmul_peak_gflops(args.matmul_size, args.matmul_repeats)
    peak = max(peak_before, peak_after)

    # Agreement: the scalar scores and every head output.
    score_diff = max(abs(a - b) for a, b in zip(rk_scores, bl_scores))
    head_diff = max(abs(x - y) for va, vb in zip(rk_vec, bl_vec) for x, y in zip(va, vb))
    agree = max(score_diff, head_diff) < args.tolerance

    busy = (other.share is not None and other.share > 0.05) or min(peak_before, peak_after) < 0.85 * peak

    n_params = non_embedding_params(reward.model)
    flops_per_token = 2 * n_params
    rk_tps, bl_tps = real_tokens / rk_s, real_tokens / bl_s
    speedup = rk_tps / bl_tps
    rk_gflops, bl_gflops = rk_tps * flops_per_token / 1e9, bl_tps * flops_per_token / 1e9
    share = rk_gflops / peak
    rk_padded = padded_tokens_rewardkit(lengths, reward)
    bl_padded = padded_tokens_baseline(lengths, args.baseline_batch_size)
    rk_batches = len(make_batches(lengths, reward.max_tokens_per_batch, reward.batch_size, reward.max_padding))
    bl_batches = -(-len(lengths) // args.baseline_batch_size)

    # ---------------------------------------------------------------------------------- report
    print(f"model            {reward.model_label}  ({type(reward.model).__name__}, {next(reward.model.parameters()).dtype}, "
          f"num_labels={reward.num_labels})")
    for note in notes:
        print(f"note             {note}")
    print(f"torch            {torch.__version__}, threads={threads}, device={reward.device}")
    print(f"data             {len(lengths)} sequences ({args.pairs_per_file} pairs x {len(args.data)} files), "
          f"{real_tokens} real tokens, length min/median/max = {min(lengths)}/{sorted(lengths)[len(lengths) // 2]}/{max(lengths)}, "
          f"truncated={sum(e.truncated for e in encoded)} (max_length={args.max_length})")
    print(f"other processes  used {'n/a' if other.share is None else f'{other.share:.1%}'} of the CPU during the timed part")
    print(f"timing           load {load_s:.1f}s, tokenize {encode_s:.2f}s (included in both timings), best of {args.repeats} run(s)")
    print(f"flop model       2 x {n_params / 1e6:.1f}M non-embedding params = {flops_per_token / 1e6:.0f} MFLOP/token")
    print()
    header = f"{'path':<34}{'batches':>8}{'seconds':>9}{'tok/s':>9}{'GFLOP/s':>9}{'% peak':>8}{'pad eff':>9}"
    print(header)
    print("-" * len(header))
    for label, batches, secs, tps, gf, padded in (
        (f"rewardkit (budget {args.max_tokens_per_batch} tok, sorted)", rk_batches, rk_s, rk_tps, rk_gflops, rk_padded),
        (f"baseline (batch {args.baseline_batch_size}, input order)", bl_batches, bl_s, bl_tps, bl_gflops, bl_padded),
    ):
        print(f"{label:<34}{batches:>8}{secs:>9.2f}{tps:>9.0f}{gf:>9.1f}{100 * gf / peak:>7.1f}%{real_tokens / padded:>9.1%}")
    print(f"{f'fp32 matmul peak ({args.matmul_size}^3)':<34}{'':>8}{'':>9}{'':>9}{peak:>9.1f}{100.0:>7.1f}%   (before/after: {peak_before:.1f}/{peak_after:.1f})")
    if busy:
        print("WARNING: the machine was shared during the run (other processes used "
              f"{'?' if other.share is None else f'{other.share:.0%}'} of the CPU, or the peak moved between before and after); "
              "rerun on an idle machine for trustworthy numbers")
    print()
    print(f"agreement        max |score diff| = {score_diff:.2e}, max |head output diff| = {head_diff:.2e}  "
          f"(tolerance {args.tolerance:g}) -> {'OK' if agree else 'MISMATCH'}")
    print(f"speedup          {speedup:.2f}x tokens/s  (target >= {args.target_speedup:g}x) -> "
          f"{'PASS' if speedup >= args.target_speedup else 'FAIL'}")
    print(f"peak share       {share:.1%} of fp32 matmul peak  (goal >= {args.target_peak_share:.0%}) -> "
          f"{'PASS' if share >= args.target_peak_share else 'FAIL'}")

    result = {
        "model": reward.model_label,
        "num_labels": reward.num_labels,
        "notes": notes,
        "torch": torch.__version__,
        "threads": threads,
        "device": reward.device,
        "machine": platform.processor() or platform.machine(),
        "config": vars(args),
        "sequences": len(lengths),
        "real_tokens": real_tokens,
        "length_min_median_max": [min(lengths), sorted(lengths)[len(lengths) // 2], max(lengths)],
        "truncated": sum(e.truncated for e in encoded),
        "load_seconds": load_s,
        "tokenize_seconds": encode_s,
        "non_embedding_params": n_params,
        "flops_per_token": flops_per_token,
        "matmul_peak_gflops": peak,
        "matmul_peak_gflops_before_after": [peak_before, peak_after],
        "other_processes_cpu_share": other.share,
        "machine_busy": busy,
        "rewardkit": {"seconds": rk_s, "tokens_per_s": rk_tps, "gflops": rk_gflops, "peak_share": share,
                      "batches": rk_batches, "padded_tokens": rk_padded, "padding_efficiency": real_tokens / rk_padded},
        "baseline": {"seconds": bl_s, "tokens_per_s": bl_tps, "gflops": bl_gflops, "peak_share": bl_gflops / peak,
                     "batches": bl_batches, "padded_tokens": bl_padded, "padding_efficiency": real_tokens / bl_padded},
        "speedup": speedup,
        "max_abs_score_diff": score_diff,
        "max_abs_head_diff": head_diff,
        "scores_agree": agree,
        "speedup_pass": speedup >= args.target_speedup,
        "peak_share_pass": share >= args.target_peak_share,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(f"wrote            {args.out}")
    return 0 if agree else 1


if __name__ == "__main__":
    sys.exit(main())
