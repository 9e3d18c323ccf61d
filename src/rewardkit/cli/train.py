"""rewardkit train: train a reward model (Bradley-Terry; head, LoRA or full fine-tune)."""
from __future__ import annotations

import argparse
import json
import sys

from .common import command_line, quiet_libraries

HELP = "train a Bradley-Terry reward model on preference pairs (head, LoRA or full; resumable)"
EPILOG = """examples:
  rewardkit train --out runs/rm                                  # embedded model, built-in suite train split
  rewardkit train --data pairs.jsonl --mode full --max-steps 500 --out runs/rm-full
  rewardkit train --out runs/rm --resume                         # continue after a crash or kill

Writes checkpoints (atomically) under OUT/checkpoints, the exported model under OUT/model (loadable by
transformers.AutoModelForSequenceClassification, with tokenizer, chat template, reward mean/std and a
model card) and OUT/train_results.json. Evaluate the result with
  rewardkit eval --reward classifier:OUT/model --data suite"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help=HELP, description=HELP, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", action="append", metavar="DATA", help="preference data (repeatable); default: the built-in suite's train split")
    p.add_argument("--eval-data", metavar="DATA", help="held-out pairs; default: a split of the training prompts (--eval-fraction)")
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument("--model", default="default", help="base model: default (embedded), a directory, a .gguf file or a hub id")
    p.add_argument("--mode", choices=["head", "lora", "full"], default="lora")
    p.add_argument("--lora-r", type=int, default=8)
    p.add_argument("--no-merge", action="store_true", help="export the LoRA adapter unmerged")
    p.add_argument("--lr", type=float, default=None, help="learning rate (default 2e-4 for lora/head, 2e-5 for full)")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--max-steps", type=int, default=None)
    p.add_argument("--pairs-per-step", type=int, default=16)
    p.add_argument("--max-tokens-per-micro-batch", type=int, default=4096, help="padded tokens per forward (gradient accumulation beyond)")
    p.add_argument("--max-length", type=int, default=512)
    p.add_argument("--margin-column", default=None, help="per-pair margin column (margin loss)")
    p.add_argument("--center-coef", type=float, default=0.0, help="reward-centering penalty coef * (r_c + r_r)^2")
    p.add_argument("--label-smoothing", type=float, default=0.0)
    p.add_argument("--eval-fraction", type=float, default=0.1)
    p.add_argument("--eval-every", type=int, default=50)
    p.add_argument("--save-every", type=int, default=50)
    p.add_argument("--patience", type=int, default=None, help="stop after this many evaluations without improvement")
    p.add_argument("--limit", type=int, default=None, help="use the first N rows of each data file (suite: N per subset)")
    p.add_argument("--resume", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..data.benchmarks import resolve_data
    from ..train.bt import BTConfig, train

    quiet_libraries()
    sources = args.data or ["suite:train"]
    records = []
    for spec in sources:
        data = resolve_data(spec, limit=args.limit, seed=args.seed)
        if data.kind != "pairs":
            print(f"error: {spec} holds {data.kind} records; training needs preference pairs", file=sys.stderr)
            return 2
        records.extend(data.records)
    eval_records = None
    if args.eval_data:
        eval_records = resolve_data(args.eval_data, seed=args.seed).records
    lr = args.lr if args.lr is not None else (2e-5 if args.mode == "full" else 2e-4)
    cfg = BTConfig(
        model=args.model, output_dir=args.out, mode=args.mode, lora_r=args.lora_r, lora_alpha=2 * args.lora_r,
        merge_lora=not args.no_merge, learning_rate=lr, epochs=args.epochs, max_steps=args.max_steps,
        pairs_per_step=args.pairs_per_step, max_tokens_per_micro_batch=args.max_tokens_per_micro_batch,
        max_length=args.max_length, margin_column=args.margin_column, center_coef=args.center_coef,
        label_smoothing=args.label_smoothing, eval_fraction=args.eval_fraction, eval_every=args.eval_every,
        save_every=args.save_every, patience=args.patience, seed=args.seed, command=command_line(args.argv),
        data_sources=list(sources),
    )
    summary = train(cfg, records, eval_records, resume=args.resume)
    print(json.dumps({k: summary[k] for k in ("train_pairs", "eval_pairs", "steps", "best_step", "eval", "export")}, indent=2))
    return 0
