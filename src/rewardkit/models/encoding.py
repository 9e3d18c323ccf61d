"""Prompt + completion -> token ids, with the boundary between them kept exact: the one encoder of
rewardkit, for (prompt, completion) pairs, pre-split reasoning steps and follow-up turns, used alike by
scoring and training.

The prompt and the completion are rendered with the tokenizer's chat template (a text prompt becomes
one user message), then tokenized *separately* and concatenated, so the index of the first completion
token is known exactly (needed for likelihood rewards and process rewards). Special tokens the
tokenizer adds at the start (BOS) are added once: if the chat template already rendered them they are
not added again (the doubled-BOS bug). Truncation is explicit and reported.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Sequence

from ..protocol import completion_text, message_text
from ..types import Completion, Prompt, RenderedPrompt


@dataclass
class Encoded:
    """Token ids of prompt + completion. For step-wise encodings (:meth:`Encoder.encode_steps`) ``ends``
    holds the index of each step's last token, and ``fits`` is False when the steps alone exceed
    ``max_length`` (such a row has length 0: it is not run and scores ``None``)."""

    input_ids: list[int]
    completion_start: int  # index of the first completion token in input_ids
    truncated: bool = False
    original_length: int = 0
    ends: list[int] = field(default_factory=list)
    fits: bool = True

    def __len__(self) -> int:
        return len(self.input_ids) if self.fits else 0


def special_prefix(tokenizer: Any) -> list[int]:
    """Token ids the tokenizer puts in front of any text (usually [BOS] or nothing)."""
    with_special = tokenizer("a", add_special_tokens=True)["input_ids"]
    plain = tokenizer("a", add_special_tokens=False)["input_ids"]
    for start in range(len(with_special) - len(plain) + 1):
        if with_special[start : start + len(plain)] == plain:
            return list(with_special[:start])
    return []


def with_prefix(ids: Sequence[int], prefix: Sequence[int]) -> list[int]:
    """``ids`` starting with ``prefix`` exactly once (a chat template may have rendered BOS already)."""
    ids = list(ids)
    return list(prefix) + ids if prefix and ids[: len(prefix)] != list(prefix) else ids


def split_rendered(head: str, full: str) -> tuple[str, str]:
    """(head, rest) of ``full``, where ``head`` is a rendering of the conversation before the new part.
    Some templates render the last turn differently from a generation prompt (or strip whitespace):
    the boundary is then the longest common prefix of the two renderings."""
    if full.startswith(head):
        return head, full[len(head):]
    n = 0
    while n < min(len(head), len(full)) and head[n] == full[n]:
        n += 1
    return full[:n], full[n:]


def to_messages(prompt: Prompt) -> list[dict[str, str]]:
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]
    if isinstance(prompt, (list, tuple)) and all(isinstance(m, dict) and "role" in m and "content" in m for m in prompt):
        return [{"role": str(m["role"]), "content": message_text(m["content"])} for m in prompt]
    raise TypeError(f"a prompt must be text or a list of {{'role','content'}} messages, got {type(prompt).__name__}")


def _plain_transcript(messages: Sequence[dict[str, str]]) -> str:
    return "".join(f"{m['role']}: {m['content']}\n" for m in messages)


class Encoder:
    """Turns (prompt, completion) into :class:`Encoded` token ids for one tokenizer.

    chat_template: "auto" uses the tokenizer's template when it has one; "off" concatenates
    prompt text and completion text as they are (chat prompts become "role: content" lines).
    truncation_side: "left" drops the oldest tokens (keeps the completion, the usual choice for
    reward models); "right" drops the end.
    """

    def __init__(
        self,
        tokenizer: Any,
        *,
        chat_template: Literal["auto", "on", "off"] = "auto",
        max_length: int | None = None,
        truncation_side: Literal["left", "right"] = "left",
        system_prompt: str | None = None,
    ):
        if truncation_side not in ("left", "right"):
            raise ValueError(f"truncation_side must be 'left' or 'right', got {truncation_side!r}")
        if chat_template not in ("auto", "on", "off"):
            raise ValueError(f"chat_template must be 'auto', 'on' or 'off', got {chat_template!r}")
        has_template = bool(getattr(tokenizer, "chat_template", None))
        if chat_template == "on" and not has_template:
            raise ValueError("chat_template='on' but the tokenizer has no chat template")
        self.tokenizer = tokenizer
        self.use_chat = chat_template == "on" or (chat_template == "auto" and has_template)
        self.max_length = max_length
        self.truncation_side = truncation_side
        self.system_prompt = system_prompt
        self.special_prefix = special_prefix(tokenizer)

    def render(self, prompt: Prompt, completion: Completion) -> tuple[str, str]:
        """(prompt text, completion text) exactly as they will be tokenized."""
        answer = completion_text(completion)
        if isinstance(prompt, RenderedPrompt):
            return str(prompt), (self.assistant_turn(answer) if self.use_chat else answer)
        if not self.use_chat:
            return (prompt if isinstance(prompt, str) else _plain_transcript(to_messages(prompt))), answer
        messages = to_messages(prompt)
        if self.system_prompt and messages[0]["role"] != "system":
            messages = [{"role": "system", "content": self.system_prompt}] + messages
        tok = self.tokenizer
        head = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        full = tok.apply_chat_template(messages + [{"role": "assistant", "content": answer}], tokenize=False)
        return split_rendered(head, full)

    def assistant_turn(self, answer: str) -> str:
        """``answer`` as the template renders an assistant turn after a generation prompt (e.g.
        ``answer<|im_end|>\n``): what follows a :class:`RenderedPrompt`."""
        probe = [{"role": "user", "content": "\x00"}]
        tok = self.tokenizer
        head = tok.apply_chat_template(probe, tokenize=False, add_generation_prompt=True)
        full = tok.apply_chat_template(probe + [{"role": "assistant", "content": answer}], tokenize=False)
        return split_rendered(head, full)[1]

    def render_follow_up(self, prompt: Prompt, completion: Completion, follow_up: str) -> tuple[str, str]:
        """(conversation so far, the user's follow-up turn) as text, split exactly where the turn starts."""
        messages = to_messages(prompt) + [{"role": "assistant", "content": completion_text(completion)}]
        if not self.use_chat:
            return _plain_transcript(messages), f"user: {follow_up}\n"
        tok = self.tokenizer
        head = tok.apply_chat_template(messages, tokenize=False)
        full = tok.apply_chat_template(messages + [{"role": "user", "content": follow_up}], tokenize=False)
        return split_rendered(head, full)

    def encode(self, prompt: Prompt, completion: Completion) -> Encoded:
        return self.encode_many([prompt], [completion])[0]

    def encode_many(self, prompts: Sequence[Prompt], completions: Sequence[Completion]) -> list[Encoded]:
        if len(prompts) != len(completions):
            raise ValueError(f"got {len(prompts)} prompts but {len(completions)} completions")
        return self.encode_rendered([self.render(p, c) for p, c in zip(prompts, completions)])

    def encode_follow_ups(self, prompts: Sequence[Prompt], completions: Sequence[Completion], follow_up: str) -> list[Encoded]:
        """The conversation then the user's ``follow_up`` turn; the "completion" is the follow-up."""
        return self.encode_rendered([self.render_follow_up(p, c, follow_up) for p, c in zip(prompts, completions)])

    def encode_rendered(self, rendered: Sequence[tuple[str, str]]) -> list[Encoded]:
        """(head text, tail text) pairs -> ids: each side tokenized on its own, the special prefix once."""
        if not rendered:
            return []
        tok = self.tokenizer
        heads = tok([r[0] for r in rendered], add_special_tokens=False)["input_ids"]
        tails = tok([r[1] for r in rendered], add_special_tokens=False)["input_ids"]
        out = []
        for head, tail in zip(heads, tails):
            head = with_prefix(head, self.special_prefix)
            out.append(self.truncate(head + list(tail), len(head)))
        return out

    def encode_steps(self, prompts: Sequence[Prompt], step_lists: Sequence[Sequence[str]], step_end: str = "\n") -> list[Encoded]:
        """(prompt, steps) pairs for process rewards. Each step + ``step_end`` is tokenized on its own, so
        step boundaries are exact and a prefix of steps has exactly a prefix of the tokens (one forward
        pass gives what per-prefix scoring would); ``ends`` holds each step's last token. An empty
        step still gets one token (EOS) to be read at. Over-long inputs lose prompt tokens only
        (:meth:`truncate` with ``keep_completion``)."""
        tok = self.tokenizer
        heads_text = [self.render(p, "\n".join(s))[0] for p, s in zip(prompts, step_lists)]
        heads = tok(heads_text, add_special_tokens=False)["input_ids"] if heads_text else []
        flat = [s + step_end for steps in step_lists for s in steps]
        pieces = tok(flat, add_special_tokens=False)["input_ids"] if flat else []
        out, k = [], 0
        for head, steps in zip(heads, step_lists):
            head = with_prefix(head, self.special_prefix)
            body: list[int] = []
            ends: list[int] = []
            for _ in steps:
                body.extend(list(pieces[k]) or [tok.eos_token_id or 0])
                k += 1
                ends.append(len(body) - 1)
            enc = self.truncate(head + body, len(head), keep_completion=True)
            enc.ends = [enc.completion_start + e for e in ends]
            out.append(enc)
        return out

    def truncate(self, ids: list[int], completion_start: int, *, keep_completion: bool = False) -> Encoded:
        """``ids`` (prompt tokens, then completion tokens from ``completion_start``) cut to ``max_length``.

        Invariant: the result is always a cut of the prompt's tokens followed by a cut of the
        completion's, and ``completion_start`` is the index where the completion's kept tokens begin,
        so ``encode(prompt, completion)`` splits exactly at the boundary, truncated or not.
        ``truncation_side="left"`` drops the oldest tokens after the special prefix (BOS stays),
        ``"right"`` drops the end. ``keep_completion`` (step-wise encodings, whose readouts need every
        step end) only ever drops prompt tokens, from the left; if the completion alone does not fit,
        the result has ``fits=False`` (only the special prefix is kept before it).
        """
        n = len(ids)
        limit = self.max_length
        if limit is None or n <= limit:
            return Encoded(ids, completion_start, False, n)
        keep = len(self.special_prefix) if len(self.special_prefix) < limit else 0
        if keep_completion and n - completion_start > limit - keep:
            return Encoded(ids[:keep] + ids[completion_start:], keep, True, n, fits=False)
        if self.truncation_side == "right" and not keep_completion:
            return Encoded(ids[:limit], min(completion_start, limit), True, n)
        removed = n - limit
        new_ids = ids[:keep] + ids[keep + removed :]
        return Encoded(new_ids, max(keep, completion_start - removed), True, n)
