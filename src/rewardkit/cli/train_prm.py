"""``rewardkit train --objective prm``: the PRM recipe behind the train verb (kept apart so the BT
path in train.py stays as it is)."""
from __future__ import annotations

import argparse
import json

from .common import command_line, quiet_libraries


def run_prm(args: argparse.Namespace) -> int:
    from ..data.steps import resolve_step_data
    from ..train.prm import PRMConfig, train

    quiet_libraries()
    sources = args.data or ["arith:train"]
    records = []
    for spec in sources:
        records.extend(resolve_step_data(spec, limit=args.limit, seed=args.seed).records)
    eval_records = resolve_step_data(args.eval_data, seed=args.seed).records if args.eval_data else None
    if args.readout == "loglik":
        return _run_loglik(args, sources, records, eval_records)
    lr = args.lr if args.lr is not None else (2e-5 if args.mode == "full" else 2e-4)
    cfg = PRMConfig(
        model=args.model, output_dir=args.out, mode=args.mode, lora_r=args.lora_r, lora_alpha=2 * args.lora_r,
        lora_targets=args.lora_targets,
        learning_rate=lr, epochs=args.epochs, max_steps=args.max_steps, samples_per_step=args.pairs_per_step,
        max_tokens_per_micro_batch=args.max_tokens_per_micro_batch, max_length=args.max_length,
        after_error=args.after_error or "zero", last_step_only=args.last_step_only, balance_labels=args.balance_labels, eval_fraction=args.eval_fraction,
        eval_every=args.eval_every, save_every=args.save_every, seed=args.seed, command=command_line(args.argv),
        data_sources=list(sources),
    )
    summary = train(cfg, records, eval_records, resume=args.resume)
    print(json.dumps({k: summary[k] for k in ("train_solutions", "eval_solutions", "dropped_too_long", "steps", "best_step", "eval", "export", "seconds")}, indent=2))
    return 0


def _run_loglik(args: argparse.Namespace, sources: list[str], records: list, eval_records: list | None) -> int:
    from ..train.prm_loglik import LoglikPRMConfig, train

    cfg = LoglikPRMConfig(model=args.model, output_dir=args.out, l2=args.l2, after_error=args.after_error or "ignore",
                          max_length=args.max_length, eval_fraction=args.eval_fraction, seed=args.seed,
                          command=command_line(args.argv), data_sources=list(sources))
    summary = train(cfg, records, eval_records)
    print(json.dumps({k: summary[k] for k in ("train_solutions", "eval_solutions", "dropped_too_long", "train_steps_labelled", "weights", "eval", "export", "seconds")}, indent=2))
    return 0
