"""Which preference pairs a pool of scored responses yields, and how far several rewards agree.

Pure functions over one prompt's samples (``{"scores": {reward: float | None}, ...}``), so each
rule is checked by hand-computed cases. Two rules hold for every strategy: a tie never becomes a
pair (the deciding reward must prefer the chosen side strictly), and a sample the deciding reward
could not score (``None``) is never in a pair. A prompt without a pair gets one reason.

Strategies (``PairConfig.pairs``), decided by the primary reward unless said otherwise:
  best-worst  the top sample against the bottom one (earliest in sample order among ties).
  topk        the i-th best against the i-th worst, i < k (each sample in one pair at most).
  margin      every pair whose score difference is at least ``min_margin``.
  gate        a verifier decides when it splits the pool (score > 0.5 correct, else incorrect): the
              correct sample the model reward likes most against the incorrect one it likes most (the
              wrong answer most worth learning from); when every verified sample agrees, the model
              reward decides as in best-worst.
``min_margin`` also applies to the others: a pair whose deciding reward's difference is smaller goes.

Consistency across rewards (the idea of SCIR, "Self-Consistency of the Internal Reward Models Improves
Self-Rewarding Language Models", and CREAM, "CREAM: Consistency Regularized Self-Rewarding Language
Models", which keep or weight self-annotated pairs by how far rewards agree): every reward votes +1 when it
scores the chosen response higher, -1 lower, 0 on a tie, nothing when it could not score one of them.
``all-agree`` keeps a pair only when every reward votes +1; ``weight`` keeps all and writes the share
of +1 votes among the rewards that voted as the pair's loss weight (``pair_weight``, read by
``rewardkit train``).
"""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from itertools import combinations
from typing import Any, Literal, Sequence

#: reasons a prompt yields no pair, in the order they are checked
NO_PAIR = ("fewer than 2 distinct samples", "fewer than 2 scored samples", "all tied", "below margin", "filtered by consistency")
#: reasons a prompt yields no best-of-N row
NO_BEST = ("no sample scored", "no verified-correct sample")


@dataclass
class PairConfig:
    """How pairs are chosen (the ``rewardkit annotate`` flags are made from these fields)."""

    pairs: Literal["best-worst", "topk", "margin", "gate"] = "best-worst"
    k: int = 2
    min_margin: float = 0.0
    consistency: Literal["none", "all-agree", "weight"] = "none"
    primary: str | None = None  # default: the first reward
    verifier: str | None = None  # gate: default the first rule:/verify: reward


def _score(sample: dict[str, Any], name: str) -> float | None:
    value = sample["scores"].get(name)
    return None if value is None else float(value)


def roles(names: Sequence[str], cfg: PairConfig) -> tuple[str, str | None]:
    """(primary reward, verifier or None) among ``names``; an unknown name is an error."""
    for flag, value in (("--primary", cfg.primary), ("--verifier", cfg.verifier)):
        if value is not None and value not in names:
            raise ValueError(f"{flag} {value!r} is not one of the rewards ({', '.join(names)})")
    verifier = None
    if cfg.pairs == "gate":
        verifier = cfg.verifier or next((n for n in names if n.startswith(("rule:", "verify:"))), None)
        if verifier is None:
            raise ValueError("--pairs gate needs a verifier: give a rule:/verify: reward, or name one with --verifier")
    others = [n for n in names if n != verifier]
    primary = cfg.primary or (others[0] if others else names[0])
    return primary, verifier


def _ranked(samples: Sequence[dict[str, Any]], name: str) -> list[int]:
    """Indices the reward scored, best first; ties in sample order."""
    scored = [i for i, s in enumerate(samples) if _score(s, name) is not None]
    return sorted(scored, key=lambda i: (-_score(samples[i], name), i))  # type: ignore[operator]


