"""Pairwise judging (``pairwise:``): responses to one prompt compared in pairs, each pair in both
orders (or one seeded order), a response's score its mean win probability (a round robin, so it ranks
best-of-N lists too); order-inconsistent verdicts are reported."""
from __future__ import annotations

import json
import random
from typing import Any, Literal, Sequence

from ...clients.base import Generation
from ...protocol import groups_of
from ...types import Completion, Prompt, RewardOutput
from .content import readable_images
from .pointwise import JudgeBase
from .text import fill, parse_choice, template_fields


class PairwiseJudge(JudgeBase):
    """Compares responses to the same prompt (grouped by a ``group_id`` column, else by prompt) in pairs.

    order: "both" asks every pair in both orders (position bias cancels and shows up as
        ``order_inconsistent`` out of ``order_checked``, the pairs where both orders gave a verdict); "random" asks one order per pair, drawn from ``seed`` and the pair's
        content (recorded in ``extras["orders"]``).
    Score of a response: mean over its opponents of P(it wins), from verdict probabilities when the
    client gives log-probabilities, else from the parsed verdicts (a split decision is 0.5).
    A response with no opponent scores ``None``.
    """

    kind = "pairwise"
    default_template = "pairwise-direct"
    default_prefix = "Verdict:"
    group_by = "record"  # compares a group's responses; in an eval, a record's own completions

    def __init__(self, model: Any = "default", *, order: Literal["both", "random"] = "both", **kwargs: Any):
        if order not in ("both", "random"):
            raise ValueError(f"order must be 'both' or 'random', got {order!r}")
        super().__init__(model, **kwargs)
        if not {"response_a", "response_b"} <= template_fields(self.template):
            raise ValueError("a pairwise template needs {response_a} and {response_b}")
        self.order = order

    def _p_first(self, gen: Generation) -> tuple[float | None, str | None]:
        """(P(first response wins), hard verdict label) of one judgment."""
        found = parse_choice(self.full_text(gen), ("A", "B"))
        if found is None:
            return None, None
        label, at = found
        dist = self._located(gen, at, {"A": "A", "B": "B"})
        return (dist.get("A", 0.0) if dist else (1.0 if label == "A" else 0.0)), label

    @readable_images
    def score(self, prompts: Sequence[Prompt], completions: Sequence[Completion], **columns: Any) -> RewardOutput:
        self._check_lengths(prompts, completions)
        n = len(prompts)
        groups = groups_of(prompts, columns.get("group_id"))
        shown = self._shown(prompts, columns)
        blocks = self._principles(prompts, columns, shown)
        asks: list[tuple[int, int]] = []  # (first, second) sample indices of each judge prompt
        for members in groups.values():
            for a in range(len(members)):
                for b in range(a + 1, len(members)):
                    i, j = members[a], members[b]
                    if self.order == "both":
                        asks += [(i, j), (j, i)]
                    else:
                        key = json.dumps([self.seed, self._identity(completions[i]), self._identity(completions[j])])
                        asks.append((i, j) if random.Random(key).random() < 0.5 else (j, i))
        # image completions are shown under their labels ("[Response A]" then A's image), in the order asked
        texts = [fill(self.template, prompt=shown[i], response_a=self._response(completions[i]),
                      response_b=self._response(completions[j]), principles=blocks[i]) for i, j in asks]
        outs = self._ask(texts)
        # per unordered pair: list of P(lower index wins) readings and hard winners
        pairs: dict[tuple[int, int], dict[str, list]] = {}
        ex = {k: [0] * n for k in ("judge_calls", "parse_failures", "generated_tokens", "comparisons", "order_checked",
                                   "order_inconsistent", "first_position_wins", "meta_discarded", "hard_verdicts")}
        raw: list[list[str]] = [[] for _ in range(n)]
        orders: list[list[list[int]]] = [[] for _ in range(n)]
        for (i, j), text, gens in zip(asks, texts, outs):
            key = (min(i, j), max(i, j))
            slot = pairs.setdefault(key, {"p": [], "hard": [], "by_order": []})
            readings = [self._p_first(g) for g in gens]
            keep, meta = self._meta_keep(text, gens, [r[1] for r in readings])
            for s in (i, j):
                ex["meta_discarded"][s] += sum(r[1] is not None for r in readings) - len(keep)
                ex["judge_calls"][s] += len(gens)
                ex["hard_verdicts"][s] += self.hard(gens)
                ex["parse_failures"][s] += sum(r[1] is None for r in readings)
                ex["first_position_wins"][s] += sum(r[1] == "A" for r in readings)
                ex["generated_tokens"][s] += sum(g.num_tokens or 0 for g in gens) / 2  # the call is shared by two
                raw[s].extend(self.full_text(g) for g in gens)
                orders[s].append([i, j])
            if not keep:
                continue
            p_first = self._combine([readings[k][0] for k in keep], [1.0 if readings[k][1] == "A" else 0.0 for k in keep])
            p_low = p_first if i == key[0] else 1.0 - p_first
            slot["p"].append(p_low)
            slot["by_order"].append(p_low > 0.5 if p_low != 0.5 else None)
        totals = [[] for _ in range(n)]
        for (lo, hi), slot in pairs.items():
            for s in (lo, hi):
                ex["comparisons"][s] += 1
            if not slot["p"]:
                continue
            p_low = sum(slot["p"]) / len(slot["p"])
            verdicts = slot["by_order"]
            if self.order == "both" and len(verdicts) == 2:  # both orders gave a verdict: consistency is measurable
                ex["order_checked"][lo] += 1
                ex["order_checked"][hi] += 1
                if None in verdicts or verdicts[0] != verdicts[1]:
                    ex["order_inconsistent"][lo] += 1
                    ex["order_inconsistent"][hi] += 1
            totals[lo].append(p_low)
            totals[hi].append(1.0 - p_low)
        scores = [sum(t) / len(t) if t else None for t in totals]
        extras: dict[str, list] = {**ex, "judge_raw": raw, "seed": [self.seed] * n}
        if self.meta_filter is None:
            del extras["meta_discarded"]
        if not any(extras["hard_verdicts"]):
            del extras["hard_verdicts"]
        if self.order == "random":
            extras["orders"] = orders
        extras["reason"] = [None if s is not None else ("no other response to compare with" if ex["comparisons"][k] == 0
                            else "no verdict could be parsed") for k, s in enumerate(scores)]
        if not any(extras["reason"]):
            del extras["reason"]
        return RewardOutput(scores=scores, extras=extras)
