"""Reward-model diagnostics: what an accuracy number hides (``rewardkit eval --diagnose``).

Everything here reads scores already computed (a reward run or a ``--scores`` file) and the texts
they were computed on; no reward is run again. Accuracy is the one definition of
:mod:`rewardkit.evals.metrics` (strict ``>``, a tie or an unscored sample is wrong) and every interval
is its seeded percentile bootstrap.

* **Length.** Pearson and Spearman correlation of the score with the response length in characters
  (each distinct response once: RM-Bench reuses every response in three pairs), and accuracy on the
  pairs whose two responses have nearly the same length (``max(len) <= ratio * min(len)``, i.e.
  ``|log(len_c / len_r)| <= log(ratio)``), on the pairs whose chosen response is the longer and on
  those where it is the shorter: a reward that reads length is good on the first and bad on the
  second (why it matters: "A Long Way to Go: Investigating Length Correlations in RLHF").
* **Agreement** between two rewards: Kendall's tau-b between their scores over the responses, the
  share of pairs both order the same way (a tie is its own order) and, on best-of-N rows, top-1
  agreement (the chance both pick the same completion when each breaks its ties uniformly at random).
* **Disagreement as uncertainty.** For an ensemble (the ``--reward`` lineup, or an ``ensemble:``
  reward whose member scores are in its ``vector``): each member's pair margin in units of that
  member's score spread over the responses (``(s_c - s_r) / std``; the z-score's mean cancels), and
  the disagreement of a pair = the std of those margins across members. Pairs are split into
  terciles of disagreement (equal counts; equal disagreements split in data order); an uncertainty
  estimate is useful when accuracy falls from the low to the high tercile (reported with an
  interval). The ensemble's prediction is the reward's own score for an ``ensemble:`` spec, and the
  mean z-scored margin for a lineup.
* **Style against substance** ("RM-Bench: Benchmarking Reward Models of Language Models with
  Subtlety and Style"): every item has a correct and an incorrect response in three styles, concise
  < detailed_plain < detailed_markdown, and the 3 x 3 pairs of an item form a matrix with the chosen
  response's style as the row and the rejected one's as the column. *Hard* accuracy is the mean of
  the upper triangle (the chosen response is plainer than the rejected one, so style pulls the wrong
  way), *normal* the diagonal (same style), *easy* the lower triangle (the chosen one is fancier). We
  average each item's pairs of a level, then average over items: with all nine pairs of every item
  this is exactly RM-Bench's mean of the matrix cells, and the interval resamples items (the nine
  pairs of an item share responses, so they are not independent draws). Rows need ``item_id``,
  ``chosen_style`` and ``rejected_style`` (as in ``../shared/data/pairwise/rm_bench_*.jsonl``); an item
  is its (``subset``, ``item_id``), since RM-Bench numbers items per domain.
"""
from __future__ import annotations

import json
import math
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from ..protocol import completion_text
from ..types import BestOfNRecord, PairRecord, ScoredBestOfN, ScoredPair
from .metrics import Outcome, accuracy_stats, pair_outcome, stratified_bootstrap

STYLE_LEVELS = ("concise", "detailed_plain", "detailed_markdown")  # RM-Bench's order, plainest first
MAX_POINTS = 3000  # per scatter plot; more responses are subsampled (seeded) so the SVG stays light


@dataclass
class Diagnostics:
    result: dict[str, Any]  # what lands in diagnostics.json
    points: dict[str, dict[str, list[tuple[float, float]]]] = field(default_factory=dict)  # reward -> label -> (length, score)
    styles: dict[str, list[list[tuple[float | None, int]]]] = field(default_factory=dict)  # reward -> 3x3 (accuracy, n)


# ---------------------------------------------------------------- statistics

def _item(s: ScoredPair | ScoredBestOfN) -> str:
    """The key that matches a scored item to its record and to other rewards' scores of it."""
    return s.item or s.id


def _valid(x: Any) -> bool:
    return x is not None and not (isinstance(x, float) and math.isnan(x))


