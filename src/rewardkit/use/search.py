"""PRM-guided step-level beam search, and best-of-N at the same generator token budget.

Search (as in "Scaling LLM Test-Time Compute Optimally can be More Effective than Scaling Model
Parameters", Snell et al., 2024): keep ``beam_width`` partial solutions; from each, sample
``expansions`` next steps (generation stops at the step separator); score every candidate's steps with
the PRM and keep the best ``beam_width`` by the aggregate of their step scores; a candidate whose
step ends the turn (end-of-turn token) or states an answer is finished. The best finished solution
by PRM aggregate is the answer. Best-of-N draws whole solutions until it has spent the same number
of generated tokens, and picks the one the PRM scores highest. Sampling is seeded (the generation
client derives one seed per prompt and sample), so runs repeat exactly.
"""
from __future__ import annotations

import json
import re
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

from ..data.steps import split_steps

_ANSWER = re.compile(r"(answer is|####|\\boxed\{)", re.IGNORECASE)


@dataclass
class SearchConfig:
    """Search and sampling settings (the ``rewardkit search`` flags are made from these fields)."""

    beam_width: int = 2
    expansions: int = 2
    max_steps: int = 8
    max_step_tokens: int = 64
    temperature: float = 0.7
    top_p: float = 0.95
    seed: int = 0
    separator: str = "\n"


@dataclass
class _Beam:
    steps: list[str]
    score: float = 0.0
    done: bool = False


@dataclass
class SearchResult:
    text: str
    steps: list[str]
    score: float | None
    generated_tokens: int
    finished: bool
    extras: dict[str, Any] = field(default_factory=dict)


def _prm_scores(prm: Any, prompt: Any, candidates: Sequence[list[str]]) -> list[float]:
    out = prm.score([prompt] * len(candidates), [list(c) for c in candidates])
    return [float("-inf") if s is None else float(s) for s in out.scores]


def beam_search(prompt: Any, client: Any, prm: Any, cfg: SearchConfig) -> SearchResult:
    """One question: step-level beam search guided by ``prm`` (its ``score`` aggregate ranks beams)."""
    stop_ids = set(getattr(client, "stop_ids", set()))
    beams = [_Beam([])]
    finished: list[_Beam] = []
    tokens = 0
    for depth in range(cfg.max_steps):
        active = [b for b in beams if not b.done]
        if not active:
            break
        prefixes = ["".join(s + cfg.separator for s in b.steps) for b in active]
        gens = client.generate([prompt] * len(active), max_new_tokens=cfg.max_step_tokens, temperature=cfg.temperature,
                               top_p=cfg.top_p, n=cfg.expansions, seed=cfg.seed + depth, stop=[cfg.separator],
                               assistant_prefix=prefixes)
        candidates: list[_Beam] = []
        for beam, outs in zip(active, gens):
            for g in outs:
                tokens += g.num_tokens if g.num_tokens is not None else len(g.token_ids or [])
                step = g.text.strip()
                ended = bool(g.token_ids) and g.token_ids[-1] in stop_ids
                if not step:
                    if beam.steps:
                        candidates.append(_Beam(list(beam.steps), done=True))
                    continue
                candidates.append(_Beam(beam.steps + [step], done=ended or bool(_ANSWER.search(step)) or depth == cfg.max_steps - 1))
        if not candidates:
            break
        unique: dict[tuple[str, ...], _Beam] = {}
        for c in candidates:
            unique.setdefault(tuple(c.steps), c)
        candidates = list(unique.values())
        for c, s in zip(candidates, _prm_scores(prm, prompt, [c.steps for c in candidates])):
            c.score = s
        candidates.sort(key=lambda c: (-c.score, c.steps))  # deterministic tie-break by text
        finished.extend(c for c in candidates if c.done)
        beams = [c for c in candidates if not c.done][: cfg.beam_width]
        if len(finished) >= cfg.beam_width:
            break
    pool = finished or beams
    if not pool:
        return SearchResult("", [], None, tokens, False)
    best = max(pool, key=lambda c: (c.score, [-len(s) for s in c.steps]))
    return SearchResult(cfg.separator.join(best.steps), best.steps, best.score, tokens, best.done)


