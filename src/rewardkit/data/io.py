"""Raw rows and the errors about them, shared by every reader in ``rewardkit.data``: a row iterator
over JSONL / JSON / Parquet that names the line (or record) of each row, the error that names the
file, the line and the field, and the :class:`Dataset` the readers return."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence


class DataFormatError(ValueError):
    """Bad input: names the file, the line or record, and the field."""

    def __init__(self, path: str | Path, where: str, field: str | None, message: str):
        self.path, self.where, self.field = str(path), where, field
        loc = f"{path}:{where}" if where else str(path)
        super().__init__(f"{loc}: " + (f"field '{field}': " if field else "") + message)


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
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise DataFormatError(path, f"line {err.lineno}", None, f"invalid JSON: {err.msg}") from None
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
    with path.open(encoding="utf-8") as fh:
        for n, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise DataFormatError(path, f"line {n}", None, f"invalid JSON: {err.msg} (column {err.colno})") from None
            if not isinstance(row, dict):
                raise DataFormatError(path, f"line {n}", None, f"expected a JSON object, got {type(row).__name__}")
            yield f"line {n}", row


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
    return out
