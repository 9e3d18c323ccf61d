"""Sample N responses per prompt, score them with several rewards, keep the pairs worth learning from:
the loop of RAFT ("RAFT: Reward rAnked FineTuning for Generative Foundation Model Alignment"),
self-rewarding LMs and their consistency-filtered successors.

Files in the output folder:
  samples.jsonl    one row per prompt, appended as each batch of prompts is done: its distinct samples
                   (``count`` = how often drawn), every reward's score per sample (``not_applicable``
                   names the rewards that cannot judge the prompt), generator and seed.
                   The resumable record of the run (rows keyed by id and input fingerprint, the
                   settings in ``samples.jsonl.meta.json``: :mod:`rewardkit.data.resume`).
  pairs.jsonl      TRL's preference format (``prompt``, ``chosen``, ``rejected``) plus scores per reward,
                   margin, agreement, reward names, generator and seed per row.
  best_of_n.jsonl  the top response per prompt (``prompt``, ``completion``) for rejection-sampling SFT;
                   under ``gate`` none for a prompt whose verified samples are all wrong (counted).
  summary.json, report.md.
Pairs and best-of-N rows are a function of the samples rows and the pair options alone, so a rerun
with other pair options re-derives them without generating or scoring anything.
"""
from __future__ import annotations

import json
import os
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from ..data.pools import Pool
from ..types import BestOfNRecord
from .pairs import NO_BEST, NO_PAIR, PairConfig, agreement, best_sample, roles, select_pairs

SAMPLES, PAIRS, BEST = "samples.jsonl", "pairs.jsonl", "best_of_n.jsonl"
#: fields of a pairs.jsonl row; a data column of the same name would be overwritten, so it is refused
PAIR_FIELDS = ("id", "prompt_id", "prompt", "chosen", "rejected", "chosen_scores", "rejected_scores", "margin", "decided_by", "agreement",
               "pair_weight", "rewards", "strategy", "generator", "seed", "completion", "scores", "picked_by", "tied_top")


@dataclass
class SamplingConfig:
    """Generation settings (the ``rewardkit annotate`` flags are made from these fields)."""

    n: int = 8
    temperature: float = 0.8
    top_p: float = 0.95
    max_new_tokens: int = 256
    batch_prompts: int = 8  # prompts per generate call (a kill loses at most these)


def check_pair_columns(pools: Sequence[Pool], source: str) -> None:
    for pool in pools:
        clash = sorted(set(pool.columns) & set(PAIR_FIELDS))
        if clash:
            raise ValueError(f"{source}: row {pool.id}: column {clash[0]!r} has the name of a field annotate writes into pairs.jsonl; rename it")


def _dedupe(texts: Sequence[Any], extras: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Distinct completions in first-seen order, each with how often it occurred."""
    seen: dict[str, dict[str, Any]] = {}
    for text, extra in zip(texts, extras):
        key = json.dumps(text, sort_keys=True)
        if key in seen:
            seen[key]["count"] += 1
        else:
            seen[key] = {"completion": text, "count": 1, **extra}
    return list(seen.values())


def _score_pools(rewards: Mapping[str, Any], pools: Sequence[Pool], samples: Sequence[list[dict[str, Any]]]) -> None:
    """Every reward's score (and per-sample details) into each sample, through the evaluation
    runner's scoring path (a pool is one record, so rewards that compare a prompt's samples see them
    together). A reward that does not apply to the prompt (a rule without its gold column) is named in
    each sample's ``not_applicable``: its None means "cannot judge", not "no valid answer"."""
    from ..evals.runner import score_dataset

    records = [BestOfNRecord(p.id, p.prompt, [s["completion"] for s in ss], 0, "default", p.columns) for p, ss in zip(pools, samples)]
    for name, reward in rewards.items():
        run = score_dataset(reward, records, progress=False)
        for row, ss in zip(run.rows, samples):
            details = row.get("details") or [{}] * len(ss)
            for s, score, d in zip(ss, row["scores"], details):
                s.setdefault("scores", {})[name] = score
                if any(d.values()):
                    s.setdefault("details", {})[name] = d
                if row.get("not_applicable"):
                    s.setdefault("not_applicable", []).append(name)


def _generate(client: Any, pools: Sequence[Pool], cfg: SamplingConfig, seed: int) -> list[list[dict[str, Any]]]:
    gens = client.generate([p.prompt for p in pools], n=cfg.n, temperature=cfg.temperature, top_p=cfg.top_p,
                           max_new_tokens=cfg.max_new_tokens, seed=seed)
    return [_dedupe([g.text for g in gs], [{"seed": g.seed, "finish_reason": g.finish_reason, "num_tokens": g.num_tokens} for g in gs]) for gs in gens]


