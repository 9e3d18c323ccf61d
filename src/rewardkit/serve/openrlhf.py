"""OpenRLHF's remote reward protocol (``--reward.remote_url http://host:port/get_reward``; ``--remote_rm_url`` before 0.10.2).

OpenRLHF posts ``{"query": [...], "prompts": [...], "labels": [...]}`` where ``query[i]`` is the
decoded prompt + response (chat template tokens and possibly padding included) and ``prompts[i]`` the
prompt as the policy saw it; it reads ``rewards`` (used for the advantage), ``scores`` (used for
dynamic filtering) and ``extra_logs`` (logged per step).

The response is what follows the prompt in the query, without trailing padding and end-of-turn text
(:func:`strip_end`). The prompt goes to the reward as a :class:`~rewardkit.types.RenderedPrompt`: a
model reward with a chat template puts the response after it as its own assistant turn, so the text
scored is the one ``/v1/score`` scores for the same conversation (when the policy shares the reward
model's template).
"""
from __future__ import annotations

import math
import re
from typing import Any, Sequence

from ..protocol import walk
from ..types import RenderedPrompt, RewardOutput


class SplitError(ValueError):
    def __init__(self, field: str, message: str):
        self.field = field
        super().__init__(message)


#: a left-truncated prompt is recognised only by at least this much of its end (a shorter overlap could be chance)
MIN_PROMPT_OVERLAP = 32


def _strip(text: str, tokens: Sequence[str], *, start: bool = False) -> str:
    """``text`` without any run of ``tokens`` (padding) at its end, or at its start."""
    changed = True
    while changed and tokens:
        changed = False
        for token in tokens:
            if text.startswith(token) if start else text.endswith(token):
                text = text[len(token):] if start else text[: -len(token)]
                changed = True
    return text


_SPECIAL_TOKEN = re.compile(r"<[|｜]?[^\s<>]{1,48}?[|｜]?>")  # <s>, <bos>, <|begin_of_text|>, <｜begin▁of▁sentence｜>


def _only_special(text: str, tokens: Sequence[str]) -> bool:
    """Whether ``text`` is nothing but padding (``tokens``) and special-token text such as a BOS."""
    while text:
        rest = _strip(text, tokens, start=True)
        m = _SPECIAL_TOKEN.match(rest)
        if m:
            rest = rest[m.end():]
        if rest == text:
            return False
        text = rest
    return True


def split_response(query: str, prompt: str, strip: Sequence[str] = ()) -> tuple[str, bool]:
    """(the response part of ``query``, whether the prompt was found left-truncated).

    The response is the text after ``prompt``: found as a prefix, after leading padding / BOS text (and
    nothing else: other text before the prompt is a ``ValueError``), or,
    when OpenRLHF cut an over-long prompt from the left, after the longest end of the prompt that starts
    the query (at least :data:`MIN_PROMPT_OVERLAP` characters of it). Trailing ``strip`` strings (padding)
    are removed. A query that holds none of these is a ``ValueError``."""
    tokens = [t for t in strip if t]
    at = query.find(prompt)  # 0 when the query starts with it
    if at >= 0:
        if at and not _only_special(query[:at], tokens):  # only padding / BOS may come before the prompt
            raise ValueError(f"the query holds {at} characters before its prompt that are not padding or special tokens "
                             f"({query[:min(at, 40)]!r}...)")
        return _strip(query[at + len(prompt):], tokens), False
    head = _strip(query, tokens, start=True)  # leading padding before a truncated prompt
    probe, n = head[:MIN_PROMPT_OVERLAP], len(prompt)
    if len(probe) == MIN_PROMPT_OVERLAP:
        at = prompt.find(probe, 1)
        while 0 < at <= n - MIN_PROMPT_OVERLAP:  # candidate cuts only where the query's start occurs; longest kept end first
            if prompt.startswith(head[: n - at], at) and len(head) >= n - at:
                return _strip(head[n - at:], tokens), True
            at = prompt.find(probe, at + 1)
    raise ValueError(f"the query contains neither its prompt nor its last {MIN_PROMPT_OVERLAP}+ characters (a left-truncated prompt)")


def split_queries(query: list[str], prompts: list[str] | None, strip: Sequence[str] = ()) -> list[tuple[str | None, bool, str | None]]:
    """Per query: (response or ``None``, prompt left-truncated, why the response could not be found).
    A query whose prompt is not found is one unscored sample, never a failed request (OpenRLHF would
    retry the whole batch, then carry no reward at all); a missing or mismatched ``prompts`` list is."""
    if prompts is None:
        raise SplitError("prompts", "'prompts' is required: the response is found by removing the prompt from each query")
    if len(prompts) != len(query):
        raise SplitError("prompts", f"got {len(query)} queries but {len(prompts)} prompts")
    out: list[tuple[str | None, bool, str | None]] = []
    for i, (q, p) in enumerate(zip(query, prompts)):
        try:
            response, truncated = split_response(q, p, strip)
            out.append((response, truncated, None))
        except ValueError as err:
            out.append((None, False, f"query[{i}]: {err}"))
    return out


