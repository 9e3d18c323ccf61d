"""Automatic step labels by Monte-Carlo rollouts (no human annotation).

"Math-Shepherd: Verify and Reinforce LLMs Step-by-step without Human Annotations" (Wang et al.,
2024): from the prefix ending at step k, a generator completes the solution N times; a verifier (the
math rule against the gold answer) checks each completion. The soft label of step k is the share of
rollouts that reach the right answer, the hard label is 1 if any does. "Rewarding Progress: Scaling
Automated Process Verifiers for LLM Reasoning" (Setlur et al., 2024) uses the change of that value,
``progress_k = v_k - v_{k-1}`` (``v_{-1}``: rollouts from the question alone), as the step reward.

Rows are written to the output JSONL one solution at a time (append + flush), so a killed run
loses at most the solution in flight, and a rerun skips the ids already in the file. Sampling is
seeded per (seed, prompt, sample) by the generation client, so a rerun draws the same rollouts.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Literal, Sequence

from ..data.steps import StepRecord, first_error_of, split_steps


@dataclass
class RolloutConfig:
    rollouts: int = 8
    max_new_tokens: int = 256
    temperature: float = 0.7
    top_p: float = 0.95
    seed: int = 0
    step_separator: str = "\n"
    label: Literal["hard", "soft"] = "hard"  # which estimate goes into ``labels``
    value_before: bool = True  # roll out from the bare question too (for progress of step 0)


def _prefix_text(steps: Sequence[str], sep: str) -> str:
    return "".join(s + sep for s in steps)


def label_solution(record: StepRecord, answer: Any, client: Any, verifier: Any, cfg: RolloutConfig) -> dict[str, Any]:
    """Values, hard/soft labels and progress for one solution; one batched ``generate`` call over
    all its prefixes (``rollouts`` samples each)."""
    prefixes = [_prefix_text(record.steps[: k + 1], cfg.step_separator) for k in range(len(record.steps))]
    if cfg.value_before:
        prefixes = [""] + prefixes
    gens = client.generate([record.prompt] * len(prefixes), max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature,
                           top_p=cfg.top_p, n=cfg.rollouts, seed=cfg.seed, assistant_prefix=prefixes)
    texts, owners = [], []
    for j, (pre, outs) in enumerate(zip(prefixes, gens)):
        for g in outs:
            texts.append(pre + g.text)
            owners.append(j)
    verdicts = verifier.score([record.prompt] * len(texts), texts, answer=[answer] * len(texts)).scores
    hits = [0] * len(prefixes)
    unverified = 0
    for j, v in zip(owners, verdicts):
        if v is None:
            unverified += 1
        elif v > 0.5:
            hits[j] += 1
    values = [h / cfg.rollouts for h in hits]
    before = values[0] if cfg.value_before else None
    step_values = values[1:] if cfg.value_before else values
    soft = step_values
    hard = [1.0 if v > 0 else 0.0 for v in soft]
    progress = [v - (step_values[k - 1] if k else (before if before is not None else 0.0)) for k, v in enumerate(step_values)]
    labels = hard if cfg.label == "hard" else soft
    return {
        "id": record.id, "question": record.prompt, "steps": list(record.steps), "labels": labels,
        "first_error_step": first_error_of(hard), "soft_labels": soft, "hard_labels": hard, "progress": progress,
        "value_before": before, "answer": answer, "rollouts_per_step": cfg.rollouts, "unverified_rollouts": unverified,
        "seed": cfg.seed, "generator": getattr(client, "name", type(client).__name__),
    }


def sample_solutions(questions: Sequence[Any], client: Any, cfg: RolloutConfig, per_question: int = 1) -> list[list[str]]:
    """Solutions to label when the data has only questions: sampled from the generator, split into steps."""
    gens = client.generate(list(questions), max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature, top_p=cfg.top_p,
                           n=per_question, seed=cfg.seed + 7919)
    return [[split_steps(g.text, cfg.step_separator) for g in outs] for outs in gens]  # type: ignore[misc]


def done_ids(path: Path) -> set[str]:
    """Ids already labelled in ``path`` (a partly written last line from a kill is ignored)."""
    if not path.is_file():
        return set()
    ids = set()
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            try:
                ids.add(str(json.loads(line)["id"]))
            except (json.JSONDecodeError, KeyError):
                continue
    return ids


def pending(records: Iterable[tuple[StepRecord, Any]], out: Path) -> tuple[list[tuple[StepRecord, Any]], int]:
    """(the items whose id is not yet in ``out``, how many are); a line torn by a kill is cut off first."""
    out.parent.mkdir(parents=True, exist_ok=True)
    skip = done_ids(out)
    # a kill mid-line leaves a fragment: cut the file back to its last complete line before appending
    if out.is_file():
        data = out.read_bytes()
        if data and not data.endswith(b"\n"):
            out.write_bytes(data[: data.rfind(b"\n") + 1])
    items = list(records)
    todo = [(r, a) for r, a in items if r.id not in skip]
    return todo, len(items) - len(todo)


def label_all(records: Iterable[tuple[StepRecord, Any]], out: Path, client: Any, verifier: Any, cfg: RolloutConfig, *, total: int | None = None, progress: bool = True) -> dict[str, int]:
    """Label every (record, gold answer) not yet in ``out``; append each row as soon as it is done."""
    from tqdm.auto import tqdm

    todo, skipped = pending(records, out)
    counts = {"labelled": 0, "skipped_done": skipped, "steps": 0}
    with out.open("a", encoding="utf-8") as fh, tqdm(total=total, initial=skipped, unit="sol", desc="label-steps", disable=not progress) as bar:
        for record, answer in todo:
            row = label_solution(record, answer, client, verifier, cfg)
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
            fh.flush()
            counts["labelled"] += 1
            counts["steps"] += len(record.steps)
            bar.update(1)
    return counts


class StepLabeler:
    """What an engine's worker runs for label-steps: the generator and the verifier loaded once from
    their specs, then :func:`label_solution` for each (record, gold answer) of a list."""

    def __init__(self, generator: str, verifier: str, cfg: RolloutConfig):
        from ..clients import client_from_spec
        from ..specs import load_reward

        self.client, self.verifier, self.cfg = client_from_spec(generator), load_reward(verifier), cfg

    def __call__(self, items: Sequence[tuple[StepRecord, Any]]) -> list[dict[str, Any]]:
        return [label_solution(r, a, self.client, self.verifier, self.cfg) for r, a in items]


def label_on_ray(records: Iterable[tuple[StepRecord, Any]], out: Path, generator: str, verifier: str, cfg: RolloutConfig,
                 ray: Any, *, progress: bool = True) -> dict[str, int]:
    """:func:`label_all` on a Ray cluster (:mod:`rewardkit.engines.ray`, ``ray`` its config): a
    :class:`StepLabeler` per actor labels shards of the solutions not yet in ``out`` (the shards in
    ``OUT.shards`` survive a killed driver and a rerun skips them); the rows are then appended to
    ``out`` in input order, as a local run writes them."""
    import dataclasses
    import hashlib
    from functools import partial

    from ..engines.ray import discard, run_sharded

    todo, skipped = pending(records, out)
    shards = out.with_name(out.name + ".shards")
    key = json.dumps({"generator": generator, "verifier": verifier, "config": dataclasses.asdict(cfg)}, sort_keys=True)

    def digest(item: tuple[StepRecord, Any]) -> str:
        body = json.dumps([dataclasses.asdict(item[0]), item[1]], sort_keys=True, default=str)
        return hashlib.sha256(body.encode()).hexdigest()

    if todo:
        rows = run_sharded(partial(StepLabeler, generator, verifier, cfg), todo, shards, ray, key=key, digest=digest,
                           desc="label-steps on Ray", unit="sol", progress=progress)
        with out.open("a", encoding="utf-8") as fh:
            for row in rows:
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
    discard(shards)
    return {"labelled": len(todo), "skipped_done": skipped, "steps": sum(len(r.steps) for r, _ in todo)}
