"""Process evaluation the ProcessBench way ("ProcessBench: Identifying Process Errors in Mathematical
Reasoning", Zheng et al., 2024): the predicted first error is the first step whose score falls
below a threshold (or none); accuracy on erroneous solutions (exact first-error step) and on correct
ones (no error predicted), and their harmonic mean F1. The threshold is chosen on a dev split of the
questions and reported; the test numbers never see it chosen. Per-step AUROC (annotated steps,
label 1 = correct) measures ranking without any threshold.

A reward without step scores (an outcome RM) is scored on every step prefix instead, one sample per
prefix: the "outcome RM applied to each prefix" baseline.
"""
from __future__ import annotations

import time
from collections import defaultdict
from typing import Any, Sequence

from ..data.formats import Dataset
from ..data.steps import StepRecord, dev_test_split
from ..protocol import Reward


def auroc(scores: Sequence[float], labels: Sequence[float]) -> float | None:
    """Area under the ROC curve (ties count half); labels >= 0.5 are positives. None if one class is absent."""
    pairs = sorted(zip(scores, labels), key=lambda p: p[0])
    pos = sum(1 for _, y in pairs if y >= 0.5)
    neg = len(pairs) - pos
    if pos == 0 or neg == 0:
        return None
    rank_sum, i = 0.0, 0
    while i < len(pairs):
        j = i
        while j < len(pairs) and pairs[j][0] == pairs[i][0]:
            j += 1
        avg_rank = (i + 1 + j) / 2  # ranks i+1 .. j share their mean
        rank_sum += avg_rank * sum(1 for k in range(i, j) if pairs[k][1] >= 0.5)
        i = j
    return (rank_sum - pos * (pos + 1) / 2) / (pos * neg)


def predict_first_error(step_scores: Sequence[float] | None, threshold: float) -> int | None:
    """Index of the first step scored below ``threshold``; -1 for none; None if the sample was not scored."""
    if step_scores is None:
        return None
    for j, s in enumerate(step_scores):
        if s < threshold:
            return j
    return -1


def first_error_metrics(step_scores: Sequence[Sequence[float] | None], first_errors: Sequence[int], threshold: float) -> dict[str, Any]:
    """Accuracy on erroneous / correct solutions and their harmonic mean. Unscored samples count as wrong."""
    err_hit = err_n = ok_hit = ok_n = unscored = 0
    for scores, fes in zip(step_scores, first_errors):
        pred = predict_first_error(scores, threshold)
        unscored += pred is None
        if fes >= 0:
            err_n += 1
            err_hit += pred == fes
        else:
            ok_n += 1
            ok_hit += pred == -1
    acc_err = err_hit / err_n if err_n else None
    acc_ok = ok_hit / ok_n if ok_n else None
    f1 = None
    if acc_err is not None and acc_ok is not None:
        f1 = 0.0 if acc_err + acc_ok == 0 else 2 * acc_err * acc_ok / (acc_err + acc_ok)
    return {"f1": f1, "error_accuracy": acc_err, "correct_accuracy": acc_ok, "n_error": err_n, "n_correct": ok_n, "unscored": unscored}


def step_auroc(step_scores: Sequence[Sequence[float] | None], labels: Sequence[Sequence[float | None]]) -> tuple[float | None, int]:
    xs, ys = [], []
    for scores, labs in zip(step_scores, labels):
        if scores is None:
            continue
        for s, y in zip(scores, labs):
            if y is not None:
                xs.append(s)
                ys.append(y)
    return auroc(xs, ys), len(xs)