def _ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks, tied values sharing the mean of their ranks."""
    _, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    return (ends - (counts - 1) / 2.0)[inverse]


def pearson(x: Sequence[float], y: Sequence[float]) -> float:
    """NaN when either side is constant (no correlation is defined)."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if len(x) < 2:
        return float("nan")
    dx, dy = x - x.mean(), y - y.mean()
    denom = math.sqrt(float((dx * dx).sum()) * float((dy * dy).sum()))
    return float((dx * dy).sum() / denom) if denom > 0 else float("nan")


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    return pearson(_ranks(np.asarray(x, dtype=float)), _ranks(np.asarray(y, dtype=float)))


def _tied_pairs(values: np.ndarray) -> float:
    _, counts = np.unique(values, axis=0, return_counts=True)
    return float((counts * (counts - 1) / 2).sum())


def kendall_tau_b(x: Sequence[float], y: Sequence[float]) -> float:
    """Kendall's tau-b (ties in either ranking corrected for) in O(n log n): sort by (x, y), count
    the pairs the y order inverts (the discordant ones), then
    ``concordant - discordant = n0 - ties_x - ties_y + ties_xy - 2 * discordant``."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    n = len(x)
    if n < 2:
        return float("nan")
    n0 = n * (n - 1) / 2
    tx, ty, txy = _tied_pairs(x), _tied_pairs(y), _tied_pairs(np.stack([x, y], axis=1))
    denom = math.sqrt((n0 - tx) * (n0 - ty))
    if denom == 0:
        return float("nan")
    order = np.lexsort((y, x))
    ranks = np.unique(y, return_inverse=True)[1][order] + 1  # dense, 1-based
    tree = [0] * (int(ranks.max()) + 1)  # Fenwick tree of the y ranks seen so far
    discordant = 0
    for seen, r in enumerate(ranks.tolist()):
        i, at_most = r, 0
        while i > 0:
            at_most += tree[i]
            i -= i & -i
        discordant += seen - at_most  # earlier (smaller or equal x) items with a larger y
        i = r
        while i < len(tree):
            tree[i] += 1
            i += i & -i
    return float((n0 - tx - ty + txy - 2 * discordant) / denom)


def _interval(groups: Mapping[str, np.ndarray], statistic, n_boot: int, seed: int) -> list[float]:
    return list(stratified_bootstrap(groups, statistic, n_boot, seed))


# ---------------------------------------------------------------- responses and their texts

def _key(prompt: Any) -> str:
    return prompt if isinstance(prompt, str) else json.dumps(prompt, sort_keys=True, ensure_ascii=False)


def _slots(item: ScoredPair | ScoredBestOfN, record: Any) -> list[tuple[tuple, str, float | None, int | None]]:
    """(response key, label, score, length in characters) of each response of a scored item; the key
    is the prompt and text when the record is known (so a response shared by several pairs counts
    once), else the item id and position, and the length is None."""
    if isinstance(item, ScoredPair):
        labels, scores = ["chosen", "rejected"], [item.chosen_score, item.rejected_score]
    else:
        labels = ["correct" if j < item.num_correct else "incorrect" for j in range(len(item.scores))]
        scores = list(item.scores)
    texts: list[str] | None = None
    if record is not None:
        comps = [record.chosen, record.rejected] if isinstance(record, PairRecord) else list(record.completions)
        if len(comps) != len(scores) or (isinstance(record, BestOfNRecord) and record.num_correct != getattr(item, "num_correct", None)):
            raise ValueError(f"item {_item(item)!r}: the scores do not match the data record of that id "
                             f"({len(scores)} scores for {len(comps)} completions); were they computed on this --data?")
        texts = [completion_text(c) for c in comps]
    out = []
    for j, (label, score) in enumerate(zip(labels, scores)):
        if texts is None:
            out.append(((_item(item), j), label, score, None))
        else:
            out.append(((_key(record.prompt), texts[j]), label, score, len(texts[j])))
    return out


def _responses(items: Sequence[Any], records: Mapping[str, Any]) -> dict[tuple, dict[str, Any]]:
    """Each distinct response once: its mean valid score (None if never scored), length and label."""
    table: dict[tuple, dict[str, Any]] = {}
    for item in items:
        if not item.applicable:
            continue
        for key, label, score, length in _slots(item, records.get(_item(item))):
            row = table.setdefault(key, {"scores": [], "length": length, "label": label})
            if _valid(score):
                row["scores"].append(float(score))
    for row in table.values():
        row["score"] = sum(row["scores"]) / len(row["scores"]) if row["scores"] else None
    return table


# ---------------------------------------------------------------- per reward

def length_correlation(responses: Mapping[tuple, Mapping[str, Any]]) -> dict[str, Any]:
    pts = [(r["length"], r["score"]) for r in responses.values() if r["length"] is not None and r["score"] is not None]
    lengths, scores = [p[0] for p in pts], [p[1] for p in pts]
    return {"pearson": pearson(lengths, scores), "spearman": spearman(lengths, scores), "responses": len(pts)}


def _pair_lengths(item: ScoredPair, record: Any) -> tuple[int, int] | None:
    if not isinstance(record, PairRecord):
        return None
    return len(completion_text(record.chosen)), len(completion_text(record.rejected))


def length_matched(lc: int, lr: int, ratio: float) -> bool:
    """``|log(lc / lr)| <= log(ratio)``, written so two empty responses match and one empty one does not."""
    return max(lc, lr) <= ratio * min(lc, lr)


def length_controlled(items: Sequence[ScoredPair], records: Mapping[str, Any], *, ratio: float, n_boot: int, seed: int) -> dict[str, Any]:
    """Accuracy on the length-matched pairs, and on the pairs whose chosen response is the longer / the shorter."""
    groups: dict[str, list[Outcome]] = {"length_matched": [], "chosen_longer": [], "chosen_shorter": []}
    for item in items:
        lengths = _pair_lengths(item, records.get(_item(item))) if item.applicable else None
        if lengths is None:
            continue
        lc, lr = lengths
        outcome = pair_outcome(item.chosen_score, item.rejected_score)
        if length_matched(lc, lr, ratio):
            groups["length_matched"].append(outcome)
        if lc != lr:
            groups["chosen_longer" if lc > lr else "chosen_shorter"].append(outcome)
    out: dict[str, Any] = {name: accuracy_stats(outs, n_boot, seed) for name, outs in groups.items()}
    longer = np.array([o.value for o in groups["chosen_longer"]])
    shorter = np.array([o.value for o in groups["chosen_shorter"]])
    gap = float(longer.mean() - shorter.mean()) if len(longer) and len(shorter) else float("nan")
    out["longer_minus_shorter"] = {
        "value": gap,
        "ci95": _interval({"longer": longer, "shorter": shorter}, lambda m: m["longer"] - m["shorter"], n_boot, seed)
        if len(longer) and len(shorter) else [float("nan"), float("nan")],
    }
    return out


def style_probe(items: Sequence[ScoredPair], records: Mapping[str, Any], *, n_boot: int, seed: int) -> dict[str, Any] | None:
    """RM-Bench hard / normal / easy accuracy and the 3x3 matrix (rows: chosen style, columns:
    rejected style), or None when the data has no style columns."""
    level = {name: k for k, name in enumerate(STYLE_LEVELS)}
    cells: list[list[list[float]]] = [[[] for _ in STYLE_LEVELS] for _ in STYLE_LEVELS]
    per_item: dict[tuple[str, str], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    unknown: set[str] = set()
    found = False
    for item in items:
        record = records.get(_item(item))
        if not item.applicable or not isinstance(record, PairRecord):
            continue
        cs, rs = record.columns.get("chosen_style"), record.columns.get("rejected_style")
        if cs is None or rs is None:
            continue
        found = True
        if cs not in level or rs not in level:
            unknown.update(str(s) for s in (cs, rs) if s not in level)
            continue
        i, j = level[cs], level[rs]
        value = pair_outcome(item.chosen_score, item.rejected_score).value
        cells[i][j].append(value)
        # RM-Bench numbers items per domain (chat and code both have an item 8); an item's pairs share one subset
        item_key = (record.subset, str(record.columns.get("item_id", _key(record.prompt))))
        per_item[item_key]["hard" if j > i else "normal" if i == j else "easy"].append(value)
    if not found:
        return None
    out: dict[str, Any] = {
        "levels": list(STYLE_LEVELS),
        "matrix": [[{"accuracy": float(np.mean(c)) if c else float("nan"), "n": len(c)} for c in row] for row in cells],
        "definition": "rows: chosen style, columns: rejected style; hard = upper triangle (chosen plainer), "
                      "normal = diagonal, easy = lower triangle; mean over items of each item's pairs of that level",
    }
    for name in ("hard", "normal", "easy"):
        means = np.array([float(np.mean(v[name])) for v in per_item.values() if v.get(name)])
        out[name] = {
            "accuracy": float(means.mean()) if len(means) else float("nan"),
            "items": len(means),
            "ci95": _interval({"items": means}, lambda m: m["items"], n_boot, seed),
        }
    out["items_incomplete"] = sum(1 for v in per_item.values() if sum(len(x) for x in v.values()) != len(STYLE_LEVELS) ** 2)
    if unknown:
        out["unknown_styles"] = sorted(unknown)
    return out


# ---------------------------------------------------------------- across rewards

def agreement(a: Sequence[Any], b: Sequence[Any], ra: Mapping[tuple, Mapping], rb: Mapping[tuple, Mapping], *, n_boot: int, seed: int) -> dict[str, Any]:
    common = [k for k in ra if k in rb and ra[k]["score"] is not None and rb[k]["score"] is not None]
    out: dict[str, Any] = {"kendall_tau_b": kendall_tau_b([ra[k]["score"] for k in common], [rb[k]["score"] for k in common]),
                           "responses": len(common)}
    by_id = {_item(s): s for s in b if s.applicable}
    same_order, top1 = [], []
    for s in a:
        t = by_id.get(_item(s))
        if t is None or not s.applicable:
            continue
        if isinstance(s, ScoredPair) and isinstance(t, ScoredPair):
            values = [s.chosen_score, s.rejected_score, t.chosen_score, t.rejected_score]
            if all(_valid(v) for v in values):
                same_order.append(float(np.sign(values[0] - values[1]) == np.sign(values[2] - values[3])))
        elif isinstance(s, ScoredBestOfN) and isinstance(t, ScoredBestOfN) and len(s.scores) == len(t.scores):
            if all(_valid(v) for v in s.scores + t.scores):
                best_a = {j for j, v in enumerate(s.scores) if v == max(s.scores)}
                best_b = {j for j, v in enumerate(t.scores) if v == max(t.scores)}
                top1.append(len(best_a & best_b) / (len(best_a) * len(best_b)))
    for name, values in (("preference_agreement", same_order), ("top1_agreement", top1)):
        if values:
            arr = np.array(values)
            out[name] = {"rate": float(arr.mean()), "n": len(arr), "ci95": _interval({"x": arr}, lambda m: m["x"], n_boot, seed)}
    return out


def disagreement(members: Mapping[str, Sequence[Any]], responses: Mapping[str, Mapping[tuple, Mapping]],
                 combined: Sequence[ScoredPair] | None, *, n_boot: int, seed: int) -> dict[str, Any]:
    """Accuracy by tercile of member disagreement (see the module docstring). ``combined``: the
    ensemble's own scores; None for a lineup (then the mean z-scored margin decides)."""
    names = list(members)
    spread = {}
    for name in names:
        values = [r["score"] for r in responses[name].values() if r["score"] is not None]
        spread[name] = float(np.std(values)) if values else 0.0
    by_id = {name: {_item(s): s for s in members[name] if isinstance(s, ScoredPair) and s.applicable} for name in names}
    own = {_item(s): s for s in combined} if combined is not None else None
    ids = [_item(s) for s in members[names[0]] if all(_item(s) in by_id[n] for n in names)]
    rows, unscored = [], 0
    for pid in ids:
        pairs = [by_id[n][pid] for n in names]
        if not all(_valid(p.chosen_score) and _valid(p.rejected_score) for p in pairs):
            unscored += 1
            continue
        margins = np.array([(p.chosen_score - p.rejected_score) / spread[n] if spread[n] > 0 else 0.0 for p, n in zip(pairs, names)])
        if own is not None:
            if pid not in own:
                continue
            verdict = pair_outcome(own[pid].chosen_score, own[pid].rejected_score)
        else:
            verdict = pair_outcome(float(margins.mean()), 0.0)
        rows.append((float(margins.std()), verdict, [pair_outcome(p.chosen_score, p.rejected_score) for p in pairs]))
    out: dict[str, Any] = {"members": names, "pairs": len(rows), "unscored_pairs": unscored,
                           "constant_members": [n for n in names if spread[n] == 0],
                           "prediction": "the ensemble's own score" if combined is not None else "mean z-scored margin"}
    if len(rows) < 3:
        out["terciles"] = []
        return out
    order = np.argsort(np.array([r[0] for r in rows]), kind="stable")
    terciles = []
    for part, idx in zip(("low", "middle", "high"), np.array_split(order, 3)):
        chosen = [rows[i] for i in idx]
        terciles.append({
            "tercile": part,
            "disagreement": [chosen[0][0], chosen[-1][0]],
            **accuracy_stats([r[1] for r in chosen], n_boot, seed),
            "members": {n: float(np.mean([r[2][k].value for r in chosen])) for k, n in enumerate(names)},
        })
    out["terciles"] = terciles
    low = np.array([rows[i][1].value for i in np.array_split(order, 3)[0]])
    high = np.array([rows[i][1].value for i in np.array_split(order, 3)[2]])
    out["low_minus_high"] = {"value": float(low.mean() - high.mean()),
                             "ci95": _interval({"low": low, "high": high}, lambda m: m["low"] - m["high"], n_boot, seed)}
    return out


