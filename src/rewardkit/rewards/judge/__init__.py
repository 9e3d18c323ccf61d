"""Generative judges (LLM-as-a-judge) behind the reward protocol, reproducible by construction.

One module per way of judging (``pointwise.py``, ``pairwise.py``, ``listwise.py``, ``verify.py``) on a
shared configuration in ``pointwise.py``; ``text.py`` fills templates (``prompts/``) and parses verdicts.

* :class:`JudgeReward` (pointwise): the judge rates one response; the score is the parsed number, or
  the probability-weighted expected score when the client returns token log-probabilities.
* :class:`PairwiseJudge`: responses to the same prompt are compared in pairs, each pair in both orders
  (or one seeded random order, recorded); a response's score is its mean win probability against the
  others (a round robin, so it ranks best-of-N lists too). Order-inconsistent verdicts are reported.
* :class:`VerifierJudge`: reference-guided correct/incorrect (the RLVR use), hardened against the
  empty answers of "One Token to Fool LLM-as-a-Judge".
* :class:`ListwiseJudge`: all responses to a prompt ranked in one call, shown in seeded rotated orders.

All of them can be conditioned on principles or a rubric (per sample via a ``principles`` / ``rubric``
column, or globally), can write their own principles first (DeepSeek-GRM, "Inference-Time Scaling for
Generalist Reward Modeling"), and can draw ``samples`` judgments per item and vote or average, with an
optional meta-filter (any reward scoring the critiques) keeping the best before voting.
Parse failures are ``None`` with the raw text in ``extras["judge_raw"]``; every item reports its
``judge_calls``, ``parse_failures`` and ``generated_tokens``.
"""
from __future__ import annotations

from .pointwise import CritiqueRules, JudgeBase, JudgeReward, judge_summary, prompt_text
from .listwise import ListwiseJudge
from .pairwise import PairwiseJudge
from .verify import VerifierJudge

__all__ = ["CritiqueRules", "JudgeBase", "JudgeReward", "ListwiseJudge", "PairwiseJudge", "VerifierJudge", "judge_summary", "prompt_text"]
