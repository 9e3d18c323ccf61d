"""Value-head PRM: a score for every reasoning step, all steps in ONE forward pass.

The completion is encoded step by step (:meth:`rewardkit.models.Encoder.encode_steps`: each step plus
the step-end marker, a newline by default, tokenized on its own after the chat-templated prompt), so
the last token of each piece is known exactly. A value head read at those tokens
(:func:`rewardkit.models.heads.step_end_outputs`) gives every step's score from one forward pass;
because the model is causal, the score at step k equals the score of the prefix ending at step k fed
alone (the per-prefix way, k times the compute). Training (``rewardkit train --objective prm``) uses
the same encoding and readout, so scoring reads what was trained.
"""
from __future__ import annotations

import warnings
from typing import Any, Sequence

from ...assets import packaged
from ...data.steps import as_steps
from ...models import Encoded
from ...models.heads import last_token_outputs, step_end_outputs
from ...types import Completion, Prompt, RewardOutput
from .._lm import TransformerReward
from .steps import AGGREGATES, step_output


class ProcessReward(TransformerReward):
    """Value-head PRM: step scores are ``sigmoid(head(h_t))`` at each step's last token (for a two-label
    head, the probability of label 1). ``RewardOutput.steps`` holds them; ``scores`` holds the
    ``aggregate``; for clip/delta the dense per-step rewards are in ``extras["step_rewards"]``.

    model: ``default-value`` (or ``default``) = the packaged value-head PRM, or any directory / adapter.
    The ``prm:`` spec goes through :func:`~rewardkit.rewards.process.load_prm`, which gives a
    :class:`~rewardkit.rewards.process.LikelihoodPRM` for ``prm:default`` and heads in ``prm_head.json``.
    step_separator: how text completions are split into steps (``list[str]`` completions are used as given).
    step_end: the marker appended to each step; its last token is where the score is read.
    """

    task = "sequence-classification"
    kind = "prm"

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
            path = packaged("default_prm")
            if path is None:
                raise FileNotFoundError("this install has no packaged value-head PRM; train one with `rewardkit train --objective prm`")
            model = str(path)
            kwargs.setdefault("name", f"prm:{model_arg}")
        if num_labels is None and isinstance(model, str):
            from ...models.loading import load_config

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
