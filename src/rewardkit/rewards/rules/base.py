"""Verifiable (rule) rewards: a per-sample check function wrapped once into a batch reward.

A check is a plain module-level function ``check(completion: str, **columns) -> Verdict | float | None``.
It receives the completion's text and the per-sample values of the columns it names as keyword-only
parameters (a gold ``answer``, ``tests``, a ``constraint`` ...); ``prompt`` is passed too when it
asks for it. ``None`` means "cannot decide" (never 0): the reason goes into ``extras["reason"]``.

Checks must be safe to call from threads and worker processes (no ``signal.alarm``, no global
state); ``workers > 1`` fans the batch out over a process pool.
"""
from __future__ import annotations

import contextvars
import inspect
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from ...protocol import BaseReward, completion_text, time_left
from ...types import Completion, Prompt, RewardOutput


@dataclass(frozen=True)
class Verdict:
    """One sample's result: ``score`` (``None`` = undecided), the ``reason`` when undecided or worth
    reporting, and ``info`` (e.g. the extracted answer) that lands in ``extras`` under its keys."""

    score: float | None
    reason: str | None = None
    info: dict[str, Any] = field(default_factory=dict)


#: Keyword parameters of any check that never come from data columns (only from the spec's options).
OPTION_ONLY = frozenset({"timeout", "memory_mb", "workers", "debug"})


def as_verdict(value: Any) -> Verdict:
    if isinstance(value, Verdict):
        return value
    if value is None:
        return Verdict(None, "undecided")
    if isinstance(value, bool):
        return Verdict(float(value))
    return Verdict(float(value))


def _run_one(check: Callable[..., Any], text: str, kwargs: dict[str, Any]) -> Verdict:
    left = time_left()
    if left is not None and left <= 0:
        return Verdict(None, "deadline reached before this sample was checked", {"status": "deadline"})
    try:
        return as_verdict(check(text, **kwargs))
    except Exception as err:  # a crashing check must not take the batch down; it is reported
        return Verdict(None, f"check raised {type(err).__name__}: {err}")


def _run_chunk(check: Callable[..., Any], items: list[tuple[str, dict[str, Any]]]) -> list[Verdict]:
    return [_run_one(check, text, kwargs) for text, kwargs in items]


class RuleReward(BaseReward):
    """Batch reward around a per-sample check. Required columns are the check's keyword-only
    parameters without defaults; a missing one raises an error naming it.

    workers: 0/1 runs in this process; N > 1 uses a pool of N worker processes (the check and its
        arguments must be picklable: a module-level function and plain data). A check that declares
        ``concurrency`` (a function giving a thread count; the code sandbox does) runs its samples
        in that many threads instead (``workers`` > 1 sets the count).

    Under a :func:`~rewardkit.protocol.work_deadline`, samples not started by then are ``None``.
    """

    kind = "rule"

    def __init__(self, check: Callable[..., Any], *, name: str | None = None, workers: int = 0, chunk_size: int = 64, **options: Any):
        self.check = check
        self.options = options  # fixed keyword arguments of the check (e.g. a timeout)
        self.name = name or f"rule:{getattr(check, '__name__', 'check')}"
        self.workers = int(workers)
        self.chunk_size = int(chunk_size)
        params = inspect.signature(check).parameters.values()
        unknown = sorted(set(options) - {p.name for p in params if p.kind is p.KEYWORD_ONLY})
        if unknown:
            raise TypeError(f"unknown option(s) {unknown} for {getattr(check, '__name__', 'the check')}")
        # Resource limits and the like are options only: a request body or a data row must not set them.
        fixed = set(getattr(check, "option_only", ())) | OPTION_ONLY | set(options)
        self.required = [p.name for p in params if p.kind is p.KEYWORD_ONLY and p.default is p.empty and p.name not in options]
        self.optional = [p.name for p in params if p.kind is p.KEYWORD_ONLY and p.default is not p.empty and p.name not in fixed]
        self.wants_prompt = "prompt" in self.required or "prompt" in self.optional
        self.reads_prompt = self.wants_prompt  # a check of the completion's text scores it whatever images the prompt shows

    def _arguments(self, prompts: Sequence[Prompt], n: int, columns: dict[str, Any]) -> list[dict[str, Any]]:
        per_sample: dict[str, list[Any]] = {}
        for col in self.required:
            if col == "prompt":
                continue
            per_sample[col] = self.require_column(columns, col, n)
        for col in self.optional:
            if col != "prompt" and columns.get(col) is not None:
                per_sample[col] = self.require_column(columns, col, n)
        args = []
        for i in range(n):
            # an optional column with no value for this sample leaves the check's default in place
            kw = {**self.options, **{col: values[i] for col, values in per_sample.items() if not (col in self.optional and values[i] is None)}}
            if self.wants_prompt:
                kw["prompt"] = prompts[i]
            args.append(kw)
        return args

    def score(self, prompts: Sequence[Prompt], completions: Sequence[Completion], **columns: Any) -> RewardOutput:
        """Samples whose required column value is ``None`` (e.g. no gold ``answer`` on that row) are
        not applicable: ``None`` with ``extras["applicable"] = False``, so evaluations can report them
        apart from samples the rule failed to decide."""
        self._check_lengths(prompts, completions)
        n = len(completions)
        arguments = self._arguments(prompts, n, columns)
        missing = [next((c for c in self.required if c != "prompt" and kw.get(c) is None), None) for kw in arguments]
        todo = [i for i in range(n) if missing[i] is None]
        items = [(completion_text(completions[i]), arguments[i]) for i in todo]
        concurrent = getattr(self.check, "concurrency", None)
        if self.workers > 1 and len(items) > self.chunk_size:
            chunks = [items[i : i + self.chunk_size] for i in range(0, len(items), self.chunk_size)]
            with ProcessPoolExecutor(max_workers=self.workers) as pool:
                decided = [v for part in pool.map(_run_chunk, [self.check] * len(chunks), chunks) for v in part]
        elif concurrent and len(items) > 1:
            # Checks that wait on subprocesses (the code sandbox) run side by side under one
            # deadline, each thread in a copy of this context (so it sees the work deadline).
            threads = min(len(items), self.workers if self.workers > 1 else concurrent())
            with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="rewardkit-rule") as pool:
                futures = [pool.submit(contextvars.copy_context().run, _run_one, self.check, text, kw) for text, kw in items]
                decided = [f.result() for f in futures]
        else:
            decided = _run_chunk(self.check, items)
        verdicts: list[Verdict] = [Verdict(None, f"not applicable: no '{col}' for this sample") for col in missing]
        for i, verdict in zip(todo, decided):
            verdicts[i] = verdict
        out = verdicts_to_output(verdicts)
        if len(todo) < n:
            out.extras["applicable"] = [m is None for m in missing]
        return out


def verdicts_to_output(verdicts: Sequence[Verdict]) -> RewardOutput:
    extras: dict[str, list] = {}
    if any(v.reason for v in verdicts):
        extras["reason"] = [v.reason for v in verdicts]
    keys = sorted({k for v in verdicts for k in v.info})
    for key in keys:
        extras[key] = [v.info.get(key) for v in verdicts]
    return RewardOutput(scores=[v.score for v in verdicts], extras=extras)
