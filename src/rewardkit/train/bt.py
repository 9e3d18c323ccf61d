"""Bradley-Terry reward-model training: ``-log sigmoid(r_chosen - r_rejected - margin)``.

One self-contained recipe ("Training language models to follow instructions with human feedback"
uses this objective): read top to bottom. Options from the literature: a per-pair ``margin`` column
(Llama 2's margin loss), a reward-centering penalty ``coef * (r_c + r_r)^2`` that keeps rewards near
zero mean, and label smoothing for noisy labels (conservative BT).

Parameter modes: ``head`` (only the scalar head), ``lora`` (peft adapters + head), ``full``.
Chosen and rejected of a pair go through one forward pass, packed into one row that encodes their
shared prefix (the prompt) once (``share_prefix``; or as two rows of a concatenated micro-batch); each
optimizer step takes ``pairs_per_step`` pairs, sorted by length into micro-batches of at most
``max_tokens_per_micro_batch`` padded tokens (gradient accumulation). Checkpoints are written atomically; ``resume=True`` continues
from the last one with the same data order and reaches the same weights as an uninterrupted run.
"""
from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from ..models import Encoder
from ..types import PairRecord
from .common import (TrainOptions, bt_loss, can_share_prefix, config_dict, first_state, note_eval, pair_head_outputs, pair_micro_batches,
                     prepare_model, restore_best, save_adapter, shuffled, start_run, training_split, write_export)
from .parallel import Net


@dataclass(kw_only=True)
class BTConfig(TrainOptions):
    output_dir: str = "runs/rm"
    merge_lora: bool = True
    weight_decay: float = 0.0
    warmup_steps: int = 0
    pairs_per_step: int = 16
    #: encode the tokens chosen and rejected start with (the prompt) once per pair (models/batching.py
    #: PairBatch); same rewards as separate sequences, fewer tokens. Needs an attention implementation
    #: that takes a 4D mask (sdpa, eager); others fall back to separate sequences.
    share_prefix: bool = True
    margin_column: str | None = None
    center_coef: float = 0.0
    label_smoothing: float = 0.0
    patience: int | None = None
    #: seed of the data order (default: ``seed``); vary it to reshuffle without changing the held-out split
    shuffle_seed: int | None = None
    #: continue from a trained LoRA adapter (a directory, or ``default`` for the packaged reward model)
    init_adapter: str | None = None
    #: reports of the noisy-label tools applied to the training pairs (train/noise.py)
    data_filters: list[dict] = field(default_factory=list)


# ------------------------------------------------------------------ data

@dataclass
class _Pair:
    chosen: list[int]
    rejected: list[int]
    margin: float
    truncated: bool
    weight: float = 1.0


def _encode(records: Sequence[PairRecord], encoder: Encoder, margin_column: str | None) -> list[_Pair]:
    chosen = encoder.encode_many([r.prompt for r in records], [r.chosen for r in records])
    rejected = encoder.encode_many([r.prompt for r in records], [r.rejected for r in records])
    pairs = []
    for r, c, j in zip(records, chosen, rejected):
        margin = 0.0
        if margin_column is not None:
            if r.columns.get(margin_column) is None:
                raise ValueError(f"pair {r.id}: margin column {margin_column!r} is missing")
            margin = float(r.columns[margin_column])
        weight = float(r.columns.get("pair_weight", 1.0))  # set by train/noise.py's vote weighting, or given in the data
        pairs.append(_Pair(c.input_ids, j.input_ids, margin, c.truncated or j.truncated, weight))
    return pairs


# ------------------------------------------------------------------ model

def _pair_rewards(net, chunk: Sequence[_Pair], pad_id: int, share_prefix: bool):
    """Rewards ``([B], [B])`` of the chosen and rejected sides; ``net`` is a :class:`~rewardkit.train.parallel.Net`."""
    hc, hr = net(pair_head_outputs, [(p.chosen, p.rejected) for p in chunk], pad_id, share_prefix)
    return hc[:, 0], hr[:, 0]


def _micro_batches(pairs: Sequence[_Pair], budget: int, share_prefix: bool) -> list[list[int]]:
    return pair_micro_batches([(p.chosen, p.rejected) for p in pairs], budget, share_prefix)


# ------------------------------------------------------------------ evaluation

def evaluate_pairs(net, share: bool, pairs: Sequence[_Pair], pad_id: int, budget: int, cfg: BTConfig) -> dict[str, float]:
    import torch

    if not pairs:
        return {}
    correct, total_loss = 0, 0.0
    with torch.inference_mode():
        for idx in _micro_batches(pairs, budget, share):
            chunk = [pairs[i] for i in idx]
            rc, rr = _pair_rewards(net, chunk, pad_id, share)
            margins = torch.tensor([p.margin for p in chunk])
            total_loss += bt_loss(rc, rr, margins, center_coef=cfg.center_coef, label_smoothing=cfg.label_smoothing).sum().item()
            correct += int((rc > rr).sum().item())
    return {"accuracy": correct / len(pairs), "loss": total_loss / len(pairs), "n": len(pairs)}