def best_of_n(prompt: Any, client: Any, prm: Any, cfg: SearchConfig, token_budget: int, max_new_tokens: int, *, batch: int = 4) -> SearchResult:
    """Take whole solutions in sample order until ``token_budget`` generated tokens are spent (at
    least one), then pick the PRM's favourite. Samples are drawn ``batch`` at a time (one prefill,
    seeded per round and sample); samples drawn past the budget are not used or counted."""
    samples: list[list[str]] = []
    tokens, k, rounds = 0, 0, 0
    while (tokens < token_budget or not samples) and k < 64:
        gens = client.generate([prompt], max_new_tokens=max_new_tokens, temperature=cfg.temperature, top_p=cfg.top_p, n=batch,
                               seed=cfg.seed + 10_000 + rounds)[0]
        rounds += 1
        for g in gens:
            if (tokens >= token_budget and samples) or k >= 64:
                break
            k += 1
            tokens += g.num_tokens if g.num_tokens is not None else len(g.token_ids or [])
            steps = split_steps(g.text, cfg.separator)
            if steps:
                samples.append(steps)
    if not samples:
        return SearchResult("", [], None, tokens, False, {"n": k, "samples": [], "sample_scores": []})
    scores = _prm_scores(prm, prompt, samples)
    j = max(range(len(samples)), key=lambda i: (scores[i], -i))
    texts = [cfg.separator.join(x) for x in samples]
    return SearchResult(texts[j], samples[j], scores[j], tokens, True, {"n": k, "samples": texts, "sample_scores": scores, "picked": j})


def search_vs_best_of_n(rows: Sequence[tuple[str, str, str]], client: Any, prm: Any, verifier: Any, cfg: SearchConfig,
                        out: str | Path, *, about: dict[str, Any] | None = None) -> dict[str, Any]:
    """The experiment of ``rewardkit search``: for each ``(id, question, gold answer)``, beam search,
    then best-of-N at the same generated-token budget; ``verifier`` (a reward reading the ``answer``
    column) checks both answers and every best-of-N sample, so the PRM's pick sits next to pass@N, the
    first sample and a random pick from the same pool. ``OUT/search.jsonl`` grows one question at a
    time (a rerun skips finished ids); ``OUT/results.json`` summarises all finished questions."""
    from ..evals.report import write_json
    from .label_steps import done_ids

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    log = out / "search.jsonl"
    done = done_ids(log)
    start = time.perf_counter()
    with log.open("a", encoding="utf-8") as fh:
        for i, (rid, question, answer) in enumerate(rows):
            if rid in done:
                continue
            s = beam_search(question, client, prm, cfg)
            b = best_of_n(question, client, prm, cfg, s.generated_tokens, cfg.max_step_tokens * cfg.max_steps)
            pool = b.extras.get("samples") or []
            texts = [s.text, b.text, *pool]
            verdicts = [bool(v and v > 0.5) for v in verifier.score([question] * len(texts), texts, answer=[answer] * len(texts)).scores]
            rec = {"id": rid, "answer": answer, "search": s.text, "search_correct": verdicts[0], "search_tokens": s.generated_tokens,
                   "search_prm": s.score, "bon": b.text, "bon_correct": verdicts[1], "bon_tokens": b.generated_tokens,
                   "bon_n": b.extras.get("n"), "bon_prm": b.score,
                   # the best-of-N pool itself: how often any / the first / a random sample is right
                   "bon_any_correct": any(verdicts[2:]), "bon_first_correct": bool(pool) and verdicts[2],
                   "bon_mean_correct": sum(verdicts[2:]) / len(pool) if pool else 0.0,
                   "bon_samples": pool, "bon_sample_scores": b.extras.get("sample_scores"), "bon_sample_correct": verdicts[2:]}
            fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
            fh.flush()
            print(f"[{i + 1}/{len(rows)}] search {'ok' if verdicts[0] else 'x'} ({s.generated_tokens} tok)  "
                  f"best-of-{b.extras.get('n')} {'ok' if verdicts[1] else 'x'} ({b.generated_tokens} tok)", file=sys.stderr)
    with log.open(encoding="utf-8") as fh:  # rows end at "\n" only (str.splitlines also breaks at U+2028 written raw inside a text)
        done_rows = [json.loads(line) for line in fh if line.strip()]
    n = len(done_rows)
    acc = lambda key: sum(1 for r in done_rows if r.get(key)) / n if n else None  # noqa: E731
    result = {
        **(about or {}), "n": n, "config": asdict(cfg),
        "search_accuracy": acc("search_correct"), "best_of_n_accuracy": acc("bon_correct"),
        # references for the best-of-N pick from the same pool: pass@N (oracle), the first sample
        # alone (no reranking), and the expected accuracy of a random pick
        "best_of_n_oracle": acc("bon_any_correct"), "first_sample_accuracy": acc("bon_first_correct"),
        "random_pick_accuracy": sum(r.get("bon_mean_correct", 0.0) for r in done_rows) / n if n else None,
        "search_tokens": sum(r["search_tokens"] for r in done_rows), "best_of_n_tokens": sum(r["bon_tokens"] for r in done_rows),
        "seconds_this_run": round(time.perf_counter() - start, 1),
    }
    write_json(out / "results.json", result)
    return result