def expand_output(out: RewardOutput, rows: Sequence[int], n: int, reasons: dict[int, str | None]) -> RewardOutput:
    """``out`` (the scores of samples ``rows``) as an output for all ``n`` samples: the others are
    unscored, with ``reasons[i]`` in ``extras["reason"]``."""
    if len(rows) == n and not reasons:
        return out
    scores: list[float | None] = [None] * n
    for k, i in enumerate(rows):
        scores[i] = out.scores[k]
    extras: dict[str, list] = {}
    for key, values in out.extras.items():
        column: list[Any] = [None] * n
        for k, i in enumerate(rows):
            column[i] = values[k]
        extras[key] = column
    reason = extras.setdefault("reason", [None] * n)
    for i, why in reasons.items():
        reason[i] = why
    vector = None
    if out.vector is not None:
        vector = [[None] * len(out.dims or (out.vector[0] if out.vector else [])) for _ in range(n)]
        for k, i in enumerate(rows):
            vector[i] = out.vector[k]
    steps = None
    if out.steps is not None:
        steps = [[] for _ in range(n)]
        for k, i in enumerate(rows):
            steps[i] = out.steps[k]
    return RewardOutput(scores=scores, steps=steps, vector=vector, dims=out.dims, extras=extras)


#: end-of-turn / end-of-sequence texts of common chat models, removed from the end of a decoded response
END_OF_TURN = ("<|im_end|>", "<|endoftext|>", "</s>", "<|eot_id|>", "<|end_of_text|>", "<end_of_turn>", "<|end|>", "<eos>",
               "<｜end▁of▁sentence｜>", "<|return|>")


def end_tokens(reward: Any) -> list[str]:
    """End-of-turn texts to remove from a response's end: the reward tokenizers' EOS and :data:`END_OF_TURN`."""
    out: list[str] = []
    for node in walk(reward):
        eos = getattr(getattr(node, "tokenizer", None), "eos_token", None)
        if isinstance(eos, str) and eos and eos not in out:
            out.append(eos)
    return out + [t for t in END_OF_TURN if t not in out]


def strip_end(response: str, padding: Sequence[str], ends: Sequence[str]) -> str:
    """``response`` without trailing padding and end-of-turn text (in any order, repeated)."""
    return _strip(response, [*padding, *ends])


def reward_inputs(split: Sequence[tuple[str | None, bool, str | None]], prompts: Sequence[str], padding: Sequence[str],
                  ends: Sequence[str]) -> tuple[list[int], list[RenderedPrompt], list[str]]:
    """What the reward scores for the queries ``split`` found (``split_queries``): their indices, the
    prompts as rendered text, and the responses without trailing padding and end-of-turn ``ends``.
    The reward then scores the text ``/v1/score`` would for the same conversation."""
    found = [i for i, (response, _, _) in enumerate(split) if response is not None]
    return found, [RenderedPrompt(prompts[i]) for i in found], [strip_end(split[i][0], padding, ends) for i in found]


def openrlhf_answer(scored: RewardOutput, split: Sequence[tuple[str | None, bool, str | None]], found: Sequence[int],
                    unscored: float | None) -> tuple[RewardOutput, dict[str, Any]]:
    """(the output for every query, OpenRLHF's body): queries whose prompt was not found unscored
    with their reason, ``extra_logs.prompt_truncated`` added."""
    n = len(split)
    out = expand_output(scored, found, n, reasons={i: split[i][2] for i in range(n) if split[i][0] is None})
    body = to_openrlhf(out, unscored)
    body["extra_logs"]["prompt_truncated"] = [1.0 if split[i][1] else 0.0 for i in range(n)]
    return out, body


def reward_strip_tokens(reward: Any) -> list[str]:
    """Padding tokens of the reward's tokenizers (stripped from the end of OpenRLHF queries); a pad
    token equal to EOS is kept, since it may be the real end of the response."""
    out: list[str] = []
    for node in walk(reward):
        tok = getattr(node, "tokenizer", None)
        pad, eos = getattr(tok, "pad_token", None), getattr(tok, "eos_token", None)
        if isinstance(pad, str) and pad and pad != eos and pad not in out:
            out.append(pad)
    return out


def to_openrlhf(out: RewardOutput, unscored: float | None) -> dict[str, Any]:
    """``rewards`` and ``scores`` are the reward's scores; an unscored sample is ``null`` unless the
    server was given ``--unscored-reward`` (OpenRLHF needs a number). ``extra_logs`` holds per-sample
    numbers: ``unscored`` (1 = the reward could not score it) and each named objective of ``vector``."""
    scores: list[float | None] = []
    flags: list[float] = []
    for s in out.scores:
        ok = s is not None and math.isfinite(float(s))
        flags.append(0.0 if ok else 1.0)
        scores.append(float(s) if ok else unscored)
    logs: dict[str, list[float]] = {"unscored": flags}
    if out.vector is not None and out.dims:
        for j, dim in enumerate(out.dims):  # unscored rows log 0 (``unscored`` flags them), so the keys stay the same every batch
            column = [row[j] if flag == 0.0 else 0.0 for row, flag in zip(out.vector, flags)]
            if all(v is not None and math.isfinite(float(v)) for v in column):
                logs[str(dim)] = [float(v) for v in column]
    if "truncated" in out.extras:
        logs["truncated"] = [1.0 if t else 0.0 for t in out.extras["truncated"]]
    return {"rewards": scores, "scores": list(scores), "extra_logs": logs}
