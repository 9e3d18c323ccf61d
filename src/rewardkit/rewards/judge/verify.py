"""Reference-guided verification (``verify:``): correct / incorrect against a gold answer or a
reference solution, hardened against the empty answers of "One Token to Fool LLM-as-a-Judge"."""
from __future__ import annotations

from typing import Any, Sequence

from ...clients.base import Generation
from ...images import IMAGE_COLUMNS, count_images
from ...protocol import completion_text
from ...types import Completion, Prompt, RewardOutput
from .content import readable_images
from .pointwise import JudgeBase
from .text import ATTACK_PROBES, fill, is_substantive, parse_choice


class VerifierJudge(JudgeBase):
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

    @readable_images
    def score(self, prompts: Sequence[Prompt], completions: Sequence[Completion], **columns: Any) -> RewardOutput:
        self._check_lengths(prompts, completions)
        n = len(prompts)
        column = "reference" if columns.get("reference") is not None else "answer"
        refs = self.require_column(columns, column, n)
        answers = [completion_text(c) for c in completions]
        # an image answer has content even without text
        empty = [self.harden and not is_substantive(a) and not (not isinstance(c, str) and count_images(c))
                 for a, c in zip(answers, completions)]
        todo = [k for k in range(n) if not empty[k] and refs[k] is not None]
        given = {c: [columns[c][k] for k in todo] for c in ("principles", "rubric", *IMAGE_COLUMNS) if columns.get(c) is not None}
        subset = [prompts[k] for k in todo]
        shown = self._shown(subset, given)
        blocks = self._principles(subset, given, shown) if todo else []
        texts = [fill(self.template, prompt=s, reference=str(refs[k]), response=self._response(completions[k]), principles=b)
                 for k, s, b in zip(todo, shown, blocks)]
        outs = dict(zip(todo, zip(texts, self._ask(texts))))
        scores: list[float | None] = []
        ex: dict[str, list] = {k: [] for k in ("judge_raw", "judge_calls", "hard_verdicts", "parse_failures", "generated_tokens", "rejected_empty",
                                               "reason")}
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
            ex["hard_verdicts"].append(self.hard(gens) if self.soft else 0)
            ex["parse_failures"].append(fails)
            ex["generated_tokens"].append(sum(g.num_tokens or 0 for g in gens))
            ex["rejected_empty"].append(bool(empty[k]))
            ex["reason"].append(reason)
        if not any(ex["reason"]):
            del ex["reason"]
        if not any(ex["hard_verdicts"]):
            del ex["hard_verdicts"]
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
