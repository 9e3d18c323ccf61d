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
  vl-rewardbench    {"query", "image", "response": [a, b], "human_ranking": [0, 1]} (VL-RewardBench:
                    rank 0 is the preferred response) -> a pair; "query_source" is the subset.
  image-text        {"image" | "images", "prompt" | "caption" | "text"}: an image scored against
                    its text (a generated image for its prompt; CLIP-style rewards) -> a sample whose
                    prompt is the text and whose completion is the image.
Prompts in HH transcript form become chat messages so chat templates apply. Every field not
listed above travels with the record as a keyword column (e.g. a gold "answer").

Images (:mod:`rewardkit.images`): message contents and completions may be lists of content parts,
and a row's "images" / "image" field (a path relative to the file, a URL, base64, bytes, a Hugging
Face Image struct) belongs to its prompt: it fills the prompt's image placeholders
(``{"type": "image"}``) in order, or goes before the text of its last user message. Each image's
header is checked when the file is read (size and pixel limits; nothing is decoded); URLs are
checked against the image policy in force and fetched only when a reward reads them.
"""
from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

from ..images import IMAGE_COLUMNS, ImageError, ImageRef, column_images, current_policy, is_image_part, is_parts, is_placeholder
from ..types import BestOfNRecord, PairRecord, SampleRecord, ScoredBestOfN, ScoredPair
from .io import DataFormatError, Dataset, check_columns, iter_rows, warn_duplicate_ids
from .steps import detect_step_format, load_steps

FORMATS = ("auto", "pairwise", "hh-rlhf", "best-of-n", "samples", "scores", "steps", "vl-rewardbench", "image-text")
_HH_TURN = re.compile(r"(?:^|\n\n)(Human|Assistant):[ ]?")
_ASSISTANT = "\n\nAssistant:"
_CORE = {"id", "prompt", "chosen", "rejected", "subset", "completions", "num_correct", "completion", "response", *IMAGE_COLUMNS}
_TEXT_PARTS = ("text", "input_text", "output_text")


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
        out = []
        for j, m in enumerate(value):
            content = m.get("content")
            if isinstance(content, list):
                content = _parts(content, path, where, f"{name}[{j}].content", placeholders=True)
            if not isinstance(m.get("role"), str) or not isinstance(content, (str, list)):
                raise DataFormatError(path, where, f"{name}[{j}]", "each message needs a string 'role' and a 'content' (text or a list of content parts)")
            out.append({"role": m["role"], "content": content})
        return out
    raise DataFormatError(path, where, name, f"expected text or a list of chat messages, got {_describe(value)}")


def _parts(parts: list[Any], path: Path, where: str, name: str, placeholders: bool = False) -> str | list[dict[str, Any]]:
    """Content parts, each image checked and made canonical (:func:`image_part`); parts without an
    image become their joined text, so a text reward reads an OpenAI-shaped message as before."""
    out: list[dict[str, Any]] = []
    for k, part in enumerate(parts):
        field = f"{name}[{k}]"
        if isinstance(part, dict) and part.get("type") in _TEXT_PARTS and isinstance(part.get("text"), str):
            out.append({"type": "text", "text": part["text"]})
        elif placeholders and is_placeholder(part):
            out.append({"type": "image"})  # filled from the row's "images" (attach_images)
        elif is_image_part(part):
            out.append(image_part(part, path, where, field))
        else:
            raise DataFormatError(path, where, field, "a content part must be {'type': 'text', 'text': ...} or an image part "
                                  "({'type': 'image', 'path'|'url'|'base64': ...} or {'type': 'image_url', 'image_url': {'url': ...}})")
    if any(p["type"] == "image" for p in out):
        return out
    return "".join(p["text"] for p in out)


def image_part(value: Any, path: Path, where: str, field: str) -> dict[str, str]:
    """One image of a data file as a canonical part: a relative path taken from the file's folder,
    the header checked against the limits (nothing decoded), a URL checked against the image policy
    in force (fetched later, by a reward that reads it). Errors name the file, row and field."""
    try:
        ref = ImageRef.parse(value, base_dir=path.parent, where=f"{path}:{where}")
        if ref.kind == "url":
            refusal = current_policy().url_refusal(ref.value)
            if refusal:
                raise ImageError(refusal)
        else:
            ref.check()
        return ref.to_part()
    except ImageError as err:
        message = str(err).removeprefix(f"{path}:{where}: ")
        raise DataFormatError(path, where, field, message) from None


def attach_images(prompt: Any, row: dict[str, Any], path: Path, where: str) -> Any:
    """The prompt with the row's "images" / "image" in it: they fill its placeholders in order, or go
    before the text of its last user message (a text prompt becomes one user message)."""
    present = [c for c in IMAGE_COLUMNS if row.get(c) is not None]
    if len(present) > 1:
        raise DataFormatError(path, where, present[1], "a row holds its images in 'images' or in 'image', not both")
    holes = [(j, k) for j, m in enumerate(prompt if isinstance(prompt, list) else [])
             if isinstance(m.get("content"), list) for k, p in enumerate(m["content"]) if p == {"type": "image"}]
    if not present:
        if holes:
            raise DataFormatError(path, where, "images", f"the prompt has {len(holes)} image placeholder(s) and the row no 'images' to fill them")
        return prompt
    key = present[0]
    values = column_images(row[key])
    if isinstance(row[key], list) and not values:
        if holes:
            raise DataFormatError(path, where, key, f"the prompt has {len(holes)} image placeholder(s) and '{key}' is empty")
        return prompt
    many = isinstance(row[key], list)
    parts = [image_part(v, path, where, f"{key}[{i}]" if many else key) for i, v in enumerate(values)]
    if holes:
        if len(holes) != len(parts):
            raise DataFormatError(path, where, key, f"{len(parts)} image(s) for the prompt's {len(holes)} image placeholder(s)")
        messages = [dict(m, content=list(m["content"])) if isinstance(m.get("content"), list) else m for m in prompt]
        for (j, k), part in zip(holes, parts):
            messages[j]["content"][k] = part
        return messages
    messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else [dict(m) for m in prompt]
    last = max((j for j, m in enumerate(messages) if m["role"] == "user"), default=None)
    if last is None:
        raise DataFormatError(path, where, key, "the prompt has no user message to put the row's images in")
    content = messages[last]["content"]
    messages[last]["content"] = parts + (list(content) if isinstance(content, list) else [{"type": "text", "text": content}])
    return messages


def _completion(value: Any, path: Path, where: str, name: str) -> Any:
    if isinstance(value, str):
        return value
    if is_parts(value):  # content parts: a generated image (with or without text)
        return _parts(value, path, where, name)
    if _is_messages(value):  # TRL conversational completion: the assistant message(s)
        roles = {m.get("role", "assistant") for m in value}
        contents = [m.get("content") for m in value]
        if roles != {"assistant"} or not all(isinstance(t, (str, list)) for t in contents):
            raise DataFormatError(path, where, name, f"a conversational completion must hold only assistant messages with text or content-part content (roles: {sorted(map(str, roles))})")
        if all(isinstance(t, str) for t in contents):
            return "".join(contents)
        parts = [p for t in contents for p in ([{"type": "text", "text": t}] if isinstance(t, str) else t)]
        return _parts(parts, path, where, name)
    if isinstance(value, list) and value and all(isinstance(s, str) for s in value):
        return list(value)  # pre-split steps
    raise DataFormatError(path, where, name, f"expected text, a list of steps, assistant messages or content parts, got {_describe(value)}")


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
    if _VLRB <= keys:
        return "vl-rewardbench"
    if ("completion" in keys or "response" in keys) and "prompt" in keys and "chosen" not in keys:
        return "samples"  # "response": HelpSteer2-style rated responses
    if {"chosen", "rejected"} <= keys:
        chosen = row["chosen"]
        if isinstance(chosen, list) and chosen and all(isinstance(c, (str, list)) for c in chosen) and not _is_messages(chosen):
            return "best-of-n"
        if "prompt" not in keys and isinstance(chosen, str) and is_hh_transcript(chosen):
            return "hh-rlhf"
        return "pairwise"
    if keys & set(IMAGE_COLUMNS) and keys & set(_IMAGE_TEXT) and not keys & {"completion", "response", "chosen", "rejected", "completions"}:
        return "image-text"
    raise ValueError(
        "cannot tell the format from the fields " + ", ".join(sorted(keys)) +
        "; expected prompt/chosen/rejected, an HH transcript pair, best-of-N rows, precomputed scores, VL-RewardBench rows "
        "(query/response/human_ranking/image) or image-text rows (image + prompt/caption/text) "
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
        prompt = attach_images(_prompt(chosen[:n], path, where, "chosen"), row, path, where)
        return PairRecord(_id(row, where), prompt, _completion(chosen[n:], path, where, "chosen"),
                          _completion(rejected[n:], path, where, "rejected"), _subset(row), _columns(row, _CORE))
    raw_prompt = _need(row, "prompt", path, where)
    prompt = attach_images(_prompt(raw_prompt, path, where), row, path, where)
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
    return PairRecord(_id(row, where), attach_images(_prompt(prompt_text, path, where), row, path, where), _strip_hh(pieces["chosen"][1]),
                      _strip_hh(pieces["rejected"][1]), _subset(row), _columns(row, _CORE))


def _parse_best_of_n(row, path, where):
    prompt = attach_images(_prompt(_need(row, "prompt", path, where), path, where), row, path, where)
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
    prompt = attach_images(_prompt(_need(row, "prompt", path, where), path, where), row, path, where)
    key = "completion" if "completion" in row or "response" not in row else "response"
    completion = _completion(_need(row, key, path, where), path, where, key)
    return SampleRecord(_id(row, where), prompt, completion, _subset(row), _columns(row, _CORE))


_VLRB = {"query", "response", "human_ranking"}


def _parse_vl_rewardbench(row, path, where):
    """VL-RewardBench: ``human_ranking`` ranks ``response`` (0 = preferred; [0, 1]: the first one)."""
    query = _need(row, "query", path, where)
    if not isinstance(query, str):
        raise DataFormatError(path, where, "query", f"expected text, got {_describe(query)}")
    responses, ranking = _need(row, "response", path, where), _need(row, "human_ranking", path, where)
    if not isinstance(responses, list) or len(responses) != 2:
        raise DataFormatError(path, where, "response", f"expected a list of two responses, got {_describe(responses)}"
                              + (f" of {len(responses)}" if isinstance(responses, list) else ""))
    if (not isinstance(ranking, list) or len(ranking) != 2 or any(isinstance(r, bool) or not isinstance(r, int) for r in ranking)):
        raise DataFormatError(path, where, "human_ranking", f"expected two integer ranks (e.g. [0, 1]: the first response is preferred), got {ranking!r}")
    if ranking[0] == ranking[1]:
        raise DataFormatError(path, where, "human_ranking", f"a tie ({ranking!r}) names no preferred response")
    if not any(row.get(c) is not None for c in IMAGE_COLUMNS):
        raise DataFormatError(path, where, "image", "missing (a VL-RewardBench row's query is about its image)")
    first = ranking[0] < ranking[1]
    chosen, rejected = (responses[0], responses[1]) if first else (responses[1], responses[0])
    prompt = attach_images(query, row, path, where)
    subset = str(row.get("subset") or row.get("query_source") or "default")
    return PairRecord(_id(row, where), prompt, _completion(chosen, path, where, f"response[{0 if first else 1}]"),
                      _completion(rejected, path, where, f"response[{1 if first else 0}]"), subset, _columns(row, _CORE | _VLRB))


_IMAGE_TEXT = ("prompt", "caption", "text")


def _parse_image_text(row, path, where):
    """An image and the text it is scored against: the text is the prompt, the image the completion."""
    key = next((k for k in _IMAGE_TEXT if row.get(k) is not None), None)
    if key is None:
        raise DataFormatError(path, where, "prompt", "missing (an image-text row needs 'prompt', 'caption' or 'text')")
    image = next((c for c in IMAGE_COLUMNS if row.get(c) is not None), None)
    if image is None:
        raise DataFormatError(path, where, "image", "missing (an image-text row needs 'image' or 'images')")
    many = isinstance(row[image], list)
    values = column_images(row[image])
    if not values:
        raise DataFormatError(path, where, image, "no image")
    completion = [image_part(v, path, where, f"{image}[{i}]" if many else image) for i, v in enumerate(values)]
    prompt = _prompt(row[key], path, where, key)
    return SampleRecord(_id(row, where), prompt, completion, _subset(row), _columns(row, _CORE | {key}))


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


_PARSERS = {"pairwise": _parse_pairwise, "hh-rlhf": _parse_hh, "best-of-n": _parse_best_of_n, "samples": _parse_sample, "scores": _parse_scores,
            "vl-rewardbench": _parse_vl_rewardbench, "image-text": _parse_image_text}
_KIND = {"pairwise": "pairs", "hh-rlhf": "pairs", "best-of-n": "best-of-n", "samples": "samples", "scores": "scores",
         "vl-rewardbench": "pairs", "image-text": "samples"}


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
