"""A trained PRM that reads the language model's own surprise: a logistic head over per-step
token log-probability statistics, all steps in one forward pass.

An arithmetic slip ("2 * 6 = 22") is a token the model did not expect: its log-probability is low
and the model's top choice was far more likely. The zero-shot implicit PRM averages the
log-probability over the whole step, which dilutes one wrong digit among a dozen predictable words.
This PRM computes a few statistics per step (mean / min log-probability, the gap between the
model's top choice and the written token, the same restricted to tokens that contain digits, and
running minima/maxima over the steps so far) and a logistic head trained on step labels turns them
into ``P(step correct)``. The base model stays frozen, so training is a feature pass plus a convex
fit (seconds), and the whole PRM is a few hundred bytes of JSON next to the LM spec.

Step encoding is the one of :meth:`rewardkit.models.Encoder.encode_steps` (each step tokenized on its own), so a
prefix of steps has exactly a prefix of the tokens and the step scores equal per-prefix scoring.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Sequence

from ...assets import packaged
from ...data.steps import as_steps
from ...models.heads import completion_logprobs
from ...protocol import BaseReward
from ...types import Completion, Prompt, RewardOutput
from ..likelihood import LogLikelihoodReward
from .steps import AGGREGATES, step_output

HEAD_FILE = "prm_head.json"
FEATURES = (
    "mean_lp",            # mean log p(token) over the step
    "min_lp",             # least likely token of the step
    "mean_gap",           # mean of log p(top choice) - log p(token)
    "digit_min_lp",       # least likely token among those containing a digit (0 if none)
    "digit_mean_lp",
    "digit_max_gap",      # largest top-choice gap on a digit token
    "has_digit",
    "prefix_digit_min_lp",  # running min of digit_min_lp over steps 0..k (an early slip stays visible)
    "prefix_digit_max_gap",
)


def _digit_mask(tokenizer) -> list[bool]:
    """Per vocabulary id: does the token's text contain a digit?"""
    vocab = tokenizer.get_vocab()
    mask = [False] * (max(vocab.values()) + 1)
    for piece, i in vocab.items():
        mask[i] = any(ch.isdigit() for ch in piece)
    return mask


def step_features(lp: Sequence[float], gap: Sequence[float], digit: Sequence[bool], bounds: Sequence[tuple[int, int]]) -> list[dict[str, float]]:
    """Feature dicts, one per step; ``bounds[k] = (a, b)`` are step k's token slice in ``lp``."""
    out: list[dict[str, float]] = []
    run_min, run_gap = 0.0, 0.0
    for k, (a, b) in enumerate(bounds):
        s_lp, s_gap, s_dig = lp[a:b] or [0.0], gap[a:b] or [0.0], digit[a:b]
        d_lp = [x for x, d in zip(s_lp, s_dig) if d]
        d_gap = [x for x, d in zip(s_gap, s_dig) if d]
        f = {
            "mean_lp": sum(s_lp) / len(s_lp), "min_lp": min(s_lp), "mean_gap": sum(s_gap) / len(s_gap),
            "digit_min_lp": min(d_lp) if d_lp else 0.0, "digit_mean_lp": sum(d_lp) / len(d_lp) if d_lp else 0.0,
            "digit_max_gap": max(d_gap) if d_gap else 0.0, "has_digit": float(bool(d_lp)),
        }
        run_min = f["digit_min_lp"] if k == 0 else min(run_min, f["digit_min_lp"])
        run_gap = f["digit_max_gap"] if k == 0 else max(run_gap, f["digit_max_gap"])
        f["prefix_digit_min_lp"], f["prefix_digit_max_gap"] = run_min, run_gap
        out.append(f)
    return out


def apply_head(head: dict[str, Any], feats: Sequence[dict[str, float]]) -> list[float]:
    """``sigmoid(b + sum_i w_i (x_i - mean_i) / std_i)`` per step."""
    names, w = head["features"], head["weights"]
    mu, sd, b = head["mean"], head["std"], float(head["bias"])
    out = []
    for f in feats:
        z = b + sum(wi * (f[n] - m) / s for n, wi, m, s in zip(names, w, mu, sd))
        out.append(1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z)))
    return out


