"""Reasoning steps as data: splitting text into steps, and readers for step-labelled solutions.

A step-labelled row is one solution to one question with a label per step (1 = correct, 0 = wrong,
soft values in [0, 1] from Monte-Carlo estimates, ``None`` = not annotated) and the index of the
first wrong step (-1 = none). Layouts read (``--format steps`` or auto-detected):

  processbench  {"question"|"prompt", "steps", "labels"?, "first_error_step"?} (ProcessBench,
                PRMBench; ``steps``/``labels`` may be JSON-encoded strings). Either labels or
                first_error_step may be missing; the other is derived from it.
  prm800k       {"question": {"problem"}, "label": {"steps": [{"completions": [{"text",
                "rating"}], "chosen_completion"}]}}: rating -1 is a wrong step, 0 and 1 are kept.
  math-shepherd {"input", "label"}: ``input`` holds the question and the steps, each step ended by a
                tag (default "ки"); ``label`` is the same text with "+" or "-" in place of each tag.
"""
from __future__ import annotations

import hashlib
import json
import math
import random
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from .io import DataFormatError, Dataset, check_columns, iter_rows, warn_duplicate_ids

STEP_TAG = "ки"


@dataclass
class StepRecord:
    """One solution split into steps, with per-step labels (``None`` where not annotated)."""

    id: str
    prompt: Any
    steps: list[str]
    labels: list[float | None]
    first_error_step: int = -1
    subset: str = "default"
    columns: dict[str, Any] = field(default_factory=dict)

    @property
    def group(self) -> str:
        """Key of the question (solutions of one question stay on one side of a dev/test split): the
        row's ``group`` column when it has one (variants of one problem whose texts differ), else the prompt."""
        if self.columns.get("group") is not None:
            return str(self.columns["group"])
        return json.dumps(self.prompt, sort_keys=True)


def split_steps(text: str, separator: str = "\n") -> list[str]:
    """Text -> steps at ``separator``; empty pieces (blank lines) are dropped, not scored."""
    if not separator:
        raise ValueError("the step separator must not be empty")
    return [s.strip() for s in text.split(separator) if s.strip()]


def as_steps(completion: Any, separator: str = "\n") -> list[str]:
    """A completion (pre-split steps or text) as a list of steps."""
    if isinstance(completion, str):
        return split_steps(completion, separator)
    if isinstance(completion, (list, tuple)) and all(isinstance(s, str) for s in completion):
        return [str(s) for s in completion]
    raise TypeError(f"a completion must be text or a list of step strings, got {type(completion).__name__}")


def labels_from_first_error(n: int, first_error: int) -> list[float | None]:
    """ProcessBench convention: steps before the first error are correct, it is wrong, later ones are
    not annotated."""
    if first_error < 0:
        return [1.0] * n
    return [1.0 if j < first_error else 0.0 if j == first_error else None for j in range(n)]


def first_error_of(labels: Sequence[float | None], threshold: float = 0.5) -> int:
    for j, label in enumerate(labels):
        if label is not None and label < threshold:
            return j
    return -1


# ---------------------------------------------------------------- parsers

def _decode(value: Any, path: Path, where: str, name: str) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            raise DataFormatError(path, where, name, "a string that is not a JSON-encoded list") from None
    return value


def _label(value: Any, path: Path, where: str, name: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value) or not 0 <= value <= 1:
        raise DataFormatError(path, where, name, f"a step label must be a number in [0, 1] or null, got {value!r}")
    return float(value)


