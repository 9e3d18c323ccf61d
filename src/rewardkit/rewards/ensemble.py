"""Compositions: ensembles, transforms and hybrid gates over any rewards.

Every composition is itself a Reward, so they nest (``transform:clip(ensemble:lcb(a, b), max=2)``).
A member that cannot score a sample makes the composite ``None`` for it (the reason names the
member), except in a gate, whose whole point is to fall back.
"""
from __future__ import annotations

import math
from typing import Any, Literal, Sequence

from ..protocol import BaseReward, Reward, eval_summary, groups_of, turn_text
from ..types import Completion, Prompt, RewardOutput

EnsembleHow = Literal["mean", "min", "max", "lcb", "weighted", "and"]


def _log_sigmoid(x: float) -> float:
    return -math.log1p(math.exp(-x)) if x >= 0 else x - math.log1p(math.exp(x))


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


def _member_names(members: Sequence[Reward]) -> tuple[str, ...]:
    names, seen = [], {}
    for m in members:
        name = getattr(m, "name", type(m).__name__)
        seen[name] = seen.get(name, 0) + 1
        names.append(name if seen[name] == 1 else f"{name}#{seen[name]}")
    return tuple(names)


def _select(columns: dict[str, Any], rows: Sequence[int], n: int) -> dict[str, list]:
    """The per-sample columns (lists of ``n`` values) restricted to ``rows``, in that order."""
    return {k: [v[i] for i in rows] for k, v in columns.items() if isinstance(v, (list, tuple)) and len(v) == n}


def _reference_scores(reward: Reward, prompts: Sequence[Prompt], columns: dict[str, Any]) -> list[float | None] | None:
    """Scores of the per-sample ``reference`` responses under ``reward`` (``None`` if no such column)."""
    refs = columns.get("reference")
    if refs is None:
        return None
    refs = list(refs)
    if len(refs) != len(prompts):
        raise ValueError(f"column 'reference' has {len(refs)} values for {len(prompts)} samples")
    rows = [i for i, r in enumerate(refs) if r is not None]
    out: list[float | None] = [None] * len(prompts)
    if rows:
        scored = reward.score([prompts[i] for i in rows], [refs[i] for i in rows], **_select(columns, rows, len(prompts))).scores
        for i, s in zip(rows, scored):
            out[i] = s
    return out


class EnsembleReward(BaseReward):
    """Combine member rewards per sample; the member scores land in ``vector`` with ``dims``.

    how:
      mean / min / max   the plain statistic of the member scores;
      lcb                ``mean - k * std`` (population std): penalise disagreement, the
                         uncertainty-aware ensemble studied in "Helping or Herding? Reward Model
                         Ensembles Mitigate but do not Eliminate Reward Hacking";
      weighted           ``sum_i w_i * r_i`` with ``weights``;
      and                ``sum_i log sigmoid(r_i - c_i)``: the log-sigmoid-centered transform and
                         sum-as-AND combination of "Transforming and Combining Rewards for Aligning
                         Large Language Models". ``c_i`` is member i's score of the sample's
                         ``reference`` response when that column is given, else ``centers[i]`` (0).
    """

    kind = "ensemble"
    members_in_vector = True
    reads_prompt = False  # a composition reads what the rewards inside it read (protocol.image_refusals)

    def __init__(
        self,
        members: Sequence[Reward],
        how: EnsembleHow = "mean",
        *,
        k: float = 1.0,
        weights: Sequence[float] | None = None,
        centers: Sequence[float] | None = None,
        name: str | None = None,
    ):
        if how not in ("mean", "min", "max", "lcb", "weighted", "and"):
            raise ValueError(f"unknown ensemble {how!r}; choose mean, min, max, lcb, weighted or and")
        if not members:
            raise ValueError("an ensemble needs at least one member")
        if how == "weighted" and (weights is None or len(weights) != len(members)):
            raise ValueError(f"ensemble 'weighted' needs one weight per member ({len(members)}), got {weights!r}")
        if centers is not None and len(centers) != len(members):
            raise ValueError(f"'centers' needs one value per member ({len(members)}), got {len(centers)}")
        self.members = list(members)
        self.how = how
        self.k = float(k)
        self.weights = [float(w) for w in weights] if weights is not None else None
        self.centers = [float(c) for c in centers] if centers is not None else [0.0] * len(members)
        self.dims = _member_names(self.members)
        self.name = name or f"ensemble:{how}({','.join(self.dims)})"

    def children(self) -> list[Any]:
        return list(self.members)

    def _combine(self, values: list[float], centers: list[float]) -> float:
        n = len(values)
        mean = sum(values) / n
        if self.how == "mean":
            return mean
        if self.how == "min":
            return min(values)
        if self.how == "max":
            return max(values)
        if self.how == "lcb":
            return mean - self.k * math.sqrt(sum((v - mean) ** 2 for v in values) / n)
        if self.how == "weighted":
            return sum(w * v for w, v in zip(self.weights or [], values))
        return sum(_log_sigmoid(v - c) for v, c in zip(values, centers))

    def score(self, prompts: Sequence[Prompt], completions: Sequence[Completion], **columns: Any) -> RewardOutput:
        self._check_lengths(prompts, completions)
        outs = [m.score(prompts, completions, **columns) for m in self.members]
        refs = [_reference_scores(m, prompts, columns) for m in self.members] if self.how == "and" else [None] * len(self.members)
        scores: list[float | None] = []
        reasons: list[str | None] = []
        vector = []
        for i in range(len(prompts)):
            values = [o.scores[i] for o in outs]
            vector.append([None if v is None else float(v) for v in values])
            missing = [self.dims[j] for j, v in enumerate(values) if v is None]
            centers = [ref[i] if ref is not None and ref[i] is not None else c for ref, c in zip(refs, self.centers)]
            if missing:
                scores.append(None)
                reasons.append(f"member(s) could not score: {', '.join(missing)}")
            else:
                scores.append(self._combine([float(v) for v in values], centers))
                reasons.append(None)
        extras = {"reason": reasons} if any(reasons) else {}
        return RewardOutput(scores=scores, vector=vector, dims=self.dims, extras=extras)


