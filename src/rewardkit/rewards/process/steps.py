"""What every process reward shares: the step aggregates and the one ``RewardOutput`` assembly for
step-wise rewards (value head, likelihood head, implicit PRM alike).

Aggregates turn step scores into the sample's ``score``: min, last, product, mean, sum, and the clip
and delta forms of "On Designing Effective RL Reward at Training Time for LLM Reasoning" (Gao et
al., 2024), which bound the return so a policy cannot farm reward by adding steps.
"""
from __future__ import annotations

import math
from typing import Sequence

from ...models import Encoded
from ...types import RewardOutput

AGGREGATES = ("min", "last", "product", "mean", "sum", "clip", "delta")


def aggregate(scores: Sequence[float], how: str = "min", clip_threshold: float = 0.5) -> tuple[float, list[float]]:
    """(sample score, per-step rewards) from step scores in [0, 1].

    clip:  r_k = min(s_k - eta, 0); the return sum_k r_k can only fall with more steps.
    delta: r_k = s_k - s_{k+1} (k < K), r_K = s_K; the return telescopes to s_1, so no
           repetition of good-looking steps pays (Gao et al., 2024).
    Other aggregates leave the per-step rewards equal to the scores.
    """
    s = [float(x) for x in scores]
    if not s:
        raise ValueError("no steps to aggregate")
    if how == "clip":
        rewards = [min(x - clip_threshold, 0.0) for x in s]
        return sum(rewards), rewards
    if how == "delta":
        rewards = [s[k] - s[k + 1] for k in range(len(s) - 1)] + [s[-1]]
        return sum(rewards), rewards
    if how == "min":
        value = min(s)
    elif how == "last":
        value = s[-1]
    elif how == "product":
        value = math.prod(s)
    elif how == "mean":
        value = sum(s) / len(s)
    elif how == "sum":
        value = sum(s)
    else:
        raise ValueError(f"unknown aggregate {how!r}; choose from {', '.join(AGGREGATES)}")
    return value, s


def step_output(steps: Sequence[Sequence[str]], encoded: Sequence[Encoded], results: Sequence[Sequence[float] | None],
                how: str, clip_threshold: float) -> RewardOutput:
    """The ``RewardOutput`` of a step-wise reward: per-step scores in ``steps``, their aggregate in
    ``scores`` (``None`` with a reason for samples without steps or that do not fit), dense rewards
    in ``extras["step_rewards"]`` for clip/delta."""
    scores: list[float | None] = []
    step_scores: list[list[float]] = []
    step_rewards: list[list[float]] = []
    reasons: list[str | None] = []
    for s, e, res in zip(steps, encoded, results):
        reason = None
        if not s:
            reason = "no steps (empty completion)"
        elif not e.fits:
            reason = "the steps do not fit in max_length"
        if reason is not None or res is None:
            scores.append(None)
            step_scores.append([])
            step_rewards.append([])
            reasons.append(reason or "empty input")
            continue
        value, rewards = aggregate(res, how, clip_threshold)
        scores.append(value)
        step_scores.append([float(x) for x in res])
        step_rewards.append(rewards)
        reasons.append(None)
    extras: dict[str, list] = {
        "num_steps": [len(s) for s in steps],
        "truncated": [e.truncated for e in encoded],
        "num_tokens": [len(e.input_ids) for e in encoded],
    }
    if how in ("clip", "delta"):
        extras["step_rewards"] = step_rewards
    if any(reasons):
        extras["reason"] = reasons
    return RewardOutput(scores=scores, steps=step_scores, extras=extras)