# ------------------------------------------------------------------ the recipe

def train(cfg: BTConfig, train_records: Sequence[PairRecord], eval_records: Sequence[PairRecord] | None = None, *, resume: bool = False) -> dict[str, Any]:
    """Train, checkpoint, export to ``output_dir/model``; returns the summary written to
    ``output_dir/train_results.json``."""
    import torch
    from tqdm.auto import tqdm

    cfg, out, ckpt_dir, par = start_run(cfg, resume)
    train_records, eval_records = training_split(train_records, eval_records, cfg, "pairs")
    model, hf, tokenizer = prepare_model(cfg, par.device)
    pad_id = hf.config.pad_token_id
    encoder = Encoder(tokenizer, max_length=cfg.max_length, truncation_side="left")
    train_pairs = _encode(train_records, encoder, cfg.margin_column)
    eval_pairs = _encode(eval_records, encoder, cfg.margin_column)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    steps_per_epoch = math.ceil(len(train_pairs) / cfg.pairs_per_step)
    total_steps = cfg.max_steps if cfg.max_steps is not None else steps_per_epoch * cfg.epochs
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / cfg.warmup_steps) if cfg.warmup_steps else 1.0)

    net, step_optimizer = par.prepare(hf, optimizer)  # before a checkpoint is loaded: sharding replaces the parameters
    state = first_state(cfg, ckpt_dir, resume, model, optimizer, par, best_accuracy=None)
    if state["step"]:  # resumed: the schedule continues where it stopped
        scheduler.last_epoch = state["step"] - 1
        scheduler.step()
    stopped_early = False

    def order(epoch: int) -> list[int]:
        return shuffled(len(train_pairs), cfg.seed if cfg.shuffle_seed is None else cfg.shuffle_seed, epoch)

    n_trunc = sum(p.truncated for p in train_pairs)
    share = cfg.share_prefix and can_share_prefix(hf)
    if cfg.share_prefix and not share and par.is_main:
        print(f"note: attention {hf.config._attn_implementation!r} takes no custom 4D mask; chosen and rejected are encoded separately", file=sys.stderr)
    model.train()
    start = time.perf_counter()
    tokens_seen = 0
    bar = tqdm(total=total_steps, initial=state["step"], desc="train", unit="step", disable=not cfg.progress or not par.is_main)

    def idle():  # a forward that adds no gradient (a process with fewer micro-batches in a step than another)
        rc, rr = _pair_rewards(net, train_pairs[:1], pad_id, share)
        return (rc + rr).sum() * 0.0

    while state["step"] < total_steps and not stopped_early:
        step = state["step"]
        epoch, pos = divmod(step, steps_per_epoch)
        perm = order(epoch)
        idx = perm[pos * cfg.pairs_per_step : (pos + 1) * cfg.pairs_per_step]
        n_step = len(idx)  # the loss is a mean over the step's pairs in all processes
        mine = [train_pairs[i] for i in par.share(idx)]
        step_optimizer.zero_grad(set_to_none=True)
        step_loss, step_correct, step_tokens = 0.0, 0, 0
        for micro in par.micro_steps(net, _micro_batches(mine, cfg.max_tokens_per_micro_batch, share), idle):
            chunk = [mine[i] for i in micro]
            rc, rr = _pair_rewards(net, chunk, pad_id, share)
            margins = torch.tensor([p.margin for p in chunk], device=rc.device)
            weights = torch.tensor([p.weight for p in chunk], device=rc.device)
            loss = (weights * bt_loss(rc, rr, margins, center_coef=cfg.center_coef, label_smoothing=cfg.label_smoothing)).sum() / n_step
            par.backward(loss)
            step_loss += loss.item()
            step_correct += int((rc.detach() > rr.detach()).sum().item())
            step_tokens += sum(len(p.chosen) + len(p.rejected) for p in chunk)
        step_optimizer.step()
        step_loss, step_correct, step_tokens = par.sum([step_loss, step_correct, step_tokens])
        tokens_seen += int(step_tokens)
        scheduler.step()
        state["step"] = step + 1
        elapsed = time.perf_counter() - start
        bar.set_postfix(loss=f"{step_loss:.4f}", acc=f"{step_correct / n_step:.2f}", tok_s=f"{tokens_seen / max(elapsed, 1e-9):.0f}")
        bar.update(1)
        record: dict[str, Any] = {"step": state["step"], "loss": step_loss, "accuracy": step_correct / n_step, "elapsed": round(elapsed, 4)}
        is_last = state["step"] >= total_steps
        if eval_pairs and (state["step"] % cfg.eval_every == 0 or is_last):
            model.eval()
            metrics = evaluate_pairs(net, share, eval_pairs, pad_id, cfg.max_tokens_per_micro_batch, cfg)
            model.train()
            record["eval"] = metrics
            if par.is_main:
                bar.write(f"step {state['step']}: held-out accuracy {metrics['accuracy']:.4f}, loss {metrics['loss']:.4f} on {metrics['n']} pairs"
                      f" (best so far {max(metrics['accuracy'], state['best_accuracy'] or 0.0):.4f})")
            stopped_early = note_eval(state, metrics["accuracy"], "best_accuracy",
                                      lambda: par.save_checkpoint(ckpt_dir / "best", model, optimizer, state), cfg.patience)
        state["history"].append(record)
        if state["step"] % cfg.save_every == 0 or is_last or stopped_early:
            par.save_checkpoint(ckpt_dir / "last", model, optimizer, state)
    bar.close()

    restore_best(ckpt_dir, model, optimizer, par)
    model.eval()
    final_eval = evaluate_pairs(net, share, eval_pairs, pad_id, cfg.max_tokens_per_micro_batch, cfg) if eval_pairs else {}
    summary = {
        "config": config_dict(cfg),
        "train_pairs": len(train_pairs), "eval_pairs": len(eval_pairs), "truncated_train_pairs": n_trunc,
        "steps": state["step"], "best_step": state["best_step"], "stopped_early": stopped_early,
        "eval": final_eval, "export": str(out / "model"), "history": state["history"],
    }
    # the export is written by the main process, from whole weights (gathered when the engine shards them)
    model, hf = par.unsharded(model, hf, lambda: prepare_model(cfg, "cpu")[:2])
    if not par.is_main:
        return summary
    export(model, hf, tokenizer, cfg, train_pairs, pad_id, final_eval, state, n_trunc)
    (out / "train_results.json").write_text(json.dumps(summary, indent=2))
    return summary


