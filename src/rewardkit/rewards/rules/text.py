"""Format and length rules: a regular expression, valid JSON (optionally against a JSON Schema),
and length rewards (target, soft maximum, and a history-free HAPO-style cosine reward)."""
from __future__ import annotations

import contextvars
import json
import math
import numbers
import re
import time
from typing import Any, Iterator

import jsonschema
import regex  # the third-party module: unlike `re`, its matching takes a timeout

from .base import Verdict

# ------------------------------------------------------------------ regex


def check_regex(completion: str, *, pattern: str, fullmatch: bool = False, ignore_case: bool = False, timeout: float = 1.0) -> Verdict:
    """1.0 if ``pattern`` matches the completion (anywhere, or the whole text with ``fullmatch``).

    Patterns are user data and a pattern like ``(a|aa)+$`` backtracks exponentially; Python's ``re``
    cannot be interrupted (and ``signal.alarm`` is neither thread- nor process-pool-safe), so
    matching uses the ``regex`` module's per-call ``timeout`` (seconds): a timeout is undecided
    (``None``), not a failure. Inline flags such as ``(?s)`` / ``(?m)`` work as in ``re``.
    """
    if not isinstance(pattern, str):
        return Verdict(None, f"pattern must be a string, got {type(pattern).__name__}")
    try:
        compiled = regex.compile(pattern, regex.IGNORECASE if ignore_case else 0)
    except (regex.error, ValueError, TypeError) as err:
        return Verdict(None, f"invalid regex {pattern!r}: {err}")
    try:
        match = (compiled.fullmatch if fullmatch else compiled.search)(completion, timeout=timeout)
    except TimeoutError:
        return Verdict(None, f"regex {pattern!r} timed out after {timeout:g}s (catastrophic backtracking?)")
    return Verdict(1.0 if match is not None else 0.0)


# ------------------------------------------------------------------ JSON

_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[ \t]*\n(.*?)```", re.DOTALL)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _loads(text: str) -> Any:
    """Strict JSON: NaN and Infinity, which Python's parser accepts, are rejected."""
    return json.loads(text, parse_constant=_reject_constant)


def extract_json(text: str) -> tuple[Any, str | None]:
    """(value, None) for the JSON in ``text`` - the whole text, or else the first fenced code block
    (```json blocks first) that parses - or (None, error message)."""
    stripped = text.strip()
    if not stripped:
        return None, "empty completion"
    try:
        return _loads(stripped), None
    except ValueError as err:
        whole_error = f"not valid JSON: {err}"
    blocks = _FENCE.findall(text)
    blocks = [b for lang, b in blocks if lang.lower() == "json"] + [b for lang, b in blocks if lang.lower() in ("", "jsonc", "json5")]
    first_error = None
    for block in blocks:
        try:
            return _loads(block.strip()), None
        except ValueError as err:
            first_error = first_error or f"fenced block is not valid JSON: {err}"
    return None, first_error or whole_error


# A schema's own regular expressions ("pattern", "patternProperties") are user data like rule:regex's
# pattern: jsonschema would run them through `re`, where ``^(a|a)*$`` on 30 characters takes minutes.
# The validator classes below run them in the `regex` module against one deadline per check; the
# places where jsonschema would still use `re` itself are refused up front (_unbounded_regex).


class _RegexTimeout(Exception):
    """A schema regex ran past the check's deadline."""


class _RegexUnsupported(Exception):
    """A schema regex that `re` accepts and the `regex` module does not."""


_DEADLINE: contextvars.ContextVar[float] = contextvars.ContextVar("rewardkit_json_regex_deadline")


def _schema_search(pattern: str, text: str) -> bool:
    """``re.search(pattern, text)`` as jsonschema means it, within the current check's deadline."""
    try:
        compiled = regex.compile(pattern)
    except (regex.error, ValueError, TypeError) as err:
        raise _RegexUnsupported(f"schema regex {pattern!r} is not supported: {err}") from None
    remaining = _DEADLINE.get() - time.monotonic()
    if remaining <= 0:
        raise _RegexTimeout(pattern)
    try:
        return compiled.search(text, timeout=remaining) is not None
    except TimeoutError:
        raise _RegexTimeout(pattern) from None


def _pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Iterator[jsonschema.ValidationError]:
    if validator.is_type(instance, "string") and not _schema_search(pattern, instance):
        yield jsonschema.ValidationError(f"{instance!r} does not match {pattern!r}")


def _pattern_properties(validator: Any, patterns: dict, instance: Any, schema: Any) -> Iterator[jsonschema.ValidationError]:
    if not validator.is_type(instance, "object"):
        return
    for pattern, subschema in patterns.items():
        for key, value in instance.items():
            if _schema_search(pattern, key):
                yield from validator.descend(value, subschema, path=key, schema_path=pattern)