def members_from_rows(rows: Iterable[Mapping[str, Any]]) -> dict[str, list[ScoredPair]]:
    """An ensemble's member scores from its scored rows (``chosen_details.vector`` /
    ``rejected_details.vector``, as ``rewardkit eval`` and ``score`` write them), one list per member."""
    out: dict[str, list[ScoredPair]] = defaultdict(list)
    for row in rows:
        if "chosen_score" not in row:
            continue
        vc = (row.get("chosen_details") or {}).get("vector")
        vr = (row.get("rejected_details") or {}).get("vector")
        if not isinstance(vc, dict) or not isinstance(vr, dict):
            continue
        for name in vc:
            out[name].append(ScoredPair(row["id"], vc.get(name), vr.get(name), row.get("subset", "default"),
                                        applicable=not row.get("not_applicable", False)))
    return dict(out)


# ---------------------------------------------------------------- all of it

def diagnose(
    scored: Mapping[str, Sequence[ScoredPair | ScoredBestOfN]],
    records: Mapping[str, Any] | None = None,
    *,
    members: Mapping[str, Mapping[str, Sequence[ScoredPair]]] | None = None,
    length_ratio: float = 1.1,
    n_boot: int = 1000,
    seed: int = 0,
    source: str = "",
) -> Diagnostics:
    """Diagnostics of every reward in ``scored`` (name -> its scored items), with the data ``records``
    by id (None or missing ids: the statistics that need texts are left out, with a note) and, per
    reward, its ensemble ``members`` (member name -> scored items)."""
    if length_ratio < 1:
        raise ValueError(f"length_ratio must be >= 1, got {length_ratio}")
    records = records or {}
    members = members or {}
    notes: list[str] = []
    responses = {name: _responses(items, records) for name, items in scored.items()}
    pairwise = {name: [s for s in items if isinstance(s, ScoredPair)] for name, items in scored.items()}
    known = {_item(s) for items in scored.values() for s in items if _item(s) in records}
    total = {_item(s) for items in scored.values() for s in items}
    if records and len(known) < len(total):
        notes.append(f"{len(total) - len(known)} of {len(total)} scored items have no text in the data (matched on id): "
                     "length and style statistics leave them out")
    diag = Diagnostics(result={})
    per_reward: dict[str, Any] = {}
    for name, items in scored.items():
        entry: dict[str, Any] = {"length_correlation": length_correlation(responses[name])}
        if pairwise[name] and known:
            entry["length_controlled"] = length_controlled(pairwise[name], records, ratio=length_ratio, n_boot=n_boot, seed=seed)
            style = style_probe(pairwise[name], records, n_boot=n_boot, seed=seed)
            if style is not None:
                entry["style"] = style
                diag.styles[name] = [[(c["accuracy"] if c["n"] else None, c["n"]) for c in row] for row in style["matrix"]]
        diag.points[name] = _points(responses[name], seed)
        per_reward[name] = entry
    pairs_with_text = [(s, records[_item(s)]) for s in next(iter(pairwise.values()), []) if _item(s) in records]
    data_stats: dict[str, Any] = {"items": len(total), "items_with_text": len(known)}
    if pairs_with_text:
        lens = [_pair_lengths(s, r) for s, r in pairs_with_text]
        lens = [x for x in lens if x is not None]
        if lens:
            data_stats["chosen_longer_share"] = sum(lc > lr for lc, lr in lens) / len(lens)
            data_stats["same_length_share"] = sum(lc == lr for lc, lr in lens) / len(lens)
            data_stats["length_matched_share"] = sum(length_matched(lc, lr, length_ratio) for lc, lr in lens) / len(lens)
    names = list(scored)
    pairs_of_rewards = [{"a": a, "b": b, **agreement(scored[a], scored[b], responses[a], responses[b], n_boot=n_boot, seed=seed)}
                        for i, a in enumerate(names) for b in names[i + 1:]]
    ensembles: dict[str, Any] = {}
    if len(names) > 1 and all(pairwise[n] for n in names):
        ensembles["lineup"] = disagreement(pairwise, responses, None, n_boot=n_boot, seed=seed)
    elif len(names) > 1:
        notes.append("ensemble disagreement is computed on pairwise data only")
    for name, parts in members.items():
        if len(parts) < 2 or not pairwise.get(name):
            continue
        member_responses = {m: _responses(items, records) for m, items in parts.items()}
        ensembles[name] = disagreement(parts, member_responses, pairwise[name], n_boot=n_boot, seed=seed)
    diag.result = {
        "data": source,
        "length_unit": "characters of the completion text (steps joined by newlines)",
        "length_ratio": length_ratio,
        "data_stats": data_stats,
        "rewards": per_reward,
        "agreement": pairs_of_rewards,
        "disagreement": ensembles,
        "seed": seed,
        "bootstrap": {"resamples": n_boot, "seed": seed, "method": "percentile"},
        "notes": notes,
    }
    return diag


