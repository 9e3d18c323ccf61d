"""OpenRLHF's remote reward protocol (``--remote_rm_url http://host:port/get_reward``).

OpenRLHF posts ``{"query": [...], "prompts": [...], "labels": [...]}`` where ``query[i]`` is the
decoded prompt + response (chat template tokens and possibly padding included) and ``prompts[i]`` the
prompt as the policy saw it; it reads ``rewards`` (used for the advantage), ``scores`` (used for
dynamic filtering) and ``extra_logs`` (logged per step).

The response is what follows the prompt in the query. The prompt is handed to the reward as the text
OpenRLHF sent: when that text is already chat-templated, serve with ``--chat-template off`` so the
reward scores exactly the text the policy saw (as OpenRLHF's own reward server does).
"""
from __future__ import annotations

import math
from typing import Any, Sequence

from ..types import RewardOutput


class SplitError(ValueError):
    def __init__(self, field: str, message: str):
        self.field = field
        super().__init__(message)


def split_response(query: str, prompt: str, strip: Sequence[str] = ()) -> str:
    """The response part of ``query``: the text after ``prompt`` (found as a prefix, or after leading
    padding / BOS text), with trailing ``strip`` strings (padding) removed."""
    if query.startswith(prompt):
        response = query[len(prompt):]
    else:
        at = query.find(prompt) if prompt else 0
        if at < 0:
            raise ValueError("the query does not contain its prompt")
        response = query[at + len(prompt):]
    tokens = [t for t in strip if t]
    changed = True
    while changed and tokens:
        changed = False
        for token in tokens:
            if response.endswith(token):
                response = response[: -len(token)]
                changed = True
    return response


def split_queries(query: list[str], prompts: list[str] | None, strip: Sequence[str] = ()) -> list[str]:
    if prompts is None:
        raise SplitError("prompts", "'prompts' is required: the response is found by removing the prompt from each query")
    if len(prompts) != len(query):
        raise SplitError("prompts", f"got {len(query)} queries but {len(prompts)} prompts")
    out = []
    for i, (q, p) in enumerate(zip(query, prompts)):
        try:
            out.append(split_response(q, p, strip))
        except ValueError as err:
            raise SplitError(f"query[{i}]", f"query[{i}]: {err} (prompts[{i}])") from err
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
        for j, dim in enumerate(out.dims):
            column = [row[j] for row in out.vector]
            if all(v is not None and math.isfinite(float(v)) for v in column):
                logs[str(dim)] = [float(v) for v in column]
    if "truncated" in out.extras:
        logs["truncated"] = [1.0 if t else 0.0 for t in out.extras["truncated"]]
    return {"rewards": scores, "scores": list(scores), "extra_logs": logs}