def read_head(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    file = p / HEAD_FILE if p.is_dir() else p
    try:
        head = json.loads(file.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{file}: no PRM head here (train one with `rewardkit train --objective prm --readout loglik`)") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"{file}: line {e.lineno}: not valid JSON ({e.msg})") from None
    for key in ("features", "weights", "mean", "std", "bias", "model"):
        if key not in head:
            raise ValueError(f"{file}: field '{key}': missing")
    unknown = [n for n in head["features"] if n not in FEATURES]
    if unknown:
        raise ValueError(f"{file}: field 'features': unknown feature(s) {unknown}; known: {', '.join(FEATURES)}")
    if not (len(head["features"]) == len(head["weights"]) == len(head["mean"]) == len(head["std"])):
        raise ValueError(f"{file}: fields 'features', 'weights', 'mean', 'std' must have the same length")
    return head


class StepStats:
    """Per-step token statistics of a causal LM over the step-wise encoding (one forward pass per batch)."""

    def __init__(self, lm: LogLikelihoodReward, step_end: str = "\n"):
        self.lm = lm
        self.step_end = step_end
        self._digits = None

    def _readout(self, hidden, batch, rows):
        import torch

        if self._digits is None:
            self._digits = torch.tensor(_digit_mask(self.lm.tokenizer), dtype=torch.bool)
        out = []
        for t in completion_logprobs(self.lm.lm_head, hidden, batch, rows, gap=True):
            if t is None:
                out.append(([], [], []))
                continue
            digit = self._digits.to(t.targets.device)[t.targets.clamp(max=len(self._digits) - 1)]
            out.append((t.logprobs.double().tolist(), t.gap.double().tolist(), digit.tolist()))
        return out

    def features(self, prompts: Sequence[Prompt], step_lists: Sequence[Sequence[str]]):
        """(encoded rows, per sample a list of per-step feature dicts or None if not scored)."""
        encoded = self.lm.encoder.encode_steps(prompts, step_lists, self.step_end)
        stats = self.lm.run(encoded, self._readout, desc="step stats")
        feats: list[list[dict[str, float]] | None] = []
        for s, e, st in zip(step_lists, encoded, stats):
            if not s or not e.fits or st is None:
                feats.append(None)
                continue
            lp, gap, digit = st
            base = e.completion_start if e.completion_start >= 1 else 1
            bounds, lo = [], e.completion_start
            for end in e.ends:
                bounds.append((max(lo - base, 0), end + 1 - base))
                lo = end + 1
            feats.append(step_features(lp, gap, digit, bounds))
        return encoded, feats


class LikelihoodPRM(BaseReward):
    """PRM = logistic head over the LM's per-step surprise (``prm:PATH`` when PATH holds ``prm_head.json``).

    head: a directory with ``prm_head.json``, the file itself, or a loaded dict; ``"default"`` = the
    packaged head trained on the embedded model. The LM is the head's ``model`` unless ``model`` is given.
    """

    kind = "prm"

    def __init__(self, head: Any = "default", *, model: Any = None, aggregate: str = "min", clip_threshold: float = 0.5,
                 step_separator: str = "\n", name: str | None = None, max_length: int | None = None,
                 max_tokens_per_batch: int = 8192, device: str | None = None, step_end: str | None = None,
                 num_labels: int | None = None, **lm_kwargs: Any):
        # step_end / num_labels come with ``prm:`` specs written for the value-head PRM: the head fixes the step end
        if aggregate not in AGGREGATES:
            raise ValueError(f"unknown aggregate {aggregate!r}; choose from {', '.join(AGGREGATES)}")
        label = None
        if isinstance(head, dict):
            self.head = head
        else:
            if head == "default":
                path = packaged("default_prm_head")
                if path is None:
                    raise FileNotFoundError("this install has no packaged default PRM head")
                head, label = path, "prm:default"
            self.head = read_head(head)
        lm = model if model is not None else self.head["model"]
        self.lm = lm if isinstance(lm, LogLikelihoodReward) else LogLikelihoodReward(
            lm, max_length=max_length, max_tokens_per_batch=max_tokens_per_batch, device=device, **lm_kwargs)
        head_end = self.head.get("step_end", "\n")
        if step_end is not None and step_end != head_end:
            raise ValueError(f"this PRM head was trained with step_end={head_end!r}; got {step_end!r}")
        self.stats = StepStats(self.lm, head_end)
        self.aggregate = aggregate
        self.clip_threshold = float(clip_threshold)
        self.step_separator = step_separator
        self.name = name or label or f"prm:{head if not isinstance(head, dict) else 'loglik-head'}"

    def children(self) -> list[Any]:
        return [self.lm]

    def step_scores(self, prompts: Sequence[Prompt], completions: Sequence[Completion]):
        self._check_lengths(prompts, completions)
        steps = [as_steps(c, self.step_separator) for c in completions]
        encoded, feats = self.stats.features(prompts, steps)
        return steps, encoded, [None if f is None else apply_head(self.head, f) for f in feats]

    def score(self, prompts: Sequence[Prompt], completions: Sequence[Completion], **columns: Any) -> RewardOutput:
        steps, encoded, probs = self.step_scores(prompts, completions)
        return step_output(steps, encoded, probs, self.aggregate, self.clip_threshold)
