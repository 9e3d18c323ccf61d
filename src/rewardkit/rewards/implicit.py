"""Implicit rewards: read a reward out of language-model likelihoods, no reward head, no judge text.

* :class:`DPOReward` (``dpo:POLICY,REF``): ``beta * (log pi(y|x) - log pi_ref(y|x))``, the reward a DPO-trained
  policy defines against its reference ("Direct Preference Optimization: Your Language Model is Secretly
  a Reward Model").
* :class:`DensityRatioReward` (``ratio:STRONG,WEAK``): ``log p_strong(y|x) - log p_weak(y|x)``, the
  strong-over-weak density ratio ("Rethinking Reward Model Evaluation Through the Lens of Density
  Ratio", CDR); any two models, e.g. an instruct model over its base.
* :class:`FollowUpReward` (``flr:MODEL``): how likely the user is to answer the response with a positive
  follow-up rather than a negative one ("Aligning Large Language Models via Follow-up Likelihood as Reward").

All three reuse :class:`~rewardkit.rewards.likelihood.LogLikelihoodReward` for the log-probabilities
(sorted token-budget batches, exact prompt/completion boundary, truncation reported).
"""
from __future__ import annotations

from typing import Any, Sequence

from ..models import Encoded
from ..protocol import BaseReward
from ..types import Completion, Prompt, RewardOutput
from .likelihood import LogLikelihoodReward

_LM_OPTIONS = ("max_tokens_per_batch", "batch_size", "max_padding", "packing", "max_length", "truncation_side", "chat_template",
               "device", "dtype", "seed", "progress")


def _split_pair(spec: str, second: str | None, what: str) -> tuple[str, str]:
    if second is not None:
        return spec, second
    first, sep, rest = spec.partition(",")
    if not sep or not first.strip() or not rest.strip():
        raise ValueError(f"{what}: expected two models as 'A,B' (or pass the second one as a keyword), got {spec!r}")
    return first.strip(), rest.strip()


def _lm(model: Any, tokenizer: Any, options: dict[str, Any]) -> LogLikelihoodReward:
    if isinstance(model, LogLikelihoodReward):
        return model
    return LogLikelihoodReward(model, tokenizer=tokenizer, reduction="sum", **options)


class DPOReward(BaseReward):
    """``beta * (sum_t log pi(y_t|x,y_<t) - sum_t log pi_ref(y_t|x,y_<t))`` over the completion tokens.

    model: ``"POLICY,REF"`` (as in the spec ``dpo:POLICY,REF``), or the policy with ``reference=REF``;
        each a model dir, .gguf, hub id, ``default``, or a loaded model (then pass ``tokenizer``).
    beta: the DPO temperature the policy was trained with (it only scales the reward).
    length_normalize: divide by the completion's token count (SimPO-style; off for the DPO reward proper).
    Both models must share the tokenizer (checked), so the two sums run over the same tokens.
    Per-sample ``policy_logprob``, ``reference_logprob`` and ``completion_tokens`` are in ``extras``.
    """

    kind = "dpo"
    default_beta = 0.1
    same_tokenizer = True

    def __init__(
        self,
        model: Any,
        *,
        reference: Any = None,
        beta: float | None = None,
        length_normalize: bool = False,
        tokenizer: Any = None,
        reference_tokenizer: Any = None,
        name: str | None = None,
        max_tokens_per_batch: int | None = None,
        batch_size: int | None = None,
        max_padding: float | None = None,
        packing: str | None = None,
        max_length: int | None = None,
        truncation_side: str | None = None,
        chat_template: str | None = None,
        device: str | None = None,
        dtype: str | None = None,
        seed: int | None = None,
        progress: bool | None = None,
    ):
        if isinstance(model, str):
            model, reference = _split_pair(model, reference, self.kind)
        elif reference is None:
            raise ValueError(f"{self.kind}: pass reference=... with a loaded model")
        local = locals()
        options = {k: local[k] for k in _LM_OPTIONS if local[k] is not None}
        self.beta = float(beta if beta is not None else self.default_beta)
        self.length_normalize = length_normalize
        self.policy = _lm(model, tokenizer, options)
        self.reference = _lm(reference, reference_tokenizer if reference_tokenizer is not None else tokenizer, options)
        if self.same_tokenizer and self.policy.tokenizer.get_vocab() != self.reference.tokenizer.get_vocab():
            raise ValueError(f"{self.kind}: the two models use different tokenizers; log-ratios need the same tokens")
        self.name = name or f"{self.kind}:{self.policy.model_label},{self.reference.model_label}"

    def children(self) -> list[Any]:
        return [self.policy, self.reference]

    def score(self, prompts: Sequence[Prompt], completions: Sequence[Completion], **columns: Any) -> RewardOutput:
        self._check_lengths(prompts, completions)
        top = self.policy.score(prompts, completions)
        ref = self.reference.score(prompts, completions)
        scores: list[float | None] = []
        for a, b, n in zip(top.extras["sum_logprob"], ref.extras["sum_logprob"], top.extras["completion_tokens"]):
            if a is None or b is None:
                scores.append(None)
                continue
            value = self.beta * (a - b)
            scores.append(value / n if self.length_normalize and n else value)
        extras = {
            "policy_logprob": top.extras["sum_logprob"],
            "reference_logprob": ref.extras["sum_logprob"],
            "completion_tokens": top.extras["completion_tokens"],
            "truncated": [x or y for x, y in zip(top.extras["truncated"], ref.extras["truncated"])],
        }
        return RewardOutput(scores=scores, extras=extras)


