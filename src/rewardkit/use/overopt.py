"""Overoptimization curves of best-of-N: as N grows, the proxy reward's pick scores ever higher on
the proxy; does it on a gold reward too? ("Scaling Laws for Reward Model Overoptimization", Gao et
al., 2022.)

For each prompt, from its pool of n scored samples, the expected score of the proxy's pick over a
uniformly random N-subset is computed exactly, not by drawing subsets: with the pool sorted by proxy
score, the sample ranked i-th from the bottom (1-based) is the best of a random N-subset with
probability C(i-1, N-1) / C(n, N). The estimate is unbiased for best-of-N from the distribution the
pool was drawn from. Proxy ties are broken uniformly at random: the tied samples share their ranks'
probability, so each rank contributes the mean gold score of its tie group. Curves are averaged over
prompts; bands are percentile bootstrap intervals over prompts (seeded). The x axis is the KL
divergence of best-of-N from the sampling policy, KL_bon = log N - (N - 1) / N nats.
"""
from __future__ import annotations

import math
from collections import Counter
from fractions import Fraction
from typing import Any, Sequence

import numpy as np

TIES = "proxy ties broken uniformly at random: each tied sample's gold score is replaced by the mean over its tie group"


def pick_probabilities(n: int, N: int) -> list[float]:
    """P(the sample ranked i-th from the bottom is the best of a random N-subset of n), i = 1..n."""
    if not 1 <= N <= n:
        raise ValueError(f"N must be in 1..{n}, got {N}")
    total = math.comb(n, N)
    return [float(Fraction(math.comb(i - 1, N - 1), total)) for i in range(1, n + 1)]


def kl_bon(N: int) -> float:
    return math.log(N) - (N - 1) / N


def expected_pick(proxy: Sequence[float], gold: Sequence[float], N: int) -> tuple[float, float]:
    """(expected gold score, expected proxy score) of the proxy's best of a uniformly random N-subset of the pool."""
    order = sorted(range(len(proxy)), key=lambda i: proxy[i])
    p = [proxy[i] for i in order]
    g = [float(gold[i]) for i in order]
    tied = list(g)
    lo = 0
    while lo < len(p):  # each tie group's gold mean stands in for its members
        hi = lo
        while hi + 1 < len(p) and p[hi + 1] == p[lo]:
            hi += 1
        mean = sum(g[lo : hi + 1]) / (hi + 1 - lo)
        tied[lo : hi + 1] = [mean] * (hi + 1 - lo)
        lo = hi + 1
    w = pick_probabilities(len(p), N)
    return sum(a * b for a, b in zip(w, tied)), sum(a * b for a, b in zip(w, p))


def pools_from_rows(rows: Sequence[dict[str, Any]], proxy: str, gold: str, *,
                    gold_none_as: float | None = None) -> tuple[list[tuple[list[float], list[float]]], dict[str, int], int]:
    """(per prompt (proxy scores, gold scores), samples left out by reason, prompts the gold reward does
    not apply to) of annotate's samples rows, each distinct sample as many times as it was drawn (the
    pool of i.i.d. draws the estimator assumes). A sample the proxy could not score is left out, and so
    is one the gold could not score unless ``gold_none_as`` gives its value; both counted. A prompt the
    gold reward does not apply to (``not_applicable``: a rule without its gold column) is no pool at
    all, whatever ``gold_none_as`` says: its samples are not wrong, they are unjudged."""
    pools, dropped, gold_na = [], Counter(), 0
    for row in rows:
        ps, gs, na = [], [], 0
        for s in row["samples"]:
            a, b = s["scores"].get(proxy), s["scores"].get(gold)
            if proxy not in s["scores"] or gold not in s["scores"]:
                raise ValueError(f"samples of {row['id']} carry no {proxy if proxy not in s['scores'] else gold!r} score (scored with: {', '.join(s['scores'])})")
            count = int(s.get("count", 1))
            if gold in s.get("not_applicable", ()):
                dropped["gold_not_applicable"] += count
                na += count
                continue
            if a is None:
                dropped["proxy_unscored"] += count
                continue
            if b is None:
                if gold_none_as is None:
                    dropped["gold_unscored"] += count
                    continue
                dropped["gold_unscored_counted_as_value"] += count
                b = gold_none_as
            ps += [float(a)] * count
            gs += [float(b)] * count
        if na and not ps:
            gold_na += 1
        else:
            pools.append((ps, gs))
    return pools, dict(dropped), gold_na


def default_ns(n_max: int) -> list[int]:
    ns, n = [], 1
    while n < n_max:
        ns.append(n)
        n *= 2
    return ns + [n_max]


