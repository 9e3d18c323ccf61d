"""Implicit process reward: step rewards from a policy/reference log-likelihood ratio, no step labels.

"Free Process Rewards without Process Labels" (Yuan et al., 2024) shows that an outcome reward
parameterised as ``r(y) = beta * log pi(y) / pi_ref(y)`` (e.g. a DPO-trained policy over its
reference) gives process rewards for free: the reward of step k is ``beta`` times the sum of the
per-token log-ratios over that step's tokens. Both models score the same token ids (the step-wise
encoding of :mod:`rewardkit.rewards.process`), so they must share a tokenizer.

Without a reference (``reference=None``) the ratio degenerates to the policy's own log-likelihood
of each step: a zero-shot baseline, not the method of the paper.
"""
from __future__ import annotations

from typing import Any, Literal, Sequence

from ..data.steps import as_steps
from ..protocol import BaseReward
from ..types import Completion, Prompt, RewardOutput
from .likelihood import LogLikelihoodReward
from .process import AGGREGATES, aggregate


class ImplicitPRM(BaseReward):
    """``steps[i][k] = beta * (sum or mean over step k's tokens of log pi - log pi_ref)``.

    policy / reference: LM specs (``default``, a directory, .gguf, hub id; a LoRA adapter dir over
    its base works too) or loaded ``LogLikelihoodReward`` objects (tests, sharing).
    reduction: "sum" is the paper's form; "mean" divides by the step's token count, which removes
    the length bias when steps differ a lot in length.
    """

    def __init__(
        self,
        policy: Any = "default",
        *,
        reference: Any = None,
        beta: float = 1.0,
        reduction: Literal["sum", "mean"] = "sum",
        aggregate: str = "min",
        clip_threshold: float = 0.0,
        step_separator: str = "\n",
        step_end: str = "\n",
        name: str | None = None,
        max_length: int | None = None,
        max_tokens_per_batch: int = 8192,
        device: str | None = None,
        **lm_kwargs: Any,
    ):
        lm_kwargs.update(max_length=max_length, max_tokens_per_batch=max_tokens_per_batch, device=device)
        if reduction not in ("sum", "mean"):
            raise ValueError(f"reduction must be 'sum' or 'mean', got {reduction!r}")
        if aggregate not in AGGREGATES:
            raise ValueError(f"unknown aggregate {aggregate!r}; choose from {', '.join(AGGREGATES)}")
        self.policy = policy if isinstance(policy, LogLikelihoodReward) else LogLikelihoodReward(policy, **lm_kwargs)
        self.reference = None
        if reference is not None:
            self.reference = reference if isinstance(reference, LogLikelihoodReward) else LogLikelihoodReward(reference, **lm_kwargs)
            if self.reference.tokenizer.get_vocab() != self.policy.tokenizer.get_vocab():
                raise ValueError("policy and reference must share a tokenizer (the log-ratio compares the same token ids)")
        self.beta = float(beta)
        self.reduction = reduction
        self.aggregate = aggregate
        self.clip_threshold = clip_threshold
        self.step_separator = step_separator
        self.step_end = step_end
        ref = "none" if self.reference is None else self.reference.model_label
        self.name = name or f"implicit-prm:{self.policy.model_label}/{ref}"

    def children(self) -> list[Any]:
        return [self.policy, self.reference] if self.reference is not None else [self.policy]

    @staticmethod
    def _token_logprobs(lm: LogLikelihoodReward):
        """A readout giving, per row, ``log p(token_t | <t)`` for every completion token ``t``."""

        def readout(hidden, batch, rows):
            out = []
            for r, (row, off) in enumerate(zip(rows, batch.offsets)):
                got = lm.completion_log_softmax(hidden, batch, r, row, off)
                if got is None:
                    out.append([])
                    continue
                logp, target = got
                out.append(logp.gather(-1, target[:, None])[:, 0].double().tolist())
            return out

        return readout

    def score(self, prompts: Sequence[Prompt], completions: Sequence[Completion], **columns: Any) -> RewardOutput:
        self._check_lengths(prompts, completions)
        steps = [as_steps(c, self.step_separator) for c in completions]
        encoded = self.policy.encoder.encode_steps(prompts, steps, self.step_end)
        pol = self.policy.run(encoded, self._token_logprobs(self.policy), desc="policy")
        ref = self.reference.run(encoded, self._token_logprobs(self.reference), desc="reference") if self.reference is not None else None
        scores, step_scores, reasons = [], [], []
        for i, (s, e) in enumerate(zip(steps, encoded)):
            if not s or not e.fits or pol[i] is None:
                scores.append(None)
                step_scores.append([])
                reasons.append("no steps (empty completion)" if not s else "the steps do not fit in max_length")
                continue
            ratio = pol[i] if ref is None else [a - b for a, b in zip(pol[i], ref[i])]
            values, lo = [], e.completion_start
            for end in e.ends:
                # tokens lo..end belong to this step; ratio[j] is the completion token completion_start + j
                part = ratio[lo - e.completion_start : end + 1 - e.completion_start]
                total = sum(part)
                values.append(self.beta * (total / len(part) if self.reduction == "mean" and part else total))
                lo = end + 1
            value, _ = aggregate(values, self.aggregate, self.clip_threshold)
            scores.append(value)
            step_scores.append(values)
            reasons.append(None)
        extras: dict[str, list] = {"num_steps": [len(s) for s in steps], "truncated": [e.truncated for e in encoded]}
        if any(reasons):
            extras["reason"] = reasons
        return RewardOutput(scores=scores, steps=step_scores, extras=extras)