def _parse_processbench(row: dict, path: Path, where: str) -> StepRecord:
    if "question" in row:
        prompt, pname = row["question"], "question"
    elif "prompt" in row:
        prompt, pname = row["prompt"], "prompt"
    else:
        raise DataFormatError(path, where, "question", "missing (or give 'prompt')")
    if not isinstance(prompt, (str, list)) or not prompt:
        raise DataFormatError(path, where, pname, "must be non-empty text or chat messages")
    steps = _decode(row.get("steps"), path, where, "steps")
    if not isinstance(steps, list) or not steps or not all(isinstance(s, str) for s in steps):
        raise DataFormatError(path, where, "steps", "needs a non-empty list of step strings")
    fes = row.get("first_error_step")
    if fes is not None and (isinstance(fes, bool) or not isinstance(fes, int) or not -1 <= fes < len(steps)):
        raise DataFormatError(path, where, "first_error_step", f"must be an integer in [-1, {len(steps) - 1}], got {fes!r}")
    if row.get("labels") is not None:
        labels = _decode(row["labels"], path, where, "labels")
        if not isinstance(labels, list) or len(labels) != len(steps):
            raise DataFormatError(path, where, "labels", f"needs one label per step ({len(steps)} steps)")
        labels = [_label(v, path, where, f"labels[{j}]") for j, v in enumerate(labels)]
        if fes is None:
            fes = first_error_of(labels)
    elif fes is not None:
        labels = labels_from_first_error(len(steps), fes)
    else:
        raise DataFormatError(path, where, "labels", "missing, and no 'first_error_step' to derive them from")
    core = {"id", "question", "prompt", "steps", "labels", "first_error_step", "subset"}
    subset = row.get("subset", row.get("classification", "default"))
    return StepRecord(_row_id(row, where), prompt, list(steps), labels, int(fes), str(subset), {k: v for k, v in row.items() if k not in core})


def _parse_prm800k(row: dict, path: Path, where: str) -> StepRecord:
    question = row.get("question")
    problem = question.get("problem") if isinstance(question, dict) else question
    if not isinstance(problem, str) or not problem:
        raise DataFormatError(path, where, "question.problem", "missing")
    label = row.get("label")
    if not isinstance(label, dict) or not isinstance(label.get("steps"), list) or not label["steps"]:
        raise DataFormatError(path, where, "label.steps", "needs a non-empty list of steps")
    steps, labels = [], []
    for j, step in enumerate(label["steps"]):
        comps = step.get("completions") if isinstance(step, dict) else None
        if not isinstance(comps, list) or not comps:
            raise DataFormatError(path, where, f"label.steps[{j}].completions", "needs a non-empty list")
        pick = step.get("chosen_completion")
        chosen = comps[pick] if isinstance(pick, int) and 0 <= pick < len(comps) else comps[0]
        text, rating = chosen.get("text"), chosen.get("rating")
        if not isinstance(text, str):
            raise DataFormatError(path, where, f"label.steps[{j}].completions.text", "missing")
        if rating not in (-1, 0, 1, None):
            raise DataFormatError(path, where, f"label.steps[{j}].completions.rating", f"must be -1, 0, 1 or null, got {rating!r}")
        steps.append(text)
        labels.append(None if rating is None else 0.0 if rating == -1 else 1.0)
        if rating == -1:
            break  # PRM800K stops the solution at its first wrong step
    return StepRecord(_row_id(row, where), problem, steps, labels, first_error_of(labels), "prm800k", {})


def _parse_math_shepherd(row: dict, path: Path, where: str, tag: str = STEP_TAG) -> StepRecord:
    text, marked = row.get("input"), row.get("label")
    if not isinstance(text, str) or tag not in text:
        raise DataFormatError(path, where, "input", f"needs text with a step tag {tag!r} after each step")
    if not isinstance(marked, str):
        raise DataFormatError(path, where, "label", "needs the input text with '+'/'-' in place of each step tag")
    pieces = text.split(tag)[:-1]
    labels: list[float | None] = []
    pos = 0
    for j, piece in enumerate(pieces):
        if marked[pos : pos + len(piece)] != piece or pos + len(piece) >= len(marked) or marked[pos + len(piece)] not in "+-":
            raise DataFormatError(path, where, "label", f"does not match 'input' at step {j + 1} (expected '+' or '-' where the tag is)")
        labels.append(1.0 if marked[pos + len(piece)] == "+" else 0.0)
        pos += len(piece) + 1
    # The question precedes "Step 1:" (Math-Shepherd writes steps as "Step k: ...").
    first = pieces[0]
    cut = first.find("Step 1:")
    question = first[:cut].strip() if cut > 0 else ""
    steps = [first[cut:].strip() if cut > 0 else first.strip()] + [p.strip() for p in pieces[1:]]
    if not question:
        raise DataFormatError(path, where, "input", "cannot find where the question ends ('Step 1:' missing)")
    return StepRecord(_row_id(row, where), question, steps, labels, first_error_of(labels), str(row.get("task", "math-shepherd")), {})


