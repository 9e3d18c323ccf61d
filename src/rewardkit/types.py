"""Plain data types shared by every part of rewardkit (no torch import here, so the data and eval
layers stay importable without a model stack)."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, TypedDict, Union


class Message(TypedDict):
    role: str
    content: str | list[dict[str, Any]]  # text, or content parts: text and images (rewardkit.images)


Prompt = Union[str, list[Message]]
#: A completion is text, or pre-split reasoning steps (joined with "\n" by rewards that read whole text);
#: also, at run time, TRL's assistant messages or a list of content parts (an image it generated).
Completion = Union[str, list[str]]


class RenderedPrompt(str):
    """A prompt already rendered with the chat template, as RL trainers send it (OpenRLHF's
    ``prompts``). A model reward with a chat template reads it as the conversation so far and puts
    the completion after it as the template's assistant turn (end-of-turn tokens included), so it
    scores the text it would score from the messages; everything else treats it as plain text."""

    __slots__ = ()


def _finite(value: Any) -> bool:
    """False for NaN and +-inf (of any float-like type); other values are left to their consumers."""
    try:
        return math.isfinite(value)
    except (TypeError, ValueError, OverflowError):  # OverflowError: an int too large for a float is still finite
        return True


@dataclass
class RewardOutput:
    """What every reward returns for a batch: one entry per sample, in input order.

    ``None`` in ``scores`` means "could not score this sample" (the reason goes in ``extras``);
    it is never replaced by a sentinel value. A NaN or infinite score is not a number any metric can
    use: it becomes ``None`` here, for every reward, with ``extras["reason"]`` saying so.
    """

    scores: list[float | None]
    steps: list[list[float]] | None = None
    vector: list[list[float]] | None = None
    dims: tuple[str, ...] = ()
    extras: dict[str, list] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.scores)
        for name in ("steps", "vector"):
            value = getattr(self, name)
            if value is not None and len(value) != n:
                raise ValueError(f"RewardOutput.{name} has {len(value)} entries for {n} scores")
        for key, value in self.extras.items():
            if len(value) != n:
                raise ValueError(f"RewardOutput.extras[{key!r}] has {len(value)} entries for {n} scores")
        if self.vector is not None and self.dims and any(len(v) != len(self.dims) for v in self.vector):
            raise ValueError(f"RewardOutput.vector rows must have {len(self.dims)} values (dims={self.dims})")
        bad = [i for i, s in enumerate(self.scores) if s is not None and not _finite(s)]
        if bad:
            scores, reasons = list(self.scores), list(self.extras.get("reason") or [None] * n)
            for i in bad:
                note = f"the reward returned a non-finite score ({scores[i]!r}); counted as unscored"
                reasons[i] = f"{reasons[i]}; {note}" if reasons[i] else note
                scores[i] = None
            self.scores, self.extras = scores, {**self.extras, "reason": reasons}

    def __len__(self) -> int:
        return len(self.scores)

    def row(self, i: int) -> dict[str, Any]:
        """One sample's output as a JSON-ready dict."""
        out: dict[str, Any] = {"score": self.scores[i]}
        if self.steps is not None:
            out["steps"] = self.steps[i]
        if self.vector is not None:
            out["vector"] = dict(zip(self.dims, self.vector[i])) if self.dims else self.vector[i]
        for key, value in self.extras.items():
            out[key] = value[i]
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "scores": self.scores,
            "steps": self.steps,
            "vector": self.vector,
            "dims": list(self.dims),
            "extras": self.extras,
        }


@dataclass
class PairRecord:
    """A preference pair: ``chosen`` is preferred over ``rejected`` for ``prompt``.

    ``columns`` holds every other field of the source row (a gold ``answer``, ``principles`` ...);
    they reach the reward as keyword columns.
    """

    id: str
    prompt: Prompt
    chosen: Completion
    rejected: Completion
    subset: str = "default"
    columns: dict[str, Any] = field(default_factory=dict)


@dataclass
class BestOfNRecord:
    """One prompt with several completions of which the first ``num_correct`` are correct
    (RewardBench 2 layout: correct ones first)."""

    id: str
    prompt: Prompt
    completions: list[Completion]
    num_correct: int
    subset: str = "default"
    columns: dict[str, Any] = field(default_factory=dict)


@dataclass
class SampleRecord:
    """One prompt and one completion to score (``rewardkit score`` on plain completions)."""

    id: str
    prompt: Prompt
    completion: Completion
    subset: str = "default"
    columns: dict[str, Any] = field(default_factory=dict)


@dataclass
class ScoredPair:
    """Precomputed scores for a pair (from a file or from ``rewardkit score``)."""

    id: str
    chosen_score: float | None
    rejected_score: float | None
    subset: str = "default"
    model: str | None = None
    applicable: bool = True  # False: the reward does not apply to this item (e.g. a rule without gold data)
    item: str | None = None  # the item these scores are for when rows of several models share it under their own ids (JudgeBench's pair_id)


@dataclass
class ScoredBestOfN:
    id: str
    scores: list[float | None]
    num_correct: int
    subset: str = "default"
    model: str | None = None
    applicable: bool = True
    item: str | None = None


Record = Union[PairRecord, BestOfNRecord, SampleRecord]
ScoredRecord = Union[ScoredPair, ScoredBestOfN]
