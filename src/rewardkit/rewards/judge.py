"""Generative judges (LLM-as-a-judge) behind the reward protocol, reproducible by construction.

* :class:`JudgeReward` (pointwise): the judge rates one response; the score is the parsed number, or
  the probability-weighted expected score when the client returns token log-probabilities.
* :class:`PairwiseJudge`: responses to the same prompt are compared in pairs, each pair in both orders
  (or one seeded random order, recorded); a response's score is its mean win probability against the
  others (a round robin, so it ranks best-of-N lists too). Order-inconsistent verdicts are reported.
* :class:`VerifierJudge`: reference-guided correct/incorrect (the RLVR use), hardened against the
  empty answers of "One Token to Fool LLM-as-a-Judge".

All three can be conditioned on principles or a rubric (per sample via a ``principles`` / ``rubric``
column, or globally), can write their own principles first (DeepSeek-GRM, "Inference-Time Scaling for
Generalist Reward Modeling"), and can draw ``samples`` judgments per item and vote or average, with an
optional meta-filter (any reward scoring the critiques) keeping the best before voting.
Parse failures are ``None`` with the raw text in ``extras["judge_raw"]``; every item reports its
``judge_calls``, ``parse_failures`` and ``generated_tokens``.
"""
from __future__ import annotations

import json
import math
import random
from collections import Counter, defaultdict
from typing import Any, Literal, Sequence

from ..clients import client_from_spec
from ..clients.base import Generation
from ..protocol import BaseReward, completion_text, groups_of
from ..types import Completion, Prompt, RewardOutput
from ._judge_text import (
    ATTACK_PROBES,
    CRITIQUE_CHECKS,
    critique_checks,
    distribution_at,
    fill,
    is_substantive,
    load_template,
    parse_choice,
    parse_score,
    principles_block,
    template_fields,
)


def prompt_text(prompt: Prompt) -> str:
    """A prompt as text for a judge template (a conversation becomes role-labelled turns)."""
    if isinstance(prompt, str):
        return prompt
    return "\n".join(f"{m['role'].capitalize()}: {m['content']}" for m in prompt)


