"""Training throughput: rewardkit's Bradley-Terry recipe vs. TRL's ``RewardTrainer``.

Same run, same machine, same model (the embedded SmolLM2-135M-Instruct as a one-label sequence
classifier, or a tiny random model with --tiny), same LoRA configuration (or full fine-tune), same
token ids (tokenized once by rewardkit's encoder, left-truncated to --max-length, and handed to TRL
pre-tokenized, so both train on exactly the same sequences), same pairs per optimizer step, same
number of steps, same learning rate.

Each trainer runs in its own fresh Python process (``--worker``), so peak memory (max RSS of that
process) is not polluted by the other. Both put chosen and rejected into one forward pass; the
difference measured is how the pairs of a step become forward passes: TRL stacks the 2B sequences and
pads all of them to the longest of the step; rewardkit packs each pair into one row whose shared
prefix (the prompt, and any opening tokens both answers share) is encoded once, the rejected tail
masked from the chosen tail (``--no-share-prefix`` in the recipe turns this off), then sorts a step's
rows by length into micro-batches under a padded-token budget (gradient accumulation beyond), so
little compute goes to padding or to encoding the prompt twice. Throughput is pairs/s over the steps
after --warmup (first steps pay one-off costs).

Reported: pairs/s of both, their ratio (target >= --target-speedup) and peak RSS (target: rewardkit
<= TRL). Each worker is run --repeats times alternately and the best run of each is kept, because
this machine is shared and noisy. Missing a target prints FAIL; the exit code stays 0.

Needs TRL (benchmark-only): pip install 'rewardkit[bench]'
Run: .venv/bin/python bench/train_throughput.py           (about 40 minutes on a 2-core CPU; --steps 8 --pairs 128: 25)
     .venv/bin/python bench/train_throughput.py --tiny    (seconds; checks the harness)
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("REWARDKIT_SHARED_DATA", REPO.parent / "shared" / "data")) / "pairwise"


# --------------------------------------------------------------------------------------------- setup
def build_model_dir(tiny: bool, workdir: Path) -> str:
    """The model both trainers start from, as a directory (tiny: a random 2-layer Llama)."""
    if not tiny:
        return "default"
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    sys.path.insert(0, str(REPO / "tests"))
    from conftest import build_tiny_tokenizer  # the tests' character-level tokenizer

    tok = build_tiny_tokenizer()
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, max_position_embeddings=2048, pad_token_id=tok.pad_token_id,
                      bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    path = workdir / "tiny"
    LlamaForCausalLM(cfg).save_pretrained(path)
    tok.save_pretrained(path)
    return str(path)


def encode_pairs(model: str, files: list[Path], n_pairs: int, max_length: int, seed: int) -> list[dict]:
    """Token ids of ``n_pairs`` pairs (shuffled with ``seed``): chat template, exact prompt/completion
    boundary, left truncation, exactly what rewardkit trains on."""
    from rewardkit.data import load_dataset
    from rewardkit.data.synth import generate
    from rewardkit.models import Encoder, load_tokenizer, resolve_source

    records = []
    for path in files:
        if path.is_file():
            records += load_dataset(path, limit=n_pairs).records
    if not records:  # no shared data on this machine: the built-in suite still has mixed lengths
        records = generate("train", n_pairs, seed=seed)
    random.Random(seed).shuffle(records)
    records = records[:n_pairs]
    enc = Encoder(load_tokenizer(resolve_source(model)), max_length=max_length, truncation_side="left")
    chosen = enc.encode_many([r.prompt for r in records], [r.chosen for r in records])
    rejected = enc.encode_many([r.prompt for r in records], [r.rejected for r in records])
    return [{"chosen_ids": c.input_ids, "rejected_ids": r.input_ids} for c, r in zip(chosen, rejected)]


# --------------------------------------------------------------------------------------------- workers
def worker_rewardkit(args, pairs: list[dict]) -> dict:
    from rewardkit.train import bt
    from rewardkit.types import PairRecord

    # The recipe encodes records itself; hand it the ids through a pass-through encoder so it trains on
    # exactly the sequences TRL gets.
    records = [PairRecord(str(i), "", "", "") for i in range(len(pairs))]
    by_id = {str(i): p for i, p in enumerate(pairs)}
    bt._encode = lambda recs, encoder, margin_column: [bt._Pair(by_id[r.id]["chosen_ids"], by_id[r.id]["rejected_ids"], 0.0, False) for r in recs]
    cfg = bt.BTConfig(model=args.model, output_dir=args.out_dir, mode=args.mode, lora_r=args.lora_r, lora_alpha=2 * args.lora_r,
                      learning_rate=args.lr, max_steps=args.steps, pairs_per_step=args.pairs_per_step,
                      max_tokens_per_micro_batch=args.max_tokens_per_micro_batch, max_length=args.max_length,
                      eval_fraction=0.0, eval_every=10**9, save_every=10**9, progress=False, seed=args.seed)
    summary = bt.train(cfg, records)
    times = [h["elapsed"] for h in summary["history"]]
    return {"step_end_times": times}


def worker_trl(args, pairs: list[dict]) -> dict:
    import torch
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import RewardConfig, RewardTrainer

    from rewardkit.models import load_model, load_tokenizer, resolve_source

    source = resolve_source(args.model)
    tok = load_tokenizer(source)
    model = load_model(source, "sequence-classification", num_labels=1, seed=args.seed, device="cpu")
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    peft_config = None
    if args.mode == "lora":
        from peft import LoraConfig

        peft_config = LoraConfig(task_type="SEQ_CLS", r=args.lora_r, lora_alpha=2 * args.lora_r, lora_dropout=0.0,
                                 target_modules=["q_proj", "v_proj"], modules_to_save=["score"])
    times: list[float] = []
    start = [0.0]

    class Clock(TrainerCallback):
        def on_train_begin(self, *a, **k):
            start[0] = time.perf_counter()

        def on_step_end(self, *a, **k):
            times.append(time.perf_counter() - start[0])

    cfg = RewardConfig(output_dir=args.out_dir, per_device_train_batch_size=args.pairs_per_step, gradient_accumulation_steps=1,
                       max_steps=args.steps, learning_rate=args.lr, lr_scheduler_type="constant", warmup_steps=0,
                       weight_decay=0.0, logging_steps=10**6, save_strategy="no", report_to=[], use_cpu=True,
                       dataloader_num_workers=0, max_length=args.max_length, seed=args.seed, disable_tqdm=True,
                       gradient_checkpointing=False, bf16=False)  # TRL defaults both on; rewardkit uses neither (fp32, no recompute)
    torch.manual_seed(args.seed)
    trainer = RewardTrainer(model=model, args=cfg, train_dataset=Dataset.from_list(pairs), processing_class=tok,
                            peft_config=peft_config, callbacks=[Clock()])
    trainer.train()
    return {"step_end_times": times}


def run_worker(args) -> None:
    pairs = json.loads(Path(args.pairs_file).read_text())
    fn = worker_rewardkit if args.worker == "rewardkit" else worker_trl
    result = fn(args, pairs)
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("RESULT " + json.dumps(result))


# --------------------------------------------------------------------------------------------- driver
def measure(name: str, args, pairs_file: Path, model: str, workdir: Path) -> dict:
    cmd = [sys.executable, __file__, "--worker", name, "--pairs-file", str(pairs_file), "--model", model,
           "--out-dir", str(workdir / f"out-{name}-{time.time_ns()}"), "--mode", args.mode, "--lora-r", str(args.lora_r),
           "--lr", str(args.lr), "--steps", str(args.steps), "--pairs-per-step", str(args.pairs_per_step),
           "--max-length", str(args.max_length), "--max-tokens-per-micro-batch", str(args.max_tokens_per_micro_batch),
           "--seed", str(args.seed)]
    env = {**os.environ, "TQDM_DISABLE": "1", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
    if proc.returncode or line is None:
        sys.exit(f"{name} worker failed:\n{proc.stderr[-3000:]}")
    result = json.loads(line[len("RESULT "):])
    t = result["step_end_times"]
    if len(t) != args.steps:
        sys.exit(f"{name}: expected {args.steps} steps, saw {len(t)}")
    measured_steps = args.steps - args.warmup
    result["pairs_per_s"] = measured_steps * args.pairs_per_step / (t[-1] - t[args.warmup - 1])
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tiny", action="store_true", help="a tiny random model (harness check, seconds)")
    ap.add_argument("--mode", choices=["lora", "full", "head"], default="lora")
    ap.add_argument("--lora-r", type=int, default=16)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--pairs", type=int, default=256, help="pairs in the training set")
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--pairs-per-step", type=int, default=8)
    ap.add_argument("--max-length", type=int, default=384)
    ap.add_argument("--max-tokens-per-micro-batch", type=int, default=4096)
    ap.add_argument("--repeats", type=int, default=2, help="alternating runs per trainer; the best of each is kept")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--target-speedup", type=float, default=1.3)
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "train_throughput.json")
    # worker-only
    ap.add_argument("--worker", choices=["rewardkit", "trl"], help=argparse.SUPPRESS)
    ap.add_argument("--pairs-file", help=argparse.SUPPRESS)
    ap.add_argument("--model", default="default", help=argparse.SUPPRESS)
    ap.add_argument("--out-dir", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        run_worker(args)
        return 0
    try:
        import trl  # noqa: F401
    except ImportError:
        sys.exit("this benchmark compares with TRL: pip install 'rewardkit[bench]'")
    if args.tiny:
        args.steps, args.pairs = min(args.steps, 6), min(args.pairs, 64)

    with tempfile.TemporaryDirectory(prefix="rk-train-bench-") as tmp:
        workdir = Path(tmp)
        model = build_model_dir(args.tiny, workdir)
        pairs = encode_pairs(model, [DATA / "hh_rlhf_harmless.jsonl", DATA / "gsm8k_model_solution_pairs.jsonl"],
                             args.pairs, args.max_length, args.seed)
        pairs_file = workdir / "pairs.json"
        pairs_file.write_text(json.dumps(pairs))
        lengths = sorted(len(p["chosen_ids"]) for p in pairs) + sorted(len(p["rejected_ids"]) for p in pairs)
        print(f"{len(pairs)} pairs, sequence lengths {min(lengths)}..{max(lengths)} (mean {sum(lengths) / len(lengths):.0f}); "
              f"{args.steps} steps x {args.pairs_per_step} pairs, mode {args.mode}, model {'tiny' if args.tiny else 'SmolLM2-135M'}", flush=True)
        runs: dict[str, list[dict]] = {"rewardkit": [], "trl": []}
        for i in range(args.repeats):
            for name in ("rewardkit", "trl") if i % 2 == 0 else ("trl", "rewardkit"):
                r = measure(name, args, pairs_file, model, workdir)
                runs[name].append(r)
                print(f"  run {i + 1} {name:9s} {r['pairs_per_s']:.2f} pairs/s  peak RSS {r['peak_rss_mb']:.0f} MB", flush=True)
    best = {k: max(v, key=lambda r: r["pairs_per_s"]) for k, v in runs.items()}
    ratio = best["rewardkit"]["pairs_per_s"] / best["trl"]["pairs_per_s"]
    mem_ok = best["rewardkit"]["peak_rss_mb"] <= best["trl"]["peak_rss_mb"]
    import trl

    report = {
        "config": {k: v for k, v in vars(args).items() if k not in ("worker", "pairs_file", "out_dir", "out")},
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "trl": trl.__version__},
        "rewardkit": {k: v for k, v in best["rewardkit"].items() if k != "step_end_times"},
        "trl": {k: v for k, v in best["trl"].items() if k != "step_end_times"},
        "all_runs": {k: [round(r["pairs_per_s"], 3) for r in v] for k, v in runs.items()},
        "speedup": ratio, "target_speedup": args.target_speedup, "memory_ok": mem_ok,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(f"\nrewardkit {best['rewardkit']['pairs_per_s']:.2f} pairs/s vs TRL RewardTrainer {best['trl']['pairs_per_s']:.2f} pairs/s: "
          f"{ratio:.2f}x ({'PASS' if ratio >= args.target_speedup else 'FAIL'} target {args.target_speedup}x)")
    print(f"peak RSS: rewardkit {best['rewardkit']['peak_rss_mb']:.0f} MB vs TRL {best['trl']['peak_rss_mb']:.0f} MB "
          f"({'PASS' if mem_ok else 'FAIL'}: rewardkit <= TRL)")
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