# ------------------------------------------------------------------ export

def export(model, hf, tokenizer, cfg: BTConfig, train_pairs: Sequence[_Pair], pad_id: int, metrics: dict, state: dict, n_trunc: int) -> Path:
    """``save_pretrained`` layout that plain ``AutoModelForSequenceClassification`` loads, with the
    tokenizer, chat template, reward normalisation (mean/std of training rewards) and a model card."""
    import torch

    if cfg.mode == "lora" and cfg.merge_lora:
        save_adapter(model, cfg, Path(cfg.output_dir) / "adapter")  # the small form, before merging
        final = model.merge_and_unload()
    elif cfg.mode == "lora":
        final = model
    else:
        final = hf
    sample = list(train_pairs)[:256]
    net = final if cfg.mode != "lora" or cfg.merge_lora else hf
    share = cfg.share_prefix and can_share_prefix(net)
    parts = []
    with torch.inference_mode():
        for idx in _micro_batches(sample, cfg.max_tokens_per_micro_batch, share):
            parts += _pair_rewards(Net(net), [sample[i] for i in idx], pad_id, share)
    rewards = torch.cat(parts) if parts else torch.zeros(1)
    mean, std = float(rewards.mean()), float(rewards.std()) if len(rewards) > 1 else 1.0
    head = {"reward_mean": mean, "reward_std": std, "id2label": {"0": "reward"}}
    return write_export(final, tokenizer, cfg, head, _model_card(cfg, metrics, state, len(train_pairs), n_trunc, mean, std))


def _describe_filter(report: dict) -> str:
    touched = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in report.items() if k in ("dropped", "down_weighted") and v)
    return f"{report['option']}: {touched or 'no pair touched'} of {report['pairs']}"


def _model_card(cfg: BTConfig, metrics: dict, state: dict, n_train: int, n_trunc: int, mean: float, std: float) -> str:
    acc = f"{100 * metrics['accuracy']:.2f}% on {metrics['n']} held-out pairs" if metrics else "no held-out evaluation"
    return f"""# Reward model trained with rewardkit (Bradley-Terry)

- base model: `{cfg.model}`
- objective: Bradley-Terry `-log sigmoid(r_chosen - r_rejected - margin)`; margin column: {cfg.margin_column or 'none'};
  centering coefficient: {cfg.center_coef}; label smoothing: {cfg.label_smoothing}
- parameters trained: {cfg.mode}{f' (r={cfg.lora_r}, alpha={cfg.lora_alpha}, targets={list(cfg.lora_targets)}, merged={cfg.merge_lora})' if cfg.mode == 'lora' and not cfg.init_adapter else ''}{f' (continued from the adapter {cfg.init_adapter})' if cfg.init_adapter else ''}
- data: {', '.join(cfg.data_sources) or 'given in code'}; {n_train} training pairs ({n_trunc} truncated at {cfg.max_length} tokens)
- steps: {state['step']} (best at step {state['best_step']}); {cfg.pairs_per_step} pairs per step; learning rate {cfg.learning_rate}; seed {cfg.seed}
- held-out pairwise accuracy: {acc}
- noisy-label filters on the training pairs: {'; '.join(_describe_filter(f) for f in cfg.data_filters) or 'none'}
- reward normalisation (training rewards): mean {mean:.4f}, std {std:.4f} (in `config.json` as `reward_mean` / `reward_std`)

Load it with `transformers.AutoModelForSequenceClassification` (one label, read at the last token of the
chat-templated conversation) or with rewardkit: `--reward classifier:PATH`.

Produced by:

    {cfg.command or '(python API)'}
"""
