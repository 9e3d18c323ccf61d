"""Readers for the data layouts reward-model users have, with auto-detection and errors that name
the file, the line (or record) and the field.

Layouts (``--format`` names):
  pairwise          {"prompt", "chosen", "rejected", ["subset"], ...}: TRL preference (text or
                    conversational), RewardBench rows. Conversational rows without "prompt" (TRL's
                    implicit prompt) are split at the common message prefix.
  hh-rlhf           {"chosen", "rejected"} raw Anthropic HH transcripts: the shared prompt is the text
                    up to the last "\\n\\nAssistant:".
  best-of-n         {"prompt", "chosen": [..], "rejected": [..]} (RewardBench 2) or
                    {"prompt", "completions": [..], "num_correct": k} (correct ones first).
  samples           {"prompt", "completion", ...}: plain completions to score (``rewardkit score``).
  scores            precomputed: {"chosen_score", "rejected_score"}, {"scores", "num_correct"}, or
                    {"score_A", "score_B", "label": "A>B"|"B>A"} (JudgeBench); grouped by
                    "judge_model"/"model" when present; a "pair_id" beside the "id" names the pair
                    that the rows of different models share (diagnostics match models on it).
Prompts in HH transcript form become chat messages so chat templates apply. Every field not
listed above travels with the record as a keyword column (e.g. a gold "answer").
"""
from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

from ..types import BestOfNRecord, PairRecord, SampleRecord, ScoredBestOfN, ScoredPair
from .io import DataFormatError, Dataset, check_columns, iter_rows, warn_duplicate_ids
from .steps import detect_step_format, load_steps

FORMATS = ("auto", "pairwise", "hh-rlhf", "best-of-n", "samples", "scores", "steps")
_HH_TURN = re.compile(r"(?:^|\n\n)(Human|Assistant):[ ]?")
_ASSISTANT = "\n\nAssistant:"
_CORE = {"id", "prompt", "chosen", "rejected", "subset", "completions", "num_correct", "completion", "response"}


# ---------------------------------------------------------------- prompts and completions

def is_hh_transcript(text: str) -> bool:
    return isinstance(text, str) and text.lstrip("\n").startswith("Human:") and _ASSISTANT in text


def parse_hh_transcript(text: str) -> list[dict[str, str]]:
    """``"\\n\\nHuman: a\\n\\nAssistant: b\\n\\nHuman: c\\n\\nAssistant:"`` -> user/assistant messages
    (a trailing empty assistant turn is the generation prompt and is dropped)."""
    parts = _HH_TURN.split(text)
    lead, rest = parts[0], parts[1:]
    messages: list[dict[str, str]] = []
    if lead.strip():
        messages.append({"role": "user", "content": lead.strip()})
    for speaker, content in zip(rest[0::2], rest[1::2]):
        messages.append({"role": "user" if speaker == "Human" else "assistant", "content": content.strip()})
    if messages and messages[-1]["role"] == "assistant" and not messages[-1]["content"]:
        messages.pop()
    return messages


def split_hh(transcript: str) -> tuple[str, str]:
    """Split a full HH transcript into (prompt ending with "\\n\\nAssistant:", final response)."""
    cut = transcript.rfind(_ASSISTANT)
    if cut < 0:
        raise ValueError("no '\\n\\nAssistant:' turn in the transcript")
    cut += len(_ASSISTANT)
    return transcript[:cut], transcript[cut:]


def _is_messages(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(m, dict) for m in value)


def _prompt(value: Any, path: Path, where: str, name: str = "prompt") -> Any:
    if isinstance(value, str):
        return parse_hh_transcript(value) if is_hh_transcript(value) else value
    if _is_messages(value):
        for j, m in enumerate(value):
            if not isinstance(m.get("role"), str) or not isinstance(m.get("content"), str):
                raise DataFormatError(path, where, f"{name}[{j}]", "each message needs string 'role' and 'content'")
        return [{"role": m["role"], "content": m["content"]} for m in value]
    raise DataFormatError(path, where, name, f"expected text or a list of chat messages, got {_describe(value)}")


def _completion(value: Any, path: Path, where: str, name: str) -> Any:
    if isinstance(value, str):
        return value
    if _is_messages(value):  # TRL conversational completion: the assistant message(s)
        roles = {m.get("role", "assistant") for m in value}
        texts = [m.get("content") for m in value]
        if roles != {"assistant"} or not all(isinstance(t, str) for t in texts):
            raise DataFormatError(path, where, name, f"a conversational completion must hold only assistant messages with string content (roles: {sorted(map(str, roles))})")
        return "".join(texts)
    if isinstance(value, list) and value and all(isinstance(s, str) for s in value):
        return list(value)  # pre-split steps
    raise DataFormatError(path, where, name, f"expected text, a list of steps, or assistant messages, got {_describe(value)}")


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, list):
        return "an empty list" if not value else f"a list of {type(value[0]).__name__}"
    return type(value).__name__


def _need(row: dict[str, Any], key: str, path: Path, where: str) -> Any:
    if key not in row or row[key] is None:
        raise DataFormatError(path, where, key, "missing")
    return row[key]


