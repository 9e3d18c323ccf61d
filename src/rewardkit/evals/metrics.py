"""Accuracy definitions shared by every evaluation (one definition; rewards and reports reuse it).

Pairwise: correct iff ``score(chosen) > score(rejected)`` strictly; a tie is wrong and counted; a
``None`` score (the reward could not score) is wrong and counted as unscored.
Best-of-N (RewardBench 2): correct iff a correct completion has the top score; when the top score is
shared by k completions of which m are correct, the item earns m/k (counted as a tie); an item with an
unscored completion is wrong and counted as unscored.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import numpy as np


@dataclass
class Outcome:
    value: float  # 1, 0, or a fraction (best-of-N ties)
    tie: bool = False
    unscored: bool = False


def _valid(x: float | None) -> bool:
    return x is not None and not (isinstance(x, float) and math.isnan(x))


def pair_outcome(chosen: float | None, rejected: float | None) -> Outcome:
    if not (_valid(chosen) and _valid(rejected)):
        return Outcome(0.0, unscored=True)
    if chosen == rejected:
        return Outcome(0.0, tie=True)
    return Outcome(1.0 if chosen > rejected else 0.0)


def best_of_n_outcome(scores: Sequence[float | None], num_correct: int) -> Outcome:
    """An item with any unscored completion is wrong (as in pairwise): otherwise a reward that fails
    on the incorrect completions would get credit for failing."""
    if not all(_valid(s) for s in scores):
        return Outcome(0.0, unscored=True)
    top = max(scores)
    winners = [i for i, s in enumerate(scores) if s == top]
    correct = sum(1 for i in winners if i < num_correct)
    return Outcome(correct / len(winners), tie=len(winners) > 1, unscored=False)


def stratified_bootstrap(
    groups: Mapping[str, np.ndarray],
    statistic: Callable[[Mapping[str, float]], float],
    n_boot: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
) -> tuple[float, float]:
    """Percentile interval of ``statistic(per-group mean)`` when each group's outcomes are resampled
    with replacement on their own (keeps the benchmark's subset sizes fixed)."""
    rng = np.random.default_rng(seed)
    names = [g for g in groups if len(groups[g])]
    if not names:
        return (float("nan"), float("nan"))
    draws = np.empty(n_boot)
    means = {g: rng.choice(groups[g], size=(n_boot, len(groups[g])), replace=True).mean(axis=1) for g in names}
    for b in range(n_boot):
        draws[b] = statistic({g: means[g][b] for g in names})
    lo, hi = np.quantile(draws, [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi)


def accuracy_stats(items: Sequence[Outcome], n_boot: int = 1000, seed: int = 0) -> dict:
    """Accuracy of one group of outcomes with its ties, unscored count and bootstrap 95% interval
    (a subset of a benchmark, or a slice of one such as the length-matched pairs)."""
    arr = np.array([o.value for o in items], dtype=float)
    lo, hi = stratified_bootstrap({"items": arr}, lambda m: m["items"], n_boot, seed)
    return {
        "accuracy": float(arr.mean()) if len(arr) else float("nan"),
        "n": len(items),
        "ties": sum(o.tie for o in items),
        "unscored": sum(o.unscored for o in items),
        "ci95": [lo, hi],
    }


def summarize(
    outcomes: Mapping[str, Sequence[Outcome]],
    sections: Mapping[str, Mapping[str, float]] | None = None,
    n_boot: int = 1000,
    seed: int = 0,
) -> dict:
    """Per-subset accuracy / ties / unscored with bootstrap 95% intervals, and the overall score:
    the mean of section scores when ``sections`` (section -> {subset: weight}) are given, otherwise
    the accuracy over all items."""
    arrays = {name: np.array([o.value for o in items], dtype=float) for name, items in outcomes.items()}
    subsets = {name: accuracy_stats(outcomes[name], n_boot, seed + 1 + k) for k, name in enumerate(sorted(outcomes))}
    total = sum(len(a) for a in arrays.values())
    result: dict = {
        "n": total,
        "ties": sum(s["ties"] for s in subsets.values()),
        "unscored": sum(s["unscored"] for s in subsets.values()),
        "subsets": subsets,
    }
    used_sections = {
        sec: {s: w for s, w in parts.items() if s in arrays and len(arrays[s])}
        for sec, parts in (sections or {}).items()
    }
    used_sections = {sec: parts for sec, parts in used_sections.items() if parts}
    if used_sections:
        def overall(means: Mapping[str, float]) -> float:
            return float(np.mean([sum(w * means[s] for s, w in parts.items()) / sum(parts.values()) for parts in used_sections.values()]))

        point = overall({s: float(a.mean()) for s, a in arrays.items() if len(a)})
        result["sections"] = {
            sec: {"accuracy": sum(w * subsets[s]["accuracy"] for s, w in parts.items()) / sum(parts.values()), "weights": dict(parts)}
            for sec, parts in used_sections.items()
        }
        result["overall_definition"] = "mean of section scores (each a weighted mean of its subsets)"
        stat = overall
    else:
        sizes = {s: len(a) for s, a in arrays.items()}
        point = float(np.concatenate(list(arrays.values())).mean()) if total else float("nan")
        result["overall_definition"] = f"accuracy over all {total} items"

        def stat(means: Mapping[str, float]) -> float:
            return sum(means[s] * sizes[s] for s in means) / sum(sizes[s] for s in means)

    result["overall"] = point
    result["overall_ci95"] = list(stratified_bootstrap(arrays, stat, n_boot, seed))
    result["bootstrap"] = {"resamples": n_boot, "seed": seed, "method": "percentile, stratified by subset"}
    # a stable key order: headline first
    ordered = {k: result[k] for k in ("overall", "overall_ci95", "overall_definition", "n", "ties", "unscored")}
    ordered.update({k: v for k, v in result.items() if k not in ordered})
    return ordered
