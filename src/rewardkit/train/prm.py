"""Process reward model training: binary cross-entropy at each step's last token.

One self-contained recipe in the spirit of ``train/bt.py``, read top to bottom. The objective is the
per-step classification of "Let's Verify Step by Step" (Lightman et al., 2023) and Math-Shepherd
(Wang et al., 2024): a value head on the LM reads the hidden state at the end of every step and is
trained with ``BCE(sigmoid(v_k), y_k)`` where ``y_k`` is a hard (0/1) or soft (Monte-Carlo estimate)
label. Steps without a label are skipped; steps after the first error can be labelled 0
(``after_error="zero"``: no continuation of a wrong solution leads to a right answer, Math-Shepherd's
hard estimate) or skipped (``"ignore"``, ProcessBench's convention). ``last_step_only`` trains on
the final step alone (outcome supervision through the same head, for ablations). ``balance_labels``
weights the loss so the (rare) erroneous steps and the correct ones contribute equally in total
(class-balanced cross-entropy; with one error step per wrong solution they are ~15% of the targets).

The encoding is the one :class:`~rewardkit.rewards.process.ProcessReward` scores with (each step
tokenized on its own, read at its last token), so the exported model is read where it was trained.
Checkpoints are atomic and ``resume=True`` reaches the same weights as an uninterrupted run.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Sequence

from ..data.steps import StepRecord
from ..models import Encoder, pad_batch
from ..models.heads import hidden_states, step_end_outputs
from .common import (TrainOptions, config_dict, first_state, micro_batches, note_eval, prepare_model, restore_best, save_adapter,
                     shuffled, start_run, step_targets, training_split)
from .durable import staged_dir


@dataclass(kw_only=True)
class PRMConfig(TrainOptions):
    output_dir: str = "runs/prm"
    weight_decay: float = 0.0
    samples_per_step: int = 16
    step_end: str = "\n"
    after_error: Literal["zero", "ignore"] = "zero"
    last_step_only: bool = False
    balance_labels: bool = False


# ------------------------------------------------------------------ data

@dataclass
class _Sample:
    input_ids: list[int]
    ends: list[int]  # token index of each trained step's end
    targets: list[float]
    first_error: int
    truncated: bool


def _encode(records: Sequence[StepRecord], encoder: Encoder, cfg: PRMConfig) -> list[_Sample]:
    encoded = encoder.encode_steps([r.prompt for r in records], [r.steps for r in records], cfg.step_end)
    samples = []
    for r, e in zip(records, encoded):
        if not e.fits:
            continue  # counted by the caller as dropped-for-length
        targets = step_targets(r, cfg.after_error, cfg.last_step_only)
        keep = [(end, t) for end, t in zip(e.ends, targets) if t is not None]
        if keep:
            # tokens after the last trained step end cannot change a causal model's readouts before
            # them: cut them (with after_error="ignore" that is most of an erroneous solution's tail)
            ids = e.input_ids[: keep[-1][0] + 1]
            samples.append(_Sample(ids, [k for k, _ in keep], [t for _, t in keep], r.first_error_step, e.truncated))
    return samples


# ------------------------------------------------------------------ model

def step_logits(hf, samples: Sequence[_Sample], pad_id: int):
    """Head logits ``[S]`` at every trained step end of the batch (S = total steps), in sample order
    (a readout for :class:`~rewardkit.train.parallel.Net`: ``net(step_logits, samples, pad_id)``)."""
    batch = pad_batch([s.input_ids for s in samples], list(range(len(samples))), pad_id, "right", str(next(hf.parameters()).device))
    return step_end_outputs(hf.score, hidden_states(hf.base_model, batch), batch, [s.ends for s in samples])[:, 0]


def _micro_batches(samples: Sequence[_Sample], budget: int) -> list[list[int]]:
    return micro_batches([len(s.input_ids) for s in samples], budget)


# ------------------------------------------------------------------ evaluation

def evaluate_samples(net, samples: Sequence[_Sample], pad_id: int, budget: int) -> dict[str, Any]:
    """Held-out step AUROC, BCE and first-error F1 at threshold 0.5 (the evaluator picks its own
    threshold on a dev split; this is only for choosing the best checkpoint)."""
    import torch
    import torch.nn.functional as F

    from ..evals.process import auroc, first_error_metrics

    if not samples:
        return {}
    probs: list[list[float]] = [[] for _ in samples]
    total, count = 0.0, 0
    with torch.inference_mode():
        for idx in _micro_batches(samples, budget):
            chunk = [samples[i] for i in idx]
            logits = net(step_logits, chunk, pad_id).cpu()
            targets = torch.tensor([t for s in chunk for t in s.targets])
            total += F.binary_cross_entropy_with_logits(logits, targets, reduction="sum").item()
            count += len(targets)
            p = torch.sigmoid(logits).tolist()
            k = 0
            for i, s in zip(idx, chunk):
                probs[i] = p[k : k + len(s.ends)]
                k += len(s.ends)
    flat_p = [x for p in probs for x in p]
    flat_y = [t for s in samples for t in s.targets]
    fe = first_error_metrics(probs, [s.first_error for s in samples], 0.5)
    return {"auroc": auroc(flat_p, flat_y), "loss": total / max(count, 1), "f1_at_0.5": fe["f1"], "n": len(samples), "n_steps": count}


# ------------------------------------------------------------------ the recipe

def train(cfg: PRMConfig, train_records: Sequence[StepRecord], eval_records: Sequence[StepRecord] | None = None, *, resume: bool = False) -> dict[str, Any]:
    """Train, checkpoint, export to ``output_dir/model`` (and the adapter to ``output_dir/adapter``);
    returns the summary written to ``output_dir/train_results.json``."""
    import torch
    import torch.nn.functional as F
    from tqdm.auto import tqdm

    cfg, out, ckpt_dir, par = start_run(cfg, resume)
    train_records, eval_records = training_split(train_records, eval_records, cfg, "solutions")
    model, hf, tokenizer = prepare_model(cfg, par.device)
    pad_id = hf.config.pad_token_id
    encoder = Encoder(tokenizer, max_length=cfg.max_length, truncation_side="left")
    train_samples = _encode(train_records, encoder, cfg)
    eval_samples = _encode(eval_records, encoder, cfg)
    dropped = len(train_records) - len(train_samples)
    if not train_samples:
        raise ValueError("no training solution has a labelled step that fits in max_length")
    # weight of a target y: y + (1 - y) * neg_weight (soft labels weigh in proportionally)
    n_pos = sum(t for s in train_samples for t in s.targets)
    n_neg = sum(1 - t for s in train_samples for t in s.targets)
    neg_weight = n_pos / n_neg if cfg.balance_labels and n_neg > 0 else 1.0
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    steps_per_epoch = math.ceil(len(train_samples) / cfg.samples_per_step)
    total_steps = cfg.max_steps if cfg.max_steps is not None else steps_per_epoch * cfg.epochs

    net, step_optimizer = par.prepare(hf, optimizer)  # before a checkpoint is loaded: sharding replaces the parameters
    state = first_state(cfg, ckpt_dir, resume, model, optimizer, par, best_auroc=None)

    def order(epoch: int) -> list[int]:
        return shuffled(len(train_samples), cfg.seed, epoch)

    model.train()
    start = time.perf_counter()
    first_step = state["step"]
    bar = tqdm(total=total_steps, initial=state["step"], desc="train prm", unit="step", disable=not cfg.progress or not par.is_main)
    idle = lambda: net(step_logits, train_samples[:1], pad_id).sum() * 0.0  # noqa: E731 - a forward that adds no gradient
    while state["step"] < total_steps:
        step = state["step"]
        epoch, pos = divmod(step, steps_per_epoch)
        idx = order(epoch)[pos * cfg.samples_per_step : (pos + 1) * cfg.samples_per_step]
        batch = [train_samples[i] for i in idx]
        n_targets = sum(t + (1 - t) * neg_weight for s in batch for t in s.targets)  # over the step's global batch
        mine = par.share(batch)
        step_optimizer.zero_grad(set_to_none=True)
        step_loss = 0.0
        for micro in par.micro_steps(net, _micro_batches(mine, cfg.max_tokens_per_micro_batch), idle):
            chunk = [mine[i] for i in micro]
            logits = net(step_logits, chunk, pad_id)
            targets = torch.tensor([t for s in chunk for t in s.targets], device=logits.device)
            weights = targets + (1 - targets) * neg_weight
            loss = F.binary_cross_entropy_with_logits(logits, targets, weight=weights, reduction="sum") / n_targets
            par.backward(loss)
            step_loss += loss.item()
        step_optimizer.step()
        (step_loss,) = par.sum([step_loss])
        state["step"] = step + 1
        bar.set_postfix(loss=f"{step_loss:.4f}", s_per_step=f"{(time.perf_counter() - start) / (state['step'] - first_step):.1f}")
        bar.update(1)
        record: dict[str, Any] = {"step": state["step"], "loss": step_loss}
        is_last = state["step"] >= total_steps
        if eval_samples and (state["step"] % cfg.eval_every == 0 or is_last):
            model.eval()
            metrics = evaluate_samples(net, eval_samples, pad_id, cfg.max_tokens_per_micro_batch)
            model.train()
            record["eval"] = metrics
            if par.is_main:
                bar.write(f"step {state['step']}: held-out step AUROC {metrics['auroc'] if metrics['auroc'] is None else round(metrics['auroc'], 4)}, loss {metrics['loss']:.4f}")
            value = metrics["auroc"] if metrics["auroc"] is not None else -metrics["loss"]
            note_eval(state, value, "best_auroc", lambda: par.save_checkpoint(ckpt_dir / "best", model, optimizer, state))
        state["history"].append(record)
        if state["step"] % cfg.save_every == 0 or is_last:
            par.save_checkpoint(ckpt_dir / "last", model, optimizer, state)
    bar.close()
    evaluated = {h["step"] for h in state["history"] if "eval" in h}
    if eval_samples and state["step"] and state["step"] not in evaluated:
        # a run stopped by a smaller --max-steps on resume: its last weights are a candidate too
        model.eval()
        metrics = evaluate_samples(net, eval_samples, pad_id, cfg.max_tokens_per_micro_batch)
        state["history"].append({"step": state["step"], "eval": metrics})
        value = metrics["auroc"] if metrics["auroc"] is not None else -metrics["loss"]
        note_eval(state, value, "best_auroc", lambda: par.save_checkpoint(ckpt_dir / "best", model, optimizer, state))

    restore_best(ckpt_dir, model, optimizer, par)
    model.eval()
    final_eval = evaluate_samples(net, eval_samples, pad_id, cfg.max_tokens_per_micro_batch) if eval_samples else {}
    summary = {
        "config": config_dict(cfg),
        "train_solutions": len(train_samples), "eval_solutions": len(eval_samples), "dropped_too_long": dropped,
        "train_steps_labelled": sum(len(s.targets) for s in train_samples), "negative_weight": neg_weight,
        "steps": state["step"], "best_step": state["best_step"], "eval": final_eval, "export": str(out / "model"),
        "seconds": round(time.perf_counter() - start, 1), "history": state["history"],
    }
    # the export is written by the main process, from whole weights (gathered when the engine shards them)
    model, hf = par.unsharded(model, hf, lambda: prepare_model(cfg, "cpu")[:2])
    if not par.is_main:
        return summary
    export(model, hf, tokenizer, cfg, final_eval, state, len(train_samples), dropped)
    (out / "train_results.json").write_text(json.dumps(summary, indent=2))
    return summary


# ------------------------------------------------------------------ export

def export(model, hf, tokenizer, cfg: PRMConfig, metrics: dict, state: dict, n_train: int, dropped: int) -> Path:
    """``OUT/model``: a plain transformers sequence-classification checkpoint (load it with
    ``prm:OUT/model``); for LoRA also ``OUT/adapter``, the few-MB form (``prm:OUT/adapter``)."""
    out = Path(cfg.output_dir) / "model"
    if cfg.mode == "lora":
        save_adapter(model, cfg, Path(cfg.output_dir) / "adapter", model_card(cfg, metrics, state, n_train, dropped))  # type: ignore[arg-type]
        final = model.merge_and_unload()
    else:
        final = hf
    final.config.id2label, final.config.label2id = {0: "step_correct"}, {"step_correct": 0}
    final.config.prm_step_end = cfg.step_end
    with staged_dir(out) as tmp:
        final.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / "README.md").write_text(model_card(cfg, metrics, state, n_train, dropped))
    return out


def model_card(cfg: PRMConfig, metrics: dict, state: dict, n_train: int, dropped: int) -> str:
    held = (f"step AUROC {metrics['auroc']:.4f}, first-error F1 at 0.5 {metrics['f1_at_0.5']:.4f} on {metrics['n']} held-out solutions"
            if metrics and metrics.get("auroc") is not None and metrics.get("f1_at_0.5") is not None else "no held-out evaluation")
    return f"""# Process reward model trained with rewardkit

- base model: `{cfg.model}`; parameters trained: {cfg.mode}{f' (LoRA r={cfg.lora_r}, alpha={cfg.lora_alpha}, targets={list(cfg.lora_targets)})' if cfg.mode == 'lora' else ''}
- objective: binary cross-entropy of a value head read at the last token of each step (each step + {cfg.step_end!r}
  tokenized on its own after the chat-templated question); steps after the first error: {cfg.after_error};
  last step only: {cfg.last_step_only}; class-balanced loss: {cfg.balance_labels}
- data: {', '.join(cfg.data_sources) or 'given in code'}; {n_train} training solutions ({dropped} dropped: longer than {cfg.max_length} tokens or unlabelled)
- optimizer steps: {state['step']} (best at step {state['best_step']}); {cfg.samples_per_step} solutions per step; learning rate {cfg.learning_rate}; seed {cfg.seed}
- held-out: {held}

Score with rewardkit: `--reward prm:PATH` (step scores in `steps`, aggregate with `aggregate=min|last|product|mean|clip|delta`).

Produced by:

    {cfg.command or '(python API)'}
"""