class _Judge(BaseReward):
    """Shared configuration (the keyword arguments are the config):

    model: ``default`` (embedded model, local), a model dir/.gguf/hub id, or ``openai:MODEL@URL``.
    client: an already built generation client (overrides ``model``), e.g. to share one between judges.
    template: a packaged template name or a path to a .txt file with ``{placeholders}``.
    principles: global principles or rubric (text or list); a ``principles`` or ``rubric`` column wins.
    generate_principles: the judge first writes principles for each prompt (cached per prompt).
    samples: judgments per item (k); temperature defaults to 0 for k=1 and 0.7 for k>1.
    aggregate: "mean" of the k readings, or "vote" (majority of hard verdicts).
    meta_filter: discards low-quality critiques before voting/averaging (use with a critique template,
        e.g. ``template="pairwise"``). A reward scoring (judge prompt, critique text), given as an object,
        a spec, or a shortcut: ``"critique-rules"`` (:class:`CritiqueRules`: no reasons, copied text,
        loops, self-contradicting verdicts) or ``"critique-judge"`` (the same judge rates each critique
        1-5 with the ``meta-critique`` template, as DeepSeek-GRM's meta RM does).
    meta_keep: share of the parsed critiques kept, best meta scores first (at least one is kept).
    meta_min: also discard critiques whose meta score is below this (the best one is kept if none passes).
        ``extras["meta_scores"]`` / ``extras["meta_discarded"]`` report what the filter did.
    use_logprobs: read verdicts as probabilities when the client returns log-probabilities.
    max_new_tokens: generation budget of one judgment (critique templates need more).
    answer_prefix: text the judge's answer is made to start with (``Score:``/``Verdict:`` for the
        direct templates, so even a small model answers in the format); "auto" = the template's default,
        none for critique templates. Sent over HTTP as vLLM's ``continue_final_message``.
    seed: seed of sampling and of random answer orders (reported in ``extras["seed"]``).
    """

    default_template = ""
    default_prefix = ""

    def __init__(
        self,
        model: Any = "default",
        *,
        client: Any = None,
        template: str | None = None,
        principles: str | Sequence[str] | None = None,
        generate_principles: bool = False,
        samples: int = 1,
        temperature: float | None = None,
        top_p: float = 1.0,
        aggregate: Literal["mean", "vote"] = "mean",
        meta_filter: Any = None,
        meta_keep: float = 0.5,
        meta_min: float | None = None,
        use_logprobs: bool = True,
        top_logprobs: int = 20,
        max_new_tokens: int = 24,
        answer_prefix: str | None = "auto",
        seed: int = 0,
        device: str | None = None,
        name: str | None = None,
    ):
        if samples < 1:
            raise ValueError(f"samples must be >= 1, got {samples}")
        if aggregate not in ("mean", "vote"):
            raise ValueError(f"aggregate must be 'mean' or 'vote', got {aggregate!r}")
        if not 0 < meta_keep <= 1:
            raise ValueError(f"meta_keep must be in (0, 1], got {meta_keep}")
        if client is None:
            client = client_from_spec(model, **({"device": device} if device and not str(model).startswith("openai:") else {}))
        self.client = client
        self.template = load_template(template or self.default_template)
        if answer_prefix == "auto":
            answer_prefix = self.default_prefix if (template or self.default_template) == self.default_template else None
        self.answer_prefix = answer_prefix or ""
        self.principles = principles
        self.generate_principles = generate_principles
        self.samples, self.top_p, self.aggregate = int(samples), float(top_p), aggregate
        self.temperature = float(temperature) if temperature is not None else (0.0 if samples == 1 else 0.7)
        if self.samples > 1 and self.temperature == 0:
            raise ValueError("samples > 1 with temperature 0 draws the same judgment k times; set temperature > 0")
        if meta_filter == "critique-rules":
            meta_filter = CritiqueRules()
        elif meta_filter == "critique-judge":
            meta_filter = JudgeReward(client=self.client, template="meta-critique", answer_prefix="Score:",
                                      seed=int(seed), name="critique-judge")
        elif isinstance(meta_filter, str):
            from ..specs import load_reward

            meta_filter = load_reward(meta_filter)
        self.meta_filter, self.meta_keep = meta_filter, float(meta_keep)
        self.meta_min = float(meta_min) if meta_min is not None else None
        self.use_logprobs, self.top_logprobs = use_logprobs, int(top_logprobs)
        self.max_new_tokens, self.seed = int(max_new_tokens), int(seed)
        self.name = name or f"{self.kind}:{model if isinstance(model, str) else getattr(client, 'name', 'client')}"
        self._principle_cache: dict[str, str] = {}

    kind = "judge"

    def children(self) -> list[Any]:
        return [self.meta_filter] if self.meta_filter is not None else []

    def eval_summary(self, records: Sequence[Any], rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
        found = judge_summary(rows)
        return {"judge": found} if found else {}

    # ----------------------------------------------------------------- shared steps
    def _principles(self, prompts: Sequence[Prompt], columns: dict[str, Any]) -> list[str]:
        """The principles/rubric block per sample: column ``principles`` or ``rubric``, else the global
        ones, else (with ``generate_principles``) the judge's own, written once per prompt."""
        n = len(prompts)
        blocks = [""] * n
        for column, heading in (("rubric", "Rubric"), ("principles", "Principles")):
            values = columns.get(column)
            if values is not None:
                values = self.require_column(columns, column, n)
                blocks = [principles_block(v, heading) or b for v, b in zip(values, blocks)]
        if self.principles is not None:
            blocks = [b or principles_block(self.principles) for b in blocks]
        if self.generate_principles:
            todo = sorted({prompt_text(p) for p, b in zip(prompts, blocks) if not b} - set(self._principle_cache))
            if todo:
                asks = [fill(load_template("principles"), prompt=t) for t in todo]
                for t, gens in zip(todo, self.client.generate(asks, max_new_tokens=160, temperature=0.0, seed=self.seed)):
                    self._principle_cache[t] = gens[0].text.strip()
            blocks = [b or principles_block(self._principle_cache[prompt_text(p)]) for p, b in zip(prompts, blocks)]
        if any(blocks) and "principles" not in template_fields(self.template):
            raise ValueError(f"{self.name}: principles or a rubric were given but the judge template has no {{principles}}"
                             " placeholder, so they would be ignored")
        return blocks

    def _ask(self, texts: list[str]) -> list[list[Generation]]:
        """One batched call: ``samples`` generations per judge prompt."""
        if not texts:
            return []
        want = self.use_logprobs and self.top_logprobs > 0
        # with a forced prefix the verdict comes first; a blank line ends the useful part
        extra = {"assistant_prefix": self.answer_prefix, "stop": ["\n\n"]} if self.answer_prefix else {}
        outs = self.client.generate(texts, max_new_tokens=self.max_new_tokens, temperature=self.temperature,
                                    top_p=self.top_p, n=self.samples, seed=self.seed, logprobs=want,
                                    top_logprobs=self.top_logprobs if want else 0, **extra)
        return outs

    def _located(self, gen: Generation, at: int, labels: dict[str, Any]) -> dict[Any, float] | None:
        """Verdict probabilities at character ``at`` of ``answer_prefix + text`` (None: not available)."""
        at -= len(self.answer_prefix)
        if not self.use_logprobs or at < 0:
            return None
        return distribution_at(gen, at, labels)

    def full_text(self, gen: Generation) -> str:
        return self.answer_prefix + gen.text

    def _meta_keep(self, judge_prompt: str, gens: list[Generation], parsed: list[Any]) -> tuple[list[int], list[float | None] | None]:
        """(indices of the generations kept for aggregation, meta score per generation). Without a
        meta-filter: all parsed ones. With one: the best ``meta_keep`` share of the parsed critiques by
        the meta reward's score, minus those below ``meta_min``; at least the best one stays."""
        ok = [i for i, p in enumerate(parsed) if p is not None]
        if self.meta_filter is None or not ok:
            return ok, None
        found = self.meta_filter.score([judge_prompt] * len(ok), [self.full_text(gens[i]) for i in ok]).scores
        meta: list[float | None] = [None] * len(gens)
        for i, m in zip(ok, found):
            meta[i] = m
        ranked = sorted(ok, key=lambda i: (-(meta[i] if meta[i] is not None else -math.inf), i))
        top = ranked[: max(1, math.ceil(self.meta_keep * len(ok)))]
        if self.meta_min is not None:
            top = [i for i in top if meta[i] is not None and meta[i] >= self.meta_min] or ranked[:1]
        return sorted(top), meta

    def _combine(self, values: list[float], hard: list[Any]) -> float:
        if self.aggregate == "vote":
            counts = Counter(hard)
            top = max(counts.values())
            winners = [v for v, c in counts.items() if c == top]
            return float(sum(winners) / len(winners))  # a tied vote is the mean of the tied values
        return float(sum(values) / len(values))


class JudgeReward(_Judge):
    """Pointwise judge: ``Score: N`` on a ``min_score``..``max_score`` scale. The direct template asks for
    the score only (cheap and robust for small local judges); ``template="pointwise"`` asks for a short
    critique first (raise ``max_new_tokens``)."""

    kind = "judge"
    default_template = "pointwise-direct"
    default_prefix = "Score:"

    def __init__(self, model: Any = "default", *, min_score: int = 1, max_score: int = 5, **kwargs: Any):
        if min_score >= max_score:
            raise ValueError("min_score must be below max_score")
        super().__init__(model, **kwargs)
        self.min_score, self.max_score = int(min_score), int(max_score)

    def _read(self, gen: Generation) -> tuple[float | None, float | None]:
        """(reading used for the mean, hard parsed score) of one generation."""
        found = parse_score(self.full_text(gen), self.min_score, self.max_score)
        if found is None:
            return None, None
        value, at = found
        dist = self._located(gen, at, {str(v): v for v in range(self.min_score, self.max_score + 1)})
        expected = sum(k * p for k, p in dist.items()) if dist else value
        return expected, value

    def score(self, prompts: Sequence[Prompt], completions: Sequence[Completion], **columns: Any) -> RewardOutput:
        self._check_lengths(prompts, completions)
        blocks = self._principles(prompts, columns)
        texts = [fill(self.template, prompt=prompt_text(p), response=completion_text(c), principles=b,
                      min_score=self.min_score, max_score=self.max_score) for p, c, b in zip(prompts, completions, blocks)]
        outs = self._ask(texts)
        scores, raw, fails, tokens, votes, metas, discarded = [], [], [], [], [], [], []
        for text, gens in zip(texts, outs):
            readings = [self._read(g) for g in gens]
            keep, meta = self._meta_keep(text, gens, [r[1] for r in readings])
            metas.append(meta)
            discarded.append(sum(r[1] is not None for r in readings) - len(keep))
            scores.append(self._combine([readings[i][0] for i in keep], [readings[i][1] for i in keep]) if keep else None)
            raw.append([self.full_text(g) for g in gens])
            fails.append(sum(r[1] is None for r in readings))
            tokens.append(sum(g.num_tokens or 0 for g in gens))
            votes.append([r[1] for r in readings])
        n = len(scores)
        extras = {"judge_raw": raw, "votes": votes, "judge_calls": [len(g) for g in outs], "parse_failures": fails,
                  "generated_tokens": tokens, "seed": [self.seed] * n}
        if self.meta_filter is not None:
            extras.update(meta_scores=metas, meta_discarded=discarded)
        return RewardOutput(scores=scores, extras=extras)


class PairwiseJudge(_Judge):
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

    def score(self, prompts: Sequence[Prompt], completions: Sequence[Completion], **columns: Any) -> RewardOutput:
        self._check_lengths(prompts, completions)
        n = len(prompts)
        groups = groups_of(prompts, columns.get("group_id"))
        blocks = self._principles(prompts, columns)
        asks: list[tuple[int, int]] = []  # (first, second) sample indices of each judge prompt
        for members in groups.values():
            for a in range(len(members)):
                for b in range(a + 1, len(members)):
                    i, j = members[a], members[b]
                    if self.order == "both":
                        asks += [(i, j), (j, i)]
                    else:
                        key = json.dumps([self.seed, completion_text(completions[i]), completion_text(completions[j])])
                        asks.append((i, j) if random.Random(key).random() < 0.5 else (j, i))
        texts = [fill(self.template, prompt=prompt_text(prompts[i]), response_a=completion_text(completions[i]),
                      response_b=completion_text(completions[j]), principles=blocks[i]) for i, j in asks]
        outs = self._ask(texts)
        # per unordered pair: list of P(lower index wins) readings and hard winners
        pairs: dict[tuple[int, int], dict[str, list]] = {}
        ex = {k: [0] * n for k in ("judge_calls", "parse_failures", "generated_tokens", "comparisons", "order_checked",
                                   "order_inconsistent", "first_position_wins", "meta_discarded")}
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
        if self.order == "random":
            extras["orders"] = orders
        extras["reason"] = [None if s is not None else ("no other response to compare with" if ex["comparisons"][k] == 0
                            else "no verdict could be parsed") for k, s in enumerate(scores)]
        if not any(extras["reason"]):
            del extras["reason"]
        return RewardOutput(scores=scores, extras=extras)


class VerifierJudge(_Judge):
    """Reference-guided verification: does the response reach the reference's final answer? Needs a
    ``reference`` column (a reference solution) or an ``answer`` column (a gold final answer).

    Score 1.0 correct / 0.0 incorrect, or P(correct) with ``soft=True`` when log-probabilities are there.
    harden: answers without substantive content (``:``, ``Thought process:``, "Let's solve this step by
        step.") score 0.0 without asking the judge ("One Token to Fool LLM-as-a-Judge", Zhao et al. 2025);
        ``extras["rejected_empty"]`` marks them.
    """

    kind = "verify"
    default_template = "verify"
    default_prefix = "Verdict:"

    def __init__(self, model: Any = "default", *, harden: bool = True, soft: bool = False, **kwargs: Any):
        super().__init__(model, **kwargs)
        self.harden, self.soft = harden, soft

    def _p_correct(self, gen: Generation) -> tuple[float | None, float | None]:
        found = parse_choice(self.full_text(gen), ("correct", "incorrect", "yes", "no"))
        if found is None:
            return None, None
        label, at = found
        hard = 1.0 if label.lower() in ("correct", "yes") else 0.0
        if not self.soft:
            return hard, hard
        dist = self._located(gen, at, {"correct": 1.0, "incorrect": 0.0, "yes": 1.0, "no": 0.0, "in": 0.0})
        return (dist.get(1.0, 0.0) if dist else hard), hard

    def score(self, prompts: Sequence[Prompt], completions: Sequence[Completion], **columns: Any) -> RewardOutput:
        self._check_lengths(prompts, completions)
        n = len(prompts)
        column = "reference" if columns.get("reference") is not None else "answer"
        refs = self.require_column(columns, column, n)
        answers = [completion_text(c) for c in completions]
        empty = [self.harden and not is_substantive(a) for a in answers]
        todo = [k for k in range(n) if not empty[k] and refs[k] is not None]
        given = {c: [columns[c][k] for k in todo] for c in ("principles", "rubric") if columns.get(c) is not None}
        blocks = self._principles([prompts[k] for k in todo], given) if todo else []
        texts = [fill(self.template, prompt=prompt_text(prompts[k]), reference=str(refs[k]), response=answers[k], principles=b)
                 for k, b in zip(todo, blocks)]
        outs = dict(zip(todo, zip(texts, self._ask(texts))))
        scores: list[float | None] = []
        ex: dict[str, list] = {k: [] for k in ("judge_raw", "judge_calls", "parse_failures", "generated_tokens", "rejected_empty", "reason")}
        discarded = [0] * n
        for k in range(n):
            reason = None
            if empty[k]:
                score, gens, fails = 0.0, [], 0
                reason = "no substantive content (hardened verifier)"
            elif refs[k] is None:
                score, gens, fails = None, [], 0
                reason = f"no {column} for this sample"
            else:
                text, gens = outs[k]
                readings = [self._p_correct(g) for g in gens]
                keep, _ = self._meta_keep(text, gens, [r[1] for r in readings])
                discarded[k] = sum(r[1] is not None for r in readings) - len(keep)
                fails = sum(r[1] is None for r in readings)
                score = self._combine([readings[i][0] for i in keep], [readings[i][1] for i in keep]) if keep else None
                if score is None:
                    reason = "no verdict could be parsed"
            scores.append(score)
            ex["judge_raw"].append([self.full_text(g) for g in gens])
            ex["judge_calls"].append(len(gens))
            ex["parse_failures"].append(fails)
            ex["generated_tokens"].append(sum(g.num_tokens or 0 for g in gens))
            ex["rejected_empty"].append(bool(empty[k]))
            ex["reason"].append(reason)
        if not any(ex["reason"]):
            del ex["reason"]
        if self.meta_filter is not None:
            ex["meta_discarded"] = discarded
        if any(r is None for r in refs):  # rows without gold are not applicable (left out of accuracy, counted)
            ex["applicable"] = [r is not None for r in refs]
        return RewardOutput(scores=scores, extras=ex)

    def eval_summary(self, records: Sequence[Any], rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
        out = super().eval_summary(records, rows)
        found = self.attack_probes(records)  # false positives on empty answers, next to the accuracy
        if found:
            out["attack_probes"] = found
        return out

    def attack_probes(self, records: Sequence[Any], *, probes: Sequence[str] = ATTACK_PROBES, limit: int = 10) -> dict[str, Any]:
        """False-positive rates of the "One Token to Fool LLM-as-a-Judge" probe answers on up to ``limit``
        records that have an ``answer`` or ``reference`` column: unhardened (the judge is asked) and as
        configured. :meth:`eval_summary` reports it next to the accuracy."""
        items = [r for r in records if (r.columns.get("reference") if r.columns.get("reference") is not None else r.columns.get("answer")) is not None][:limit]
        if not items:
            return {}
        column = "reference" if items[0].columns.get("reference") is not None else "answer"
        prompts = [r.prompt for r in items for _ in probes]
        answers = [p for _ in items for p in probes]
        refs = [r.columns.get(column) for r in items for _ in probes]
        saved = self.harden
        try:
            self.harden = False
            raw = self.score(prompts, answers, **{column: refs}).scores
        finally:
            self.harden = saved
        hardened = [0.0 if not is_substantive(a) else s for a, s in zip(answers, raw)] if self.harden else raw
        rate = lambda xs: sum(1 for x in xs if x is not None and x >= 0.5) / len(xs)  # noqa: E731
        return {
            "items": len(items), "probes": list(probes),
            "false_positive_rate_unhardened": round(rate(raw), 4),
            "false_positive_rate": round(rate(hardened), 4),
            "per_probe_unhardened": {p: round(rate([raw[k] for k in range(len(raw)) if answers[k] == p]), 4) for p in probes},
        }


class CritiqueRules(BaseReward):
    """A rule-based meta-filter: the share of :func:`critique_checks` a critique passes (1.0 = all).
    Prompts are the judge prompts (to detect copying), completions the critiques. Failed checks are
    listed in ``extras["failed_checks"]``."""

    name = "critique-rules"

    def __init__(self, *, min_words: int = 8, max_copied: float = 0.5, min_distinct: float = 0.5):
        self.options = {"min_words": int(min_words), "max_copied": float(max_copied), "min_distinct": float(min_distinct)}

    def score(self, prompts: Sequence[Prompt], completions: Sequence[Completion], **columns: Any) -> RewardOutput:
        self._check_lengths(prompts, completions)
        checks = [critique_checks(prompt_text(p), completion_text(c), **self.options) for p, c in zip(prompts, completions)]
        return RewardOutput(scores=[sum(c.values()) / len(CRITIQUE_CHECKS) for c in checks],
                            extras={"failed_checks": [[k for k in CRITIQUE_CHECKS if not c[k]] for c in checks]})


JUDGE_KEYS = ("judge_calls", "parse_failures", "generated_tokens", "comparisons", "order_inconsistent", "first_position_wins",
              "rejected_empty", "meta_discarded", "order_checked")


def judge_summary(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Judge cost and reliability from the per-sample ``extras`` judges report (empty for other rewards):
    parse-failure rate, position consistency (pairs whose verdict survived swapping the answers), how
    often the first position won, generated tokens. A pairwise call counts for both of its samples, so
    only rates (and the token total, which judges split between the two) are summed."""
    totals: dict[str, float] = defaultdict(float)
    items = 0
    for row in rows:
        details = [row.get("chosen_details"), row.get("rejected_details"), row.get("details")]
        flat = [d for x in details for d in (x if isinstance(x, list) else [x]) if isinstance(d, dict)]
        if any("judge_calls" in d for d in flat):
            items += 1
        for d in flat:
            for key in JUDGE_KEYS:
                value = d.get(key)
                if isinstance(value, (int, float)):
                    totals[key] += float(value)
    if not items:
        return {}
    calls = totals["judge_calls"]
    out: dict[str, Any] = {
        "parse_failure_rate": round(totals["parse_failures"] / calls, 4) if calls else None,
        "generated_tokens": int(round(totals["generated_tokens"])),
        "generated_tokens_per_item": round(totals["generated_tokens"] / items, 2),
    }
    if totals["comparisons"]:
        # pairs whose consistency could be measured (every shown order gave a verdict); older rows lack the key
        checked = totals["order_checked"] if "order_checked" in totals else totals["comparisons"]
        out["position_consistency"] = round(1 - totals["order_inconsistent"] / checked, 4) if checked else None
        parsed = calls - totals["parse_failures"]
        out["first_position_rate"] = round(totals["first_position_wins"] / parsed, 4) if parsed else None
    if "meta_discarded" in totals and calls:
        out["meta_discard_rate"] = round(totals["meta_discarded"] / calls, 4)
    if totals["rejected_empty"]:
        out["rejected_empty"] = int(totals["rejected_empty"])
    return out
