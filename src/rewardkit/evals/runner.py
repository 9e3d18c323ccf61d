"""Run a reward over a dataset and turn the scores into results (pairwise or best-of-N).

Scoring and evaluation are separate steps joined by one row format, so ``rewardkit score`` output
can be evaluated later with ``rewardkit eval --scores`` and give the same numbers.
"""
from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

from ..data.formats import Dataset
from ..protocol import Reward, eval_summary, group_by
from ..types import BestOfNRecord, PairRecord, SampleRecord, ScoredBestOfN, ScoredPair
from .metrics import Outcome, best_of_n_outcome, pair_outcome, summarize


@dataclass
class ScoreRun:
    reward: str
    rows: list[dict[str, Any]]  # one JSON row per input record, in input order
    scored: list[ScoredPair | ScoredBestOfN]
    seconds: float = 0.0
    samples: int = 0
    truncated: int = 0  # samples (completions) whose input was truncated
    truncated_by_subset: dict[str, int] = field(default_factory=lambda: defaultdict(int))


def _flatten(records: Sequence[PairRecord | BestOfNRecord | SampleRecord]) -> tuple[list, list, dict[str, list], list[tuple[int, int]]]:
    prompts, completions, spans = [], [], []
    keys = sorted({k for r in records for k in r.columns})
    columns: dict[str, list] = {k: [] for k in keys}
    for r in records:
        if isinstance(r, PairRecord):
            comps = [r.chosen, r.rejected]
        elif isinstance(r, SampleRecord):
            comps = [r.completion]
        else:
            comps = list(r.completions)
        spans.append((len(prompts), len(comps)))
        for c in comps:
            prompts.append(r.prompt)
            completions.append(c)
            for k in keys:
                columns[k].append(r.columns.get(k))
    return prompts, completions, columns, spans


def score_dataset(
    reward: Reward,
    records: Sequence[PairRecord | BestOfNRecord | SampleRecord],
    *,
    chunk_records: int = 512,
    progress: bool = True,
    on_rows: Callable[[list[dict[str, Any]]], None] | None = None,
) -> ScoreRun:
    """Score every completion of every record. Work goes in chunks so ``on_rows`` can write results
    as they arrive (nothing computed is lost if a later chunk fails)."""
    from tqdm.auto import tqdm

    run = ScoreRun(reward=getattr(reward, "name", type(reward).__name__), rows=[], scored=[])
    by_record = group_by(reward) == "record"  # e.g. a pairwise judge compares a record's own completions
    start = time.perf_counter()
    with tqdm(total=len(records), unit="rec", desc=f"scoring with {run.reward}", disable=not progress) as bar:
        for lo in range(0, len(records), chunk_records):
            chunk = records[lo : lo + chunk_records]
            prompts, completions, columns, spans = _flatten(chunk)
            if by_record:
                columns["group_id"] = [r.id for r, (_, count) in zip(chunk, spans) for _ in range(count)]
            out = reward.score(prompts, completions, **columns)
            if len(out.scores) != len(prompts):
                raise ValueError(f"reward {run.reward} returned {len(out.scores)} scores for {len(prompts)} samples")
            run.samples += len(prompts)
            new_rows = []
            for record, (first, count) in zip(chunk, spans):
                per = [out.row(first + j) for j in range(count)]
                for p in per:
                    if p.get("truncated"):
                        run.truncated += 1
                        run.truncated_by_subset[record.subset] += 1
                scores = [p.pop("score") for p in per]
                applicable = any([p.pop("applicable", True) for p in per])  # pop from every sample
                if isinstance(record, PairRecord):
                    row = {"id": record.id, "subset": record.subset, "chosen_score": scores[0], "rejected_score": scores[1]}
                    if any(per[0].values()) or any(per[1].values()):
                        row["chosen_details"], row["rejected_details"] = per[0], per[1]
                    run.scored.append(ScoredPair(record.id, scores[0], scores[1], record.subset, applicable=applicable))
                elif isinstance(record, SampleRecord):
                    row = {"id": record.id, "subset": record.subset, "score": scores[0], **({"details": per[0]} if any(per[0].values()) else {})}
                else:
                    row = {"id": record.id, "subset": record.subset, "scores": scores, "num_correct": record.num_correct}
                    if any(any(p.values()) for p in per):
                        row["details"] = per
                    run.scored.append(ScoredBestOfN(record.id, scores, record.num_correct, record.subset, applicable=applicable))
                if not applicable:
                    row["not_applicable"] = True
                new_rows.append(row)
            run.rows.extend(new_rows)
            if on_rows is not None:
                on_rows(new_rows)
            bar.update(len(chunk))
    run.seconds = time.perf_counter() - start
    return run


