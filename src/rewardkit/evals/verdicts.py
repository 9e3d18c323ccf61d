"""Measuring a verifier against labelled verdicts: single completions with an ``expected`` column
(1/0, true/false, "correct"/"incorrect"), scored by a rule (or any reward), compared at a threshold.

A verifier's two errors are not alike in RL: a false positive is a reward hack the policy will find,
a false negative a correct answer it is taught to avoid; an undecided sample (``None``) is neither,
and is reported apart (the rate at which the verifier declines to guess).
"""
from __future__ import annotations

from collections import defaultdict
from typing import Any, Sequence

import numpy as np

from ..protocol import Reward
from ..types import SampleRecord
from .metrics import stratified_bootstrap
from .runner import score_dataset

_TRUE = {"1", "true", "yes", "correct", "pass", "passed", "accepted"}
_FALSE = {"0", "false", "no", "incorrect", "wrong", "fail", "failed", "rejected"}


def expected_label(value: Any) -> bool | None:
    """A labelled verdict as a bool; ``None`` when the row carries none (it is left out)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise ValueError(f"expected must be 1/0, true/false or correct/incorrect, got {value!r}")


def has_verdicts(records: Sequence[Any]) -> bool:
    return bool(records) and all(isinstance(r, SampleRecord) for r in records) and any("expected" in r.columns for r in records)


def _rates(pred: list[bool | None], want: list[bool]) -> dict[str, Any]:
    n = len(want)
    decided = [(p, w) for p, w in zip(pred, want) if p is not None]
    pos = [p for p, w in decided if w]
    neg = [p for p, w in decided if not w]
    agree = sum(p == w for p, w in decided)
    fp, fn = sum(neg), sum(not p for p in pos)
    return {
        "n": n, "decided": len(decided), "undecided": n - len(decided),
        "undecided_rate": (n - len(decided)) / n if n else None,
        "agreement": agree / len(decided) if decided else None,
        "false_positive_rate": fp / len(neg) if neg else None,  # of the decided wrong answers, share passed
        "false_negative_rate": fn / len(pos) if pos else None,  # of the decided right answers, share failed
        "false_positives": fp, "false_negatives": fn,
        "confident_wrong_rate": (fp + fn) / n if n else None,  # wrong verdicts over every labelled sample
        "expected_positive": sum(want), "expected_negative": n - sum(want),
    }


def evaluate_verdicts(reward: Reward, records: Sequence[SampleRecord], *, threshold: float = 0.5, n_boot: int = 1000,
                      seed: int = 0, progress: bool = True) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Score ``records`` and compare ``score >= threshold`` with each row's ``expected`` verdict:
    agreement, false-positive / false-negative rates (with bootstrap intervals for agreement),
    per subset and overall. Rows without ``expected`` are left out and counted."""
    labelled: list[tuple[SampleRecord, bool]] = []
    unlabelled = 0
    for r in records:
        label = expected_label(r.columns.get("expected"))
        if label is None:
            unlabelled += 1
        else:
            labelled.append((r, label))
    if not labelled:
        raise ValueError("no row carries an 'expected' verdict")
    run = score_dataset(reward, [r for r, _ in labelled], progress=progress)
    rows, by_subset = [], defaultdict(lambda: ([], []))
    for (record, want), row in zip(labelled, run.rows):
        score = row.get("score")
        pred = None if score is None else bool(score >= threshold)
        rows.append({**row, "expected": want, "verdict": pred, "agrees": None if pred is None else pred == want})
        by_subset[record.subset][0].append(pred)
        by_subset[record.subset][1].append(want)
    overall = _rates([p for ps, _ in by_subset.values() for p in ps], [w for _, ws in by_subset.values() for w in ws])
    groups = {s: np.array([float(p == w) for p, w in zip(ps, ws) if p is not None]) for s, (ps, ws) in by_subset.items()}
    sizes = {s: len(g) for s, g in groups.items()}
    total = sum(sizes.values())
    if total:
        overall["agreement_ci"] = list(stratified_bootstrap(groups, lambda m: sum(m[s] * sizes[s] for s in m) / sum(sizes[s] for s in m), n_boot, seed))
    result = {
        "reward": run.reward, "threshold": threshold, "unlabelled": unlabelled, "overall": overall,
        "subsets": {s: _rates(ps, ws) for s, (ps, ws) in sorted(by_subset.items())},
        "timing": {"seconds": round(run.seconds, 3), "samples": run.samples},
    }
    return result, rows


def verdict_table(result: dict[str, Any], title: str = "") -> str:
    def pct(x: float | None) -> str:
        return "-" if x is None else f"{100 * x:.1f}"

    lines = [title] if title else []
    header = f"{'subset':<20}{'n':>6}{'agree%':>9}{'FP%':>7}{'FN%':>7}{'undecided%':>12}"
    lines += [header, "-" * len(header)]
    for name, r in [*result["subsets"].items(), ("overall", result["overall"])]:
        lines.append(f"{name:<20}{r['n']:>6}{pct(r['agreement']):>9}{pct(r['false_positive_rate']):>7}{pct(r['false_negative_rate']):>7}{pct(r['undecided_rate']):>12}")
    ci = result["overall"].get("agreement_ci")
    if ci:
        lines.append(f"agreement 95% interval: [{100 * ci[0]:.1f}, {100 * ci[1]:.1f}] (threshold {result['threshold']:g})")
    return "\n".join(lines)