TransformKind = Literal["zscore", "group", "clip", "logsigmoid", "par", "turn"]


class TransformReward(BaseReward):
    """One reward, transformed per sample.

    zscore      ``(r - mean) / std`` with stored statistics (e.g. the training reward's mean/std);
    group       GRPO-style group normalisation: ``(r - mean_g) / (std_g + eps)`` over the samples that
                share a prompt (or a ``group_id`` column); ``scale=False`` only centres (as in Dr. GRPO);
    clip        clamp to ``[min, max]``;
    logsigmoid  ``log sigmoid(r - c)`` ("Transforming and Combining Rewards");
    par         Preference-As-Reward: ``sigmoid(r - c)`` ("Reward Shaping to Mitigate Reward Hacking
                in RLHF"). For logsigmoid/par the centre ``c`` is the inner reward's score of the
                sample's ``reference`` response when that column is given, else ``center``;
    turn        scores unchanged, but a conversational completion reaches the inner reward as its whole
                turn (tool calls and tool results included: :func:`~rewardkit.protocol.turn_text`)
                instead of the assistant's text alone.
    The untransformed score is kept in ``extras["raw_score"]``.
    """

    kind = "transform"
    reads_prompt = False  # a composition reads what the rewards inside it read (protocol.image_refusals)

    def __init__(
        self,
        inner: Reward,
        how: TransformKind,
        *,
        mean: float = 0.0,
        std: float = 1.0,
        min: float | None = None,  # noqa: A002 - the option is called min in specs
        max: float | None = None,  # noqa: A002
        center: float = 0.0,
        scale: bool = True,
        eps: float = 1e-6,
        name: str | None = None,
    ):
        if how not in ("zscore", "group", "clip", "logsigmoid", "par", "turn"):
            raise ValueError(f"unknown transform {how!r}; choose zscore, group, clip, logsigmoid, par or turn")
        if how == "zscore" and not std > 0:
            raise ValueError("zscore needs std > 0")
        if how == "clip" and min is None and max is None:
            raise ValueError("clip needs min and/or max")
        if min is not None and max is not None and min > max:
            raise ValueError(f"clip: min ({min}) > max ({max})")
        self.inner, self.how = inner, how
        self.mean, self.std, self.low, self.high = float(mean), float(std), min, max
        self.center, self.scale, self.eps = float(center), bool(scale), float(eps)
        self.name = name or f"transform:{how}({getattr(inner, 'name', 'reward')})"
        self.group_by = "prompt" if how == "group" else None  # group normalisation reads the whole group

    def children(self) -> list[Any]:
        return [self.inner]

    @property
    def members_in_vector(self) -> bool:  # type: ignore[override]
        return bool(getattr(self.inner, "members_in_vector", False))  # the inner reward's vector passes through

    def eval_summary(self, records: Sequence[Any], rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
        return eval_summary(self.inner, records, rows)  # the inner reward's extras pass through unchanged

    def step_metrics(self, out: RewardOutput) -> dict[str, float]:
        inner = getattr(self.inner, "step_metrics", None)  # the inner reward's extras pass through unchanged
        return {**(inner(out) if callable(inner) else {}), **super().step_metrics(out)}

    def score(self, prompts: Sequence[Prompt], completions: Sequence[Completion], **columns: Any) -> RewardOutput:
        if self.how == "turn":
            completions = [turn_text(c) for c in completions]
        inner = self.inner.score(prompts, completions, **columns)
        raw = list(inner.scores)
        out: list[float | None]
        if self.how == "turn":
            out = list(raw)
        elif self.how == "zscore":
            out = [None if r is None else (r - self.mean) / self.std for r in raw]
        elif self.how == "clip":
            out = [None if r is None else min(self.high if self.high is not None else r, max(self.low if self.low is not None else r, r)) for r in raw]
        elif self.how == "group":
            members = groups_of(prompts, columns.get("group_id"))
            out = [None] * len(raw)
            for idx in members.values():
                vals = [raw[i] for i in idx if raw[i] is not None]
                if not vals:
                    continue
                mu = sum(vals) / len(vals)
                sd = math.sqrt(sum((v - mu) ** 2 for v in vals) / len(vals))
                for i in idx:
                    if raw[i] is not None:
                        if not self.scale:
                            out[i] = raw[i] - mu
                        else:  # a group whose scores are all equal carries no signal: 0
                            out[i] = (raw[i] - mu) / (sd + self.eps) if sd + self.eps > 0 else 0.0
        else:
            refs = _reference_scores(self.inner, prompts, columns)
            fn = _log_sigmoid if self.how == "logsigmoid" else _sigmoid
            out = []
            for i, r in enumerate(raw):
                c = refs[i] if refs is not None and refs[i] is not None else self.center
                out.append(None if r is None else fn(r - c))
        extras = dict(inner.extras)
        extras["raw_score"] = raw
        return RewardOutput(scores=out, steps=inner.steps, vector=inner.vector, dims=inner.dims, extras=extras)


class GateReward(BaseReward):
    """Hybrid gate: the verifier decides when it can, the fallback (a model reward) fills in when it
    returns ``None`` (the idea of Cooper-style hybrid rewards). ``extras["source"]`` records which one
    scored each sample. The fallback only runs on the samples that need it.

    verifier_scale: maps the verifier's score ``v`` to ``offset + scale * v`` so a 0/1 verdict can sit
    on the fallback's scale (default: unchanged).
    """

    kind = "gate"
    reads_prompt = False  # a composition reads what the rewards inside it read (protocol.image_refusals)

    def __init__(self, verifier: Reward, fallback: Reward, *, verifier_scale: float = 1.0, verifier_offset: float = 0.0, name: str | None = None):
        self.verifier, self.fallback = verifier, fallback
        self.verifier_scale, self.verifier_offset = float(verifier_scale), float(verifier_offset)
        self.name = name or f"gate({getattr(verifier, 'name', 'verifier')},{getattr(fallback, 'name', 'fallback')})"

    def children(self) -> list[Any]:
        return [self.verifier, self.fallback]

    def step_metrics(self, out: RewardOutput) -> dict[str, float]:
        metrics = super().step_metrics(out)
        source = out.extras.get("source") or []
        if source:
            metrics.update({f"{kind}_share": sum(s == kind for s in source) / len(source) for kind in ("verifier", "fallback")})
        return metrics

    def score(self, prompts: Sequence[Prompt], completions: Sequence[Completion], **columns: Any) -> RewardOutput:
        self._check_lengths(prompts, completions)
        n = len(prompts)
        try:
            first = self.verifier.score(prompts, completions, **columns)
            verdicts = first.scores
            reasons = first.extras.get("reason", [None] * n)
        except KeyError as err:  # the verifier's column is absent from this data: every sample falls back
            verdicts, reasons = [None] * n, [str(err)] * n
        scores: list[float | None] = [None if v is None else self.verifier_offset + self.verifier_scale * v for v in verdicts]
        source = ["verifier" if v is not None else None for v in verdicts]
        todo = [i for i, v in enumerate(verdicts) if v is None]
        if todo:
            filled = self.fallback.score([prompts[i] for i in todo], [completions[i] for i in todo], **_select(columns, todo, n)).scores
            for i, s in zip(todo, filled):
                scores[i] = s
                source[i] = "fallback" if s is not None else None
        return RewardOutput(scores=scores, extras={"source": source, "verifier_reason": list(reasons)})
