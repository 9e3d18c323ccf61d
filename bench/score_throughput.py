"""Scoring throughput: rewardkit's packed scorer and token-budget scorer vs. the usual fixed-batch baseline.

What it measures, all in one run on the same machine, model and token ids:

  (p) ``ClassifierReward(..., packing="on")``: padding-free packed scoring. Sequences sorted by length,
      several per row up to ``--max-tokens-per-batch`` tokens, positions restarting per sequence; a 4D
      block mask keeps them apart (sdpa / eager: the CPU path), or flash attention's variable-length
      kernel does (one unpadded row; where ``flash_attn`` is installed, on a GPU, ``--dtype`` fp16/bf16).
  (a) ``ClassifierReward(...).score(prompts, completions)`` as it is by default: inputs sorted by
      length into batches of at most ``--max-tokens-per-batch`` padded tokens; head read at the last
      real token.
  (b) the common baseline (how the most-used RM evaluation tool scores): a fixed batch of 8 in input
      order, right-padded to the longest row of the batch, one forward of the full model per batch.
      It is written here by hand with the *same* loaded model and the *same* token ids.

The three paths must give the same scores (checked: max |diff| < --tolerance, else exit code 1). All
timings include tokenization; the paths take turns in each repeat, so a neighbour's load hits them
alike. The data is real mixed-length pairwise data (HH-RLHF harmless, RM-Bench chat), shuffled with
a fixed seed, so the baseline pays for padding the way it does in practice.

Reported: real (non-pad) tokens/s of each path and the ratios packed / token-budget (target >=
--target-packed-speedup), packed / baseline (--target-packed-baseline) and token-budget / baseline
(--target-speedup); padding efficiency (real / computed token slots); and each path's achieved FLOP/s
as a share of this machine's fp32 matmul peak (best of repeated large square matmuls), counting a
forward as 2 x non-embedding parameters FLOPs per real token (goal >= --target-peak-share). Missing a
target is printed as FAIL but does not change the exit code; only a score disagreement does.

Why: sorting + token-budget batching is rewardkit's claim to be faster than the baseline, and packing
its claim to remove the padding that is left; this shows by how much on realistic data, and how far
the scorer is from what the hardware could do. On a CPU, packing can at most save the padding the
token-budget scorer still computes (its padding efficiency says how much), and a packed row's masked
attention blocks cost as much as visible ones; flash attention's varlen kernel on a GPU skips them.

Run: .venv/bin/python bench/score_throughput.py  (about 3-4 minutes on a 2-core CPU)
Smoke run (a small random model, a few pairs, under a minute): add --tiny --pairs-per-file 8
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
from rewardkit.models import pad_batch
from rewardkit.rewards.classifier import ClassifierReward

REPO = Path(__file__).resolve().parent.parent


def _shared_data() -> Path:
    """``$REWARDKIT_SHARED_DATA``, else ``shared/data`` beside the checkout (or beside the folder of
    worktrees that holds it)."""
    if os.environ.get("REWARDKIT_SHARED_DATA"):
        return Path(os.environ["REWARDKIT_SHARED_DATA"])
    candidates = [REPO.parent / "shared" / "data", REPO.parent.parent / "shared" / "data"]
    return next((c for c in candidates if c.is_dir()), candidates[0])


DATA = _shared_data() / "pairwise"
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


def score_rewardkit(reward: ClassifierReward, prompts, completions, packing: str = "off") -> tuple[list[float], list[list[float]]]:
    """``reward.score`` with ``packing`` ("on": the packed path; "off": the token-budget padded path)."""
    reward.packing = packing
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


def timed(fns: dict, repeats: int) -> dict:
    """Run every ``fns[name]`` ``repeats`` times, taking turns; per name (best seconds, result of its last run)."""
    best = {name: float("inf") for name in fns}
    results = {}
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            results[name] = fn()
            best[name] = min(best[name], time.perf_counter() - t0)
    return {name: (best[name], results[name]) for name in fns}


# ------------------------------------------------------------------------------------- accounting
def computed_tokens(lengths: list[int], reward: ClassifierReward, layout: str | None) -> tuple[int, int]:
    """(forward passes, token slots computed) of the scorer's own plan (``TransformerReward.plan``,
    the call ``run`` makes): rows x their width per forward, or the real tokens alone in the varlen
    layout (one unpadded row)."""
    plan = reward.plan(lengths, layout)
    if layout == "varlen":
        return len(plan), sum(lengths)
    return len(plan), sum(len(rows) * max(sum(lengths[i] for i in row) for row in rows) for rows in plan)


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
class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Defaults in the help, examples kept as written."""


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description=(
            "Compare rewardkit's packed ClassifierReward scorer (packing='on') and its token-budget scorer "
            "(the default) with the fixed-batch-of-8, input-order baseline on the same mixed-length pairwise "
            "data, model and token ids; check the three give the same scores; report tokens/s, the ratios, "
            "padding efficiency and each path's share of the machine's fp32 matmul peak."
        ),
        epilog=(
            "examples:\n"
            "  .venv/bin/python bench/score_throughput.py                      # the embedded model, 60 pairs\n"
            "  .venv/bin/python bench/score_throughput.py --repeats 3          # best of 3, the paths taking turns\n"
            "  .venv/bin/python bench/score_throughput.py --tiny --pairs-per-file 8 --out /tmp/smoke.json   # smoke run\n"
            "  .venv/bin/python bench/score_throughput.py --dtype bfloat16     # on a GPU with flash_attn: the varlen path\n"
        ),
        formatter_class=_HelpFormatter,
    )
    ap.add_argument("--model", default="default", help="reward model spec (directory, hub id; default: the packaged default RM)")
    ap.add_argument("--tiny", action="store_true",
                    help="use a random Llama classifier built here with the default model's tokenizer (--tiny-hidden, --tiny-layers) "
                         "instead of --model: a quick smoke run; its timings say nothing about a real model")
    ap.add_argument("--tiny-hidden", type=int, default=64, help="hidden size of the --tiny model")
    ap.add_argument("--tiny-layers", type=int, default=2, help="layers of the --tiny model")
    ap.add_argument("--dtype", default="float32", help="weights' dtype (float16/bfloat16 on a GPU lets flash attention's varlen path run)")
    ap.add_argument("--data", type=Path, nargs="+", default=DEFAULT_FILES, help="pairwise JSONL files (prompt/chosen/rejected)")
    ap.add_argument("--pairs-per-file", type=int, default=30, help="pairs read from the start of each file (2 sequences per pair)")
    ap.add_argument("--max-length", type=int, default=1024, help="truncate longer sequences (passed to ClassifierReward)")
    ap.add_argument("--max-tokens-per-batch", type=int, default=8192, help="padded-token budget of one rewardkit forward")
    ap.add_argument("--max-padding", type=float, default=0.1,
                    help="token budget: padding share that closes a batch; packed: how far below a forward's longest "
                         "a sequence may be and still open a row (shorter ones fill gaps)")
    ap.add_argument("--baseline-batch-size", type=int, default=8, help="fixed batch size of the baseline")
    ap.add_argument("--repeats", type=int, default=1, help="timed runs of each path after warm-up (best is kept)")
    ap.add_argument("--warmup", type=int, default=8, help="sequences scored by each path before timing")
    ap.add_argument("--seed", type=int, default=0, help="shuffle seed for the input order")
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's choice)")
    ap.add_argument("--matmul-size", type=int, default=2048, help="side of the square matmuls used to measure the peak")
    ap.add_argument("--matmul-repeats", type=int, default=20, help="timed matmuls for the peak (best is kept)")
    ap.add_argument("--tolerance", type=float, default=1e-4, help="max allowed |score difference| between the paths")
    ap.add_argument("--target-speedup", type=float, default=2.0, help="target tokens/s ratio token-budget scorer / baseline")
    ap.add_argument("--target-packed-speedup", type=float, default=1.15, help="target tokens/s ratio packed / token-budget scorer")
    ap.add_argument("--target-packed-baseline", type=float, default=2.5, help="target tokens/s ratio packed / baseline")
    ap.add_argument("--target-peak-share", type=float, default=0.70, help="target share of the fp32 matmul peak")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "score_throughput.json", help="JSON result file")
    return ap.parse_args(argv)