def choose_threshold(step_scores: Sequence[Sequence[float] | None], first_errors: Sequence[int]) -> float:
    """The threshold that maximises first-error F1 on these (dev) samples; candidates are midpoints
    between the distinct step scores (ties broken toward the middle candidate, deterministically)."""
    values = sorted({s for scores in step_scores if scores for s in scores})
    if not values:
        return 0.5
    candidates = [values[0] - 1e-9] + [(a + b) / 2 for a, b in zip(values, values[1:])] + [values[-1] + 1e-9]
    if len(candidates) > 400:  # quantiles keep the search cheap on large dev sets
        step = len(candidates) / 400
        candidates = [candidates[int(k * step)] for k in range(400)]
    scored = [(first_error_metrics(step_scores, first_errors, t)["f1"] or 0.0, t) for t in candidates]
    best = max(f for f, _ in scored)
    ties = [t for f, t in scored if f == best]
    return ties[len(ties) // 2]


def score_steps(reward: Reward, records: Sequence[StepRecord], *, chunk: int = 64, progress: bool = True,
                truncated: list[bool] | None = None) -> tuple[list[list[float] | None], str]:
    """Step scores for every record: the reward's own ``steps`` when it gives them, else the
    reward's score of each step prefix (mode ``per-prefix``, ~mean-steps times the tokens).
    ``truncated``, when given, receives one flag per record: the reward cut its input (any prefix)."""
    from tqdm.auto import tqdm

    out: list[list[float] | None] = []
    flags = truncated if truncated is not None else []
    mode = "steps"
    with tqdm(total=len(records), unit="sol", desc=f"step scores ({getattr(reward, 'name', 'reward')})", disable=not progress) as bar:
        for lo in range(0, len(records), chunk):
            part = records[lo : lo + chunk]
            res = reward.score([r.prompt for r in part], [list(r.steps) for r in part], **_columns(part)) if mode == "steps" else None
            if res is not None and res.steps is not None:
                for sc, st in zip(res.scores, res.steps):
                    out.append(list(st) if sc is not None else None)
                flags.extend(bool(t) for t in res.extras.get("truncated", [False] * len(part)))
                bar.update(len(part))
                continue
            mode = "per-prefix"
            bar.set_postfix(mode=mode)
            prompts, comps, owners = [], [], []
            for i, r in enumerate(part):
                for k in range(len(r.steps)):
                    prompts.append(r.prompt)
                    comps.append(list(r.steps[: k + 1]))
                    owners.append(i)
            cols = {key: [vals[i] for i in owners] for key, vals in _columns(part).items()}
            pres = reward.score(prompts, comps, **cols)
            per: list[list[float | None]] = [[] for _ in part]
            cut = [False] * len(part)
            for i, s, t in zip(owners, pres.scores, pres.extras.get("truncated", [False] * len(owners))):
                per[i].append(s)
                cut[i] = cut[i] or bool(t)
            flags.extend(cut)
            out.extend(None if any(s is None for s in p) else [float(s) for s in p] for p in per)
            bar.update(len(part))
    return out, mode


def _columns(records: Sequence[StepRecord]) -> dict[str, list]:
    keys = sorted({k for r in records for k in r.columns})
    return {k: [r.columns.get(k) for r in records] for k in keys}


def evaluate_process(reward: Reward, data: Dataset, *, dev_fraction: float = 0.3, threshold: float | None = None, seed: int = 0) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(results, per-record rows). Results hold the chosen threshold, test F1 / AUROC overall and per
    subset (the ``f1`` field), and the dev numbers."""
    records: list[StepRecord] = list(data.records)
    start = time.perf_counter()
    truncated: list[bool] = []
    scores, mode = score_steps(reward, records, truncated=truncated)
    seconds = time.perf_counter() - start
    by_id = {id(r): s for r, s in zip(records, scores)}
    cut = {id(r): t for r, t in zip(records, truncated)}
    if threshold is None:
        dev, test = dev_test_split(records, dev_fraction, seed)
        if not dev or not test:
            raise ValueError(f"{data.source}: the dev/test split by question left one side empty ({len(dev)} dev, {len(test)} test); pass a fixed threshold")
        threshold = choose_threshold([by_id[id(r)] for r in dev], [r.first_error_step for r in dev])
        chosen_on = f"dev split ({dev_fraction:.0%} of questions, seed {seed})"
    else:
        dev, test = [], records
        chosen_on = "given"

    def block(rs: Sequence[StepRecord]) -> dict[str, Any]:
        sc = [by_id[id(r)] for r in rs]
        m = first_error_metrics(sc, [r.first_error_step for r in rs], threshold)
        m["auroc"], m["n_steps"] = step_auroc(sc, [r.labels for r in rs])
        m["n"] = len(rs)
        m["truncated"] = sum(cut[id(r)] for r in rs)
        return m

    groups: dict[str, list[StepRecord]] = defaultdict(list)
    for r in test:
        groups[r.subset].append(r)
    overall = block(test)
    subsets = {}
    for name, rs in sorted(groups.items()):
        m = block(rs)
        if m["n_correct"] == 0 and overall["correct_accuracy"] is not None and m["error_accuracy"] is not None:
            # A subset of only erroneous solutions (PRMBench's error types): its F1 pairs its error
            # accuracy with the accuracy on all correct test solutions.
            a, b = m["error_accuracy"], overall["correct_accuracy"]
            m["f1"] = 0.0 if a + b == 0 else 2 * a * b / (a + b)
            m["f1_uses_overall_correct_accuracy"] = True
        subsets[name] = m
    result = {
        "metric": "process",
        "reward": getattr(reward, "name", type(reward).__name__),
        "data": data.source,
        "format": data.format,
        "step_scores": mode,
        "threshold": threshold,
        "threshold_chosen_on": chosen_on,
        "overall": overall["f1"],
        "overall_definition": "first-error F1 (harmonic mean of accuracy on erroneous and on correct solutions) on the test questions",
        **{k: overall[k] for k in ("f1", "auroc", "error_accuracy", "correct_accuracy", "n", "n_error", "n_correct", "n_steps", "unscored", "truncated")},
        "subsets": subsets,
        "dev": block(dev) if dev else None,
        "timing": {"seconds": round(seconds, 3), "samples": len(records)},
    }
    test_ids = {id(r) for r in test}
    rows = []
    for r, s in zip(records, scores):
        rows.append({"id": r.id, "subset": r.subset, "split": "test" if id(r) in test_ids else "dev", "steps": s,
                     "first_error_step": r.first_error_step, "predicted_first_error": predict_first_error(s, threshold),
                     "truncated": cut[id(r)]})
    return result, rows


def process_table(result: dict[str, Any], title: str = "") -> str:
    """Terminal table: F1, accuracies and AUROC per subset, then overall."""
    def pct(x: Any) -> str:
        return "   -  " if x is None else f"{100 * x:6.2f}"

    rows = [("subset", "F1 %", "err acc %", "ok acc %", "AUROC %", "n", "unscored", "trunc")]
    for name, s in [*result["subsets"].items(), ("OVERALL", result)]:
        rows.append((name, pct(s["f1"]), pct(s["error_accuracy"]), pct(s["correct_accuracy"]), pct(s["auroc"]), str(s["n"]),
                     str(s["unscored"]), str(s.get("truncated", 0))))
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    text = "\n".join("  ".join(cell.ljust(w) for cell, w in zip(r, widths)) for r in rows)
    foot = f"threshold {result['threshold']:.4f} chosen on {result['threshold_chosen_on']}; step scores: {result['step_scores']}."
    return (f"{title}\n" if title else "") + text + "\n" + foot
