"""Zero-shot likelihood reward: the mean log-probability of the completion given the prompt under a
causal LM. No training, so it is the baseline every trained reward model should beat."""
from __future__ import annotations

from typing import Any, Literal, Sequence

from ..types import Completion, Prompt, RewardOutput
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

    def completion_log_softmax(self, hidden, batch, r: int, row, off: int):
        """``(log_softmax [T, V], target ids [T])`` over row ``r``'s completion tokens (each predicted
        from the position before it), or ``None`` if the row has no completion token to score."""
        import torch

        start, end = max(row.completion_start, 1), len(row.input_ids)
        if start >= end:
            return None
        logits = self.lm_head(hidden[r, off + start - 1 : off + end - 1]).float()
        return torch.log_softmax(logits, dim=-1), batch.input_ids[r, off + start : off + end]

    def _readout(self, hidden, batch, rows):
        """For each row, hidden states at positions ``start-1 .. end-2`` predict tokens ``start .. end-1``;
        only those positions go through the (vocabulary-sized) LM head."""
        import torch

        picks, targets, owners = [], [], []
        for r, (row, off) in enumerate(zip(rows, batch.offsets)):
            start, end = max(row.completion_start, 1), len(row)
            if start >= end:
                continue
            picks.append(hidden[r, off + start - 1 : off + end - 1])
            targets.append(batch.input_ids[r, off + start : off + end])
            owners.extend([r] * (end - start))
        sums = [0.0] * len(rows)
        counts = [0] * len(rows)
        if picks:
            logits = self.lm_head(torch.cat(picks)).float()
            logp = torch.log_softmax(logits, dim=-1).gather(-1, torch.cat(targets)[:, None])[:, 0]
            owner = torch.tensor(owners, device=logp.device)
            totals = torch.zeros(len(rows), dtype=torch.float64, device=logp.device).index_add_(0, owner, logp.double())
            sums = totals.tolist()
            for r in owners:
                counts[r] += 1
        return list(zip(sums, counts))

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
