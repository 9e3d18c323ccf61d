"""Prompt + completion -> token ids, with the boundary between them kept exact.

The prompt and the completion are rendered with the tokenizer's chat template (a text prompt becomes
one user message), then tokenized *separately* and concatenated, so the index of the first completion
token is known exactly (needed for likelihood rewards and process rewards). Special tokens the
tokenizer adds at the start (BOS) are added once: if the chat template already rendered them they are
not added again (the doubled-BOS bug). Truncation is explicit and reported.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Sequence

from ..protocol import completion_text
from ..types import Completion, Prompt


@dataclass
class Encoded:
    input_ids: list[int]
    completion_start: int  # index of the first completion token in input_ids
    truncated: bool = False
    original_length: int = 0

    def __len__(self) -> int:
        return len(self.input_ids)


def to_messages(prompt: Prompt) -> list[dict[str, str]]:
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]
    if isinstance(prompt, (list, tuple)) and all(isinstance(m, dict) and "role" in m and "content" in m for m in prompt):
        return [{"role": str(m["role"]), "content": str(m["content"])} for m in prompt]
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
        self.special_prefix = self._special_prefix()

    def _special_prefix(self) -> list[int]:
        """Token ids the tokenizer puts in front of any text (usually [BOS] or nothing)."""
        with_special = self.tokenizer("a", add_special_tokens=True)["input_ids"]
        plain = self.tokenizer("a", add_special_tokens=False)["input_ids"]
        for start in range(len(with_special) - len(plain) + 1):
            if with_special[start : start + len(plain)] == plain:
                return list(with_special[:start])
        return []

    def render(self, prompt: Prompt, completion: Completion) -> tuple[str, str]:
        """(prompt text, completion text) exactly as they will be tokenized."""
        answer = completion_text(completion)
        if not self.use_chat:
            return (prompt if isinstance(prompt, str) else _plain_transcript(to_messages(prompt))), answer
        messages = to_messages(prompt)
        if self.system_prompt and messages[0]["role"] != "system":
            messages = [{"role": "system", "content": self.system_prompt}] + messages
        tok = self.tokenizer
        head = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        full = tok.apply_chat_template(messages + [{"role": "assistant", "content": answer}], tokenize=False)
        if not full.startswith(head):
            # Some templates render the last turn differently from a generation prompt; the
            # boundary is then the longest common prefix.
            n = 0
            while n < min(len(head), len(full)) and head[n] == full[n]:
                n += 1
            head = full[:n]
        return head, full[len(head):]

    def encode(self, prompt: Prompt, completion: Completion) -> Encoded:
        return self.encode_many([prompt], [completion])[0]

    def encode_many(self, prompts: Sequence[Prompt], completions: Sequence[Completion]) -> list[Encoded]:
        if len(prompts) != len(completions):
            raise ValueError(f"got {len(prompts)} prompts but {len(completions)} completions")
        if not prompts:
            return []
        rendered = [self.render(p, c) for p, c in zip(prompts, completions)]
        tok = self.tokenizer
        heads = tok([r[0] for r in rendered], add_special_tokens=False)["input_ids"]
        tails = tok([r[1] for r in rendered], add_special_tokens=False)["input_ids"]
        prefix = self.special_prefix
        out = []
        for head, tail in zip(heads, tails):
            head = list(head)
            if prefix and head[: len(prefix)] != prefix:
                head = prefix + head
            ids = head + list(tail)
            out.append(self._truncate(ids, len(head)))
        return out

    def _truncate(self, ids: list[int], completion_start: int) -> Encoded:
        n = len(ids)
        limit = self.max_length
        if limit is None or n <= limit:
            return Encoded(ids, completion_start, False, n)
        if self.truncation_side == "right":
            return Encoded(ids[:limit], min(completion_start, limit), True, n)
        keep = len(self.special_prefix) if len(self.special_prefix) < limit else 0
        removed = n - limit
        new_ids = ids[:keep] + ids[keep + removed :]
        return Encoded(new_ids, max(keep, completion_start - removed), True, n)