def tiny_model(hidden: int, layers: int, seed: int) -> str:
    """A random ``LlamaForSequenceClassification`` (one label) with the default model's tokenizer,
    saved in a temporary folder: the real data then tokenizes to the real lengths."""
    import tempfile

    from transformers import LlamaConfig, LlamaForSequenceClassification
    from transformers.utils import logging as hf_logging

    from rewardkit.models import load_tokenizer, resolve_source

    hf_logging.disable_progress_bar()

    tok = load_tokenizer(resolve_source("default"))
    heads = max(1, hidden // 64)
    config = LlamaConfig(vocab_size=len(tok), hidden_size=hidden, intermediate_size=hidden * 8 // 3, num_hidden_layers=layers,
                         num_attention_heads=heads, num_key_value_heads=heads // 3 if heads % 3 == 0 else heads,
                         max_position_embeddings=4096, num_labels=1, pad_token_id=tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id)
    torch.manual_seed(seed)
    folder = tempfile.mkdtemp(prefix="rewardkit-bench-tiny-")
    LlamaForSequenceClassification(config).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def max_diff(a: tuple[list[float], list[list[float]]], b: tuple[list[float], list[list[float]]]) -> float:
    """Largest |difference| of two paths' scores and head outputs."""
    scores = max(abs(x - y) for x, y in zip(a[0], b[0]))
    heads = max(abs(x - y) for va, vb in zip(a[1], b[1]) for x, y in zip(va, vb))
    return max(scores, heads)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()

    spec = tiny_model(args.tiny_hidden, args.tiny_layers, args.seed) if args.tiny else args.model
    try:
        return run(args, spec, threads)
    finally:
        if args.tiny:
            import shutil

            shutil.rmtree(spec, ignore_errors=True)


def run(args: argparse.Namespace, spec: str, threads: int) -> int:
    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        # loaded for packing (flash attention 2 where it can run), the same model then serves every path
        reward = ClassifierReward(spec, max_tokens_per_batch=args.max_tokens_per_batch, max_padding=args.max_padding,
                                  max_length=args.max_length, dtype=args.dtype, packing="on")
    load_s = time.perf_counter() - t0
    notes = [str(w.message) for w in caught if "classification head" in str(w.message) or "flash attention" in str(w.message)]
    layout = reward.layout
    attention = getattr(reward.model.config, "_attn_implementation", None)
    label = "tiny random Llama" if args.tiny else reward.model_label

    prompts, completions = load_pairs(args.data, args.pairs_per_file, args.seed)
    t0 = time.perf_counter()
    encoded = reward.encode(prompts, completions)
    encode_s = time.perf_counter() - t0
    lengths = [len(e) for e in encoded]
    real_tokens = sum(lengths)

    paths = {
        "packed": lambda: score_rewardkit(reward, prompts, completions, "on"),
        "rewardkit": lambda: score_rewardkit(reward, prompts, completions, "off"),
        "baseline": lambda: score_baseline(reward, prompts, completions, args.baseline_batch_size),
    }
    # The peak is measured before and after the timed runs, and the CPU time of other processes is
    # watched throughout: either moving means a neighbour shared the CPU and the numbers are suspect.
    with OtherLoad() as other:
        peak_before = matmul_peak_gflops(args.matmul_size, args.matmul_repeats)
        w = args.warmup  # allocator, thread pool, first-call overheads
        for fn in (lambda: score_rewardkit(reward, prompts[:w], completions[:w], "on"),
                   lambda: score_rewardkit(reward, prompts[:w], completions[:w], "off"),
                   lambda: score_baseline(reward, prompts[:w], completions[:w], args.baseline_batch_size)):
            fn()
        runs = timed(paths, args.repeats)
        peak_after = matmul_peak_gflops(args.matmul_size, args.matmul_repeats)
    reward.packing = "on"
    peak = max(peak_before, peak_after)

    # Agreement: the scalar scores and every head output, each pair of paths.
    diffs = {"packed_vs_rewardkit": max_diff(runs["packed"][1], runs["rewardkit"][1]),
             "rewardkit_vs_baseline": max_diff(runs["rewardkit"][1], runs["baseline"][1]),
             "packed_vs_baseline": max_diff(runs["packed"][1], runs["baseline"][1])}
    agree = max(diffs.values()) < args.tolerance
    busy = (other.share is not None and other.share > 0.05) or min(peak_before, peak_after) < 0.85 * peak

    n_params = non_embedding_params(reward.model)
    flops_per_token = 2 * n_params
    pk_batches, pk_computed = computed_tokens(lengths, reward, layout)
    rk_batches, rk_computed = computed_tokens(lengths, reward, None)
    bl_batches = -(-len(lengths) // args.baseline_batch_size)
    stats = {}
    for name, batches, computed in (("packed", pk_batches, pk_computed), ("rewardkit", rk_batches, rk_computed),
                                    ("baseline", bl_batches, padded_tokens_baseline(lengths, args.baseline_batch_size))):
        secs = runs[name][0]
        tps = real_tokens / secs
        gflops = tps * flops_per_token / 1e9
        stats[name] = {"seconds": secs, "tokens_per_s": tps, "gflops": gflops, "peak_share": gflops / peak,
                       "batches": batches, "computed_tokens": computed, "padding_efficiency": real_tokens / computed}
    ratio = lambda a, b: stats[a]["tokens_per_s"] / stats[b]["tokens_per_s"]  # noqa: E731
    speedup, packed_speedup, packed_baseline = ratio("rewardkit", "baseline"), ratio("packed", "rewardkit"), ratio("packed", "baseline")
    share = stats["rewardkit"]["peak_share"]

    # ---------------------------------------------------------------------------------- report
    print(f"model            {label}  ({type(reward.model).__name__}, {next(reward.model.parameters()).dtype}, "
          f"num_labels={reward.num_labels}, attention {attention})")
    for note in notes:
        print(f"note             {note}")
    print(f"torch            {torch.__version__}, threads={threads}, device={reward.device}")
    print(f"data             {len(lengths)} sequences ({args.pairs_per_file} pairs x {len(args.data)} files), "
          f"{real_tokens} real tokens, length min/median/max = {min(lengths)}/{sorted(lengths)[len(lengths) // 2]}/{max(lengths)}, "
          f"truncated={sum(e.truncated for e in encoded)} (max_length={args.max_length})")
    print(f"other processes  used {'n/a' if other.share is None else f'{other.share:.1%}'} of the CPU during the timed part")
    print(f"timing           load {load_s:.1f}s, tokenize {encode_s:.2f}s (included in every timing), best of {args.repeats} run(s), paths taking turns")
    print(f"flop model       2 x {n_params / 1e6:.1f}M non-embedding params = {flops_per_token / 1e6:.0f} MFLOP/token")
    print()
    header = f"{'path':<46}{'batches':>8}{'seconds':>9}{'tok/s':>9}{'GFLOP/s':>9}{'% peak':>8}{'pad eff':>9}"
    print(header)
    print("-" * len(header))
    for name, text in (("packed", f"packed ({layout} layout, budget {args.max_tokens_per_batch} tok)"),
                       ("rewardkit", f"token budget (budget {args.max_tokens_per_batch} tok, sorted)"),
                       ("baseline", f"baseline (batch {args.baseline_batch_size}, input order)")):
        st = stats[name]
        print(f"{text:<46}{st['batches']:>8}{st['seconds']:>9.2f}{st['tokens_per_s']:>9.0f}{st['gflops']:>9.1f}"
              f"{100 * st['peak_share']:>7.1f}%{st['padding_efficiency']:>9.1%}")
    print(f"{f'fp32 matmul peak ({args.matmul_size}^3)':<46}{'':>8}{'':>9}{'':>9}{peak:>9.1f}{100.0:>7.1f}%   (before/after: {peak_before:.1f}/{peak_after:.1f})")
    if busy:
        print("WARNING: the machine was shared during the run (other processes used "
              f"{'?' if other.share is None else f'{other.share:.0%}'} of the CPU, or the peak moved between before and after); "
              "rerun on an idle machine for trustworthy numbers")
    print()
    print("agreement        max |score or head output diff|: " + ", ".join(f"{k.replace('_', ' ')} {v:.2e}" for k, v in diffs.items())
          + f"  (tolerance {args.tolerance:g}) -> {'OK' if agree else 'MISMATCH'}")
    for text, value, target in (("packed / token budget", packed_speedup, args.target_packed_speedup),
                                ("packed / baseline", packed_baseline, args.target_packed_baseline),
                                ("token budget / baseline", speedup, args.target_speedup)):
        print(f"{text:<25}{value:.2f}x tokens/s  (target >= {target:g}x) -> {'PASS' if value >= target else 'FAIL'}")
    print(f"{'peak share':<25}{share:.1%} of fp32 matmul peak (token budget; goal >= {args.target_peak_share:.0%}) -> "
          f"{'PASS' if share >= args.target_peak_share else 'FAIL'}")

    result = {
        "model": label,
        "num_labels": reward.num_labels,
        "attention": attention,
        "packed_layout": layout,
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
        **stats,
        "speedup": speedup,
        "packed_over_rewardkit": packed_speedup,
        "packed_over_baseline": packed_baseline,
        "max_abs_diff": diffs,
        "scores_agree": agree,
        "speedup_pass": speedup >= args.target_speedup,
        "packed_speedup_pass": packed_speedup >= args.target_packed_speedup,
        "packed_baseline_pass": packed_baseline >= args.target_packed_baseline,
        "peak_share_pass": share >= args.target_peak_share,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(f"wrote            {args.out}")
    return 0 if agree else 1


if __name__ == "__main__":
    sys.exit(main())
