"""Prompts to sample from, and pools of responses that already exist, for the verbs that score many
responses per prompt (``rewardkit annotate``, ``rewardkit overopt``).

Prompt rows: ``{"prompt": text or chat messages, ...}`` or GSM8K-style ``{"question", "answer", ...}``.
Candidate rows, either
  one pool per row   ``{"prompt", "completions": [..]}`` (``"responses"`` too; a ``num_correct`` is
                     ignored), or RewardBench 2's ``{"prompt", "chosen": [..], "rejected": [..]}``
                     (all of them, in that order), or a pair ``{"prompt", "chosen", "rejected"}``;
  one response a row ``{"prompt", "completion"}`` (or ``"response"``), grouped into pools by ``id``
                     when the rows have one, else by prompt.
Every other field travels as a keyword column to the rewards (a gold ``answer``); in one-response rows,
a field whose value differs within a pool (the model that wrote it) stays with its response.
Prompts and completions are read by :mod:`rewardkit.data.formats` (text, chat messages, HH transcripts).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..types import Completion, Prompt
from .formats import _completion, _id, _is_messages, _prompt
from .io import DataFormatError, check_columns, iter_rows, warn_duplicate_ids

_POOL_FIELDS = ("completions", "responses")
_SKIP = {"id", "prompt", "question", "completions", "responses", "chosen", "rejected", "completion", "response", "num_correct",
         "num_incorrect", "total_completions"}


@dataclass
class Pool:
    """One prompt and, when they are given, its responses (``completions=None``: to be generated).
    ``meta``: per response, the fields of its own row that are not shared by the pool."""

    id: str
    prompt: Prompt
    columns: dict[str, Any] = field(default_factory=dict)
    completions: list[Completion] | None = None
    meta: list[dict[str, Any]] | None = None


def _row_prompt(row: dict[str, Any], path: Path, where: str) -> Prompt:
    for key in ("prompt", "question"):
        if row.get(key) is not None:
            return _prompt(row[key], path, where, key)
    raise DataFormatError(path, where, "prompt", "missing (give 'prompt' as text or chat messages, or a GSM8K-style 'question')")


def _columns(row: dict[str, Any], path: Path, where: str) -> dict[str, Any]:
    cols = {k: v for k, v in row.items() if k not in _SKIP}
    check_columns(path, where, cols)
    return cols


def load_prompts(path: str | Path, *, limit: int | None = None) -> list[Pool]:
    """Prompt rows (``prompt`` or ``question``), the first ``limit`` of them."""
    path = Path(path)
    pools = []
    for where, row in iter_rows(path):
        if limit is not None and len(pools) >= limit:
            break
        pools.append(Pool(_id(row, where), _row_prompt(row, path, where), _columns(row, path, where)))
    if not pools:
        raise DataFormatError(path, "", None, "no rows")
    warn_duplicate_ids(path, (p.id for p in pools))
    return pools


def _pool_completions(row: dict[str, Any], path: Path, where: str) -> list[Completion] | None:
    """The responses of a one-pool-per-row row, or None when the row holds one response."""
    for key in _POOL_FIELDS:
        if key in row:
            value = row[key]
            if not isinstance(value, list) or not value or _is_messages(value):
                raise DataFormatError(path, where, key, "needs a non-empty list of responses")
            return [_completion(c, path, where, f"{key}[{j}]") for j, c in enumerate(value)]
    if "chosen" in row or "rejected" in row:
        out: list[Completion] = []
        for key in ("chosen", "rejected"):
            value = row.get(key)
            if value is None:
                raise DataFormatError(path, where, key, "missing")
            items = value if isinstance(value, list) and value and not _is_messages(value) and all(isinstance(c, (str, list)) for c in value) else [value]
            out.extend(_completion(c, path, where, f"{key}[{j}]" if len(items) > 1 else key) for j, c in enumerate(items))
        return out
    return None


def load_candidates(path: str | Path, *, limit: int | None = None) -> list[Pool]:
    """Pools of existing responses (layouts in the module docstring), the first ``limit`` pools."""
    path = Path(path)
    pools: list[Pool] = []
    groups: dict[str, tuple[str, Prompt, list[tuple[Completion, dict[str, Any]]], str]] = {}
    kind = None
    for where, row in iter_rows(path):
        comps = _pool_completions(row, path, where)
        this = "pool" if comps is not None else "response"
        if this == "response" and "completion" not in row and "response" not in row:
            raise DataFormatError(path, where, "completions", "missing: a candidates row holds 'completions' (a list), 'chosen'/'rejected', "
                                                              "or one 'completion' (rows grouped by id or prompt)")
        if kind is None:
            kind = this
        elif kind != this:
            raise DataFormatError(path, where, None, f"mixes one-response rows and rows with a list of responses; the first row had {kind} layout")
        prompt = _row_prompt(row, path, where)
        if this == "pool":
            if limit is not None and len(pools) >= limit:
                break
            pools.append(Pool(_id(row, where), prompt, _columns(row, path, where), comps))
            continue
        key_name = "completion" if "completion" in row else "response"
        comp = _completion(row[key_name], path, where, key_name)
        has_id = row.get("id") is not None
        key = "id:" + str(row["id"]) if has_id else "prompt:" + json.dumps(prompt, sort_keys=True)
        if key not in groups:
            if limit is not None and len(groups) >= limit:
                continue
            groups[key] = (str(row["id"]) if has_id else where.replace(" ", "-"), prompt, [], where)
        gid, gprompt, members, first = groups[key]
        if gprompt != prompt:
            raise DataFormatError(path, where, "prompt", f"differs from the prompt of the other responses with id {gid!r} ({first})")
        members.append((comp, _columns(row, path, where)))
    for gid, prompt, members, _ in groups.values():
        shared = {k: v for k, v in members[0][1].items() if all(k in m and m[k] == v for _, m in members)}
        meta = [{k: v for k, v in m.items() if k not in shared} for _, m in members]
        pools.append(Pool(gid, prompt, shared, [c for c, _ in members], meta if any(meta) else None))
    if not pools:
        raise DataFormatError(path, "", None, "no rows")
    warn_duplicate_ids(path, (p.id for p in pools))
    return pools
