"""Split a data file into train and test by prompt, so no question is on both sides.

Splitting rows at random leaks: pairs that share a prompt (GSM8K has several solutions per question)
land on both sides and a reward model is rewarded for memorising the question. The bucket of a row is
a hash of its parsed prompt and the seed, so the split is stable across runs, machines and file order.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from .formats import _KIND, _PARSERS, DataFormatError, detect_row_format, iter_rows


def prompt_bucket(prompt: Any, seed: int = 0) -> float:
    """A number in [0, 1) fixed by the prompt and the seed."""
    key = json.dumps(prompt, sort_keys=True, ensure_ascii=False)
    return int(hashlib.sha256(f"{seed}|{key}".encode()).hexdigest()[:12], 16) / 16**12


def split_file(path: str | Path, out_dir: str | Path, *, test_fraction: float = 0.2, seed: int = 0, format: str = "auto") -> dict[str, Any]:
    """Write ``OUT/train.jsonl`` and ``OUT/test.jsonl`` (the original rows, unchanged) and return counts."""
    if not 0 < test_fraction < 1:
        raise ValueError(f"test fraction must be in (0, 1), got {test_fraction}")
    path, out_dir = Path(path), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    chosen_format = None if format == "auto" else format
    counts = {"train": 0, "test": 0}
    prompts: dict[str, set[str]] = {"train": set(), "test": set()}
    tmp = {side: out_dir / f".{side}.jsonl.tmp" for side in counts}
    handles = {side: p.open("w", encoding="utf-8") for side, p in tmp.items()}
    try:
        for where, row in iter_rows(path):
            if chosen_format is None:
                chosen_format = detect_row_format(row, path, where)
            if _KIND[chosen_format] == "scores":
                raise DataFormatError(path, where, None, "precomputed scores carry no prompt to split by")
            record = _PARSERS[chosen_format](row, path, where)
            side = "test" if prompt_bucket(record.prompt, seed) < test_fraction else "train"
            handles[side].write(json.dumps(row, ensure_ascii=False) + "\n")
            counts[side] += 1
            prompts[side].add(json.dumps(record.prompt, sort_keys=True))
    finally:
        for fh in handles.values():
            fh.close()
    for side, p in tmp.items():
        p.replace(out_dir / f"{side}.jsonl")
    return {
        "source": str(path), "format": chosen_format, "seed": seed, "test_fraction": test_fraction,
        "rows": counts, "prompts": {k: len(v) for k, v in prompts.items()},
        "files": {side: str(out_dir / f"{side}.jsonl") for side in counts},
    }