def _row_id(row: dict, where: str) -> str:
    value = row.get("id")
    return str(value) if value is not None else where.replace(" ", "-")


STEP_FORMATS = {"processbench": _parse_processbench, "prm800k": _parse_prm800k, "math-shepherd": _parse_math_shepherd}


def detect_step_format(row: dict) -> str | None:
    """The step layout of a row, or None if it is not step-labelled data."""
    if "steps" in row and ("question" in row or "prompt" in row) and ("labels" in row or "first_error_step" in row):
        return "processbench"
    if isinstance(row.get("label"), dict) and "steps" in row["label"]:
        return "prm800k"
    if isinstance(row.get("input"), str) and isinstance(row.get("label"), str) and STEP_TAG in row["input"]:
        return "math-shepherd"
    return None


def load_steps(path: str | Path, format: str = "auto", limit: int | None = None, skip_invalid: bool = False) -> Dataset:
    """Read step-labelled solutions (``Dataset.kind == "steps"``); errors name file, line and field.
    With ``skip_invalid`` a bad row is left out instead, and its error is kept in ``Dataset.skipped``
    (reported by the evaluator, never dropped silently)."""
    path = Path(path)
    fmt = None if format in ("auto", "steps") else format
    if fmt is not None and fmt not in STEP_FORMATS:
        raise ValueError(f"unknown step format {format!r}; choose from {', '.join(STEP_FORMATS)}")
    records: list[StepRecord] = []
    skipped: list[str] = []
    for where, row in iter_rows(path):
        if fmt is None:
            fmt = detect_step_format(row)
            if fmt is None:
                raise DataFormatError(path, where, None, "not step-labelled data: expected question/steps/labels, PRM800K or Math-Shepherd rows")
        try:
            record = STEP_FORMATS[fmt](row, path, where)
            check_columns(path, where, record.columns)
            records.append(record)
        except DataFormatError as err:
            if not skip_invalid:
                raise DataFormatError(err.path, err.where, err.field, str(err).split(": ", 2 if err.field else 1)[-1] + " (skip such rows with --skip-invalid)") from None
            skipped.append(str(err))
        if limit is not None and len(records) >= limit:
            break
    if not records:
        raise DataFormatError(path, "", None, "no rows")
    warn_duplicate_ids(path, (r.id for r in records))
    data = Dataset("steps", records, str(path), fmt or "steps")
    data.skipped = skipped  # type: ignore[attr-defined]
    return data


# ---------------------------------------------------------------- built-in data

def arith_steps(split: str = "test", n: int | None = None, seed: int = 0) -> Dataset:
    """The suite's ``arith`` subset as step data: each pair gives its correct solution (all steps 1)
    and its rejected one (error injected at a known step)."""
    from . import synth

    records = []
    for pair in synth.generate(split, n, seed=seed, subsets=("arith",)):
        cols = pair.columns
        good, bad = cols["chosen_steps"], cols["rejected_steps"]
        keep = {"answer": cols.get("answer"), "group": cols.get("group")}
        records.append(StepRecord(pair.id + "-chosen", pair.prompt, list(good), [1.0] * len(good), -1, "arith", dict(keep)))
        labels = [None if v is None else float(v) for v in cols["rejected_labels"]]
        records.append(StepRecord(pair.id + "-rejected", pair.prompt, list(bad), labels, int(cols["first_error_step"]), "arith", dict(keep)))
    return Dataset("steps", records, f"builtin:arith-steps/{split} (seed {seed})", "processbench")


