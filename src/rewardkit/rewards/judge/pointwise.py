"""Pointwise judging (``judge:``), and what every generative judge shares: the configuration (model
or client, template, principles, k samples with vote or mean, the meta-filter, log-probability
verdicts, the forced answer prefix, the seed), the batched call, and the evaluation summary of judge
cost and reliability. The pointwise judge is also the meta-judge that rates critiques
(``meta_filter="critique-judge"``), so the two live in one module."""
from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from typing import Any, Literal, Sequence

from ...clients import client_from_spec
from ...clients.base import Generation
from ...protocol import BaseReward, completion_text
from ...protocol import reads_images as any_reads_images
from ...types import Completion, Prompt, RewardOutput
from .content import Content, completion_content, content_text, judge_prompt, prompt_content, prompt_text, readable_images, sample_images
from .text import CRITIQUE_CHECKS, critique_checks, distribution_at, fill, load_template, parse_score, principles_block, template_fields


class JudgeBase(BaseReward):
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
    images: whether the judge is shown the images a sample carries (image parts in the prompt or an
        image completion, the ``images`` column), in place in its user turn. ``None``: as the engine
        can, i.e. a local vision-language model (``AutoModelForImageTextToText``) yes, a text-only
        local model no, an ``openai:`` server only when told (``judge:openai:MODEL@URL(images=true)``:
        whether a server's model reads images cannot be asked, and a server that drops them would be
        judged on the text alone). A judge that does not read images gives image samples ``None``
        with the reason; it never judges their text alone.
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
        images: bool | None = None,
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
            client = client_from_spec(model, images=images, **({"device": device} if device and not str(model).startswith("openai:") else {}))
        elif images and not getattr(client, "reads_images", False):
            raise ValueError(f"images=True, but the client {getattr(client, 'name', client)!r} does not read images")
        self.client = client
        self.reads_images = bool(getattr(client, "reads_images", False)) and images is not False
        self.image_hint = None if self.reads_images else (getattr(client, "image_hint", None) if images is None else
                                                          "the judge was built with images=False")
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
                                      seed=int(seed), images=self.reads_images, name="critique-judge")
        elif isinstance(meta_filter, str):
            from ...specs import load_reward

            meta_filter = load_reward(meta_filter)
        if meta_filter is not None and any_reads_images(meta_filter) and not self.reads_images:
            # the judge's capability is what decides whether image samples reach it; a meta-filter must not widen it
            raise ValueError("the meta-filter reads images but the judge does not (its engine, or images=False); "
                             "it would let the judge score image samples by their text")
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

    def step_metrics(self, out: RewardOutput) -> dict[str, float]:
        metrics = super().step_metrics(out)
        found = judge_summary([{"details": out.row(i)} for i in range(len(out))])
        for key in ("parse_failure_rate", "position_consistency", "first_position_rate", "hard_verdict_rate"):
            if found.get(key) is not None:
                metrics[key] = found[key]
        return metrics

    # ----------------------------------------------------------------- shared steps
    def _shown(self, prompts: Sequence[Prompt], columns: dict[str, Any]) -> list[Content]:
        """Each prompt as the judge is shown it: text, with its images in place when the judge reads them."""
        if not self.reads_images:
            return [prompt_text(p) for p in prompts]
        return [prompt_content(p, sample_images(columns, i)) for i, p in enumerate(prompts)]

    def _principles(self, prompts: Sequence[Prompt], columns: dict[str, Any], shown: Sequence[Content] | None = None) -> list[str]:
        """The principles/rubric block per sample: column ``principles`` or ``rubric``, else the global
        ones, else (with ``generate_principles``) the judge's own, written once per prompt as it is
        ``shown`` (with its images)."""
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
            shown = list(shown) if shown is not None else [prompt_text(p) for p in prompts]
            keys = [c if isinstance(c, str) else json.dumps(c, sort_keys=True) for c in shown]
            todo = {k: c for k, c, b in zip(keys, shown, blocks) if not b and k not in self._principle_cache}
            if todo:
                order = sorted(todo)
                asks = [judge_prompt(fill(load_template("principles"), prompt=todo[k])) for k in order]
                for k, gens in zip(order, self.client.generate(asks, max_new_tokens=160, temperature=0.0, seed=self.seed)):
                    self._principle_cache[k] = gens[0].text.strip()
            blocks = [b or principles_block(self._principle_cache[k]) for k, b in zip(keys, blocks)]
        if any(blocks) and "principles" not in template_fields(self.template):
            raise ValueError(f"{self.name}: principles or a rubric were given but the judge template has no {{principles}}"
                             " placeholder, so they would be ignored")
        return blocks

    def _ask(self, texts: Sequence[Content]) -> list[list[Generation]]:
        """One batched call: ``samples`` generations per filled judge template (text, or text and images)."""
        if not texts:
            return []
        want = self.use_logprobs and self.top_logprobs > 0
        # with a forced prefix the verdict comes first; a blank line ends the useful part
        extra = {"assistant_prefix": self.answer_prefix, "stop": ["\n\n"]} if self.answer_prefix else {}
        outs = self.client.generate([judge_prompt(t) for t in texts], max_new_tokens=self.max_new_tokens, temperature=self.temperature,
                                    top_p=self.top_p, n=self.samples, seed=self.seed, logprobs=want,
                                    top_logprobs=self.top_logprobs if want else 0, **extra)
        return outs

    def _response(self, completion: Completion) -> Content:
        """A completion as the judge is shown it (its images in place when the judge reads them)."""
        return completion_content(completion) if self.reads_images else completion_text(completion)

    def _identity(self, completion: Completion) -> str:
        """A completion's content as a string key (seeded answer orders depend on it): its text, or
        for a completion shown with images, the content with the images' bytes."""
        shown = self._response(completion)
        return shown if isinstance(shown, str) else json.dumps(shown, sort_keys=True)

    def _prefix(self, gen: Generation) -> str:
        """The answer prefix this generation continued ("" when the server could not continue a turn)."""
        return "" if gen.extras.get("prefix_applied") is False else self.answer_prefix

    def _located(self, gen: Generation, at: int, labels: dict[str, Any]) -> dict[Any, float] | None:
        """Verdict probabilities at character ``at`` of ``prefix + text`` (None: not available)."""
        at -= len(self._prefix(gen))
        if not self.use_logprobs or at < 0:
            return None
        return distribution_at(gen, at, labels)

    def hard(self, gens: Sequence[Generation]) -> int:
        """Readings that had to be hard verdicts although probabilities were asked for: the client (e.g. a
        server without log-probabilities) returned none. Reported per sample as ``hard_verdicts``."""
        if not (self.use_logprobs and self.top_logprobs > 0):
            return 0
        return sum(1 for g in gens if not g.top_logprobs)

    def full_text(self, gen: Generation) -> str:
        return self._prefix(gen) + gen.text

    def _meta_keep(self, shown: Content, gens: list[Generation], parsed: list[Any]) -> tuple[list[int], list[float | None] | None]:
        """(indices of the generations kept for aggregation, meta score per generation). Without a
        meta-filter: all parsed ones. With one: the best ``meta_keep`` share of the parsed critiques by
        the meta reward's score, minus those below ``meta_min``; at least the best one stays."""
        ok = [i for i, p in enumerate(parsed) if p is not None]
        if self.meta_filter is None or not ok:
            return ok, None
        # a meta-filter that reads images (the critique-judge on this judge's engine) sees the judge prompt with them;
        # another (critique-rules: copied text, loops) reads its text
        asked = judge_prompt(shown) if any_reads_images(self.meta_filter) else content_text(shown)
        found = self.meta_filter.score([asked] * len(ok), [self.full_text(gens[i]) for i in ok]).scores
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


class JudgeReward(JudgeBase):
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

    @readable_images
    def score(self, prompts: Sequence[Prompt], completions: Sequence[Completion], **columns: Any) -> RewardOutput:
        self._check_lengths(prompts, completions)
        shown = self._shown(prompts, columns)
        blocks = self._principles(prompts, columns, shown)
        texts = [fill(self.template, prompt=s, response=self._response(c), principles=b,
                      min_score=self.min_score, max_score=self.max_score) for s, c, b in zip(shown, completions, blocks)]
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
        hard = [self.hard(g) for g in outs]
        if any(hard):
            extras["hard_verdicts"] = hard
        return RewardOutput(scores=scores, extras=extras)


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
              "rejected_empty", "meta_discarded", "order_checked", "hard_verdicts")


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
    if totals["hard_verdicts"] and calls:  # probabilities were asked for but the client returned none
        out["hard_verdict_rate"] = round(totals["hard_verdicts"] / calls, 4)
    if totals["rejected_empty"]:
        out["rejected_empty"] = int(totals["rejected_empty"])
    return out