def _additional_properties(original: Any) -> Any:
    """jsonschema's additionalProperties keyword, with the patternProperties names matched here."""

    def keyword(validator: Any, additional: Any, instance: Any, schema: Any) -> Iterator[jsonschema.ValidationError]:
        patterns = schema.get("patternProperties") or {}
        if not patterns or not validator.is_type(instance, "object"):
            yield from original(validator, additional, instance, schema)
            return
        named = schema.get("properties", {})
        extras = [k for k in instance if k not in named and not any(_schema_search(p, k) for p in patterns)]
        if validator.is_type(additional, "object"):
            for key in extras:
                yield from validator.descend(instance[key], additional, path=key)
        elif additional is False and extras:
            names = ", ".join(repr(k) for k in sorted(extras))
            regexes = ", ".join(repr(p) for p in sorted(patterns))
            yield jsonschema.ValidationError(f"{names} {'does' if len(extras) == 1 else 'do'} not match any of the regexes: {regexes}")

    return keyword


_BOUNDED_VALIDATORS: dict[type, type] = {}


def _bounded_validator(cls: type) -> type:
    """``cls`` with its schema-regex keywords replaced by the bounded ones above."""
    if cls not in _BOUNDED_VALIDATORS:  # a race only builds the same class twice
        keywords = {"pattern": _pattern, "patternProperties": _pattern_properties}
        if "additionalProperties" in cls.VALIDATORS:
            keywords["additionalProperties"] = _additional_properties(cls.VALIDATORS["additionalProperties"])
        _BOUNDED_VALIDATORS[cls] = jsonschema.validators.extend(cls, {k: v for k, v in keywords.items() if k in cls.VALIDATORS})
    return _BOUNDED_VALIDATORS[cls]


def _unbounded_regex(schema: Any) -> str | None:
    """Why some regex of ``schema`` would still run through `re` without a bound, or None.

    Two places stay out of the bounded keywords' reach: ``unevaluatedProperties`` matches
    ``patternProperties`` names itself, and a subschema with a ``$schema`` of its own (nested, or a
    metaschema that a ``$ref`` points to) is validated with jsonschema's own validator class. Any
    dict in the schema counts (a ``const`` value too), so this errs on the side of refusing."""
    uses_regex = pattern_properties = unevaluated = other_dialect = False
    stack, root = [schema], True
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            uses_regex |= isinstance(node.get("pattern"), str) or isinstance(node.get("patternProperties"), dict)
            pattern_properties |= isinstance(node.get("patternProperties"), dict)
            unevaluated |= "unevaluatedProperties" in node
            other_dialect |= not root and isinstance(node.get("$schema"), str)
            other_dialect |= any("json-schema.org" in str(node.get(ref, "")) for ref in ("$ref", "$dynamicRef"))
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
        root = False
    if pattern_properties and unevaluated:
        return "patternProperties together with unevaluatedProperties cannot be checked within a time bound"
    if uses_regex and other_dialect:
        return "regex keywords next to a nested $schema or a metaschema $ref cannot be checked within a time bound"
    return None


def check_json(completion: str, *, schema: Any = None, timeout: float = 1.0) -> Verdict:
    """1.0 if the completion is JSON (the whole text or a fenced ```json block) and, when a JSON
    Schema is given (a dict, or the same as a JSON string), valid against it; otherwise 0.0 with
    ``info["error"]``. An invalid schema is undecided (``None``). Formats (``"format": "email"``)
    are annotations only, as the JSON Schema specification's default says.

    The schema's ``pattern`` / ``patternProperties`` regexes run in the ``regex`` module with
    ``timeout`` seconds for all of them together (like rule:regex's pattern, they may backtrack
    exponentially); running over is undecided, as is a schema whose regexes could not be bounded.
    """
    if isinstance(schema, str):
        try:
            schema = _loads(schema)
        except ValueError as err:
            return Verdict(None, f"the schema column holds a string that is not JSON: {err}")
    validator = None
    if schema is not None:
        if not isinstance(schema, (dict, bool)):
            return Verdict(None, f"schema must be a JSON Schema object, got {type(schema).__name__}")
        limit, problem = _positive("timeout", timeout)
        if problem:
            return Verdict(None, problem)
        cls = jsonschema.validators.validator_for(schema)
        try:
            cls.check_schema(schema)
        except jsonschema.exceptions.SchemaError as err:
            return Verdict(None, f"invalid JSON Schema: {err.message}")
        unbounded = _unbounded_regex(schema)
        if unbounded:
            return Verdict(None, f"unsupported JSON Schema: {unbounded}")
        if isinstance(schema, dict):  # its dialect is chosen; a "$ref": "#" must not choose it again
            schema = {k: v for k, v in schema.items() if k != "$schema"}
        validator = _bounded_validator(cls)(schema)
    value, error = extract_json(completion)
    if error is not None:
        return Verdict(0.0, None, {"error": error})
    if validator is not None:
        token = _DEADLINE.set(time.monotonic() + limit)
        try:
            best = jsonschema.exceptions.best_match(validator.iter_errors(value))
        except _RegexTimeout as err:
            return Verdict(None, f"schema regex {err.args[0]!r} timed out after {timeout:g}s (catastrophic backtracking?)")
        except _RegexUnsupported as err:
            return Verdict(None, str(err))
        except Exception as err:  # e.g. an unresolvable $ref: the schema, not the completion, is at fault
            return Verdict(None, f"the schema could not be applied: {type(err).__name__}: {err}")
        finally:
            _DEADLINE.reset(token)
        if best is not None:
            where = "/".join(str(p) for p in best.absolute_path) or "(root)"
            return Verdict(0.0, None, {"error": f"schema violation at {where}: {best.message}"})
    return Verdict(1.0)


