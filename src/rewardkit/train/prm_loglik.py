"""Training the likelihood-head PRM (``rewardkit train --objective prm --readout loglik``).

One recipe, read top to bottom: the frozen LM computes per-step surprise statistics
(:mod:`rewardkit.rewards.process.likelihood`) for every labelled step in one pass per solution; a logistic
head is fitted on standardised statistics by L-BFGS (binary cross-entropy, hard or soft labels,
L2 penalty ``l2``). The fit is convex and takes seconds, so there are no checkpoints: the only long
part is the feature pass, shown with a progress bar. Output: ``OUT/prm_head.json`` (written
atomically; load with ``prm:OUT``), ``OUT/README.md`` (model card) and ``OUT/train_results.json``.
"""
from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, Sequence

from ..data.steps import StepRecord
from ..rewards.process.likelihood import FEATURES, HEAD_FILE, StepStats, apply_head
from .common import split_heldout, step_targets


@dataclass
class LoglikPRMConfig:
    model: str = "default"
    output_dir: str = "runs/prm-loglik"
    features: tuple[str, ...] = FEATURES
    l2: float = 1e-2
    after_error: Literal["zero", "ignore"] = "ignore"
    max_length: int = 1024
    step_end: str = "\n"
    eval_fraction: float = 0.1
    seed: int = 0
    command: str = ""
    data_sources: list[str] = field(default_factory=list)


def fit_logistic(rows: Sequence[Sequence[float]], targets: Sequence[float], l2: float = 1e-2) -> dict[str, Any]:
    """L2-regularised logistic regression on standardised features (float64 L-BFGS); soft targets allowed."""
    import torch
    import torch.nn.functional as F

    if not rows:
        raise ValueError("no labelled steps to fit")
    X = torch.tensor(rows, dtype=torch.float64)
    y = torch.tensor(targets, dtype=torch.float64)
    if not (0 < float(y.mean()) < 1):
        raise ValueError("the labelled steps are all of one class; a step classifier needs both correct and wrong steps")
    mu, sd = X.mean(0), X.std(0, unbiased=False).clamp_min(1e-6)
    Z = (X - mu) / sd
    w = torch.zeros(X.shape[1], dtype=torch.float64, requires_grad=True)
    b = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=500, tolerance_grad=1e-10, tolerance_change=1e-12, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = F.binary_cross_entropy_with_logits(Z @ w + b, y) + l2 * (w * w).sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        loss = float(F.binary_cross_entropy_with_logits(Z @ w + b, y))
    return {"weights": w.detach().tolist(), "bias": float(b.detach()), "mean": mu.tolist(), "std": sd.tolist(), "train_loss": loss}


def _labelled(records: Sequence[StepRecord], feats, names: Sequence[str], cfg: LoglikPRMConfig):
    rows, targets, dropped = [], [], 0
    for r, f in zip(records, feats):
        if f is None:
            dropped += 1
            continue
        for fk, t in zip(f, step_targets(r, cfg.after_error, False)):
            if t is not None:
                rows.append([fk[n] for n in names])
                targets.append(float(t))
    return rows, targets, dropped


def evaluate_head(head: dict[str, Any], records: Sequence[StepRecord], feats) -> dict[str, Any]:
    """Held-out step AUROC and first-error F1 at 0.5 (the evaluator picks its threshold on a dev split)."""
    from ..evals.process import first_error_metrics, step_auroc

    probs = [None if f is None else apply_head(head, f) for f in feats]
    au, n_steps = step_auroc(probs, [r.labels for r in records])
    fe = first_error_metrics(probs, [r.first_error_step for r in records], 0.5)
    return {"auroc": au, "f1_at_0.5": fe["f1"], "n": len(records), "n_steps": n_steps}


def train(cfg: LoglikPRMConfig, train_records: Sequence[StepRecord], eval_records: Sequence[StepRecord] | None = None, *, lm=None) -> dict[str, Any]:
    from ..rewards.likelihood import LogLikelihoodReward

    unknown = [n for n in cfg.features if n not in FEATURES]
    if unknown:
        raise ValueError(f"unknown feature(s) {unknown}; known: {', '.join(FEATURES)}")
    start = time.perf_counter()
    if eval_records is None:
        train_records, eval_records = split_heldout(train_records, cfg.eval_fraction, cfg.seed)
    if not train_records:
        raise ValueError("no training solutions")
    lm = lm if lm is not None else LogLikelihoodReward(cfg.model, max_length=cfg.max_length, progress=True)
    stats = StepStats(lm, cfg.step_end)
    _, train_feats = stats.features([r.prompt for r in train_records], [r.steps for r in train_records])
    rows, targets, dropped = _labelled(train_records, train_feats, cfg.features, cfg)
    fit = fit_logistic(rows, targets, cfg.l2)
    head = {"model": cfg.model, "features": list(cfg.features), "step_end": cfg.step_end, **fit,
            "trained_on": {"sources": list(cfg.data_sources), "solutions": len(train_records) - dropped, "steps": len(rows),
                           "positive_share": sum(targets) / len(targets), "after_error": cfg.after_error, "l2": cfg.l2}}
    metrics: dict[str, Any] = {}
    if eval_records:
        _, eval_feats = stats.features([r.prompt for r in eval_records], [r.steps for r in eval_records])
        metrics = evaluate_head(head, eval_records, eval_feats)
    head["heldout"] = metrics
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".prm_head-", dir=out)
    with os.fdopen(fd, "w") as fh:
        json.dump(head, fh, indent=2)
    os.replace(tmp, out / HEAD_FILE)
    (out / "README.md").write_text(model_card(cfg, head))
    summary = {"config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(cfg).items()},
               "train_solutions": len(train_records) - dropped, "eval_solutions": len(eval_records or []), "dropped_too_long": dropped,
               "train_steps_labelled": len(rows), "train_loss": fit["train_loss"], "eval": metrics, "export": str(out / HEAD_FILE),
               "weights": dict(zip(cfg.features, fit["weights"])), "seconds": round(time.perf_counter() - start, 1)}
    (out / "train_results.json").write_text(json.dumps(summary, indent=2))
    return summary


def model_card(cfg: LoglikPRMConfig, head: dict[str, Any]) -> str:
    m = head.get("heldout") or {}
    held = (f"step AUROC {m['auroc']:.4f}, first-error F1 at 0.5 {m['f1_at_0.5']:.4f} on {m['n']} held-out solutions"
            if m.get("auroc") is not None else "no held-out evaluation")
    weights = "\n".join(f"  - `{n}`: {w:+.3f}" for n, w in zip(head["features"], head["weights"]))
    t = head["trained_on"]
    return f"""# Likelihood-head process reward model (rewardkit)

- language model (frozen): `{cfg.model}`; step end {cfg.step_end!r}; max length {cfg.max_length}
- readout: logistic head over per-step token log-probability statistics, standardised; weights:
{weights}
- data: {', '.join(t['sources']) or 'given in code'}; {t['solutions']} solutions, {t['steps']} labelled steps
  ({100 * t['positive_share']:.1f}% correct); steps after the first error: {t['after_error']}; L2 {t['l2']}; seed {cfg.seed}
- held-out: {held}

Score with rewardkit: `--reward prm:PATH` (PATH = this directory).

Produced by:

    {cfg.command or '(python API)'}
"""