def curve(pools: Sequence[tuple[Sequence[float], Sequence[float]]], *, n_max: int | None = None, n_boot: int = 1000, seed: int = 0) -> dict[str, Any]:
    """Gold and proxy score of the proxy's pick against N (1, 2, 4, ..., ``n_max``; default the largest
    pool), over the prompts whose pool holds at least ``n_max`` samples (the same prompts at every N)."""
    from ..evals.metrics import stratified_bootstrap

    sizes = [len(p) for p, _ in pools]
    if not any(sizes):
        raise ValueError("no prompt has a sample scored by both the proxy and the gold reward")
    n_max = n_max or max(sizes)
    used = [(p, g) for p, g in pools if len(p) >= n_max]
    if not used:
        raise ValueError(f"no prompt has {n_max} scored samples (largest pool: {max(sizes)}); lower --n-max")
    ns = default_ns(n_max)
    gold = np.array([[expected_pick(p, g, N)[0] for N in ns] for p, g in used])
    proxy = np.array([[expected_pick(p, g, N)[1] for N in ns] for p, g in used])
    band = lambda col: list(stratified_bootstrap({"all": col}, lambda m: m["all"], n_boot, seed))  # noqa: E731 - same resamples at every N
    points = [{"n": N, "kl_bon": kl_bon(N), "gold": float(gold[:, k].mean()), "gold_ci95": band(gold[:, k]),
               "proxy": float(proxy[:, k].mean()), "proxy_ci95": band(proxy[:, k])} for k, N in enumerate(ns)]
    peak = max(range(len(ns)), key=lambda k: (points[k]["gold"], -k))
    drop = gold[:, -1] - gold[:, peak]
    return {
        "n_max": n_max, "ns": ns, "prompts": len(used), "prompts_left_out": len(pools) - len(used),
        "left_out_reason": f"fewer than {n_max} samples scored by both rewards" if len(used) < len(pools) else None,
        "points": points, "peak_n": ns[peak], "peak_gold": points[peak]["gold"],
        "gold_gain_at_peak": points[peak]["gold"] - points[0]["gold"],
        "gold_n_max_minus_peak": {"value": float(drop.mean()), "ci95": band(drop)},
        "ties": TIES, "bootstrap": {"resamples": n_boot, "seed": seed, "method": "percentile, over prompts (the same resamples at every N)"},
    }


def plot(result: dict[str, Any], proxy: str, gold: str):
    """The curve as a :class:`rewardkit.evals.plot.Drawing`: gold (left) and proxy (right) against KL_bon."""
    from ..evals.plot import Panel, Series, line_chart

    pts = result["points"]
    xs = [p["kl_bon"] for p in pts]
    ticks = [(p["kl_bon"], f"{p['kl_bon']:.2f}") for p in pts]
    top = [(p["kl_bon"], f"N={p['n']}") for p in pts]
    panels = [Panel(f"gold: {gold}", [Series("gold", xs, [p["gold"] for p in pts], [p["gold_ci95"][0] for p in pts], [p["gold_ci95"][1] for p in pts])], ticks, top),
              Panel(f"proxy: {proxy}", [Series("proxy", xs, [p["proxy"] for p in pts], [p["proxy_ci95"][0] for p in pts], [p["proxy_ci95"][1] for p in pts])], ticks, top)]
    return line_chart(panels, title=f"Best-of-N with {proxy}: score of its pick",
                      subtitle=f"{result['prompts']} prompts; shaded: 95% bootstrap over prompts; gold peaks at N={result['peak_n']}",
                      x_label="KL_bon = log N - (N-1)/N (nats)")


def report(result: dict[str, Any], proxy: str, gold: str, *, png: bool, command: str = "") -> str:
    f = lambda x: f"{x:.4f}"  # noqa: E731
    lines = ["# Best-of-N overoptimization", ""]
    if command:
        lines += ["Produced by:", "", f"    {command}", ""]
    na = result.get("prompts_gold_not_applicable")
    lines += [f"Proxy (picks the best of N): `{proxy}`; gold: `{gold}`. {result['prompts']} prompts"
              + (f" ({result['prompts_left_out']} left out: {result['left_out_reason']})" if result["prompts_left_out"] else "") + "."
              + (f" Gold not applicable: {na} more prompts the gold reward cannot judge (e.g. no gold answer), not in the curve." if na else "")
              + (f" samples.jsonl also holds {result['rows_not_in_this_input']} rows of prompts not in this input, not in the curve."
                 if result.get("rows_not_in_this_input") else ""),
              "", "![curve](curve.svg)" + ("" if png else "  (curve.png: install Pillow)"), "",
              "| N | KL_bon (nats) | gold of the pick | 95% CI | proxy of the pick | 95% CI |", "|---|---|---|---|---|---|"]
    for p in result["points"]:
        lines.append(f"| {p['n']} | {p['kl_bon']:.3f} | {f(p['gold'])} | [{f(p['gold_ci95'][0])}, {f(p['gold_ci95'][1])}] | "
                     f"{f(p['proxy'])} | [{f(p['proxy_ci95'][0])}, {f(p['proxy_ci95'][1])}] |")
    d = result["gold_n_max_minus_peak"]
    lines += ["", f"Gold peaks at N = {result['peak_n']} ({f(result['peak_gold'])}, {result['gold_gain_at_peak']:+.4f} over N = 1, a random pick); "
              f"gold at N = {result['n_max']} minus the peak: {d['value']:+.4f} [{f(d['ci95'][0])}, {f(d['ci95'][1])}].", "",
              "Estimator: the exact expectation over uniformly random N-subsets of each prompt's pool (order statistics: the sample",
              "ranked i-th of n by the proxy is the pick with probability C(i-1, N-1) / C(n, N)); " + result["ties"] + ".",
              f"Intervals: {result['bootstrap']['method']}, {result['bootstrap']['resamples']} resamples, seed {result['bootstrap']['seed']}.", ""]
    if result.get("dropped"):
        lines += ["Samples left out of the pools: " + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in result["dropped"].items()) + ".", ""]
    return "\n".join(lines)
