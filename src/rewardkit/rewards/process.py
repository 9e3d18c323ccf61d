"""Process reward models (PRMs): a score for every reasoning step, all steps in ONE forward pass.

The completion is encoded step by step: each step (plus the step-end marker, a newline by default)
is tokenized on its own and the pieces are concatenated after the chat-templated prompt, so the
last token of each piece is known exactly. A value head read at those tokens gives every step's
score from one forward pass; because the model is causal, the score at step k equals the score of
the prefix ending at step k fed alone (the per-prefix way, k times the compute). Training
(``rewardkit train --objective prm``) uses the same encoding, so scoring reads what was trained.

Aggregates turn step scores into the sample's ``score``: min, last, product, mean, sum, and the clip
and delta forms of "On Designing Effective RL Reward at Training Time for LLM Reasoning" (Gao et
al., 2024), which bound the return so a policy cannot farm reward by adding steps.
"""
from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Any, Sequence

from ..data.steps import as_steps
from ..models import Encoded
from ..models.heads import last_token_outputs, step_end_outputs
from ..types import Completion, Prompt, RewardOutput
from ._lm import TransformerReward

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


def default_prm_path() -> Path | None:
    """The packaged default PRM (LoRA adapter + value head over the embedded model), if present."""
    from importlib import resources

    try:
        path = Path(str(resources.files("rewardkit").joinpath("assets", "default_prm")))
    except TypeError:
        return None
    return path if (path / "adapter_config.json").is_file() else None


class ProcessReward(TransformerReward):
    """Value-head PRM: step scores are ``sigmoid(head(h_t))`` at each step's last token (for a two-label
    head, the probability of label 1). ``RewardOutput.steps`` holds them; ``scores`` holds the
    ``aggregate``; for clip/delta the dense per-step rewards are in ``extras["step_rewards"]``.

    model: ``default-value`` = the packaged value-head PRM, or any directory / adapter. ``default``
    and directories holding ``prm_head.json`` give a :class:`~rewardkit.rewards.loglik_prm.LikelihoodPRM`
    instead (the packaged default PRM is one).
    step_separator: how text completions are split into steps (``list[str]`` completions are used as given).
    step_end: the marker appended to each step; its last token is where the score is read.
    """

    task = "sequence-classification"
    kind = "prm"

    def __new__(cls, model: Any = None, **kwargs: Any):
        # ``prm:PATH`` also names the likelihood-head PRM (a directory or file with ``prm_head.json``),
        # and ``prm:default`` is the packaged one when this install has it: one spec kind for both.
        # Only an explicit model argument dispatches (copy/pickle call __new__ without arguments).
        from .loglik_prm import HEAD_FILE, LikelihoodPRM, default_head_path

        if cls is ProcessReward and isinstance(model, (str, Path)):
            if model == "default" and default_head_path() is not None:
                return LikelihoodPRM("default", **kwargs)
            p = Path(model)
            if (p / HEAD_FILE).is_file() or (p.name.endswith(".json") and p.is_file()):
                return LikelihoodPRM(str(p), **kwargs)
        return super().__new__(cls)

    def __init__(
        self,
        model: Any = "default",
        *,
        aggregate: str = "min",
        clip_threshold: float = 0.5,
        step_separator: str = "\n",
        step_end: str = "\n",
        num_labels: int | None = None,
        **kwargs: Any,
    ):
        if aggregate not in AGGREGATES:
            raise ValueError(f"unknown aggregate {aggregate!r}; choose from {', '.join(AGGREGATES)}")
        model_arg = model
        if model in ("default", "default-value"):
            path = default_prm_path()
            if path is None:
                raise FileNotFoundError("this install has no packaged value-head PRM; train one with `rewardkit train --objective prm`")
            model = str(path)
            kwargs.setdefault("name", f"prm:{model_arg}")
        if num_labels is None and isinstance(model, str):
            from ..models.loading import load_config

            architectures = getattr(load_config(model), "architectures", None) or []
            if not any(a.endswith(("ForSequenceClassification", "ForTokenClassification")) for a in architectures):
                num_labels = 1
        if num_labels is not None:
            kwargs["num_labels"] = num_labels
        super().__init__(model, **kwargs)
        head_missing = [k for k in self.missing_weights if k.split(".")[0] in ("score", "classifier")]
        if head_missing:
            warnings.warn(f"{self.name}: the value head is not in the checkpoint and was initialised randomly (seed={self.seed}); "
                          "step scores are reproducible but meaningless until it is trained.", stacklevel=2)
        self.head = getattr(self.model, "score", None)
        if self.head is None:
            raise ValueError(f"{self.name}: the model has no 'score' head to read step values from")
        self.num_labels = int(self.model.config.num_labels)
        if self.num_labels not in (1, 2):
            raise ValueError(f"{self.name}: a PRM head needs 1 (value) or 2 (wrong/right) labels, got {self.num_labels}")
        self.aggregate = aggregate
        self.clip_threshold = float(clip_threshold)
        self.step_separator = step_separator
        self.step_end = step_end

    def encode_steps(self, prompts: Sequence[Prompt], completions: Sequence[Completion]) -> tuple[list[list[str]], list[Encoded]]:
        self._check_lengths(prompts, completions)
        steps = [as_steps(c, self.step_separator) for c in completions]
        return steps, self.encoder.encode_steps(prompts, steps, self.step_end)

    def step_probabilities(self, logits):
        """``[N, L]`` head logits -> ``[N]`` probabilities that the step is correct."""
        import torch

        if self.num_labels == 1:
            return torch.sigmoid(logits[:, 0].double())
        return torch.softmax(logits.double(), dim=-1)[:, 1]

    def _readout(self, hidden, batch, rows):
        logits = step_end_outputs(self.head, hidden, batch, [row.ends for row in rows])
        if logits is None:
            return [[] for _ in rows]
        probs = self.step_probabilities(logits).tolist()
        out, k = [], 0
        for row in rows:
            out.append(probs[k : k + len(row.ends)])
            k += len(row.ends)
        return out

    def score(self, prompts: Sequence[Prompt], completions: Sequence[Completion], **columns: Any) -> RewardOutput:
        steps, encoded = self.encode_steps(prompts, completions)
        return step_output(steps, encoded, self.run(encoded, self._readout), self.aggregate, self.clip_threshold)

    def score_prefixes(self, prompts: Sequence[Prompt], completions: Sequence[Completion]) -> list[list[float | None]]:
        """The slow reference: each step prefix in its own sequence, score read at its last token.
        Agrees with :meth:`score` (the benchmark and the invariance test check it)."""
        steps, encoded = self.encode_steps(prompts, completions)
        flat, owners = [], []
        for i, e in enumerate(encoded):
            for end in e.ends:
                flat.append(Encoded(e.input_ids[: end + 1], e.completion_start))
                owners.append(i)

        def last(hidden, batch, rows):
            return self.step_probabilities(last_token_outputs(self.head, hidden, batch)).tolist()

        values = self.run(flat, last, desc="per-prefix")
        out: list[list[float | None]] = [[] for _ in encoded]
        for i, v in zip(owners, values):
            out[i].append(v)
        return out
