"""What a judge is shown: a sample's prompt and completion as text, or, when they carry images, as
content parts (text and images in the order they came) that the judge template places in its user
turn. A text sample renders exactly as before (a string), so text judges are unchanged.

Content is a ``str`` or a list of parts ``{"type": "text", "text": ...}`` / canonical image parts
``{"type": "image", "base64": ...}``; :func:`judge_prompt` turns it into what a client takes (the
string, or one user message with the parts).
"""
from __future__ import annotations

import functools
from typing import Any, Callable, Sequence

from ...images import IMAGE_COLUMNS, ImageError, ImageRef, count_images, inline_images, is_image_part, is_parts, prompt_images
from ...protocol import completion_text, message_text, sample_columns, score_kept
from ...types import Prompt, RewardOutput

Content = str | list[dict[str, Any]]


def prompt_text(prompt: Prompt) -> str:
    """A prompt as text for a judge template (a conversation becomes role-labelled turns)."""
    if isinstance(prompt, str):
        return prompt
    return "\n".join(f"{m['role'].capitalize()}: {message_text(m.get('content'))}" for m in prompt)


def sample_images(columns: dict[str, Any], i: int) -> Any:
    """Sample ``i``'s ``images`` (or ``image``) column value, ``None`` when it has none."""
    for name in IMAGE_COLUMNS:
        values = columns.get(name)
        if values is not None and not isinstance(values, (str, bytes)) and values[i] is not None:
            return values[i]
    return None


def prompt_content(prompt: Prompt, images: Any = None) -> Content:
    """The prompt as :func:`prompt_text` renders it, with its images in place: each image part where
    it stood in its message, placeholders filled from the ``images`` column, and column images that
    fill no placeholder first (as a VLM chat template puts a dataset's image before the question)."""
    refs = prompt_images(prompt, images)
    if not refs:
        return prompt_text(prompt)
    found = iter(refs)
    parts: list[dict[str, Any]] = [next(found).to_part() for _ in range(len(refs) - count_images(prompt))]
    if isinstance(prompt, str):
        return merge(parts + [_text(prompt)])
    for k, m in enumerate(prompt):
        parts.append(_text(("\n" if k else "") + f"{m['role'].capitalize()}: "))
        content = m.get("content")
        for p in content if isinstance(content, (list, tuple)) else [content]:
            parts.append(next(found).to_part() if is_image_part(p) else _text(message_text(p)))
    return merge(parts)


def completion_content(completion: Any) -> Content:
    """The completion as :func:`completion_text` reads it, with its images in place (an image
    generated for a prompt, or an assistant turn holding images)."""
    if isinstance(completion, str) or not count_images(completion):
        return completion_text(completion)
    completion_text(completion)  # the same validation of shapes and roles
    if is_parts(completion):
        pieces: list[Any] = list(completion)
    else:  # assistant messages (tool results are not the assistant's answer)
        pieces = []
        for m in completion:
            if m.get("role", "assistant") == "assistant":
                content = m.get("content")
                pieces.extend(content if isinstance(content, (list, tuple)) else [content])
    return merge([ImageRef.parse(p).to_part() if is_image_part(p) else _text(message_text(p)) for p in pieces])


def join(pieces: Sequence[Content], sep: str = "") -> Content:
    """Pieces of content joined by ``sep`` (a string when all are strings)."""
    if all(isinstance(p, str) for p in pieces):
        return sep.join(pieces)  # type: ignore[arg-type]
    parts: list[dict[str, Any]] = []
    for k, piece in enumerate(pieces):
        if k and sep:
            parts.append(_text(sep))
        parts.extend([_text(piece)] if isinstance(piece, str) else piece)
    return merge(parts)


def merge(parts: list[dict[str, Any]]) -> Content:
    """Adjacent text parts joined, empty ones dropped; a string when no image is left."""
    out: list[dict[str, Any]] = []
    for p in parts:
        if p.get("type") == "text":
            if not p.get("text"):
                continue
            if out and out[-1].get("type") == "text":
                out[-1] = _text(out[-1]["text"] + p["text"])
                continue
        out.append(p)
    if not any(is_image_part(p) for p in out):
        return "".join(p["text"] for p in out)
    return out


def content_text(content: Content) -> str:
    """The text of content (images carry none): what text-only checks read."""
    return content if isinstance(content, str) else message_text(content)


def judge_prompt(content: Content) -> Prompt:
    """What a client is asked: the filled template as a string, or one user message with its parts."""
    return content if isinstance(content, str) else [{"role": "user", "content": content}]


def readable_images(score: Callable[..., RewardOutput]) -> Callable[..., RewardOutput]:
    """A judge's ``score`` that sees every image of a batch read once, checked against the limits and
    inline as base64 (so the prompt a judge fills is what its engine gets, and a file or URL is not
    read again per judge call); a sample whose image cannot be read (missing file, a URL the policy
    does not allow, over a limit, not an image) is ``None`` with the reason, not a crash of the batch."""

    @functools.wraps(score)
    def wrapped(self: Any, prompts: Sequence[Any], completions: Sequence[Any], **columns: Any) -> RewardOutput:
        if not getattr(self, "reads_images", False) or len(prompts) != len(completions):
            return score(self, prompts, completions, **columns)
        per_sample = sample_columns({k: v for k, v in columns.items() if k in IMAGE_COLUMNS}, len(prompts))
        if not per_sample and not any(not isinstance(p, str) and count_images(p) for p in prompts) \
                and not any(not isinstance(c, str) and count_images(c) for c in completions):
            return score(self, prompts, completions, **columns)
        prompts, completions, refused = list(prompts), list(completions), [None] * len(prompts)
        images = {k: list(v) for k, v in per_sample.items()}
        for i in range(len(prompts)):
            try:
                (p,), (c,), cols = inline_images([prompts[i]], [completions[i]], {k: [v[i]] for k, v in images.items()})
                prompt_images(p, next((cols[k][0] for k in IMAGE_COLUMNS if k in cols and cols[k][0] is not None), None))
            except ImageError as err:
                refused[i] = f"image could not be read: {err}"
                continue
            prompts[i], completions[i] = p, c
            for k in images:
                images[k][i] = cols[k][0]
        columns = {**columns, **images}
        if not any(refused):
            return score(self, prompts, completions, **columns)
        return score_kept(score, self, prompts, completions, columns, refused)

    return wrapped


def _text(text: str) -> dict[str, str]:
    return {"type": "text", "text": text}
