"""Implicit process reward: step rewards from a policy/reference log-likelihood ratio, no step labels.

"Free Process Rewards without Process Labels" (Yuan et al., 2024) shows that an outcome reward
parameterised as ``r(y) = beta * log pi(y) / pi_ref(y)`` (e.g. a DPO-trained policy over its
reference) gives process rewards for free: the reward of step k is ``beta`` times the sum of the
per-token log-ratios over that step's tokens. Both models score the same token ids (the step-wise
encoding of :meth:`rewardkit.models.Encoder.encode_steps`), so they must share a tokenizer.

Without a reference (``reference=None``) the ratio degenerates to the policy's own log-likelihood
of each step: a zero-shot baseline, not the method of the paper.
"""
from __future__ import annotations

from typing import Any, Literal, Sequence

from ...data.steps import as_steps
from ...models.heads import completion_logprobs
from ...protocol import BaseReward
from ...types import Completion, Prompt, RewardOutput
from ..likelihood import LogLikelihoodReward
from .steps import AGGREGATES, step_output


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
        self.beta, self.reduction = float(beta), reduction
        self.aggregate, self.clip_threshold = aggregate, clip_threshold
        self.step_separator, self.step_end = step_separator, step_end
        ref = "none" if self.reference is None else self.reference.model_label
        self.name = name or f"implicit-prm:{self.policy.model_label}/{ref}"

    def children(self) -> list[Any]:
        return [self.policy, self.reference] if self.reference is not None else [self.policy]

    @staticmethod
    def _token_logprobs(lm: LogLikelihoodReward):
        """A readout giving, per row, ``log p(token_t | <t)`` for every completion token ``t``."""
        return lambda hidden, batch, rows: [[] if t is None else t.logprobs.double().tolist()
                                            for t in completion_logprobs(lm.lm_head, hidden, batch, rows)]

    def score(self, prompts: Sequence[Prompt], completions: Sequence[Completion], **columns: Any) -> RewardOutput:
        self._check_lengths(prompts, completions)
        steps = [as_steps(c, self.step_separator) for c in completions]
        encoded = self.policy.encoder.encode_steps(prompts, steps, self.step_end)
        pol = self.policy.run(encoded, self._token_logprobs(self.policy), desc="policy")
        ref = self.reference.run(encoded, self._token_logprobs(self.reference), desc="reference") if self.reference is not None else None
        values: list[list[float] | None] = []
        for i, (s, e) in enumerate(zip(steps, encoded)):
            if not s or not e.fits or pol[i] is None:
                values.append(None)
                continue
            ratio = pol[i] if ref is None else [a - b for a, b in zip(pol[i], ref[i])]
            per_step, lo = [], e.completion_start
            for end in e.ends:
                # tokens lo..end belong to this step; ratio[j] is the completion token completion_start + j
                part = ratio[lo - e.completion_start : end + 1 - e.completion_start]
                total = sum(part)
                per_step.append(self.beta * (total / len(part) if self.reduction == "mean" and part else total))
                lo = end + 1
            values.append(per_step)
        return step_output(steps, encoded, values, self.aggregate, self.clip_threshold)
