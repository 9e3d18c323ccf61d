"""Sequence-classification reward models: a scalar head (Bradley-Terry style RMs) or several named
objectives (``num_labels > 1``, e.g. HelpSteer2 attributes / ArmoRM-style multi-objective heads)."""
from __future__ import annotations

import warnings
from typing import Any, Sequence

from ..types import Completion, Prompt, RewardOutput
from ..models.heads import last_token_outputs
from ._lm import TransformerReward


class ClassifierReward(TransformerReward):
    """Reads the head at the last real token of ``template(prompt + completion)``.

    The last token is found from the attention mask (not by searching for the pad id, which breaks
    when pad == eos), so scores do not depend on padding side or batch mates.

    weights: how several objectives combine into the scalar ``score`` (default: their mean, or the
        ``reward_weights`` stored in the model config); the objectives are always in ``vector``.
    """

    task = "sequence-classification"
    kind = "classifier"

    def __init__(self, model: Any = "default", *, num_labels: int | None = None, weights: Sequence[float] | None = None, **kwargs: Any):
        if num_labels is None and isinstance(model, str):
            # A plain LM given as a reward model gets one scalar head (transformers would default to 2).
            from ..models.loading import load_config

            config = load_config(model)
            architectures = getattr(config, "architectures", None) or []
            if not any(a.endswith("ForSequenceClassification") for a in architectures):
                # a rewardkit multi-objective adapter names its heads; anything else gets one
                num_labels = len(config.id2label) if getattr(config, "reward_weights", None) is not None else 1
        if num_labels is not None:
            kwargs["num_labels"] = num_labels
        super().__init__(model, **kwargs)
        head_missing = [k for k in self.missing_weights if k.split(".")[0] in ("score", "classifier")]
        if head_missing:
            warnings.warn(
                f"{self.name}: the classification head ({', '.join(head_missing)}) is not in the checkpoint and was "
                f"initialised randomly (seed={self.seed}); scores are reproducible but not meaningful until the head is trained.",
                stacklevel=2,
            )
        config = self.model.config
        self.num_labels = int(config.num_labels)
        labels = [config.id2label.get(i, f"LABEL_{i}") for i in range(self.num_labels)] if config.id2label else []
        self.dims: tuple[str, ...] = tuple(labels) if self.num_labels > 1 else ()
        weights = weights if weights is not None else getattr(config, "reward_weights", None)
        if weights is not None and len(weights) != self.num_labels:
            raise ValueError(f"{self.name}: {len(weights)} weights for {self.num_labels} objectives")
        self.weights = [float(w) for w in weights] if weights is not None else None
        self.head = getattr(self.model, "score", None)
        if self.head is None and self.packing == "on":
            raise ValueError(f"{self.name}: packing='on' needs a decoder-style 'score' head read at the last token; "
                             "this model pools by itself and takes padded batches only (use packing='off')")

    def _readout(self, hidden, batch, rows):
        return last_token_outputs(self.head, hidden, batch).tolist()

    def score(self, prompts: Sequence[Prompt], completions: Sequence[Completion], **columns: Any) -> RewardOutput:
        encoded = self.encode(prompts, completions)
        if self.head is not None:
            logits = self.run(encoded, self._readout)
        else:
            # Models without a decoder-style ``score`` head (e.g. encoder RMs with a pooler) pool by
            # themselves and expect right padding.
            logits = self.run(
                encoded,
                lambda out, batch, rows: out.float().tolist(),
                forward=lambda batch: self.model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits,
                padding_side="right",
            )
        scores: list[float | None] = []
        reasons: list[str | None] = []
        for e, row in zip(encoded, logits):
            reason = None
            if row is None:
                reason = "empty input"
            elif e.completion_start >= len(e):
                reason = "the completion was truncated away (max_length / truncation_side)"
            reasons.append(reason)
            if reason is not None:
                scores.append(None)
            elif self.num_labels == 1:
                scores.append(float(row[0]))
            elif self.weights is not None:
                scores.append(float(sum(w * v for w, v in zip(self.weights, row))))
            else:
                scores.append(float(sum(row) / len(row)))
        extras = {
            "truncated": [e.truncated for e in encoded],
            "num_tokens": [len(e) for e in encoded],
        }
        if any(reasons):
            extras["reason"] = reasons
        vector = [row if s is not None else [None] * self.num_labels for row, s in zip(logits, scores)] if self.num_labels > 1 else None
        return RewardOutput(scores=scores, vector=vector, dims=self.dims, extras=extras)
