"""Similarity to reference answers as a reward: sentence BLEU, chrF and ROUGE-L, all in [0, 1].

"BLEUBERI: BLEU is a surprisingly effective reward for instruction following" (Chang et al., 2025)
shows that BLEU against high-quality reference answers agrees with human preferences about as well
as strong reward models, and works as a GRPO reward for general instruction following.

The ``reference`` column holds one string or a list of strings (several references). An empty
completion scores 0.0; a missing or empty reference is undecided (``None``).
"""
from __future__ import annotations

import re
import threading
from typing import Any

from .base import Verdict

# sacrebleu metric objects keep a little state between calls (reference counts, tokenizer caches):
# one set per thread keeps the checks thread-safe without locks; worker processes build their own.
_local = threading.local()


def _metric(kind: str, **config: Any) -> Any:
    cache = getattr(_local, "metrics", None)
    if cache is None:
        cache = _local.metrics = {}
    key = (kind, tuple(sorted(config.items())))
    if key not in cache:
        if kind == "bleu":
            from sacrebleu.metrics import BLEU

            cache[key] = BLEU(effective_order=True, **config)
        elif kind == "chrf":
            from sacrebleu.metrics import CHRF

            cache[key] = CHRF(**config)
        else:
            from rouge_score.rouge_scorer import RougeScorer

            tokenizer = _UnicodeTokenizer(**config)
            cache[key] = (RougeScorer(["rougeL"], tokenizer=tokenizer), tokenizer)
    return cache[key]


def _references(reference: Any) -> tuple[list[str] | None, str | None]:
    """The non-empty reference strings, or (None, reason)."""
    if reference is None:
        return None, "no reference for this sample"
    refs = [reference] if isinstance(reference, str) else reference
    if isinstance(refs, (dict, bytes)):
        return None, f"reference must be a string or a list of strings, got {type(reference).__name__}"
    if not isinstance(refs, (list, tuple)):
        try:
            refs = list(refs)  # e.g. a numpy array from a dataset
        except TypeError:
            return None, f"reference must be a string or a list of strings, got {type(reference).__name__}"
    if not all(isinstance(r, str) for r in refs):
        return None, f"reference must be a string or a list of strings, got {reference!r}"
    refs = [r for r in refs if r.strip()]
    if not refs:
        return None, "the reference is empty"
    return refs, None


def _unit(score: float) -> float:
    """sacrebleu's 0-100 scale to [0, 1] (an exact match can come out as 100.00000000000004)."""
    return min(1.0, max(0.0, score / 100.0))


def check_bleu(completion: str, *, reference: Any, tokenize: str = "13a") -> Verdict:
    """Sentence BLEU (sacrebleu) in [0, 1], as the BLEUBERI reward.

    Sentence-level settings: effective order (n-gram orders longer than the completion are left out
    instead of zeroing the geometric mean) and exponential smoothing of zero n-gram counts. With
    several references, n-gram matches are clipped by the maximum count over the references and the
    brevity penalty uses the closest reference length (multi-reference BLEU). ``tokenize`` is a
    sacrebleu tokenizer: "13a" (default), "intl", "char", "zh", ...
    """
    refs, problem = _references(reference)
    if problem:
        return Verdict(None, problem)
    if not completion.strip():
        return Verdict(0.0)
    try:
        metric = _metric("bleu", tokenize=tokenize)
    except Exception as err:  # unknown tokenizer name
        return Verdict(None, f"cannot build BLEU with tokenize={tokenize!r}: {err}")
    return Verdict(_unit(metric.sentence_score(completion, refs).score))


def check_chrf(completion: str, *, reference: Any, word_order: int = 0) -> Verdict:
    """chrF (sacrebleu; character n-grams up to 6, beta = 2) in [0, 1]; ``word_order=2`` gives
    chrF++. With several references the best-scoring one counts."""
    refs, problem = _references(reference)
    if problem:
        return Verdict(None, problem)
    if not completion.strip():
        return Verdict(0.0)
    return Verdict(_unit(_metric("chrf", word_order=int(word_order)).sentence_score(completion, refs).score))


# ------------------------------------------------------------------ ROUGE-L

# CJK ideographs, kana and Hangul are one token per character (they are written without spaces).
_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff"
_TOKEN = re.compile(rf"[{_CJK}]|(?:(?![{_CJK}])[^\W_])+")


class _UnicodeTokenizer:
    """rouge_score's default tokenization (lowercase, split on anything but letters and digits)
    extended to non-ASCII letters: the default keeps only [a-z0-9], so "café" became "caf" and
    Chinese text had no tokens at all. On ASCII text the tokens are the same as the default's."""

    def __init__(self, stem: bool = False):
        self._stemmer = None
        if stem:
            from nltk.stem import porter

            self._stemmer = porter.PorterStemmer()

    def tokenize(self, text: str) -> list[str]:
        tokens = _TOKEN.findall(text.lower())
        if self._stemmer is not None:  # like rouge_score: only words longer than 3 characters
            tokens = [self._stemmer.stem(t) if len(t) > 3 and t.isascii() else t for t in tokens]
        return tokens


def check_rouge_l(completion: str, *, reference: Any, stem: bool = False) -> Verdict:
    """ROUGE-L F1 (longest common subsequence of tokens; rouge_score) in [0, 1]. With several
    references the best F1 counts. ``stem=True`` applies the Porter stemmer, as ``use_stemmer``."""
    refs, problem = _references(reference)
    if problem:
        return Verdict(None, problem)
    scorer, tokenizer = _metric("rouge", stem=bool(stem))
    if not any(tokenizer.tokenize(r) for r in refs):
        return Verdict(None, "the reference has no words to compare with")
    if not completion.strip():
        return Verdict(0.0)
    return Verdict(float(scorer.score_multi(refs, completion)["rougeL"].fmeasure))