def _subset(row: dict[str, Any]) -> str:
    value = row.get("subset") or row.get("source") or "default"
    return str(value)


def _id(row: dict[str, Any], where: str) -> str:
    value = row.get("id", row.get("pair_id"))
    return str(value) if value is not None else where.replace(" ", "-")


def _columns(row: dict[str, Any], skip: set[str]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k not in skip}


# ---------------------------------------------------------------- detection

def detect_format(row: dict[str, Any]) -> str:
    keys = set(row)
    texts = {"chosen", "rejected"} <= keys  # pairs that carry their own ratings (UltraFeedback) are pairs
    if ({"chosen_score", "rejected_score"} <= keys and not texts) or {"scores", "num_correct"} <= keys or {"score_A", "score_B"} <= keys:
        return "scores"
    if "completions" in keys and "num_correct" in keys:
        return "best-of-n"
    if ("completion" in keys or "response" in keys) and "prompt" in keys and "chosen" not in keys:
        return "samples"  # "response": HelpSteer2-style rated responses
    if {"chosen", "rejected"} <= keys:
        chosen = row["chosen"]
        if isinstance(chosen, list) and chosen and all(isinstance(c, (str, list)) for c in chosen) and not _is_messages(chosen):
            return "best-of-n"
        if "prompt" not in keys and isinstance(chosen, str) and is_hh_transcript(chosen):
            return "hh-rlhf"
        return "pairwise"
    raise ValueError(
        "cannot tell the format from the fields " + ", ".join(sorted(keys)) +
        "; expected prompt/chosen/rejected, an HH transcript pair, best-of-N rows or precomputed scores "
        "(or pass --format)"
    )


# ---------------------------------------------------------------- per-format parsers

def _parse_pairwise(row, path, where):
    if "prompt" not in row and _is_messages(row.get("chosen")) and _is_messages(row.get("rejected")):
        chosen, rejected = row["chosen"], row["rejected"]
        n = 0
        while n < min(len(chosen), len(rejected)) - 1 and chosen[n] == rejected[n]:
            n += 1
        if not n:
            raise DataFormatError(path, where, "rejected", "chosen and rejected share no prompt messages (give an explicit 'prompt')")
        for key, rest in (("chosen", chosen[n:]), ("rejected", rejected[n:])):
            if any(m.get("role") != "assistant" for m in rest):
                raise DataFormatError(path, where, key, "the two conversations diverge before the final assistant turn; give an explicit 'prompt'")
        prompt = _prompt(chosen[:n], path, where, "chosen")
        return PairRecord(_id(row, where), prompt, _completion(chosen[n:], path, where, "chosen"),
                          _completion(rejected[n:], path, where, "rejected"), _subset(row), _columns(row, _CORE))
    raw_prompt = _need(row, "prompt", path, where)
    prompt = _prompt(raw_prompt, path, where)
    chosen = _completion(_need(row, "chosen", path, where), path, where, "chosen")
    rejected = _completion(_need(row, "rejected", path, where), path, where, "rejected")
    if isinstance(raw_prompt, str) and not isinstance(prompt, str):
        chosen, rejected = _strip_hh(chosen), _strip_hh(rejected)
    return PairRecord(_id(row, where), prompt, chosen, rejected, _subset(row), _columns(row, _CORE))


def _strip_hh(completion: Any) -> Any:
    """HH responses start with the space after "Assistant:"; as chat content it is noise."""
    return completion.strip() if isinstance(completion, str) else completion


def _parse_hh(row, path, where):
    pieces = {}
    for key in ("chosen", "rejected"):
        text = _need(row, key, path, where)
        if not isinstance(text, str):
            raise DataFormatError(path, where, key, f"expected an HH transcript string, got {_describe(text)}")
        try:
            pieces[key] = split_hh(text)
        except ValueError as err:
            raise DataFormatError(path, where, key, str(err)) from None
    prompt_text = pieces["chosen"][0]
    if pieces["rejected"][0] != prompt_text:
        raise DataFormatError(path, where, "rejected", "the transcript differs from 'chosen' before the last '\n\nAssistant:' turn, so they do not share a prompt")
    return PairRecord(_id(row, where), _prompt(prompt_text, path, where), _strip_hh(pieces["chosen"][1]),
                      _strip_hh(pieces["rejected"][1]), _subset(row), _columns(row, _CORE))


def _parse_best_of_n(row, path, where):
    prompt = _prompt(_need(row, "prompt", path, where), path, where)
    if "completions" in row:
        comps = row["completions"]
        if not isinstance(comps, list) or len(comps) < 2:
            raise DataFormatError(path, where, "completions", "needs a list of at least 2 completions")
        k = row.get("num_correct")
        if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k < len(comps):
            raise DataFormatError(path, where, "num_correct", f"must be an integer in [1, {len(comps) - 1}], got {k!r}")
        completions = [_completion(c, path, where, f"completions[{j}]") for j, c in enumerate(comps)]
    else:
        groups = {}
        for key in ("chosen", "rejected"):
            value = _need(row, key, path, where)
            if isinstance(value, str):
                value = [value]
            if not isinstance(value, list) or not value:
                raise DataFormatError(path, where, key, "needs a non-empty list of completions")
            groups[key] = [_completion(c, path, where, f"{key}[{j}]") for j, c in enumerate(value)]
        completions = groups["chosen"] + groups["rejected"]
        k = len(groups["chosen"])
    return BestOfNRecord(_id(row, where), prompt, completions, k, _subset(row), _columns(row, _CORE | {"num_incorrect", "total_completions"}))


