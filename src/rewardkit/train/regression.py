"""Regression and multi-objective reward models, optionally with a Bradley-Terry term.

One self-contained recipe for rating data, read top to bottom:

- **Regression** (HelpSteer2 style, "HelpSteer2: Open-source dataset for training top-performing reward
  models"): one head per numeric attribute of a response (helpfulness, correctness, ...), trained with
  MSE on standardised ratings. A rating that is missing for a row is masked out of the loss, so
  datasets that rate different attributes on different rows can be mixed.
- **Multi-objective** ("Interpretable Preferences via Multi-Objective Reward Modeling and
  Mixture-of-Experts", ArmoRM): the heads stay separate (``ClassifierReward`` exposes them as
  ``vector`` with their names in ``dims``) and are combined into one scalar by weights that are
  fixed (``combination="mean"`` or given ``weights``) or learned from preference pairs
  (``combination="learned"``: softmax weights trained by the BT term, heads shared).
- **BT + regression**: when preference pairs are given too, ``pair_coef * BT(combined(chosen) -
  combined(rejected))`` is added to the MSE, so one model learns from both kinds of labels.

The export is a plain ``AutoModelForSequenceClassification`` with ``num_labels`` = number of
attributes; ``config.id2label`` names them, ``config.reward_weights`` holds the combination (which
``ClassifierReward`` applies), ``config.attribute_mean`` / ``attribute_std`` map a head's output back
to the rating scale (``rating = mean + std * head``). Checkpoints and exact resume work as in
``train/bt.py`` (shared pieces from :mod:`rewardkit.train.common`).
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Sequence

from ..models import Encoder
from ..types import PairRecord, SampleRecord
from .common import (TrainOptions, bt_loss, can_share_prefix, config_dict, first_state, head_outputs, micro_batches, note_eval,
                     pair_head_outputs, pair_micro_batches, prepare_model, restore_best, save_adapter, shuffled, split_heldout, start_run,
                     write_export)


@dataclass(kw_only=True)
class RegressionConfig(TrainOptions):
    attributes: tuple[str, ...] = ("score",)
    output_dir: str = "runs/rm-regression"
    merge_lora: bool = True
    samples_per_step: int = 32
    pairs_per_step: int = 16
    normalize: bool = True
    combination: Literal["mean", "fixed", "learned"] = "mean"
    weights: tuple[float, ...] | None = None
    pair_coef: float = 1.0
    patience: int | None = None


# ------------------------------------------------------------------ data

def read_ratings(records: Sequence[SampleRecord], attributes: Sequence[str]) -> list[list[float | None]]:
    """The attribute columns of each sample (``None`` = not rated); a value that is not a number is an error."""
    out = []
    for r in records:
        row = []
        for a in attributes:
            v = r.columns.get(a)
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))):
                raise ValueError(f"sample {r.id}: attribute {a!r} must be a number or null, got {v!r}")
            row.append(None if v is None or math.isnan(v) else float(v))
        out.append(row)
    rated = [any(v is not None for v in row) for row in out]
    if records and not any(rated):
        raise ValueError(f"no sample has any of the attributes {list(attributes)} (columns of the first sample: {sorted(records[0].columns)})")
    return out


def attribute_stats(ratings: Sequence[Sequence[float | None]], k: int, normalize: bool) -> tuple[list[float], list[float]]:
    means, stds = [], []
    for j in range(k):
        vals = [row[j] for row in ratings if row[j] is not None]
        if not normalize or not vals:
            means.append(0.0)
            stds.append(1.0)
            continue
        m = sum(vals) / len(vals)
        s = math.sqrt(sum((v - m) ** 2 for v in vals) / max(1, len(vals) - 1))
        means.append(m)
        stds.append(s if s > 1e-8 else 1.0)
    return means, stds


# ------------------------------------------------------------------ model

def _make_combination(cfg: RegressionConfig, k: int):
    """Softmax logits over the heads; trainable only for ``combination="learned"``."""
    import torch

    if cfg.combination == "fixed":
        if cfg.weights is None or len(cfg.weights) != k:
            raise ValueError(f"combination 'fixed' needs {k} weights (one per attribute), got {cfg.weights}")
    elif cfg.weights is not None:
        raise ValueError("weights are only used with combination 'fixed'")
    param = torch.nn.Parameter(torch.zeros(k), requires_grad=cfg.combination == "learned")
    return param


def _weights(cfg: RegressionConfig, logits) -> Any:
    import torch

    if cfg.combination == "fixed":
        return torch.tensor(cfg.weights, dtype=torch.float32)
    return torch.softmax(logits, dim=0)


class _Trainable:
    """The model plus the combination logits, seen by the optimizer and the checkpoint as one set of
    named parameters."""

    def __init__(self, model, combo):
        self.model, self.combo = model, combo

    def named_parameters(self):
        yield from self.model.named_parameters()
        yield "reward_combination", self.combo

    def parameters(self):
        return [p for _, p in self.named_parameters()]


# ------------------------------------------------------------------ evaluation

def evaluate(net, share: bool, weights, samples, targets, pairs, pad_id: int, budget: int) -> dict[str, Any]:
    """Per-attribute MSE (standardised units) and Pearson r on held-out samples; accuracy of the
    combined score on held-out pairs (``net``: a :class:`~rewardkit.train.parallel.Net`)."""
    import torch

    out: dict[str, Any] = {}
    with torch.inference_mode():
        if samples:
            groups = micro_batches([len(s) for s in samples], budget)
            preds = torch.cat([net(head_outputs, [samples[i] for i in idx], pad_id) for idx in groups]).cpu()
            order = [i for idx in groups for i in idx]
            y = torch.tensor([[math.nan if v is None else v for v in targets[i]] for i in order])
            mask = ~torch.isnan(y)
            per = {}
            for j in range(y.shape[1]):
                m = mask[:, j]
                if m.sum() < 2:
                    continue
                p, t = preds[m, j], y[m, j]
                r = torch.corrcoef(torch.stack([p, t]))[0, 1].item() if p.std() > 0 and t.std() > 0 else float("nan")
                per[j] = {"mse": float(((p - t) ** 2).mean()), "pearson": r, "n": int(m.sum())}
            out["attributes"] = per
            out["mse"] = sum(v["mse"] for v in per.values()) / max(1, len(per))
        if pairs:
            correct = 0
            for idx in pair_micro_batches(pairs, budget, share):
                chunk = [pairs[i] for i in idx]
                hc, hr = (h.cpu() for h in net(pair_head_outputs, chunk, pad_id, share))
                correct += int((hc @ weights > hr @ weights).sum())
            out["pair_accuracy"] = correct / len(pairs)
            out["pairs"] = len(pairs)
    return out


# ------------------------------------------------------------------ the recipe

def train(cfg: RegressionConfig, samples: Sequence[SampleRecord], pairs: Sequence[PairRecord] = (), *, resume: bool = False) -> dict[str, Any]:
    """Train on rated samples (and pairs, if any); export to ``output_dir/model``; return the summary
    written to ``output_dir/train_results.json``."""
    import torch
    from tqdm.auto import tqdm

    k = len(cfg.attributes)
    if not k:
        raise ValueError("name at least one rating attribute")
    if not samples:
        raise ValueError("regression needs rated samples (prompt + completion + attribute columns)")
    if cfg.combination == "learned" and not pairs:
        raise ValueError("a learned combination is trained from preference pairs; give pairs or use combination 'mean'/'fixed'")
    cfg, out, ckpt_dir, par = start_run(cfg, resume)
    train_samples, dev_samples = split_heldout(samples, cfg.eval_fraction, cfg.seed)
    train_pairs_r, dev_pairs_r = split_heldout(pairs, cfg.eval_fraction, cfg.seed) if pairs else ([], [])
    raw = read_ratings(train_samples, cfg.attributes)
    means, stds = attribute_stats(raw, k, cfg.normalize)
    norm = lambda rows: [[None if v is None else (v - means[j]) / stds[j] for j, v in enumerate(row)] for row in rows]  # noqa: E731
    train_y, dev_y = norm(raw), norm(read_ratings(dev_samples, cfg.attributes) if dev_samples else [])

    model, hf, tokenizer = prepare_model(cfg, par.device, num_labels=k)
    pad_id = hf.config.pad_token_id
    encoder = Encoder(tokenizer, max_length=cfg.max_length, truncation_side="left")
    enc = lambda recs: [e.input_ids for e in encoder.encode_many([r.prompt for r in recs], [r.completion for r in recs])]  # noqa: E731
    enc_pairs = lambda recs: list(zip(  # noqa: E731
        [e.input_ids for e in encoder.encode_many([r.prompt for r in recs], [r.chosen for r in recs])],
        [e.input_ids for e in encoder.encode_many([r.prompt for r in recs], [r.rejected for r in recs])]))
    train_x, dev_x = enc(train_samples), enc(dev_samples)
    train_pairs, dev_pairs = enc_pairs(train_pairs_r), enc_pairs(dev_pairs_r)

    combo = _make_combination(cfg, k)
    trainable = _Trainable(model, combo)
    optimizer = torch.optim.AdamW([p for p in trainable.parameters() if p.requires_grad], lr=cfg.learning_rate)
    steps_per_epoch = math.ceil(len(train_x) / cfg.samples_per_step)
    total_steps = cfg.max_steps if cfg.max_steps is not None else steps_per_epoch * cfg.epochs

    net, step_optimizer = par.prepare(hf, optimizer)  # before a checkpoint is loaded: sharding replaces the parameters
    state = first_state(cfg, ckpt_dir, resume, trainable, optimizer, par, best=None)

    def batch_of(n_items: int, per_step: int, step: int, salt: str) -> list[int]:
        """The items of ``step``: a fresh seeded permutation per epoch, so resume replays the order."""
        if not n_items:
            return []
        per_epoch = math.ceil(n_items / per_step)
        epoch, pos = divmod(step, per_epoch)
        return shuffled(n_items, cfg.seed, salt, epoch)[pos * per_step : (pos + 1) * per_step]

    stopped_early = False
    share = can_share_prefix(hf)  # pair terms pack each pair into one row (bt.pair_head_outputs)
    model.train()
    start, tokens_seen = time.perf_counter(), 0
    bar = tqdm(total=total_steps, initial=state["step"], desc="train", unit="step", disable=not cfg.progress or not par.is_main)
    idle = lambda: net(head_outputs, train_x[:1], pad_id).sum() * 0.0  # noqa: E731 - a forward that adds no gradient
    while state["step"] < total_steps and not stopped_early:
        step = state["step"]
        step_optimizer.zero_grad(set_to_none=True)
        s_idx = batch_of(len(train_x), cfg.samples_per_step, step, "samples")
        p_idx = batch_of(len(train_pairs), cfg.pairs_per_step, step, "pairs") if cfg.pair_coef else []
        # normalisers over the step's global batch; each process trains on its share of it (train/parallel.py)
        n_rated = sum(1 for i in s_idx for v in train_y[i] if v is not None)
        my_s, my_p = par.share(s_idx), par.share(p_idx)
        jobs = [("mse", [my_s[i] for i in micro]) for micro in micro_batches([len(train_x[i]) for i in my_s], cfg.max_tokens_per_micro_batch)]
        jobs += [("bt", [my_p[i] for i in micro]) for micro in pair_micro_batches([train_pairs[i] for i in my_p], cfg.max_tokens_per_micro_batch, share)]
        mse_total, bt_total, correct, step_tokens = 0.0, 0.0, 0, 0
        for kind, rows in par.micro_steps(net, jobs, idle):
            if kind == "mse":
                pred = net(head_outputs, [train_x[i] for i in rows], pad_id)
                y = torch.tensor([[math.nan if v is None else v for v in train_y[i]] for i in rows], device=pred.device)
                mask = ~torch.isnan(y)
                loss = ((pred - torch.nan_to_num(y)) ** 2 * mask).sum() / max(1, n_rated)
                par.backward(loss)
                mse_total += loss.item()
                step_tokens += sum(len(train_x[i]) for i in rows)
                continue
            chunk = [train_pairs[i] for i in rows]
            hc, hr = net(pair_head_outputs, chunk, pad_id, share)
            w = _weights(cfg, combo).to(hc.device)
            rc, rr = hc @ w, hr @ w
            loss = cfg.pair_coef * bt_loss(rc, rr, torch.zeros(len(chunk), device=rc.device)).sum() / len(p_idx)
            par.backward(loss)
            bt_total += loss.item()
            correct += int((rc.detach() > rr.detach()).sum())
            step_tokens += sum(len(c) + len(r) for c, r in chunk)
        par.average_grad(combo)  # the combination logits live outside the wrapped model
        step_optimizer.step()
        mse_total, bt_total, correct, step_tokens = par.sum([mse_total, bt_total, correct, step_tokens])
        tokens_seen += int(step_tokens)
        state["step"] = step + 1
        elapsed = time.perf_counter() - start
        record: dict[str, Any] = {"step": state["step"], "mse": mse_total}
        if p_idx:
            record.update(bt_loss=bt_total / cfg.pair_coef, pair_accuracy=correct / len(p_idx))
        bar.set_postfix(mse=f"{mse_total:.4f}", **({"bt": f"{record['bt_loss']:.3f}"} if "bt_loss" in record else {}), tok_s=f"{tokens_seen / max(elapsed, 1e-9):.0f}")
        bar.update(1)
        is_last = state["step"] >= total_steps
        if (dev_x or dev_pairs) and (state["step"] % cfg.eval_every == 0 or is_last):
            model.eval()
            metrics = evaluate(net, share, _weights(cfg, combo).detach(), dev_x, dev_y, dev_pairs, pad_id, cfg.max_tokens_per_micro_batch)
            model.train()
            record["eval"] = metrics
            if par.is_main:
                bar.write(f"step {state['step']}: held-out " + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items() if isinstance(v, float)))
            # Pairs decide what "best" means when there are any (that is what the reward is used for).
            value = metrics["pair_accuracy"] if "pair_accuracy" in metrics else -metrics.get("mse", 0.0)
            stopped_early = note_eval(state, value, "best", lambda: par.save_checkpoint(ckpt_dir / "best", trainable, optimizer, state),
                                      cfg.patience)
        state["history"].append(record)
        if state["step"] % cfg.save_every == 0 or is_last or stopped_early:
            par.save_checkpoint(ckpt_dir / "last", trainable, optimizer, state)
    bar.close()

    restore_best(ckpt_dir, trainable, optimizer, par)
    model.eval()
    weights = _weights(cfg, combo).detach()
    final_eval = evaluate(net, share, weights, dev_x, dev_y, dev_pairs, pad_id, cfg.max_tokens_per_micro_batch) if (dev_x or dev_pairs) else {}
    named_eval = dict(final_eval)
    if "attributes" in named_eval:
        named_eval["attributes"] = {cfg.attributes[j]: v for j, v in named_eval["attributes"].items()}
    summary = {
        "config": config_dict(cfg),
        "train_samples": len(train_x), "eval_samples": len(dev_x), "train_pairs": len(train_pairs), "eval_pairs": len(dev_pairs),
        "steps": state["step"], "best_step": state["best_step"], "stopped_early": stopped_early,
        "weights": dict(zip(cfg.attributes, weights.tolist())), "attribute_mean": means, "attribute_std": stds,
        "eval": named_eval, "export": str(out / "model"), "history": state["history"],
    }
    # the export is written by the main process, from whole weights (gathered when the engine shards them)
    model, hf = par.unsharded(model, hf, lambda: prepare_model(cfg, "cpu", num_labels=k)[:2])
    if not par.is_main:
        return summary
    export(model, hf, tokenizer, cfg, train_x, pad_id, weights.tolist(), means, stds, named_eval, state)
    (out / "train_results.json").write_text(json.dumps(summary, indent=2))
    return summary


# ------------------------------------------------------------------ export

def export(model, hf, tokenizer, cfg: RegressionConfig, train_x, pad_id: int, weights: list[float], means, stds, metrics: dict, state: dict) -> Path:
    import torch

    if cfg.mode == "lora" and cfg.merge_lora:
        save_adapter(model, cfg, Path(cfg.output_dir) / "adapter")
        final = model.merge_and_unload()
    else:
        final = model if cfg.mode == "lora" else hf
    with torch.inference_mode():
        sample = list(train_x)[:256]
        heads = torch.cat([head_outputs(hf if cfg.mode == "lora" and not cfg.merge_lora else final, sample[i : i + 32], pad_id) for i in range(0, len(sample), 32)])
        combined = heads @ torch.tensor(weights)
    head = {
        "reward_weights": weights, "attribute_mean": means, "attribute_std": stds,
        "reward_mean": float(combined.mean()), "reward_std": float(combined.std()) if len(combined) > 1 else 1.0,
        "id2label": {str(i): a for i, a in enumerate(cfg.attributes)},
    }
    return write_export(final, tokenizer, cfg, head, _model_card(cfg, metrics, state, len(train_x), weights, means, stds))


def _model_card(cfg: RegressionConfig, metrics: dict, state: dict, n_train: int, weights, means, stds) -> str:
    rows = "\n".join(
        f"| {a} | {weights[j]:.3f} | {means[j]:.3f} | {stds[j]:.3f} | "
        + (f"{metrics['attributes'][a]['mse']:.4f} | {metrics['attributes'][a]['pearson']:.3f}" if a in metrics.get("attributes", {}) else "- | -") + " |"
        for j, a in enumerate(cfg.attributes)
    )
    pairs = f"{100 * metrics['pair_accuracy']:.2f}% on {metrics['pairs']} held-out pairs" if "pair_accuracy" in metrics else "no held-out pairs"
    return f"""# Reward model trained with rewardkit (regression{' + Bradley-Terry' if cfg.pair_coef and state.get('history') and 'bt_loss' in state['history'][-1] else ''})

- base model: `{cfg.model}`
- objective: MSE on standardised ratings, one head per attribute; combination: {cfg.combination}{f'; BT term on pairs with coefficient {cfg.pair_coef}' if cfg.pair_coef else ''}
- parameters trained: {cfg.mode}{f' (r={cfg.lora_r}, alpha={cfg.lora_alpha}, merged={cfg.merge_lora})' if cfg.mode == 'lora' else ''}
- data: {', '.join(cfg.data_sources) or 'given in code'}; {n_train} training samples
- steps: {state['step']} (best at step {state['best_step']}); learning rate {cfg.learning_rate}; seed {cfg.seed}
- held-out combined-score accuracy: {pairs}

| attribute (head) | weight | rating mean | rating std | held-out MSE (std units) | Pearson r |
|---|---|---|---|---|---|
{rows}

Load it with `transformers.AutoModelForSequenceClassification`: logits are the heads, in standardised
units (`rating = attribute_mean + attribute_std * logit`, both in `config.json`); the scalar reward is
`sum(reward_weights * logits)`, which `rewardkit` computes for `--reward classifier:PATH` (the heads are
in the output's `vector`).

Produced by:

    {cfg.command or '(python API)'}
"""