class DensityRatioReward(DPOReward):
    """``log p_strong(y|x) - log p_weak(y|x)`` (``ratio:STRONG,WEAK``; ``beta`` scales it, default 1).
    The two models may use different tokenizers: each scores the same text with its own tokens."""

    kind = "ratio"
    default_beta = 1.0
    same_tokenizer = False


POSITIVE_FOLLOW_UPS = (
    "Thanks, that is exactly what I needed.",
    "Great, that answers my question.",
    "Perfect, that works. Thank you!",
)
NEGATIVE_FOLLOW_UPS = (
    "That is wrong.",
    "That does not answer my question.",
    "No, that is not right. Please try again.",
)


class FollowUpReward(LogLikelihoodReward):
    """Follow-up likelihood as reward (FLR): after the response, how much more likely is the user to
    reply with a positive follow-up than a negative one?

    ``score = mean_f+ log p(f+ | x, y) - mean_f- log p(f- | x, y)`` with each follow-up written as the
    next *user* turn (chat template) and its log-probability summed over its tokens. ``negative=()``
    scores the positive follow-ups alone. Per-sample means are in ``extras``.
    """

    kind = "flr"

    def __init__(self, model: Any = "default", *, positive: Sequence[str] = POSITIVE_FOLLOW_UPS,
                 negative: Sequence[str] = NEGATIVE_FOLLOW_UPS, **kwargs: Any):
        super().__init__(model, reduction="sum", **kwargs)
        if not positive:
            raise ValueError("flr needs at least one positive follow-up")
        self.positive, self.negative = list(positive), list(negative)

    def score(self, prompts: Sequence[Prompt], completions: Sequence[Completion], **columns: Any) -> RewardOutput:
        self._check_lengths(prompts, completions)
        n = len(prompts)
        follow_ups = self.positive + self.negative
        encoded: list[Encoded] = []
        for f in follow_ups:
            encoded += self.encoder.encode_follow_ups(prompts, completions, f)
        results = self.run(encoded, self._readout)  # one sorted pass over every (sample, follow-up)
        truncated = [any(encoded[k * n + i].truncated for k in range(len(follow_ups))) for i in range(n)]

        def mean_over(group: range) -> list[float | None]:
            values = []
            for i in range(n):
                sums = [results[k * n + i] for k in group]
                ok = [s for s, c in sums if c > 0] if all(r is not None for r in sums) else []
                values.append(sum(ok) / len(ok) if len(ok) == len(group) else None)
            return values

        pos = mean_over(range(len(self.positive)))
        neg = mean_over(range(len(self.positive), len(follow_ups))) if self.negative else [0.0] * n
        scores = [None if p is None or q is None else p - q for p, q in zip(pos, neg)]
        extras: dict[str, list] = {"positive_logprob": pos, "truncated": truncated}
        if self.negative:
            extras["negative_logprob"] = neg
        return RewardOutput(scores=scores, extras=extras)