def _candidates(samples: Sequence[dict[str, Any]], cfg: PairConfig, primary: str, verifier: str | None) -> tuple[list[tuple[int, int, str]], str | None]:
    """(chosen, rejected, deciding reward) before the margin and consistency filters, or a reason."""
    if len(samples) < 2:
        return [], NO_PAIR[0]
    if verifier is not None:
        verdict = {i: v > 0.5 for i, s in enumerate(samples) if (v := _score(s, verifier)) is not None}
        good = [i for i, ok in verdict.items() if ok]
        bad = [i for i, ok in verdict.items() if not ok]
        if good and bad:
            def liked(i: int) -> tuple[float, int]:  # the model reward's favourite first; unscored last
                s = _score(samples[i], primary) if primary != verifier else None
                return (-s if s is not None else math.inf, i)

            return [(min(good, key=liked), min(bad, key=liked), verifier)], None
    order = _ranked(samples, primary)
    if len(order) < 2:
        return [], NO_PAIR[1]
    value = lambda i: _score(samples[i], primary)  # noqa: E731
    if value(order[0]) == value(order[-1]):
        return [], NO_PAIR[2]
    if cfg.pairs in ("best-worst", "gate"):
        worst = value(order[-1])
        return [(order[0], min(i for i in order if value(i) == worst), primary)], None
    if cfg.pairs == "topk":
        ascending = sorted(order, key=lambda i: (value(i), i))
        k = min(cfg.k, len(order) // 2)
        return [(a, b, primary) for a, b in zip(order[:k], ascending[:k]) if value(a) > value(b)], None  # type: ignore[operator]
    pairs = [(a, b, primary) for a, b in combinations(order, 2) if value(a) > value(b)]  # type: ignore[operator]
    return sorted(pairs, key=lambda p: (-(value(p[0]) - value(p[1])), p[0], p[1])), None  # type: ignore[operator]


def votes(samples: Sequence[dict[str, Any]], chosen: int, rejected: int, names: Sequence[str]) -> dict[str, int | None]:
    """Each reward's vote on the pair: +1 prefers chosen, -1 rejected, 0 tie, None could not score both."""
    out: dict[str, int | None] = {}
    for name in names:
        a, b = _score(samples[chosen], name), _score(samples[rejected], name)
        out[name] = None if a is None or b is None else (a > b) - (a < b)
    return out


def select_pairs(samples: Sequence[dict[str, Any]], names: Sequence[str], cfg: PairConfig) -> tuple[list[dict[str, Any]], str | None]:
    """The pairs of one prompt's samples (``chosen``/``rejected`` indices, ``margin`` in the deciding
    reward's units, ``decided_by``, ``votes``, ``agreement``, and ``pair_weight`` under ``weight``),
    or no pair and the first reason of :data:`NO_PAIR` that applies."""
    primary, verifier = roles(names, cfg)
    found, reason = _candidates(samples, cfg, primary, verifier)
    if reason:
        return [], reason
    pairs = []
    for c, r, by in found:
        margin = _score(samples[c], by) - _score(samples[r], by)  # type: ignore[operator]
        if margin < cfg.min_margin:
            continue
        v = votes(samples, c, r, names)
        cast = [x for x in v.values() if x is not None]
        agreement = sum(x == 1 for x in cast) / len(cast)  # the deciding reward always votes +1
        pair = {"chosen": c, "rejected": r, "margin": margin, "decided_by": by, "votes": v, "agreement": agreement}
        if cfg.consistency == "all-agree" and any(x != 1 for x in v.values()):
            continue
        if cfg.consistency == "weight":
            pair["pair_weight"] = agreement
        pairs.append(pair)
    if pairs:
        return pairs, None
    below = all(_score(samples[c], by) - _score(samples[r], by) < cfg.min_margin for c, r, by in found)  # type: ignore[operator]
    return [], NO_PAIR[3] if below else NO_PAIR[4]


def best_sample(samples: Sequence[dict[str, Any]], names: Sequence[str], cfg: PairConfig) -> tuple[int | None, str | None, int, str | None]:
    """(index, picking reward, how many samples share its top score, None) of the response to keep for
    rejection-sampling fine-tuning, or (None, None, 0, the reason of :data:`NO_BEST`). Outside ``gate``:
    the primary reward's top sample, earliest among ties. Under ``gate``: the verified-correct sample the
    model reward likes most (ranked by the verifier, then sample order, when the model reward scored
    none of them); no sample when the verifier judged some and found none correct (a wrong answer is no
    target to fine-tune on); the model reward's favourite when the verifier judged none (no final
    answer, no gold answer), as for pairs."""
    primary, verifier = roles(names, cfg)
    pool = list(range(len(samples)))
    by = primary
    if verifier is not None:
        verdict = {i: v > 0.5 for i, s in enumerate(samples) if (v := _score(s, verifier)) is not None}
        good = [i for i, ok in verdict.items() if ok]
        if verdict and not good:
            return None, None, 0, NO_BEST[1]
        if good:
            pool = good
            if primary == verifier or all(_score(samples[i], primary) is None for i in good):
                by = verifier
    order = [i for i in _ranked(samples, by) if i in pool]
    if not order:
        return None, None, 0, NO_BEST[0]
    top = _score(samples[order[0]], by)
    return order[0], by, sum(1 for i in order if _score(samples[i], by) == top), None


def agreement(pools: Sequence[Sequence[dict[str, Any]]], names: Sequence[str]) -> dict[str, dict[str, Any]]:
    """For each two rewards, over every two samples of the same prompt that both rewards scored:
    concordant / discordant / tied orders, the order agreement C / (C + D) (pairs that both rewards
    order strictly) and Kendall's tau-b (C - D) / sqrt((n - ties_a)(n - ties_b)), pooled over prompts."""
    out = {}
    for a, b in combinations(names, 2):
        c = Counter()
        for samples in pools:
            for i, j in combinations(range(len(samples)), 2):
                ai, aj, bi, bj = _score(samples[i], a), _score(samples[j], a), _score(samples[i], b), _score(samples[j], b)
                if None in (ai, aj, bi, bj):
                    continue
                da, db = (ai > aj) - (ai < aj), (bi > bj) - (bi < bj)  # type: ignore[operator]
                c["n"] += 1
                c["ties_a"] += da == 0
                c["ties_b"] += db == 0
                c["concordant"] += da * db > 0
                c["discordant"] += da * db < 0
        strict = c["concordant"] + c["discordant"]
        denom = math.sqrt((c["n"] - c["ties_a"]) * (c["n"] - c["ties_b"]))
        out[f"{a} vs {b}"] = {"sample_pairs": c["n"], "concordant": c["concordant"], "discordant": c["discordant"],
                              "ties_" + a: c["ties_a"], "ties_" + b: c["ties_b"],
                              "order_agreement": c["concordant"] / strict if strict else None,
                              "kendall_tau_b": (c["concordant"] - c["discordant"]) / denom if denom else None}
    return out
