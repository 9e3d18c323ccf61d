"""Text side of the judges: prompt templates kept as files, robust verdict parsing, the
probability-weighted reading of a verdict from token log-probabilities, and the substantive-content
check that hardens reference-guided verifiers."""
from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any, Sequence

TEMPLATE_DIR = Path(__file__).with_name("prompts")
_PLACEHOLDER = re.compile(r"\{(\w+)\}")


def load_template(name: str) -> str:
    """A packaged template by name (``pairwise``, ``pointwise-direct`` ...) or a path to your own file."""
    path = Path(name)
    if path.suffix == ".txt" and path.is_file():
        return path.read_text(encoding="utf-8")
    packaged = TEMPLATE_DIR / f"{name}.txt"
    if packaged.is_file():
        return packaged.read_text(encoding="utf-8")
    known = ", ".join(sorted(p.stem for p in TEMPLATE_DIR.glob("*.txt")))
    raise FileNotFoundError(f"judge template {name!r}: not a .txt file and not a packaged template ({known})")


def template_fields(template: str) -> set[str]:
    return set(_PLACEHOLDER.findall(template))


def fill(template: str, **values: Any) -> Any:
    """Replace ``{name}`` placeholders. Only the template is scanned, so braces inside the user's
    text (code, JSON, LaTeX) are left alone. A value may be a list of content parts (text and images,
    :mod:`.content`): the result is then a list of parts with the images where their placeholder was."""
    missing = template_fields(template) - set(values)
    if missing:
        raise KeyError(f"the judge template needs {sorted(missing)}")
    if not any(isinstance(v, list) for v in values.values()):
        return _PLACEHOLDER.sub(lambda m: str(values[m.group(1)]), template)
    from .content import join

    pieces: list[Any] = []
    at = 0
    for m in _PLACEHOLDER.finditer(template):
        value = values[m.group(1)]
        pieces += [template[at:m.start()], value if isinstance(value, list) else str(value)]
        at = m.end()
    return join(pieces + [template[at:]])


def principles_block(value: Any, heading: str = "Principles") -> str:
    """Principles or a rubric (text or a list of items) as a block for the template; empty when none."""
    if value is None or value == "" or value == []:
        return ""
    if isinstance(value, (list, tuple)):
        value = "\n".join(f"- {str(v).strip()}" for v in value if str(v).strip())
    return f"\n[{heading}]\n{str(value).strip()}\n"


# ------------------------------------------------------------------ parsing

_NUM = r"(\d+(?:\.\d+)?)"
_SCORE_PATTERNS = [
    re.compile(r"score\s*(?:\*\*)?\s*[:=]?\s*(?:\*\*)?\s*\[*\s*" + _NUM, re.I),
    re.compile(r"rating\s*(?:\*\*)?\s*[:=]?\s*(?:\*\*)?\s*\[*\s*" + _NUM, re.I),
    re.compile(_NUM + r"\s*/\s*\d+"),
    re.compile(r"^\s*" + _NUM + r"\s*\.?\s*$"),
]


def parse_score(text: str, lo: float, hi: float) -> tuple[float, int] | None:
    """(score, character index of its first digit) from the judge's text, or ``None``. The last
    ``Score: N`` wins (judges often quote the scale before deciding); out-of-range values do not count."""
    for pattern in _SCORE_PATTERNS:
        hits = [m for m in pattern.finditer(text) if lo <= float(m.group(1)) <= hi]
        if hits:
            m = hits[-1]
            return float(m.group(1)), m.start(1)
    return None


def parse_choice(text: str, labels: Sequence[str]) -> tuple[str, int] | None:
    """(label, character index) of a verdict such as ``Verdict: A``, ``Best: C``, ``[[B]]``, ``Response A is better``
    or a reply that starts with a label (not ``A: 26``, which quotes an answer); ``None`` when the text
    commits to none or to several.
    Labels are matched as whole words, longest first (so "incorrect" is never read as "correct")."""
    alt = "|".join(re.escape(x) for x in sorted(labels, key=len, reverse=True))
    patterns = [
        rf"(?:verdict\s*(?:\*\*)?\s*[:：]?|best\s*(?:\*\*)?\s*[:：])\s*(?:\*\*)?\s*\[*\s*(?:response\s+)?\[*\s*\b({alt})\b(?!\s*[,>/]\s*\[*\s*(?:{alt})\b)",
        rf"\[\[\s*({alt})\s*\]\]",
        rf"(?:response|assistant|answer)\s+({alt})\b\s+(?:is|was)\s+(?:the\s+)?better",
        rf"^\W*\b({alt})\b(?!\s*[:=]\s*\S)",  # "A: 26" restates an answer (GSM8K's format), it is no verdict
    ]
    for pat in patterns:
        hits = list(re.finditer(pat, text, re.I))
        if hits:
            m = hits[-1] if pat.startswith("(?:verdict") else hits[0]
            found = next(x for x in labels if x.lower() == m.group(1).lower())
            return found, m.start(1)
    return None