@dataclass
class CollectRun:
    rows: list[dict[str, Any]]  # the samples rows of this input's prompts, in file order
    new: int  # prompts done by this run
    kept: int  # prompts found done
    samples_this_run: int
    seconds: float
    others: int = 0  # rows of the file made for other prompts (a larger --limit, another input): kept there, not counted


def _this_input(rows: Sequence[dict[str, Any]], pools: Sequence[Pool]) -> tuple[list[dict[str, Any]], int]:
    """(the rows made for these pools, by id and input fingerprint; how many other rows there are).
    Resume keeps rows of prompts this input does not hold, so a rerun with a larger --limit finds them;
    pairs, best-of-N, the summary and curves describe this input alone."""
    from ..data.resume import fingerprint

    prints = {(str(p.id), fingerprint(p)) for p in pools}
    ids = {i for i, _ in prints}
    mine = [r for r in rows if ((str(r["id"]), r["input_sha"]) in prints if "input_sha" in r else str(r["id"]) in ids)]
    return mine, len(rows) - len(mine)


def collect(pools: Sequence[Pool], out_dir: Path, *, load_client: Callable[[], Any] | None, load_rewards: Callable[[], Mapping[str, Any]],
            sampling: SamplingConfig, seed: int, settings: dict[str, Any], generator: str, overwrite: bool = False,
            on_start: Callable[[list[dict[str, Any]]], None] | None = None, on_rows: Callable[[list[dict[str, Any]]], None] | None = None,
            progress: bool = True) -> CollectRun:
    """Generate (``load_client`` given) or take each pool's given completions, score them with every
    reward, and append one row per prompt to ``OUT/samples.jsonl``. A rerun keeps the rows of prompts
    already done and does the rest (never a prompt twice); other ``settings`` are refused unless
    ``overwrite``. Clients and rewards are loaded only when there is work. ``on_start`` gets the rows
    of these prompts kept from before, ``on_rows`` each batch of new rows once it is in the file; the
    returned rows are those of these prompts (:func:`_this_input`)."""
    from tqdm.auto import tqdm

    from ..data.resume import check_settings, fingerprint, resume, write_settings

    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / SAMPLES
    check_settings(path, settings, overwrite=overwrite)
    fresh = overwrite or not path.exists()
    kept, todo = (0, list(pools)) if fresh else resume(path, pools, {"samples"}, what="samples row")
    if kept:
        print(f"resuming: {kept} prompts already in {path}; doing the other {len(todo)} of {len(pools)} (--overwrite starts afresh)", file=sys.stderr)
    if fresh:
        path.write_text("", encoding="utf-8")
    write_settings(path, settings)
    if on_start is not None:
        on_start(_this_input(read_rows(path), pools)[0])
    drawn, seconds = 0, 0.0
    if todo:
        client = load_client() if load_client is not None else None
        rewards = load_rewards()
        start = time.perf_counter()  # samples/s counts generating and scoring, not loading models
        total = sum(sampling.n if p.completions is None else len(p.completions) for p in todo)
        with path.open("a", encoding="utf-8") as fh, tqdm(total=total, unit="sample", desc="annotate", disable=not progress) as bar:
            for lo in range(0, len(todo), sampling.batch_prompts):
                chunk = todo[lo : lo + sampling.batch_prompts]
                if client is not None:
                    samples = _generate(client, chunk, sampling, seed)
                else:
                    samples = [_dedupe(p.completions, [{"meta": m} if m else {} for m in (p.meta or [{}] * len(p.completions))]) for p in chunk]
                _score_pools(rewards, chunk, samples)
                rows = []
                for pool, ss in zip(chunk, samples):
                    count = sum(s["count"] for s in ss)
                    drawn += count
                    rows.append({"id": pool.id, "input_sha": fingerprint(pool), "prompt": pool.prompt, "columns": pool.columns, "generator": generator,
                                 "seed": seed, "drawn": count, "duplicates": count - len(ss), "samples": ss})
                fh.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
                fh.flush()
                if on_rows is not None:
                    on_rows(rows)
                bar.update(sum(r["drawn"] for r in rows))
        seconds = time.perf_counter() - start
    rows, others = _this_input(read_rows(path), pools)  # resume's note names the others
    return CollectRun(rows, len(todo), kept, drawn, seconds, others)


