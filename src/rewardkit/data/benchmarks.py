"""Benchmarks are data: a small YAML declaration names a source (a file, the built-in suite or the
built-in step data), an optional format and subset filter, and sections with subset weights.
``--data`` accepts a benchmark name (``suite``, ``suite:train``, ``arith-steps:train``,
``gsm8k-errors:PATH``), a declaration file, or a data file: :func:`resolve_data` is the one place that
turns ``--data`` into records, for every verb."""
from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from . import synth
from .formats import Dataset, load_dataset
from .io import read_yaml
from .steps import arith_steps, gsm8k_error_steps, load_steps

#: built-in generated sources a declaration can name
BUILTIN_SOURCES = ("builtin:suite", "builtin:arith-steps", "builtin:gsm8k-errors")


@dataclass
class Benchmark:
    name: str
    source: str  # "builtin:suite" or a path (relative to the declaration file)
    description: str = ""
    format: str = "auto"
    split: str = "test"
    subsets: list[str] | None = None
    sections: dict[str, dict[str, float]] = field(default_factory=dict)
    #: what ``NAME:ARG`` means: ``split`` (``suite:train``) or ``path`` (``gsm8k-errors:FILE``)
    argument: str = "split"
    aliases: list[str] = field(default_factory=list)
    base_dir: Path | None = None

    @classmethod
    def from_yaml(cls, path: str | Path) -> "Benchmark":
        path = Path(path)
        spec = read_yaml(path)
        if not isinstance(spec, dict):
            raise ValueError(f"{path}: a benchmark declaration must be a mapping")
        allowed = {"name", "source", "description", "format", "split", "subsets", "sections", "argument", "aliases"}
        unknown = set(spec) - allowed
        if unknown:
            raise ValueError(f"{path}: unknown field(s) {sorted(unknown)}; allowed: {sorted(allowed)}")
        for key in ("name", "source"):
            if not spec.get(key):
                raise ValueError(f"{path}: field '{key}' is required")
        if spec.get("argument", "split") not in ("split", "path"):
            raise ValueError(f"{path}: field 'argument' must be 'split' or 'path'")
        if str(spec["source"]).startswith("builtin:") and spec["source"] not in BUILTIN_SOURCES:
            raise ValueError(f"{path}: field 'source': unknown built-in {spec['source']!r}; known: {', '.join(BUILTIN_SOURCES)}")
        sections = spec.get("sections") or {}
        for sec, parts in sections.items():
            if not isinstance(parts, dict) or not parts or not all(isinstance(w, (int, float)) and w > 0 for w in parts.values()):
                raise ValueError(f"{path}: field 'sections.{sec}' must map subsets to positive weights")
        return cls(base_dir=path.parent, **{k: v for k, v in spec.items()})

    def load(self, arg: str | None = None, limit: int | None = None, seed: int = 0, skip_invalid: bool = False) -> Dataset:
        """The records; ``arg`` is the split (default ``self.split``) or, for ``argument: path``, the file."""
        if self.argument == "path":
            if not arg:
                raise ValueError(f"{self.name} needs a path: {self.name}:PATH ({self.description})")
            data = gsm8k_error_steps(arg, limit, seed)
        elif self.source in ("builtin:suite", "builtin:arith-steps"):
            split = arg or self.split
            if split not in synth.SPLITS:
                raise ValueError(f"unknown split {split!r} for {self.name}; choose from {', '.join(synth.SPLITS)}")
            if self.source == "builtin:arith-steps":
                data = arith_steps(split, limit, seed)
            else:
                records = synth.generate(split, limit, seed=seed, subsets=tuple(self.subsets or synth.SUBSETS))
                data = Dataset("pairs", records, f"builtin:suite/{split} (seed {seed})", "pairwise")
        else:
            path = Path(self.source)
            if not path.is_absolute() and self.base_dir is not None:
                path = self.base_dir / path
            data = load_dataset(path, self.format, limit=limit, skip_invalid=skip_invalid)
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


def _builtin(spec: str) -> tuple[Benchmark, str] | None:
    """(benchmark, its argument) when ``spec`` names a built-in benchmark (a file of that name wins)."""
    name, _, arg = spec.partition(":")
    if Path(spec).exists():
        return None
    for bench in builtin_benchmarks().values():
        if name == bench.name or name in bench.aliases:
            return bench, arg
    return None


def resolve_data(spec: str, *, format: str = "auto", limit: int | None = None, seed: int = 0, skip_invalid: bool = False) -> Dataset:
    """``suite`` / ``suite:train`` / ``arith-steps:train`` / ``gsm8k-errors:FILE`` / ``my_bench.yaml`` /
    ``data.jsonl`` (any layout of :mod:`rewardkit.data.formats`, step-labelled files included;
    ``skip_invalid`` leaves out step rows that fail validation instead of stopping)."""
    found = _builtin(spec)
    if found is not None:
        bench, arg = found
        return bench.load(arg or None, limit=limit, seed=seed, skip_invalid=skip_invalid)
    path = Path(spec)
    if path.suffix in (".yaml", ".yml"):
        return Benchmark.from_yaml(path).load(limit=limit, seed=seed, skip_invalid=skip_invalid)
    if not path.exists():
        raise FileNotFoundError(f"--data {spec!r}: no such file, and not a built-in benchmark (known: {', '.join(builtin_benchmarks())})")
    return load_dataset(path, format, limit=limit, skip_invalid=skip_invalid)


def resolve_step_data(spec: str, *, limit: int | None = None, seed: int = 0, skip_invalid: bool = False) -> Dataset:
    """:func:`resolve_data` for verbs that need step-labelled solutions (PRM training, label-steps):
    other kinds of records are an error that says so."""
    found = _builtin(spec)
    if found is None and not spec.endswith((".yaml", ".yml")):
        return load_steps(spec, limit=limit, skip_invalid=skip_invalid)
    data = resolve_data(spec, limit=limit, seed=seed, skip_invalid=skip_invalid)
    if data.kind != "steps":
        raise ValueError(f"--data {spec} holds {data.kind} records; this needs step-labelled solutions (e.g. arith-steps:train)")
    return data


def describe_builtin() -> list[dict[str, Any]]:
    return [{"name": b.name, "description": b.description, "sections": b.sections, "argument": b.argument, "aliases": b.aliases}
            for b in builtin_benchmarks().values()]