def parse_ranking(text: str, labels: Sequence[str]) -> list[str] | None:
    """A ranking (labels best first) from ``Ranking: B > A > C`` (the last such line), or else from the
    first line made only of labels and separators (``>``, ``,``, ``;``). Repeated labels count once; a
    ranking that misses exactly one label gets it appended last; missing more is ``None``."""
    alt = "|".join(re.escape(x) for x in sorted(labels, key=len, reverse=True))
    lines = [m.group(1) for m in re.finditer(r"ranking\s*(?:\*\*)?\s*[:：]\s*(?:\*\*)?([^\n]*)", text, re.I)][-1:]
    if not lines:
        only = re.compile(rf"^\W*(?:\[*(?:{alt})\]*\s*[>,;]\s*)+\[*(?:{alt})\]*\W*$")
        lines = [ln for ln in text.splitlines() if only.match(ln.strip())][:1]
    if not lines:
        return None
    found: list[str] = []
    for m in re.finditer(rf"\b({alt})\b", lines[0]):
        label = m.group(1)
        if label not in found:
            found.append(label)
    missing = [x for x in labels if x not in found]
    if len(missing) > 1:
        return None
    return found + missing


def distribution_at(gen: Any, char_index: int, labels: dict[str, Any]) -> dict[Any, float] | None:
    """Probabilities of the verdict values at the generated token that starts at ``char_index``:
    the token's top alternatives whose text is one of ``labels`` (text -> value), renormalised.
    ``None`` when the generation carries no log-probabilities or the token cannot be located."""
    if not gen.tokens or not gen.top_logprobs or not gen.logprobs:
        return None
    offset = 0
    index = None
    for k, piece in enumerate(gen.tokens):
        if offset <= char_index < offset + len(piece):
            index = k
            break
        offset += len(piece)
    if index is None or "".join(gen.tokens)[char_index:char_index + 1] != gen.text[char_index:char_index + 1]:
        return None
    lowered = {k.lower(): v for k, v in labels.items()}
    mass: dict[Any, float] = {}
    alternatives = dict(gen.top_logprobs[index])
    alternatives.setdefault(gen.tokens[index], gen.logprobs[index])
    for piece, logprob in alternatives.items():
        value = lowered.get(piece.strip().lower())
        if value is not None and logprob is not None and math.isfinite(logprob):
            mass[value] = mass.get(value, 0.0) + math.exp(logprob)
    total = sum(mass.values())
    if total <= 0:
        return None
    return {k: v / total for k, v in mass.items()}


# ------------------------------------------------------------------ hardening

#: Openers and labels that carry no answer. "One Token to Fool LLM-as-a-Judge" (Zhao et al., 2025) shows
#: generative verifiers accept such replies as correct; a verifier should not even ask the judge.
EMPTY_OPENERS = (
    "let's solve this step by step", "let's solve this problem step by step", "let's think step by step",
    "let us solve this step by step", "thought process", "solution", "answer", "the answer is", "final answer",
    "step 1", "reasoning", "explanation", "解", "解答", "かいせつ", "解説", "答案",
)
ATTACK_PROBES = (":", ".", " ", "Thought process:", "Let's solve this step by step.", "Solution", "Answer:",
                 "The answer is", "解", "かいせつ")


def is_substantive(text: str, min_chars: int = 1) -> bool:
    """Whether an answer says anything once empty openers, labels and punctuation are removed: it must
    keep at least ``min_chars`` letters or digits (a number counts; ``Thought process:`` does not)."""
    rest = text.lower()
    for opener in sorted(EMPTY_OPENERS, key=len, reverse=True):
        rest = rest.replace(opener, " ")
    content = re.sub(r"[\W_]+", "", rest)
    return len(content) >= min_chars


# ------------------------------------------------------------------ critique quality (meta-filter)

_VERDICT_STATEMENT = re.compile(r"\b(?:verdict|score|rating)\s*(?:\*\*)?\s*[:=]\s*(?:\*\*)?\s*\[*\s*([\w.]+)", re.I)
CRITIQUE_CHECKS = ("reasons", "not_copied", "not_repetitive", "single_verdict")


def _words(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())


def _ngrams(words: list[str], n: int) -> list[tuple[str, ...]]:
    return [tuple(words[i:i + n]) for i in range(len(words) - n + 1)]


def critique_checks(judge_prompt: str, critique: str, *, min_words: int = 8, max_copied: float = 0.5,
                    min_distinct: float = 0.5) -> dict[str, bool]:
    """Cheap signs of a low-quality critique, each True when the critique passes:

    reasons: at least ``min_words`` words besides the verdict/score statements (a bare verdict is no critique);
    not_copied: at most ``max_copied`` of its word 6-grams appear in the judge prompt (it does not just
        repeat the question or a response);
    not_repetitive: at least ``min_distinct`` of its word trigrams are distinct (no degenerate loops);
    single_verdict: its verdict/score statements do not disagree ("Verdict: A ... Verdict: B").
    """
    body = _VERDICT_STATEMENT.sub(" ", critique)
    words = _words(body)
    six = _ngrams(_words(critique), 6)
    seen = set(_ngrams(_words(judge_prompt), 6))
    copied = sum(g in seen for g in six) / len(six) if six else 0.0
    tri = _ngrams(words, 3)
    distinct = len(set(tri)) / len(tri) if len(tri) >= 10 else 1.0
    verdicts = {m.group(1).lower().rstrip(".") for m in _VERDICT_STATEMENT.finditer(critique)}
    return {"reasons": len(words) >= min_words, "not_copied": copied <= max_copied,
            "not_repetitive": distinct >= min_distinct, "single_verdict": len(verdicts) <= 1}
