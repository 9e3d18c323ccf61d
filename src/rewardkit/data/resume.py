"""Resumable JSONL outputs: one row per input record, written as it goes, each row carrying its
record's id and a fingerprint of its input, with the settings of the run beside the file
(``OUT.meta.json``). A rerun keeps the rows that still match the input and does only the rest
(``rewardkit score``, ``rewardkit annotate``); a rerun with other settings is refused, so one file
never mixes two runs."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import sys
from collections import Counter
from pathlib import Path
from typing import Any, Iterable, Sequence


def fingerprint(record: Any) -> str:
    """A short hash of what a record holds besides its id (prompt, responses, columns): rows without
    their own id are named by line number, so an id alone cannot tell that the input changed."""
    body = {k: v for k, v in dataclasses.asdict(record).items() if k not in ("id", "subset")}
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()[:16]


def meta_path(out: Path) -> Path:
    return out.with_name(out.name + ".meta.json")


def check_settings(out: Path, meta: dict[str, Any], *, overwrite: bool, also: Path | None = None) -> None:
    """Refuse to resume ``out`` when ``OUT.meta.json`` records other settings than ``meta`` (a key
    whose value differs); the error names each change. ``also``: another path whose existence means
    there is work to resume (an engine's folder of finished shards)."""
    path = meta_path(out)
    if overwrite or not (out.exists() or (also is not None and also.exists())) or not path.exists():
        return
    before = json.loads(path.read_text(encoding="utf-8"))
    changed = [k for k in meta if _set(before.get(k)) != _set(meta[k])]
    if changed:
        raise ValueError(f"--out {out} holds results made with other settings ({', '.join(f'{k}: {before.get(k)!r} then, {meta[k]!r} now' for k in changed)}); "
                         "resuming would mix them: pass --overwrite, or choose another --out")


def _set(value: Any) -> Any:
    """A setting as compared on resume: options left unset (None) are dropped from nested dicts, so an
    option added by a newer rewardkit (unset, as every older run had it) does not block a resume."""
    if isinstance(value, dict):
        return {k: _set(v) for k, v in value.items() if v is not None}
    return value


def write_settings(out: Path, meta: dict[str, Any]) -> None:
    meta_path(out).write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")


def resume(out: Path, records: Sequence[Any], keys: Iterable[str], *, what: str = "result row") -> tuple[int, list[Any]]:
    """(rows of ``out`` kept, the records still to do). A row is kept for an input record when it
    has the record's id and :func:`fingerprint` (``input_sha``; as many rows per id as the input has
    records with it); rows for ids this input does not hold (a smaller ``--limit``) are kept too. A
    torn last line (a kill mid-write), blank lines and rows whose input changed since (same id, other
    fingerprint) are dropped, by rewriting ``out`` through a temporary file. A line without an id and
    one of ``keys`` is an error (naming ``what`` such a row is): ``out`` is then some other file."""
    prints = [(r.id, fingerprint(r)) for r in records]
    wanted = Counter(prints)  # (id, fingerprint) -> records still without a row
    ids = {r.id for r in records}
    keys = set(keys)
    data = out.read_bytes()
    complete = data[: data.rfind(b"\n") + 1]
    # rows end at "\n" only: JSON written with ensure_ascii=False keeps U+2028, U+2029 and U+0085 raw
    # inside strings, where str.splitlines would cut a row in two (JSON escapes "\r", so a raw one is
    # whitespace between tokens); lines stay bytes, so a rewrite copies them exactly
    lines = [line + b"\n" for line in complete.split(b"\n")[:-1]]
    kept: list[bytes] = []
    taken: Counter = Counter()
    dropped = others = 0
    for n, line in enumerate(lines, 1):
        text = line.decode("utf-8", errors="replace")
        if not text.strip():
            dropped += 1
            continue
        try:
            row = json.loads(text)
        except json.JSONDecodeError:
            row = None
        if not isinstance(row, dict) or "id" not in row or not keys & set(row):
            raise ValueError(f"--out {out}:line {n} is not a {what} of this data ({text.strip()[:80]!r}); "
                             "pass --overwrite to replace the file, or choose another --out")
        rid = str(row["id"])
        if rid not in ids:
            others += 1  # not in this input: left as it is
            kept.append(line)
            continue
        # a row written before fingerprints existed matches any record of its id
        match = (rid, row["input_sha"]) if "input_sha" in row else next(((i, f) for i, f in wanted if i == rid and wanted[(i, f)]), None)
        if match is not None and wanted[match] > 0:
            wanted[match] -= 1
            taken[match] += 1
            kept.append(line)
        else:  # repeated, or made for other text under the same id (rows named by line number, a line inserted since)
            dropped += 1
    if dropped:
        tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
        with tmp.open("wb") as fh:
            fh.writelines(kept)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, out)
        print(f"note: dropped {dropped} lines of {out}: blank, repeated, or made for an input row that has changed since", file=sys.stderr)
    elif len(complete) < len(data):
        with out.open("r+b") as fh:
            fh.truncate(len(complete))
    if others:
        print(f"note: kept {others} rows of {out} whose ids are not in this input (e.g. a run with a larger --limit)", file=sys.stderr)
    todo = []
    for r, key in zip(records, prints):
        if taken[key]:
            taken[key] -= 1
        else:
            todo.append(r)
    return len(kept) - others, todo
