"""Verifiable rewards: math answers, code tests, instruction constraints, format, length, reference
similarity. ``rule:NAME`` specs resolve through :data:`RULES`."""
from __future__ import annotations

import importlib
from typing import Any

from .base import RuleReward, Verdict, as_verdict

#: rule name -> ("module:check_function" imported lazily, description for `rewardkit ls`)
RULES: dict[str, tuple[str, str]] = {
    "math": ("rewardkit.rewards.rules.math:check_math",
             "final-answer equivalence with the gold `answer` column (boxed, ####, 'the answer is', last number; LaTeX, fractions, units)"),
    "code": ("rewardkit.rewards.rules.code:check_code",
             "fraction of the `tests` column passed by the completion's code, in a sandboxed subprocess"),
    "constraints": ("rewardkit.rewards.rules.constraints:check_constraints",
                    "IFEval-style instruction constraints from the `constraint` column (word counts, keywords, case, JSON, bullets, phrases)"),
    "ifeval": ("rewardkit.rewards.rules.ifeval:check_ifeval",
               "IFEval's 25 instruction types from the `instruction_id_list` + `kwargs` columns (IFEval's row format); fraction followed, mode='strict' or 'loose'"),
    "regex": ("rewardkit.rewards.rules.text:check_regex",
              "1 if the completion matches the `pattern` column (or option), else 0"),
    "json": ("rewardkit.rewards.rules.text:check_json",
             "1 if the completion is valid JSON (matching the `schema` column when given)"),
    "length": ("rewardkit.rewards.rules.text:check_length",
               "length reward/penalty against a target (HAPO-style history-free variant)"),
    "bleu": ("rewardkit.rewards.rules.reference:check_bleu",
             "sentence BLEU to the `reference` column (sacrebleu), scaled to [0, 1]"),
    "chrf": ("rewardkit.rewards.rules.reference:check_chrf",
             "chrF to the `reference` column (sacrebleu), scaled to [0, 1]"),
    "rouge-l": ("rewardkit.rewards.rules.reference:check_rouge_l",
                "ROUGE-L F1 to the `reference` column (rouge-score)"),
}


def load_rule(name: str, **options: Any) -> RuleReward:
    """``rule:NAME`` -> a RuleReward around that check; ``options`` are the check's fixed keyword
    arguments plus ``workers``."""
    if name not in RULES:
        known = ", ".join(sorted(RULES)) or "none yet"
        raise ValueError(f"unknown rule {name!r}; known rules: {known}")
    module, _, attr = RULES[name][0].partition(":")
    check = getattr(importlib.import_module(module), attr)
    workers = options.pop("workers", 0)
    try:
        return RuleReward(check, name=f"rule:{name}", workers=workers, **options)
    except TypeError as err:
        raise ValueError(f"rule:{name}: {err}") from err


__all__ = ["RULES", "RuleReward", "Verdict", "as_verdict", "load_rule"]