def _points(responses: Mapping[tuple, Mapping[str, Any]], seed: int) -> dict[str, list[tuple[float, float]]]:
    pts = [(r["label"], float(r["length"]), float(r["score"])) for r in responses.values() if r["length"] is not None and r["score"] is not None]
    if len(pts) > MAX_POINTS:
        keep = np.sort(np.random.default_rng(seed).choice(len(pts), MAX_POINTS, replace=False))
        pts = [pts[i] for i in keep]
    out: dict[str, list[tuple[float, float]]] = {}
    for label, x, y in pts:
        out.setdefault(label, []).append((x, y))
    return out


# ---------------------------------------------------------------- files

def _pct(x: Any) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.1f}".replace("-0.0", "0.0")


def _acc(stats: Mapping[str, Any] | None, key: str = "accuracy") -> str:
    if not stats or stats.get(key) is None or (isinstance(stats.get(key), float) and math.isnan(stats[key])):
        return "-"
    ci = stats.get("ci95") or [None, None]
    n = stats.get("n", stats.get("items"))
    interval = f" [{_pct(ci[0])}, {_pct(ci[1])}]" if ci[0] is not None and not (isinstance(ci[0], float) and math.isnan(ci[0])) else ""
    return f"{_pct(stats[key])}{interval}" + (f" (n={n})" if n is not None else "")


