"""Benchmarks are data: a small YAML declaration names a source (a file or the built-in suite), an
optional format and subset filter, and sections with subset weights. ``--data`` accepts a benchmark
name (``suite``, ``suite:train``), a declaration file, or a data file."""
from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from . import synth
from .formats import Dataset, load_dataset


@dataclass
class Benchmark:
    name: str
    source: str  # "builtin:suite" or a path (relative to the declaration file)
    description: str = ""
    format: str = "auto"
    split: str = "test"
    subsets: list[str] | None = None
    sections: dict[str, dict[str, float]] = field(default_factory=dict)
    base_dir: Path | None = None

    @classmethod
    def from_yaml(cls, path: str | Path) -> "Benchmark":
        path = Path(path)
        spec = yaml.safe_load(path.read_text(encoding="utf-8"))
        if not isinstance(spec, dict):
            raise ValueError(f"{path}: a benchmark declaration must be a mapping")
        allowed = {"name", "source", "description", "format", "split", "subsets", "sections"}
        unknown = set(spec) - allowed
        if unknown:
            raise ValueError(f"{path}: unknown field(s) {sorted(unknown)}; allowed: {sorted(allowed)}")
        for key in ("name", "source"):
            if not spec.get(key):
                raise ValueError(f"{path}: field '{key}' is required")
        sections = spec.get("sections") or {}
        for sec, parts in sections.items():
            if not isinstance(parts, dict) or not parts or not all(isinstance(w, (int, float)) and w > 0 for w in parts.values()):
                raise ValueError(f"{path}: field 'sections.{sec}' must map subsets to positive weights")
        return cls(base_dir=path.parent, **{k: v for k, v in spec.items()})

    def load(self, split: str | None = None, limit: int | None = None, seed: int = 0) -> Dataset:
        split = split or self.split
        if self.source == "builtin:suite":
            records = synth.generate(split, limit, seed=seed, subsets=tuple(self.subsets or synth.SUBSETS))
            data = Dataset("pairs", records, f"builtin:suite/{split} (seed {seed})", "pairwise")
        else:
            path = Path(self.source)
            if not path.is_absolute() and self.base_dir is not None:
                path = self.base_dir / path
            data = load_dataset(path, self.format, limit=limit)
            if self.subsets:
                data.records = [r for r in data.records if r.subset in self.subsets]
        data.sections = {k: dict(v) for k, v in self.sections.items()}
        return data


def builtin_benchmarks() -> dict[str, Benchmark]:
    out = {}
    folder = resources.files("rewardkit.data").joinpath("benchmarks")
    for entry in sorted(folder.iterdir(), key=lambda p: p.name):
        if entry.name.endswith(".yaml"):
            with resources.as_file(entry) as path:
                bench = Benchmark.from_yaml(path)
            out[bench.name] = bench
    return out


def resolve_data(spec: str, *, format: str = "auto", limit: int | None = None, seed: int = 0) -> Dataset:
    """``suite`` / ``suite:train`` / ``my_bench.yaml`` / ``data.jsonl``."""
    name, _, split = spec.partition(":")
    if name == "arith-steps" and not Path(spec).exists():  # the suite's arith subset as step-labelled data
        from .steps import arith_steps

        return arith_steps(split or "test", limit, seed)
    known = builtin_benchmarks()
    if name in known and not Path(spec).exists():
        if split and split not in synth.SPLITS and known[name].source == "builtin:suite":
            raise ValueError(f"unknown split {split!r} for {name}; choose from {', '.join(synth.SPLITS)}")
        return known[name].load(split or None, limit=limit, seed=seed)
    path = Path(spec)
    if path.suffix in (".yaml", ".yml"):
        return Benchmark.from_yaml(path).load(limit=limit, seed=seed)
    if not path.exists():
        raise FileNotFoundError(f"--data {spec!r}: no such file, and not a built-in benchmark (known: {', '.join(known)})")
    return load_dataset(path, format, limit=limit)


def describe_builtin() -> list[dict[str, Any]]:
    return [{"name": b.name, "description": b.description, "sections": b.sections} for b in builtin_benchmarks().values()]