# ------------------------------------------------------------------ length

LENGTH_MODES = ("target", "max", "hapo")
#: floor of the HAPO length reward for correct answers, as in the paper: with a length-reward weight
#: <= 1, a correct answer still scores above any incorrect one
HAPO_CORRECT_FLOOR = -0.7


def _positive(name: str, value: Any) -> tuple[float | None, str | None]:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) or value <= 0:
        return None, f"{name} must be a positive number, got {value!r}"
    return float(value), None


def hapo_length_reward(length: float, reference_length: float, correct: bool | None = None) -> float:
    """cos(pi/2 * min(length / reference_length, 2)): 1 at length 0, 0 at the reference length,
    -1 from twice the reference on. Correct answers are floored at ``HAPO_CORRECT_FLOOR``;
    incorrect ones get at most 0, so a short wrong answer is never rewarded for being short."""
    r = math.cos(math.pi / 2 * min(length / reference_length, 2.0))
    if correct is None:
        return r
    return max(HAPO_CORRECT_FLOOR, r) if correct else min(0.0, r)


def check_length(
    completion: str,
    *,
    target: float | None = None,
    max_length: float | None = None,
    reference_length: float | None = None,
    correct: bool | None = None,
    unit: str = "words",
    mode: str | None = None,
) -> Verdict:
    """Length reward; each length parameter may be a dataset column or a fixed option.

    Length is counted in ``unit``: "words" (whitespace-separated tokens) or "chars".

    - ``mode="target"``: ``max(0, 1 - |len - target| / target)``.
    - ``mode="max"``: 1.0 up to ``max_length``, then linearly down to 0 at twice ``max_length``:
      ``clip(2 - len / max_length, 0, 1)``.
    - ``mode="hapo"``: history-free variant of the length reward of "HAPO: Training Language Models
      to Reason Concisely via History-Aware Policy Optimization" (Huang et al., 2025), with the
      per-sample ``reference_length`` in place of HAPO's history state (the shortest correct answer
      seen so far): ``cos(pi/2 * min(len / reference_length, 2))`` in [-1, 1], positive when shorter
      than the reference, 0 at it, negative when longer. With the optional ``correct`` column, as in
      the paper, correct answers are floored at -0.7 and incorrect ones capped at 0 (short wrong
      answers are not rewarded for brevity). Add it to a correctness reward with a weight <= 1.

    Without ``mode`` the mode follows from the one length parameter given; none, or several, is
    undecided (``None``) with the reason.
    """
    given = {"target": target, "max": max_length, "hapo": reference_length}
    if mode is None:
        present = [m for m, v in given.items() if v is not None]
        if not present:
            return Verdict(None, "no length reference: give target, max_length or reference_length (column or option)")
        if len(present) > 1:
            names = {"target": "target", "max": "max_length", "hapo": "reference_length"}
            return Verdict(None, f"several length references given ({', '.join(names[m] for m in present)}); choose one with mode=")
        mode = present[0]
    if mode not in LENGTH_MODES:
        return Verdict(None, f"unknown length mode {mode!r} (known: {', '.join(LENGTH_MODES)})")
    if unit not in ("words", "chars"):
        return Verdict(None, f"unit must be 'words' or 'chars', got {unit!r}")
    length = len(completion.split()) if unit == "words" else len(completion)
    info = {"length": length}
    field = {"target": "target", "max": "max_length", "hapo": "reference_length"}[mode]
    if given[mode] is None:
        return Verdict(None, f"length mode {mode!r} needs {field!r}", info)
    ref, problem = _positive(field, given[mode])
    if problem:
        return Verdict(None, problem, info)
    if mode == "target":
        return Verdict(max(0.0, 1.0 - abs(length - ref) / ref), None, info)
    if mode == "max":
        return Verdict(min(1.0, max(0.0, 2.0 - length / ref)), None, info)
    if correct is not None and correct not in (True, False):  # also numpy bools and 0/1
        return Verdict(None, f"correct must be true/false, got {correct!r}", info)
    return Verdict(hapo_length_reward(length, ref, None if correct is None else bool(correct)), None, info)