def _num(x: Any) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.3f}"


def diagnostics_table(result: Mapping[str, Any]) -> str:
    """The headline numbers per reward for the terminal (the rest is in diagnostics.md)."""
    from .report import _grid

    rows = [("reward", "Pearson", "Spearman", "matched %", "longer %", "shorter %", "hard %", "normal %", "easy %")]
    for name, r in result["rewards"].items():
        lc, st = r.get("length_controlled", {}), r.get("style", {})
        rows.append((name, _num(r["length_correlation"]["pearson"]), _num(r["length_correlation"]["spearman"]),
                     *[_pct((lc.get(k) or {}).get("accuracy")) for k in ("length_matched", "chosen_longer", "chosen_shorter")],
                     *[_pct((st.get(k) or {}).get("accuracy")) for k in ("hard", "normal", "easy")]))
    lines = [_grid(rows), "(score-length correlation over responses; accuracy on length-matched pairs, where the chosen is "
             "the longer / the shorter; RM-Bench hard / normal / easy)"]
    for name, d in result["disagreement"].items():
        if d["terciles"]:
            lines.append(f"disagreement ({name}): accuracy " + " / ".join(_pct(t["accuracy"]) for t in d["terciles"])
                         + " % from low to high tercile")
    return "\n".join(lines)