def _parse_sample(row, path, where):
    prompt = _prompt(_need(row, "prompt", path, where), path, where)
    key = "completion" if "completion" in row or "response" not in row else "response"
    completion = _completion(_need(row, key, path, where), path, where, key)
    return SampleRecord(_id(row, where), prompt, completion, _subset(row), _columns(row, _CORE))


def _number(row, key, path, where) -> float | None:
    value = row.get(key)
    if value is None:
        return None  # an unscored sample: counted as wrong and reported, never dropped
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise DataFormatError(path, where, key, f"expected a number or null, got {_describe(value)}")
    return float(value) if math.isfinite(value) else None  # NaN / +-inf: unscored, as a reward's own output would be


def _parse_scores(row, path, where):
    record = _parse_scores_row(row, path, where)
    record.applicable = not row.get("not_applicable", False)
    if row.get("pair_id") is not None and "id" in row:  # rows of several models, each with its own id, for one pair
        record.item = str(row["pair_id"])
    return record


def _parse_scores_row(row, path, where):
    model = row.get("judge_model", row.get("model"))
    model = None if model is None else str(model)
    if "chosen_score" in row or "rejected_score" in row:
        for key in ("chosen_score", "rejected_score"):
            if key not in row:
                raise DataFormatError(path, where, key, "missing")
        return ScoredPair(_id(row, where), _number(row, "chosen_score", path, where), _number(row, "rejected_score", path, where), _subset(row), model)
    if "score_A" in row or "score_B" in row:
        label = row.get("label")
        if label not in ("A>B", "B>A"):
            raise DataFormatError(path, where, "label", f"must be 'A>B' or 'B>A', got {label!r}")
        a, b = _number(row, "score_A", path, where), _number(row, "score_B", path, where)
        chosen, rejected = (a, b) if label == "A>B" else (b, a)
        return ScoredPair(_id(row, where), chosen, rejected, _subset(row), model)
    scores = _need(row, "scores", path, where)
    if not isinstance(scores, list) or len(scores) < 2:
        raise DataFormatError(path, where, "scores", "needs a list of at least 2 scores")
    values = [_number({f"scores[{j}]": s}, f"scores[{j}]", path, where) for j, s in enumerate(scores)]
    k = row.get("num_correct")
    if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k < len(scores):
        raise DataFormatError(path, where, "num_correct", f"must be an integer in [1, {len(scores) - 1}], got {k!r}")
    return ScoredBestOfN(_id(row, where), values, k, _subset(row), model)


_PARSERS = {"pairwise": _parse_pairwise, "hh-rlhf": _parse_hh, "best-of-n": _parse_best_of_n, "samples": _parse_sample, "scores": _parse_scores}
_KIND = {"pairwise": "pairs", "hh-rlhf": "pairs", "best-of-n": "best-of-n", "samples": "samples", "scores": "scores"}


def detect_row_format(row: dict[str, Any], path: Path, where: str) -> str:
    """``detect_format`` with a failure reported as a DataFormatError naming the file and row."""
    try:
        return detect_format(row)
    except ValueError as err:
        raise DataFormatError(path, where, None, str(err)) from None


def load_dataset(path: str | Path, format: str = "auto", limit: int | None = None, skip_invalid: bool = False) -> Dataset:
    """Read and validate a JSONL/JSON/Parquet file. ``format="auto"`` decides from the first row;
    every later row must parse the same way. Step-labelled files go to :func:`~rewardkit.data.steps.load_steps`
    (``skip_invalid``: leave out rows that fail validation, listed in ``Dataset.skipped``)."""
    if format not in FORMATS:
        raise ValueError(f"unknown format {format!r}; choose from {', '.join(FORMATS)}")
    path = Path(path)
    records: list[Any] = []
    chosen_format = None if format == "auto" else format
    for where, row in iter_rows(path):
        if chosen_format is None:
            if detect_step_format(row) is not None:
                chosen_format = "steps"
        if chosen_format == "steps":
            return load_steps(path, limit=limit, skip_invalid=skip_invalid)
        if chosen_format is None:
            chosen_format = detect_row_format(row, path, where)
        record = _PARSERS[chosen_format](row, path, where)
        check_columns(path, where, getattr(record, "columns", ()))
        records.append(record)
        if limit is not None and len(records) >= limit:
            break
    if not records:
        raise DataFormatError(path, "", None, "no rows")
    warn_duplicate_ids(path, (r.id for r in records))
    kinds = {type(r) for r in records}
    if chosen_format == "scores" and len(kinds) > 1:
        raise DataFormatError(path, "", None, "mixes pairwise scores and best-of-N scores; use one file per kind")
    return Dataset(_KIND[chosen_format], records, str(path), chosen_format)