def read_rows(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


# ---------------------------------------------------------------- pairs and best-of-N

def as_turn(prompt: Any, completion: Any) -> Any:
    """A response as TRL expects it beside this prompt: text after a text prompt, one assistant message
    after a chat prompt (TRL's conversational format); pre-split steps are joined into text."""
    text = completion if isinstance(completion, str) else "\n".join(completion) if all(isinstance(c, str) for c in completion) else completion
    if isinstance(prompt, list) and isinstance(text, str):
        return [{"role": "assistant", "content": text}]
    return text


def derive(row: dict[str, Any], names: Sequence[str], cfg: PairConfig) -> tuple[list[dict[str, Any]], dict[str, Any] | None, str | None, str | None]:
    """(pairs.jsonl rows, the best_of_n.jsonl row or None, the reason there is no pair, the reason
    there is no best-of-N row) of one samples row."""
    samples = row["samples"]
    found, reason = select_pairs(samples, names, cfg)
    common = {"rewards": list(names), "strategy": cfg.pairs, "generator": row.get("generator"), "seed": row.get("seed")}
    pairs = []
    for k, p in enumerate(found):
        c, r = samples[p["chosen"]], samples[p["rejected"]]
        pairs.append({**row.get("columns", {}), "id": f"{row['id']}-{k}", "prompt_id": row["id"], "prompt": row["prompt"],
                      "chosen": as_turn(row["prompt"], c["completion"]), "rejected": as_turn(row["prompt"], r["completion"]), "chosen_scores": c["scores"], "rejected_scores": r["scores"],
                      "margin": p["margin"], "decided_by": p["decided_by"], "agreement": p["agreement"],
                      **({"pair_weight": p["pair_weight"]} if "pair_weight" in p else {}), **common})
    i, by, tied, no_best = best_sample(samples, names, cfg)
    best = None
    if i is not None:
        best = {**row.get("columns", {}), "id": row["id"], "prompt": row["prompt"], "completion": as_turn(row["prompt"], samples[i]["completion"]),
                "scores": samples[i]["scores"], "picked_by": by, "tied_top": tied, **common}
    return pairs, best, reason, no_best


def _write_jsonl(path: Path, rows: Sequence[dict[str, Any]], mode: str = "w") -> None:
    with path.open(mode, encoding="utf-8") as fh:
        fh.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
        fh.flush()


def _rewrite(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    _write_jsonl(tmp, rows)
    os.replace(tmp, path)


def annotate(pools: Sequence[Pool], out_dir: str | Path, *, names: Sequence[str], load_rewards: Callable[[], Mapping[str, Any]],
             load_client: Callable[[], Any] | None, sampling: SamplingConfig, pairs: PairConfig, seed: int, settings: dict[str, Any],
             generator: str, overwrite: bool = False, progress: bool = True, about: dict[str, Any] | None = None) -> dict[str, Any]:
    """The whole ``rewardkit annotate`` run (see the module docstring); returns the summary."""
    from ..evals.report import write_json

    out_dir = Path(out_dir)
    roles(names, pairs)  # an unknown --primary / --verifier fails before any work
    out_dir.mkdir(parents=True, exist_ok=True)

    def append(rows: list[dict[str, Any]]) -> None:
        derived = [derive(r, names, pairs) for r in rows]
        _write_jsonl(out_dir / PAIRS, [p for ps, *_ in derived for p in ps], "a")
        _write_jsonl(out_dir / BEST, [b for _, b, *_ in derived if b is not None], "a")

    def start(rows: list[dict[str, Any]]) -> None:  # rows already there: derived afresh with this run's pair options
        derived = [derive(r, names, pairs) for r in rows]
        _rewrite(out_dir / PAIRS, [p for ps, *_ in derived for p in ps])
        _rewrite(out_dir / BEST, [b for _, b, *_ in derived if b is not None])

    run = collect(pools, out_dir, load_client=load_client, load_rewards=load_rewards, sampling=sampling, seed=seed, settings=settings,
                  generator=generator, overwrite=overwrite, on_start=start, on_rows=append, progress=progress)
    summary = summarize(run, names, pairs, seed=seed, about={**(about or {}), "generator": generator, "sampling": asdict(sampling) if load_client is not None else None})
    write_json(out_dir / "summary.json", summary)
    write_report(out_dir / "report.md", summary)
    return summary


def summarize(run: CollectRun, names: Sequence[str], cfg: PairConfig, *, seed: int, about: dict[str, Any]) -> dict[str, Any]:
    rows = run.rows
    reasons: Counter = Counter()
    no_best: Counter = Counter()
    n_pairs = with_pair = best = 0
    agreements: list = []
    for row in rows:
        ps, b, reason, why = derive(row, names, cfg)
        n_pairs += len(ps)
        with_pair += bool(ps)
        best += b is not None
        agreements.extend(p["agreement"] for p in ps)
        if reason:
            reasons[reason] += 1
        if why:
            no_best[why] += 1
    drawn = sum(r["drawn"] for r in rows)
    unique = sum(len(r["samples"]) for r in rows)
    unscored = {n: sum(1 for r in rows for s in r["samples"] if s["scores"].get(n) is None and n not in s.get("not_applicable", ())) for n in names}
    not_applicable = {n: sum(1 for r in rows for s in r["samples"] if n in s.get("not_applicable", ())) for n in names}
    truncated = {n: sum(1 for r in rows for s in r["samples"] if (s.get("details") or {}).get(n, {}).get("truncated")) for n in names}
    primary, verifier = roles(names, cfg)
    return {
        **about, "rewards": list(names), "primary": primary, **({"verifier": verifier} if verifier else {}), "seed": seed,
        "pair_options": asdict(cfg), "prompts": len(rows), "prompts_this_run": run.new, "prompts_resumed": run.kept,
        "rows_not_in_this_input": run.others,
        "samples_drawn": drawn, "distinct_samples": unique, "duplicates": drawn - unique,
        "unscored": unscored, "not_applicable": not_applicable, "truncated": truncated,
        "pairs": n_pairs, "prompts_with_pair": with_pair, "pair_share": with_pair / len(rows) if rows else None,
        "no_pair": {r: reasons[r] for r in NO_PAIR if reasons[r]},
        "mean_pair_agreement": sum(agreements) / len(agreements) if agreements else None,
        "best_of_n_rows": best, "no_best_of_n": {r: no_best[r] for r in NO_BEST if no_best[r]},
        "agreement": agreement([r["samples"] for r in rows], names),
        "seconds_this_run": round(run.seconds, 2),
        "samples_per_second": round(run.samples_this_run / run.seconds, 3) if run.samples_this_run and run.seconds > 0 else None,
    }


def _fmt(x: Any) -> str:
    return "-" if x is None else f"{x:.3f}" if isinstance(x, float) else str(x)


def _none_for(reasons: Mapping[str, int]) -> str:
    return f" (none for {', '.join(f'{n} prompts: {r}' for r, n in reasons.items())})" if reasons else ""


def write_report(path: Path, s: dict[str, Any]) -> None:
    lines = ["# Annotation", ""]
    if s.get("command"):
        lines += ["Produced by:", "", f"    {s['command']}", ""]
    lines += [f"Generator: `{s['generator']}`, seed {s['seed']}; rewards: {', '.join(f'`{n}`' for n in s['rewards'])} "
              f"(pairs decided by `{s['primary']}`{', gated by `' + s['verifier'] + '`' if s.get('verifier') else ''}; "
              f"strategy {s['pair_options']['pairs']}, consistency {s['pair_options']['consistency']}, min margin {s['pair_options']['min_margin']}).", "",
              "| | |", "|---|---|",
              f"| prompts | {s['prompts']} ({s['prompts_this_run']} this run, {s['prompts_resumed']} found done) |",
              *([f"| rows of other prompts in samples.jsonl | {s['rows_not_in_this_input']} (not counted here) |"] if s.get("rows_not_in_this_input") else []),
              f"| samples drawn | {s['samples_drawn']} ({s['duplicates']} duplicates, {s['distinct_samples']} distinct) |",
              f"| pairs | {s['pairs']} from {s['prompts_with_pair']} prompts (share {_fmt(s['pair_share'])}) |",
              f"| best-of-N rows | {s['best_of_n_rows']}{_none_for(s['no_best_of_n'])} |",
              f"| mean agreement of a pair | {_fmt(s['mean_pair_agreement'])} |",
              f"| samples/s (this run) | {_fmt(s['samples_per_second'])} |", ""]
    if s["no_pair"]:
        lines += ["## Prompts without a pair", "", "| reason | prompts |", "|---|---|"]
        lines += [f"| {r} | {n} |" for r, n in s["no_pair"].items()] + [""]
    lines += ["## Unscored and truncated samples", "", "Not applicable: the reward cannot judge the prompt (a rule without its gold column).", "",
              "| reward | unscored | not applicable | truncated |", "|---|---|---|---|"]
    lines += [f"| `{n}` | {s['unscored'][n]} | {s['not_applicable'][n]} | {s['truncated'][n]} |" for n in s["rewards"]] + [""]
    if s["agreement"]:
        lines += ["## Agreement between rewards", "",
                  "Over every two distinct samples of one prompt that both rewards scored: order agreement = concordant / (concordant + discordant);",
                  "Kendall's tau-b counts ties.", "",
                  "| rewards | sample pairs | concordant | discordant | order agreement | Kendall tau-b |", "|---|---|---|---|---|---|"]
        lines += [f"| {k} | {v['sample_pairs']} | {v['concordant']} | {v['discordant']} | {_fmt(v['order_agreement'])} | {_fmt(v['kendall_tau_b'])} |"
                  for k, v in s["agreement"].items()] + [""]
    path.write_text("\n".join(lines), encoding="utf-8")