def diagnostics_markdown(result: Mapping[str, Any], plots: Mapping[str, str], *, command: str = "") -> str:
    """The readable side of diagnostics.json; ``plots`` maps an SVG's role to its file name."""
    rewards = result["rewards"]
    stats = result["data_stats"]
    lines = ["# Diagnostics", ""]
    if command:
        lines += ["Produced by:", "", f"    {command}", ""]
    lines += [f"Data: `{result['data']}`, {stats['items']} items ({stats['items_with_text']} with their texts). "
              f"Length = {result['length_unit']}. Accuracy is strict (ties and unscored count as wrong); intervals: "
              f"{result['bootstrap']['method']} bootstrap, {result['bootstrap']['resamples']} resamples, seed {result['seed']}.", ""]
    if any(r["length_correlation"]["responses"] for r in rewards.values()):
        share = stats.get("chosen_longer_share")
        lines += ["## Length", ""]
        if share is not None:
            lines += [f"The chosen response is the longer one in {_pct(share)}% of the pairs (so a reward that only reads "
                      f"length gets about that accuracy); {_pct(stats.get('length_matched_share'))}% of the pairs are "
                      f"length-matched (lengths within a ratio of {result['length_ratio']:g}).", ""]
        lines += ["| reward | Pearson r | Spearman rho | responses | acc. length-matched % | acc. chosen longer % | acc. chosen shorter % | longer - shorter (points) |",
                  "|---|---|---|---|---|---|---|---|"]
        for name, r in rewards.items():
            c, lc = r["length_correlation"], r.get("length_controlled", {})
            gap = lc.get("longer_minus_shorter") or {}
            lines.append(f"| {name} | {_num(c['pearson'])} | {_num(c['spearman'])} | {c['responses']} | {_acc(lc.get('length_matched'))} | "
                         f"{_acc(lc.get('chosen_longer'))} | {_acc(lc.get('chosen_shorter'))} | {_acc({**gap, 'n': None}, 'value') if gap else '-'} |")
        lines += ["", "A large positive gap means the reward prefers longer responses whatever they say; the length-matched "
                  "accuracy is what is left when length cannot decide.", ""]
        lines += [f"![{name}: score against length]({plots[f'length:{name}']})" for name in rewards if f"length:{name}" in plots]
        lines.append("")
    styled = {name: r["style"] for name, r in rewards.items() if "style" in r}
    if styled:
        lines += ["## Style against substance (RM-Bench)", "",
                  "Hard: the chosen (correct) response is plainer than the rejected one; normal: same style; easy: the chosen "
                  "one is fancier. RM-Bench's definition (mean of the 3x3 matrix's upper triangle / diagonal / lower triangle); "
                  "intervals resample items.", "",
                  "| reward | hard % | normal % | easy % | easy - hard (points) |", "|---|---|---|---|---|"]
        for name, s in styled.items():
            gap = s["easy"]["accuracy"] - s["hard"]["accuracy"] if s["easy"]["items"] and s["hard"]["items"] else float("nan")
            lines.append(f"| {name} | {_acc(s['hard'])} | {_acc(s['normal'])} | {_acc(s['easy'])} | {_pct(gap)} |")
        lines += ["", f"![accuracy by chosen and rejected style]({plots['styles']})" if "styles" in plots else "", ""]
    if result["agreement"]:
        lines += ["## Agreement between rewards", "", "| a | b | Kendall tau-b (responses) | same pair order % | top-1 agreement % |", "|---|---|---|---|---|"]
        for a in result["agreement"]:
            lines.append(f"| {a['a']} | {a['b']} | {_num(a['kendall_tau_b'])} ({a['responses']}) | "
                         f"{_acc(a.get('preference_agreement'), 'rate')} | {_acc(a.get('top1_agreement'), 'rate')} |")
        lines.append("")
    if result["disagreement"]:
        lines += ["## Ensemble disagreement as uncertainty", "",
                  "Disagreement of a pair = std across members of their z-scored margins; pairs split into terciles. "
                  "A useful uncertainty estimate loses accuracy from the low to the high tercile.", ""]
        for name, d in result["disagreement"].items():
            lines += [f"### {name}", "", f"members: {', '.join(d['members'])}; {d['pairs']} pairs ({d['unscored_pairs']} with an unscored member left out); "
                      f"prediction: {d['prediction']}.", ""]
            if not d["terciles"]:
                lines += ["(fewer than 3 pairs: no terciles)", ""]
                continue
            lines += ["| tercile | disagreement | accuracy % | " + " | ".join(f"{m} %" for m in d["members"]) + " |",
                      "|---|---|---|" + "---|" * len(d["members"])]
            for t in d["terciles"]:
                lines.append(f"| {t['tercile']} | {_num(t['disagreement'][0])} .. {_num(t['disagreement'][1])} | {_acc(t)} | "
                             + " | ".join(_pct(t["members"][m]) for m in d["members"]) + " |")
            gap = d["low_minus_high"]
            lines += ["", f"low - high: {_acc({**gap, 'n': None}, 'value')} points", ""]
    if result["notes"]:
        lines += ["## Notes", ""] + [f"* {n}" for n in result["notes"]] + [""]
    return "\n".join(lines)