def dev_test_split(records: Sequence[StepRecord], dev_fraction: float, seed: int = 0) -> tuple[list[StepRecord], list[StepRecord]]:
    """Deterministic split by question (hash of the prompt and seed), so a threshold chosen on dev
    never saw a test question."""
    dev, test = [], []
    for r in records:
        h = int(hashlib.sha256(f"{seed}|{r.group}".encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
        (dev if h < dev_fraction else test).append(r)
    return dev, test


# ---------------------------------------------------------------- automatic labels by error injection

_CALC = re.compile(r"<<[^>]*>>")
_RESULT = re.compile(r"=\s*\$?(-?\d+(?:\.\d+)?)")


def gsm8k_steps(solution: str) -> tuple[list[str], str]:
    """GSM8K reference solution -> (steps without calculator annotations, final answer); the final
    "#### N" line becomes the step "The answer is N."."""
    body, _, answer = solution.partition("####")
    steps = split_steps(_CALC.sub("", body), "\n")
    answer = answer.strip().replace(",", "")
    if answer:
        steps.append(f"The answer is {answer}.")
    return steps, answer


def inject_error(steps: Sequence[str], rng: random.Random) -> tuple[list[str], int] | None:
    """Change the result of one calculation (the number after an ``=``) in a random step, so that
    step is wrong and the solution after it is unsupported. Returns (steps, first_error_step), or
    None when no step shows a calculation. Labels follow by construction, with no model involved."""
    candidates = [j for j, s in enumerate(steps) if _RESULT.search(s)]
    if not candidates:
        return None
    j = rng.choice(candidates)
    matches = list(_RESULT.finditer(steps[j]))
    m = matches[-1]
    old = m.group(1)
    value = float(old)
    delta = rng.choice([-10, -3, -2, -1, 1, 2, 3, 10]) if value.is_integer() else rng.choice([-1.5, -0.5, 0.5, 1.5])
    if rng.random() < 0.2 and value not in (0, 1):
        new = value * rng.choice([2, 10]) if rng.random() < 0.5 else value / 2
    else:
        new = value + delta
    text = f"{int(new)}" if float(new).is_integer() else f"{new:g}"
    if text == old:
        text = str(int(value) + 1) if value.is_integer() else f"{value + 1:g}"
    out = list(steps)
    out[j] = steps[j][: m.start(1)] + text + steps[j][m.end(1) :]
    return out, j


def gsm8k_error_steps(path: str | Path, n: int | None = None, seed: int = 0) -> Dataset:
    """Step-labelled solutions from a GSM8K file ({"question","solution"}): each reference solution
    (all steps correct) and a copy with one injected calculation error (first error known)."""
    rng = random.Random(f"rewardkit-gsm8k-errors|{seed}")
    records: list[StepRecord] = []
    for k, (where, row) in enumerate(iter_rows(path)):
        if n is not None and k >= n:
            break
        for key in ("question", "solution"):
            if not isinstance(row.get(key), str):
                raise DataFormatError(path, where, key, "missing (GSM8K rows need question and solution)")
        steps, answer = gsm8k_steps(row["solution"])
        if not steps:
            continue
        rid = str(row.get("id", where.replace(" ", "-")))
        records.append(StepRecord(rid + "-ref", row["question"], steps, [1.0] * len(steps), -1, "gsm8k", {"answer": answer}))
        bad = inject_error(steps, rng)
        if bad is not None:
            bsteps, j = bad
            records.append(StepRecord(rid + "-err", row["question"], bsteps, labels_from_first_error(len(bsteps), j), j, "gsm8k", {"answer": answer}))
    return Dataset("steps", records, f"{path} (reference solutions + injected errors, seed {seed})", "processbench")
