"""Zero-shot likelihood reward: the mean log-probability of the completion given the prompt under a
causal LM. No training, so it is the baseline every trained reward model should beat."""
from __future__ import annotations

from typing import Any, Literal, Sequence

from ..types import Completion, Prompt, RewardOutput
from ..models.heads import completion_logprobs
from ._lm import TransformerReward


class LogLikelihoodReward(TransformerReward):
    """``score = mean_t log p(y_t | x, y_<t)`` over the completion tokens (``reduction="sum"`` for the
    total). The chat template's end-of-turn tokens after the completion are part of it, so the model's
    wish to stop there counts. Per-sample ``sum_logprob`` and ``completion_tokens`` are in ``extras``.
    """

    task = "causal-lm"
    kind = "loglik"

    def __init__(self, model: Any = "default", *, reduction: Literal["mean", "sum"] = "mean", **kwargs: Any):
        if reduction not in ("mean", "sum"):
            raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")
        super().__init__(model, **kwargs)
        self.reduction = reduction
        self.lm_head = self.model.get_output_embeddings()

    def _readout(self, hidden, batch, rows):
        """(sum of the completion tokens' log-probabilities, their count) per row."""
        return [(0.0, 0) if t is None else (float(t.logprobs.double().sum()), len(t.logprobs))
                for t in completion_logprobs(self.lm_head, hidden, batch, rows)]

    def score(self, prompts: Sequence[Prompt], completions: Sequence[Completion], **columns: Any) -> RewardOutput:
        encoded = self.encode(prompts, completions)
        results = self.run(encoded, self._readout)
        scores: list[float | None] = []
        sums: list[float | None] = []
        counts: list[int] = []
        reasons: list[str | None] = []
        for res in results:
            total, count = res if res is not None else (0.0, 0)
            counts.append(count)
            if count == 0:
                scores.append(None)
                sums.append(None)
                reasons.append("no completion tokens left to score (empty completion or truncated away)")
            else:
                sums.append(total)
                scores.append(total / count if self.reduction == "mean" else total)
                reasons.append(None)
        extras = {
            "sum_logprob": sums,
            "completion_tokens": counts,
            "truncated": [e.truncated for e in encoded],
            "num_tokens": [len(e) for e in encoded],
        }
        if any(reasons):
            extras["reason"] = reasons
        return RewardOutput(scores=scores, extras=extras)
