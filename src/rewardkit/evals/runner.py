"""Run a reward over a dataset and turn the scores into results (pairwise or best-of-N).

Scoring and evaluation are separate steps joined by one row format, so ``rewardkit score`` output
can be evaluated later with ``rewardkit eval --scores`` and give the same numbers.
"""
from __future__ import annotations

import time
from collections import defaultdict
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

from ..data.formats import Dataset
from ..data.resume import fingerprint
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


def column_names(records: Sequence[PairRecord | BestOfNRecord | SampleRecord]) -> list[str]:
    """The keyword columns of a dataset: every column any record has (a record without one passes None)."""
    return sorted({k for r in records for k in r.columns})


def _flatten(records: Sequence[PairRecord | BestOfNRecord | SampleRecord], keys: Sequence[str]) -> tuple[list, list, dict[str, list], list[tuple[int, int]]]:
    prompts, completions, spans = [], [], []
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


#: records per ``reward.score`` call; rewards that normalise over a prompt's samples see the samples of one chunk
CHUNK_RECORDS = 512


def score_dataset(
    reward: Reward,
    records: Sequence[PairRecord | BestOfNRecord | SampleRecord],
    *,
    chunk_records: int = CHUNK_RECORDS,
    progress: bool = True,
    on_rows: Callable[[list[dict[str, Any]]], None] | None = None,
    columns: Sequence[str] | None = None,
) -> ScoreRun:
    """Score every completion of every record. Work goes in chunks so ``on_rows`` can write results
    as they arrive (nothing computed is lost if a later chunk fails). Every chunk passes the same
    keyword ``columns`` (default: :func:`column_names` of ``records``; an engine scoring a part of a
    dataset passes the whole dataset's), so a chunk whose rows all lack a column passes it as None
    (the reward says "not applicable") rather than omitting it (the reward says "missing column")."""
    from tqdm.auto import tqdm

    run = ScoreRun(reward=getattr(reward, "name", type(reward).__name__), rows=[], scored=[])
    by_record = group_by(reward) == "record"  # e.g. a pairwise judge compares a record's own completions
    keys = column_names(records) if columns is None else list(columns)
    start = time.perf_counter()
    with tqdm(total=len(records), unit="rec", desc=f"scoring with {run.reward}", disable=not progress) as bar:
        for lo in range(0, len(records), chunk_records):
            chunk = records[lo : lo + chunk_records]
            prompts, completions, cols, spans = _flatten(chunk, keys)
            if by_record:
                cols["group_id"] = [r.id for r, (_, count) in zip(chunk, spans) for _ in range(count)]
            out = reward.score(prompts, completions, **cols)
            if len(out.scores) != len(prompts):
                raise ValueError(f"reward {run.reward} returned {len(out.scores)} scores for {len(prompts)} samples")
            new_rows = []
            for record, (first, count) in zip(chunk, spans):
                per = [out.row(first + j) for j in range(count)]
                scores = [p.pop("score") for p in per]
                applicable = any([p.pop("applicable", True) for p in per])  # pop from every sample
                if isinstance(record, PairRecord):
                    row = {"id": record.id, "subset": record.subset, "chosen_score": scores[0], "rejected_score": scores[1]}
                    if any(per[0].values()) or any(per[1].values()):
                        row["chosen_details"], row["rejected_details"] = per[0], per[1]
                elif isinstance(record, SampleRecord):
                    row = {"id": record.id, "subset": record.subset, "score": scores[0], **({"details": per[0]} if any(per[0].values()) else {})}
                else:
                    row = {"id": record.id, "subset": record.subset, "scores": scores, "num_correct": record.num_correct}
                    if any(any(p.values()) for p in per):
                        row["details"] = per
                if not applicable:
                    row["not_applicable"] = True
                new_rows.append(row)
            tally(run, chunk, new_rows)
            if on_rows is not None:
                on_rows(new_rows)
            bar.update(len(chunk))
    run.seconds = time.perf_counter() - start
    return run


def tally(run: ScoreRun, records: Sequence[PairRecord | BestOfNRecord | SampleRecord], rows: Sequence[dict[str, Any]]) -> None:
    """Add score rows (one per record, in order) to ``run``: the rows, the scored items evaluations
    read, the sample and truncation counts. One definition for rows scored here and rows an engine
    brings back from its workers."""
    if len(rows) != len(records):
        raise RuntimeError(f"internal error: {len(rows)} score rows for {len(records)} records")
    for record, row in zip(records, rows):
        if str(row.get("id")) != str(record.id):
            raise RuntimeError(f"internal error: score row {row.get('id')!r} for record {record.id!r}")
        if isinstance(record, PairRecord):
            details = [row.get("chosen_details") or {}, row.get("rejected_details") or {}]
        elif isinstance(record, SampleRecord):
            details = [row.get("details") or {}]
        else:
            details = row.get("details") or [{} for _ in record.completions]
        run.samples += len(details)
        truncated = sum(1 for d in details if d.get("truncated"))
        if truncated:
            run.truncated += truncated
            run.truncated_by_subset[record.subset] += truncated
        applicable = not row.get("not_applicable", False)
        if isinstance(record, PairRecord):
            run.scored.append(ScoredPair(record.id, row["chosen_score"], row["rejected_score"], record.subset, applicable=applicable))
        elif isinstance(record, BestOfNRecord):
            run.scored.append(ScoredBestOfN(record.id, list(row["scores"]), record.num_correct, record.subset, applicable=applicable))
    run.rows.extend(rows)


