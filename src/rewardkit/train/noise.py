"""Tools for noisy preference labels, applied to pairs before training.

- **Ensemble-vote preference strength** ("Secrets of RLHF in Large Language Models Part II: Reward
  Modeling"): score each pair with several reward models; each one votes for the side it scores
  higher, and the mean of their margins is the pair's preference strength. Pairs the ensemble
  disagrees with are dropped (``action="drop"``) or down-weighted to the share of members that agree
  with the label (``action="weight"``; the weight multiplies the pair's loss).
- **Margin consistency**: when a pair carries its own ratings (``chosen_score`` / ``rejected_score``, or
  UltraFeedback's ``score_chosen`` / ``score_rejected``) or a margin column, a pair whose ratings do not favour the chosen
  side contradicts its own label and is dropped.

Every function reports how many pairs it touched; nothing is dropped silently.
"""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal, Sequence

from ..types import PairRecord

#: the column training reads per-pair loss weights from
WEIGHT_COLUMN = "pair_weight"


def ensemble_votes(records: Sequence[PairRecord], rewards: Sequence[Any]) -> list[dict[str, Any]]:
    """Per pair: each member's margin ``r(chosen) - r(rejected)`` (``None`` if it could not score a
    side), the number of members agreeing with the label, of voters, and the mean margin."""
    prompts = [r.prompt for r in records]
    margins: list[list[float | None]] = [[] for _ in records]
    for reward in rewards:
        chosen = reward.score(prompts, [r.chosen for r in records]).scores
        rejected = reward.score(prompts, [r.rejected for r in records]).scores
        for i, (c, j) in enumerate(zip(chosen, rejected)):
            margins[i].append(None if c is None or j is None else float(c) - float(j))
    out = []
    for rec, ms in zip(records, margins):
        known = [m for m in ms if m is not None]
        out.append({
            "id": rec.id, "margins": ms, "voters": len(known), "agree": sum(m > 0 for m in known),
            "strength": sum(known) / len(known) if known else None,
        })
    return out


def apply_votes(records: Sequence[PairRecord], votes: Sequence[dict[str, Any]], *, action: Literal["drop", "weight"] = "drop",
                min_agreement: float = 0.5) -> tuple[list[PairRecord], dict[str, Any]]:
    """Drop pairs whose agreeing share is below ``min_agreement`` (``drop``), or weight every pair by
    its agreeing share (``weight``). Pairs no member could score are kept at weight 1."""
    if action not in ("drop", "weight"):
        raise ValueError(f"unknown vote action {action!r}; choose drop or weight")
    kept, dropped, weighted, unscored = [], 0, 0, 0
    for rec, v in zip(records, votes):
        if not v["voters"]:
            unscored += 1
            kept.append(rec)
            continue
        share = v["agree"] / v["voters"]
        if action == "drop":
            if share < min_agreement:
                dropped += 1
                continue
            kept.append(rec)
        else:
            weighted += share < 1
            kept.append(replace(rec, columns={**rec.columns, WEIGHT_COLUMN: share * float(rec.columns.get(WEIGHT_COLUMN, 1.0))}))
    report = {
        "option": f"ensemble votes ({action})", "pairs": len(records), "members": len(votes[0]["margins"]) if votes else 0,
        "min_agreement": min_agreement, "dropped": dropped, "down_weighted": weighted, "unscored": unscored,
        "ensemble_disagrees": sum(1 for v in votes if v["voters"] and v["agree"] / v["voters"] < 0.5),
    }
    return kept, report


def margin_inconsistent(record: PairRecord, margin_column: str | None = None) -> bool | None:
    """True when the pair's own ratings do not favour its chosen side; None when it carries none."""
    cols = record.columns
    for chosen, rejected in (("chosen_score", "rejected_score"), ("score_chosen", "score_rejected")):  # UltraFeedback uses the latter
        if cols.get(chosen) is not None and cols.get(rejected) is not None:
            return float(cols[chosen]) <= float(cols[rejected])
    if margin_column is not None and cols.get(margin_column) is not None:
        return float(cols[margin_column]) < 0
    return None


def drop_inconsistent_margins(records: Sequence[PairRecord], margin_column: str | None = None) -> tuple[list[PairRecord], dict[str, Any]]:
    kept, dropped, unrated = [], 0, 0
    for rec in records:
        verdict = margin_inconsistent(rec, margin_column)
        unrated += verdict is None
        if verdict:
            dropped += 1
        else:
            kept.append(rec)
    report = {"option": "inconsistent margins", "pairs": len(records), "dropped": dropped, "without_ratings": unrated}
    return kept, report


def write_votes(path: str | Path, votes: Sequence[dict[str, Any]], member_names: Sequence[str]) -> Path:
    """One line per pair, so users can look at what the ensemble thought before trusting the filter."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as fh:
        for v in votes:
            fh.write(json.dumps({**v, "members": list(member_names)}) + "\n")
    return path
