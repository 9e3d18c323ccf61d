"""What every text-generation client returns, and the one call every client answers."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, Sequence, runtime_checkable

from ..types import Prompt


class RawText(str):
    """A prompt already rendered as the model should see it: continued verbatim, no chat template
    (what ``/v1/completions`` means by a prompt)."""


@dataclass
class Generation:
    """One generated continuation.

    text: the continuation, cut before the first stop string when one was hit.
    token_ids: generated token ids (local clients; ``None`` when an HTTP server does not return them).
    finish_reason: "stop" (end of turn, EOS or a stop string) or "length" (``max_new_tokens`` reached).
    num_tokens: generated tokens (the cost); ``None`` when the server does not say.
    tokens / logprobs / top_logprobs: per generated token, its text piece, its log-probability under the
        model (temperature 1, before top-p) and the ``top_logprobs`` most likely pieces -> log-probability.
        Only filled when ``logprobs=True`` was asked for.
    seed: the seed this sample was drawn with (``None`` for greedy decoding).
    """

    text: str
    token_ids: list[int] | None = None
    finish_reason: Literal["stop", "length"] = "stop"
    num_tokens: int | None = None
    prompt_tokens: int | None = None
    tokens: list[str] | None = None
    logprobs: list[float] | None = None
    top_logprobs: list[dict[str, float]] | None = None
    seed: int | None = None
    extras: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Sampling:
    """The generation options every client takes, defined and checked once:
    ``client.generate(prompts, assistant_prefix=None, **options)`` with ``options`` these fields.

    max_new_tokens: generation budget; temperature: 0 is greedy (then ``n`` copies are identical),
    > 0 samples with ``top_p`` nucleus; n: continuations per prompt; seed: run seed of sampling (each
    sample's own seed is derived from it and the sample's input, so batch mates never change a sample);
    stop: stop strings (the text is cut before them); logprobs / top_logprobs: per-token log-probs and
    the top alternatives.
    """

    max_new_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 1.0
    n: int = 1
    seed: int | None = 0
    stop: Sequence[str] | None = None
    logprobs: bool = False
    top_logprobs: int = 0

    def __post_init__(self) -> None:
        check_sampling(self.max_new_tokens, self.temperature, self.top_p, self.n, self.top_logprobs)

    @classmethod
    def of(cls, client: str, options: dict[str, Any]) -> "Sampling":
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(options) - known)
        if unknown:
            raise TypeError(f"{client}: unknown generation option(s) {unknown}; known: {', '.join(sorted(known))}, assistant_prefix")
        return cls(**options)

    @property
    def wants_logprobs(self) -> bool:
        return self.logprobs or self.top_logprobs > 0


@runtime_checkable
class GenerationClient(Protocol):
    """``generate`` returns one list of ``n`` generations per prompt, in input order; ``options`` are the
    fields of :class:`Sampling`. ``assistant_prefix`` (one per prompt, or one for all) is text the
    assistant turn already starts with (judges pass it only when configured with one)."""

    name: str

    def generate(self, prompts: Sequence[Prompt], *, assistant_prefix: Sequence[str] | str | None = None,
                 **options: Any) -> list[list[Generation]]: ...


def per_prompt(value: Sequence[str] | str | None, n: int) -> list[str]:
    """``assistant_prefix`` as one string per prompt."""
    if value is None:
        return [""] * n
    if isinstance(value, str):
        return [value] * n
    values = list(value)
    if len(values) != n:
        raise ValueError(f"assistant_prefix has {len(values)} values for {n} prompts")
    return values


def sample_seed(seed: int, key: str, index: int) -> int:
    """Seed of one sample, derived from the run seed, the sample's own input and its index, so a
    sample is the same whatever else is in the batch (batch size and order never change it)."""
    digest = hashlib.sha256(f"{seed}|{index}|{key}".encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def check_sampling(max_new_tokens: int, temperature: float, top_p: float, n: int, top_logprobs: int) -> None:
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    if not 0 < top_p <= 1:
        raise ValueError(f"top_p must be in (0, 1], got {top_p}")
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if top_logprobs < 0:
        raise ValueError(f"top_logprobs must be >= 0, got {top_logprobs}")


def cut_at_stop(text: str, stop: Sequence[str] | None) -> tuple[str, bool]:
    """``text`` before the earliest stop string, and whether one was found."""
    if not stop:
        return text, False
    cut = min((i for i in (text.find(s) for s in stop if s) if i >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)