def record_digest(record: Any) -> str:
    """What names a record in an engine's shard: its id, subset and :func:`fingerprint`."""
    return f"{record.id}\t{record.subset}\t{fingerprint(record)}"


class RecordScorer:
    """The unit of work an engine runs in each of its workers: loads the reward from its spec once,
    then turns lists of records into score rows exactly as :func:`score_dataset` does here.

    ``columns``: the whole dataset's :func:`column_names` (a shard's own may lack some). ``shard_records``
    (the engine's records per call) must be a multiple of :data:`CHUNK_RECORDS` for a reward that groups
    samples by prompt: only then does each of its ``score`` calls see the very samples it sees in a
    local run."""

    def __init__(self, spec: str, options: dict[str, Any], columns: Sequence[str], shard_records: int = CHUNK_RECORDS):
        from ..specs import load_reward

        self.spec, self.columns = spec, list(columns)
        self.reward = load_reward(spec, **options)
        if group_by(self.reward) == "prompt" and shard_records % CHUNK_RECORDS:
            raise ValueError(f"{spec} scores the samples of a prompt together, within each call of {CHUNK_RECORDS} records here; "
                             f"use a --ray-batch-size that is a multiple of {CHUNK_RECORDS} (got {shard_records}) so it sees the groups it sees locally")

    def __call__(self, records: Sequence[PairRecord | BestOfNRecord | SampleRecord]) -> list[dict[str, Any]]:
        return score_dataset(self.reward, list(records), progress=False, columns=self.columns).rows

    def summary(self, records: Sequence[Any], rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
        """What an evaluation needs from the reward itself besides the rows: its name, its own statistics
        (:func:`~rewardkit.protocol.eval_summary`, e.g. a verifier's attack probes) and whether its
        ``vector`` holds ensemble members."""
        return {"name": getattr(self.reward, "name", type(self.reward).__name__),
                "eval_summary": eval_summary(self.reward, records, rows),
                "members_in_vector": bool(getattr(self.reward, "members_in_vector", False))}


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


def score_on_ray(spec: str, options: dict[str, Any], records: Sequence[Any], folder: Any, cfg: Any, *, key: str,
                 summary: bool = False, progress: bool = True) -> tuple[ScoreRun, dict[str, Any] | None]:
    """:func:`score_dataset` on a Ray cluster (:mod:`rewardkit.engines.ray`): a :class:`RecordScorer` per
    actor scores shards of ``records`` (resuming the shards already in ``folder``); the rows come back in
    input order and are tallied here as local rows are. With ``summary``, the reward's own
    :meth:`RecordScorer.summary` of the rows is computed once more on the cluster (an evaluation needs it)."""
    from functools import partial

    from ..engines.ray import call_once, connected, run_sharded

    make = partial(RecordScorer, spec, options, column_names(records), cfg.ray_batch_size)
    start = time.perf_counter()
    with connected(cfg) if summary else nullcontext():
        rows = list(run_sharded(make, records, folder, cfg, key=key, digest=record_digest, desc=f"scoring with {spec} on Ray", unit="rec", progress=progress))
        info = call_once(make, "summary", list(records), rows, cfg=cfg) if summary else None
    run = ScoreRun(reward=info["name"] if info else spec, rows=[], scored=[])
    tally(run, records, rows)
    run.seconds = time.perf_counter() - start
    return run, info


def check_evaluable(data: Dataset) -> None:
    if data.kind == "scores":
        raise ValueError(f"{data.source} holds precomputed scores; evaluate it with --scores, not with a reward")
    if data.kind == "samples":
        raise ValueError(f"{data.source} holds single completions without preferences; use `rewardkit score` for them")


def evaluate(reward: Reward, data: Dataset, *, n_boot: int = 1000, seed: int = 0, progress: bool = True,
             on_rows: Callable[[list[dict[str, Any]]], None] | None = None) -> tuple[dict[str, Any], ScoreRun]:
    """Score ``data`` with ``reward`` and summarize: the results dict that lands in results.json."""
    check_evaluable(data)
    run = score_dataset(reward, data.records, progress=progress, on_rows=on_rows)
    return evaluation(run, data, eval_summary(reward, data.records, run.rows), n_boot=n_boot, seed=seed), run


def evaluation(run: ScoreRun, data: Dataset, summary: dict[str, Any], *, n_boot: int = 1000, seed: int = 0) -> dict[str, Any]:
    """results.json from a finished :class:`ScoreRun` of ``data`` (scored here or by an engine) and the
    reward's own ``summary`` statistics."""
    result = evaluate_scored(run.scored, data.sections, n_boot=n_boot, seed=seed)[""]
    for subset, stats in result["subsets"].items():
        stats["truncated"] = run.truncated_by_subset.get(subset, 0)
    result.update(summary)  # e.g. a judge's position bias, a verifier's probes
    result.update(
        reward=run.reward,
        data=data.source,
        format=data.format,
        truncated=run.truncated,
        timing={"seconds": round(run.seconds, 3), "samples": run.samples, "samples_per_second": round(run.samples / run.seconds, 2) if run.seconds else None},
    )
    return result
