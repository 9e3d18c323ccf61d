"""Raw rows and the errors about them, shared by every reader in ``rewardkit.data``: a row iterator
over JSONL / JSON / Parquet that names the line (or record) of each row, the error that names the
file, the line and the field, and the :class:`Dataset` the readers return."""
from __future__ import annotations

import json
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

#: names a data column cannot have: they are the parameters of ``reward.score(prompts, completions, **columns)``
#: itself, so such a column would collide with them as a keyword argument
RESERVED_COLUMNS = ("prompts", "completions", "self")


class DataFormatError(ValueError):
    """Bad input: names the file, the line or record, and the field."""

    def __init__(self, path: str | Path, where: str, field: str | None, message: str):
        self.path, self.where, self.field = str(path), where, field
        loc = f"{path}:{where}" if where else str(path)
        super().__init__(f"{loc}: " + (f"field '{field}': " if field else "") + message)


class DuplicateIdWarning(UserWarning):
    """A data file holds the same row id more than once."""


@dataclass
class Dataset:
    """Records read from one file (or generated), all of one kind."""

    kind: str  # "pairs" | "best-of-n" | "samples" | "scores" | "steps"
    records: list[Any]
    source: str = ""
    format: str = ""
    sections: dict[str, dict[str, float]] = field(default_factory=dict)  # from a benchmark declaration

    def __len__(self) -> int:
        return len(self.records)


# ---------------------------------------------------------------- raw rows

def iter_rows(path: str | Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield ``(location, row)``: location is "line N" for JSONL and "record N" for JSON/Parquet."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"data file not found: {path}")
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        try:
            import pyarrow.parquet as pq
        except ImportError as err:
            raise ImportError("reading Parquet needs pyarrow: pip install 'rewardkit[parquet]'") from err
        for i, row in enumerate(pq.read_table(path).to_pylist(), start=1):
            yield f"record {i}", row
        return
    if suffix == ".json":
        raw = path.read_bytes()
        data = _loads(decode_utf8(path, raw), path, None)
        if isinstance(data, dict):
            for key in ("data", "rows", "records"):
                if isinstance(data.get(key), list):
                    data = data[key]
                    break
        if not isinstance(data, list):
            raise DataFormatError(path, "", None, "a .json file must hold a list of rows (or {'data': [...]})")
        for i, row in enumerate(data, start=1):
            if not isinstance(row, dict):
                raise DataFormatError(path, f"record {i}", None, f"expected an object, got {type(row).__name__}")
            yield f"record {i}", row
        return
    try:
        with path.open(encoding="utf-8") as fh:
            for n, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                row = _loads(line, path, n)
                if not isinstance(row, dict):
                    raise DataFormatError(path, f"line {n}", None, f"expected a JSON object, got {type(row).__name__}")
                yield f"line {n}", row
    except UnicodeDecodeError:
        _raise_utf8_error(path)
        raise


def _loads(text: str, path: Path, line: int | None) -> Any:
    """``json.loads`` with its failures as errors naming the file and line (``line=None``: a whole
    .json file, the line comes from the error)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        error = DataFormatError(path, f"line {line if line is not None else err.lineno}", None, f"invalid JSON: {err.msg} (column {err.colno})")
    except RecursionError:
        error = DataFormatError(path, f"line {line}" if line is not None else "", None,
                                "invalid JSON: nested too deeply (arrays or objects inside each other beyond what the reader supports)")
    raise error from None


def decode_utf8(path: str | Path, raw: bytes) -> str:
    """The text of a whole file read as bytes; invalid UTF-8 is an error naming the file, line, column
    and byte offset."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw.count(b"\n", 0, err.start) + 1
        column = err.start - (raw.rfind(b"\n", 0, err.start) + 1) + 1
        raise DataFormatError(path, f"line {line}", None, _utf8_message(raw[err.start], column, err.start)) from None


def _utf8_message(byte: int, column: int, offset: int) -> str:
    return f"not valid UTF-8: byte 0x{byte:02x} at byte {column} of the line (offset {offset} in the file); save the file as UTF-8"


def _raise_utf8_error(path: Path) -> None:
    """After a text read failed to decode: find the first line that is not UTF-8 and raise an error naming it."""
    offset = 0
    with path.open("rb") as fh:
        for n, raw in enumerate(fh, start=1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as err:
                raise DataFormatError(path, f"line {n}", None, _utf8_message(raw[err.start], err.start + 1, offset + err.start)) from None
            offset += len(raw)


def check_columns(path: str | Path, where: str, columns: Iterable[str]) -> None:
    """A row's data columns may not be named like ``reward.score``'s own parameters."""
    for name in columns:
        if name in RESERVED_COLUMNS:
            raise DataFormatError(path, where, name, f"a data column cannot be named {name!r}: rewards are called as "
                                  f"score(prompts, completions, **columns), so it would collide with that parameter; rename the column")


def warn_duplicate_ids(path: str | Path, ids: Iterable[str], *, show: int = 5) -> None:
    """One warning naming the file when some row ids occur more than once: how many, and the first few."""
    counts = Counter(ids)
    repeated = [(i, c) for i, c in counts.items() if c > 1]
    if not repeated:
        return
    listed = ", ".join(f"{i!r} ({c} times)" for i, c in repeated[:show]) + (", ..." if len(repeated) > show else "")
    warnings.warn(f"{path}: {len(repeated)} row id(s) occur more than once ({sum(c for _, c in repeated)} rows): {listed}; "
                  "results and resumed runs keyed by id will conflate them", DuplicateIdWarning, stacklevel=3)


def read_yaml(path: str | Path) -> Any:
    """``yaml.safe_load`` of a file (no ``!!python/...`` tags: they build arbitrary objects); a syntax error, a
    refused tag, nesting too deep or invalid UTF-8 is an error naming the file and line."""
    import yaml

    path = Path(path)
    text = decode_utf8(path, path.read_bytes())
    try:
        return yaml.safe_load(text)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        where = f"line {mark.line + 1}" if mark is not None else ""
        problem = err.problem or str(err)
        if "python/" in problem or "could not determine a constructor" in problem:
            problem += " (Python tags are refused: a config is read with yaml.safe_load and can only hold plain values)"
        raise DataFormatError(path, where, None, f"invalid YAML: {problem}") from None
    except yaml.YAMLError as err:
        raise DataFormatError(path, "", None, f"invalid YAML: {err}") from None
    except RecursionError:
        raise DataFormatError(path, "", None, "invalid YAML: nested too deeply") from None


def question_rows(path: str | Path, *, limit: int | None = None, purpose: str = "this command",
                  need: Sequence[str] = ("question", "answer")) -> list[tuple[str, str, dict[str, Any]]]:
    """(where, id, row) of math rows ``{"question", "answer", ...}`` (GSM8K layout), the first ``limit``; a
    row without a needed field is an error naming the file, line and field."""
    out = []
    for k, (where, row) in enumerate(iter_rows(path)):
        if limit is not None and k >= limit:
            break
        for key in need:
            if row.get(key) is None:
                raise DataFormatError(path, where, key, f"missing ({purpose} needs a question and a gold answer)")
        out.append((where, str(row.get("id", where.replace(" ", "-"))), row))
    warn_duplicate_ids(path, (rid for _, rid, _ in out))
    return out
