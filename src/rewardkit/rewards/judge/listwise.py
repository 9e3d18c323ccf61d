"""Listwise judging: the judge sees all responses to a prompt at once and ranks them.

Why both this and the pairwise round robin: for N responses a round robin in both orders costs
N(N-1) judge calls with two responses each; a listwise judge costs one call per shown order with all N
responses (about half the prompt tokens of the round robin, and far fewer calls, once N > 3). Strong
judges rank lists well; small ones often copy the order they were shown, which is why every group is
shown in several orders and the disagreement between them is reported rather than hidden.
Small judges that cannot write a ranking can still name the best response (``ask="best"``): one
label token, read as probabilities over all labels when the client gives log-probabilities.
"""
from __future__ import annotations

import json
import random
from typing import Any, Sequence

from ...protocol import groups_of
from ...types import Completion, Prompt, RewardOutput
from .content import Content, join, readable_images
from .pointwise import JudgeBase
from .text import fill, parse_choice, parse_ranking, template_fields

LABELS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def shown_orders(members: Sequence[int], count: int, key: str) -> list[list[int]]:
    """``count`` orders of ``members``: cyclic rotations of a base order shuffled by ``key`` (then of
    its reverse), so with ``count`` = N every response is shown once in every position."""
    base = list(members)
    random.Random(key).shuffle(base)
    n = len(base)
    orders = []
    for r in range(count):
        seq = base if (r // n) % 2 == 0 else base[::-1]
        orders.append(seq[r % n:] + seq[: r % n])
    return orders


class ListwiseJudge(JudgeBase):
    """Ranks the responses to the same prompt (grouped by ``group_id``, else by prompt) in one prompt.

    permutations: orders each group is shown in (default: one per response, the rotations of a
        seeded shuffle, so position bias cancels); the orders are recorded in ``extras["orders"]``
        as sample indices, the parsed rankings (best first) in ``extras["rankings"]``.
    ask: "ranking" (template ``listwise-direct``, ``Ranking: [Response B] > [Response A] > [Response C]``) or "best" (template
        ``listwise-best``, ``Best: Response B``; the answer is made to start with ``Best: Response`` so
        even a small judge answers with a label).
    Score of a response, averaged over the readings of all shown orders: for rankings its Borda count
    scaled to [0, 1] (1 = ranked first; with two responses, the share of orders it won); for "best"
    the probability that it is named best (from log-probabilities when available, else 0/1).
    Reported like the pairwise judge, so ``rewardkit eval`` shows the same columns:
    ``comparisons``: pairs of responses involving this one; ``order_checked`` / ``order_inconsistent``:
    those ordered by at least two readings, and those whose order flipped between readings ("best"
    orders only the named response above the others); ``first_position_wins``: calls involving this
    response whose reading put the response shown first on top (expected share 1/N without bias).
    Rankings that name fewer than N-1 of the labels are parse failures (one missing label is placed last).
    ``samples`` > 1 draws k readings per order (the meta-filter applies); ``aggregate`` is not used:
    readings are always averaged (Borda).
    """

    kind = "listwise"
    default_template = "listwise-direct"
    default_prefix = "Ranking: [Response"  # a small judge then writes labels, not numbers or prose
    group_by = "record"

    def __init__(self, model: Any = "default", *, ask: str = "ranking", permutations: int | None = None,
                 max_new_tokens: int | None = None, **kwargs: Any):
        if permutations is not None and permutations < 1:
            raise ValueError(f"permutations must be >= 1, got {permutations}")
        if ask not in ("ranking", "best"):
            raise ValueError(f"ask must be 'ranking' or 'best', got {ask!r}")
        self.ask = ask
        if ask == "best":
            self.default_template, self.default_prefix = "listwise-best", "Best: Response"
        else:
            kwargs.setdefault("use_logprobs", False)  # rankings are read as text
        super().__init__(model, max_new_tokens=max_new_tokens or (32 if ask == "ranking" else 8), **kwargs)
        if not {"responses", "labels"} <= template_fields(self.template):
            raise ValueError("a listwise template needs {responses} and {labels}")
        self.permutations = permutations

    @readable_images
    def score(self, prompts: Sequence[Prompt], completions: Sequence[Completion], **columns: Any) -> RewardOutput:
        self._check_lengths(prompts, completions)
        n = len(prompts)
        groups = groups_of(prompts, columns.get("group_id"))
        shown = self._shown(prompts, columns)
        blocks = self._principles(prompts, columns, shown)
        asks: list[list[int]] = []  # the sample indices shown, in the order shown, per judge prompt
        for members in groups.values():
            if len(members) < 2:
                continue
            if len(members) > len(LABELS):
                raise ValueError(f"{self.name}: a group has {len(members)} responses; a listwise judge ranks at most {len(LABELS)}"
                                 " (use the pairwise judge for more)")
            key = json.dumps([self.seed, [self._identity(completions[i]) for i in members]])
            asks += shown_orders(members, self.permutations or len(members), key)
        texts = [self._fill(shown[order[0]], [completions[i] for i in order], blocks[order[0]]) for order in asks]
        outs = self._ask(texts)
        ex = {k: [0] * n for k in ("judge_calls", "parse_failures", "generated_tokens", "comparisons", "order_checked",
                                   "order_inconsistent", "first_position_wins", "meta_discarded", "hard_verdicts")}
        raw: list[list[str]] = [[] for _ in range(n)]
        orders: list[list[list[int]]] = [[] for _ in range(n)]
        rankings: list[list[list[int] | None]] = [[] for _ in range(n)]
        utility: list[list[float]] = [[] for _ in range(n)]
        beats: dict[int, list[set[tuple[int, int]]]] = {}  # group (its smallest index) -> per kept reading, (winner, loser) pairs
        for order, text, gens in zip(asks, texts, outs):
            readings = [self._reading(g, order) for g in gens]  # (ranking as sample indices, {sample: utility}) or None
            keep, _ = self._meta_keep(text, gens, readings)
            for s in order:
                ex["judge_calls"][s] += len(gens)
                ex["hard_verdicts"][s] += self.hard(gens)
                ex["parse_failures"][s] += sum(r is None for r in readings)
                ex["first_position_wins"][s] += sum(r is not None and r[0][0] == order[0] for r in readings)
                ex["generated_tokens"][s] += sum(g.num_tokens or 0 for g in gens) / len(order)
                ex["meta_discarded"][s] += sum(r is not None for r in readings) - len(keep)
                raw[s].extend(self.full_text(g) for g in gens)
                orders[s].append(list(order))
                rankings[s].extend(r[0] if r else None for r in readings)
            for k in keep:
                ranking, values = readings[k]
                for s, v in values.items():
                    utility[s].append(v)
                ordered = range(len(ranking)) if self.ask == "ranking" else range(1)  # "best" orders only the winner
                beats.setdefault(min(order), []).append({(ranking[a], ranking[b]) for a in ordered for b in range(a + 1, len(ranking))})
        for members in groups.values():
            kept = beats.get(min(members), [])
            for a in range(len(members)):
                for b in range(a + 1, len(members)):
                    i, j = members[a], members[b]
                    seen = [(i, j) in r for r in kept if (i, j) in r or (j, i) in r]
                    for s in (i, j):
                        ex["comparisons"][s] += 1
                        ex["order_checked"][s] += len(seen) >= 2
                        ex["order_inconsistent"][s] += len(set(seen)) > 1
        scores = [sum(u) / len(u) if u else None for u in utility]
        extras: dict[str, list] = {**ex, "judge_raw": raw, "orders": orders, "rankings": rankings, "seed": [self.seed] * n}
        if self.meta_filter is None:
            del extras["meta_discarded"]
        if not any(extras["hard_verdicts"]):
            del extras["hard_verdicts"]
        reasons = [None if s is not None else ("no other response to compare with" if ex["comparisons"][k] == 0
                   else "no ranking could be parsed") for k, s in enumerate(scores)]
        if any(reasons):
            extras["reason"] = reasons
        return RewardOutput(scores=scores, extras=extras)

    def _reading(self, gen: Any, order: Sequence[int]) -> tuple[list[int], dict[int, float]] | None:
        """(ranking as sample indices, best first; utility of every shown sample) of one generation."""
        labels = LABELS[: len(order)]
        text = self.full_text(gen)
        if self.ask == "ranking":
            found = parse_ranking(text, labels)
            if found is None:
                return None
            ranking = [order[labels.index(x)] for x in found]
            return ranking, {s: (len(ranking) - 1 - place) / (len(ranking) - 1) for place, s in enumerate(ranking)}
        choice = parse_choice(text, tuple(labels))
        if choice is None:
            return None
        label, at = choice
        dist = self._located(gen, at, {x: x for x in labels}) or {label: 1.0}
        best = order[labels.index(label)]
        return [best] + [s for s in order if s != best], {s: dist.get(x, 0.0) for x, s in zip(labels, order)}

    def _fill(self, prompt: Content, shown: Sequence[Completion], principles: str) -> Content:
        labels = LABELS[: len(shown)]
        responses = join([join([f"[Response {x}]\n", self._response(c)]) for x, c in zip(labels, shown)], "\n\n")
        return fill(self.template, prompt=prompt, responses=responses, principles=principles,
                    labels=", ".join(labels), count=len(shown))
