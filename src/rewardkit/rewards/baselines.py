"""Trivial baselines that every reward model should be compared against."""
from __future__ import annotations

from typing import Any, Literal, Sequence

from ..protocol import BaseReward, completion_text
from ..types import Completion, Prompt, RewardOutput


class LengthReward(BaseReward):
    """Longer is better: the completion's length in words (or characters). Shows how much of a
    benchmark a pure length bias solves, and ``sign=-1`` gives the brevity baseline."""

    kind = "length"
    reads_prompt = False

    def __init__(self, unit: Literal["words", "chars"] = "words", *, sign: float = 1.0, name: str | None = None):
        if unit not in ("words", "chars"):
            raise ValueError(f"LengthReward unit must be 'words' or 'chars', got {unit!r}")
        self.unit = unit
        self.sign = float(sign)
        self.name = name or ("length" if unit == "words" and sign == 1.0 else f"length:{unit}" + ("" if sign == 1.0 else f"(sign={sign:g})"))

    def score(self, prompts: Sequence[Prompt], completions: Sequence[Completion], **columns: Any) -> RewardOutput:
        self._check_lengths(prompts, completions)
        texts = [completion_text(c) for c in completions]
        sizes = [len(t.split()) if self.unit == "words" else len(t) for t in texts]
        return RewardOutput(scores=[self.sign * s for s in sizes])