def write_diagnostics(out_dir: Path, diag: Diagnostics, *, command: str = "") -> Path:
    """``diagnostics.json``, ``diagnostics.md`` and its SVGs (score against length per reward, the
    style matrices side by side) in ``out_dir``; returns the Markdown file."""
    from .report import clean_nan, heatmap_svg, scatter_svg, write_json

    out_dir.mkdir(parents=True, exist_ok=True)
    result = clean_nan(diag.result)
    write_json(out_dir / "diagnostics.json", result)
    plots: dict[str, str] = {}
    used: set[str] = set()
    for name, series in diag.points.items():
        if not series:
            continue
        c = result["rewards"][name]["length_correlation"]
        file = _file_name(f"length_{name}", used)
        (out_dir / file).write_text(scatter_svg(
            series, title=f"{name}: score against response length",
            subtitle=f"Pearson r = {_num(c['pearson'])}, Spearman rho = {_num(c['spearman'])} over {c['responses']} responses"
                     + (f" (plot: {MAX_POINTS} sampled)" if c["responses"] > MAX_POINTS else ""),
            x_label="length (characters, log scale)", y_label="score", log_x=True), encoding="utf-8")
        plots[f"length:{name}"] = file
    if diag.styles:
        levels = list(STYLE_LEVELS)
        (out_dir / "style_matrix.svg").write_text(heatmap_svg(
            diag.styles, rows=levels, cols=levels, title="Accuracy by chosen style (rows) and rejected style (columns)",
            subtitle="upper triangle = hard (chosen plainer), diagonal = normal, lower triangle = easy",
            row_label="chosen style", col_label="rejected style"), encoding="utf-8")
        plots["styles"] = "style_matrix.svg"
    path = out_dir / "diagnostics.md"
    path.write_text(diagnostics_markdown(result, plots, command=command), encoding="utf-8")
    return path


def _file_name(stem: str, used: set[str]) -> str:
    base = name = re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("_")
    k = 2
    while f"{name}.svg" in used:
        name, k = f"{base}_{k}", k + 1
    used.add(f"{name}.svg")
    return f"{name}.svg"