def outcomes_by_subset(scored: Iterable[ScoredPair | ScoredBestOfN]) -> dict[str, list[Outcome]]:
    """Outcomes per subset; items the reward does not apply to are left out (and counted by
    :func:`not_applicable_by_subset`). A subset with none left keeps an empty list."""
    groups: dict[str, list[Outcome]] = defaultdict(list)
    for s in scored:
        if not s.applicable:
            groups[s.subset]  # noqa: B018 - keep the subset visible with n = 0
            continue
        if isinstance(s, ScoredPair):
            groups[s.subset].append(pair_outcome(s.chosen_score, s.rejected_score))
        else:
            groups[s.subset].append(best_of_n_outcome(s.scores, s.num_correct))
    return dict(groups)


def evaluate_scored(
    scored: Sequence[ScoredPair | ScoredBestOfN],
    sections: dict[str, dict[str, float]] | None = None,
    *,
    n_boot: int = 1000,
    seed: int = 0,
) -> dict[str, dict[str, Any]]:
    """Results per model (records without a model column are grouped under ``""``)."""
    by_model: dict[str, list] = defaultdict(list)
    for s in scored:
        by_model[s.model or ""].append(s)
    out = {}
    for model, items in by_model.items():
        result = summarize(outcomes_by_subset(items), sections, n_boot=n_boot, seed=seed)
        result["metric"] = "best-of-n" if isinstance(items[0], ScoredBestOfN) else "pairwise"
        skipped: dict[str, int] = defaultdict(int)
        for s in items:
            if not s.applicable:
                skipped[s.subset] += 1
        result["not_applicable"] = sum(skipped.values())
        for subset, stats in result["subsets"].items():
            stats["not_applicable"] = skipped.get(subset, 0)
        out[model] = result
    return out


def evaluate(reward: Reward, data: Dataset, *, n_boot: int = 1000, seed: int = 0, progress: bool = True,
             on_rows: Callable[[list[dict[str, Any]]], None] | None = None) -> tuple[dict[str, Any], ScoreRun]:
    """Score ``data`` with ``reward`` and summarize: the results dict that lands in results.json."""
    if data.kind == "scores":
        raise ValueError(f"{data.source} holds precomputed scores; evaluate it with --scores, not with a reward")
    if data.kind == "samples":
        raise ValueError(f"{data.source} holds single completions without preferences; use `rewardkit score` for them")
    run = score_dataset(reward, data.records, progress=progress, on_rows=on_rows)
    result = evaluate_scored(run.scored, data.sections, n_boot=n_boot, seed=seed)[""]
    for subset, stats in result["subsets"].items():
        stats["truncated"] = run.truncated_by_subset.get(subset, 0)
    result.update(eval_summary(reward, data.records, run.rows))  # e.g. a judge's position bias, a verifier's probes
    result.update(
        reward=run.reward,
        data=data.source,
        format=data.format,
        truncated=run.truncated,
        timing={"seconds": round(run.seconds, 3), "samples": run.samples, "samples_per_second": round(run.samples / run.seconds, 2) if run.seconds else None},
    )
    return result, run
