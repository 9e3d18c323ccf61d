"""IFEval's verifiable instructions in IFEval's own data format: ``rule:ifeval``.

Rows carry ``instruction_id_list`` (e.g. ``["punctuation:no_comma", "length_constraints:number_words"]``)
and ``kwargs``, a list of dicts aligned with it (``None`` values are ignored: the Hugging Face copy of
IFEval fills every key of every dict and sets the unused ones to ``None``; other data in this format,
e.g. IFBench's, is read the same way, its own instruction ids being unknown here).
The score is the fraction of instructions followed (IFEval's instruction-level accuracy for that
row); ``extras`` gives the breakdown: ``instructions`` (a ``{"id", "followed"}`` per instruction),
``followed`` (the booleans alone), ``prompt_level`` (all followed) and ``mode``.

The 25 instruction types of "Instruction-Following Evaluation for Large Language Models" (Zhou et
al., 2023) are checked with that paper's semantics (its reference checker, read to learn each
type's meaning; the code here is rewardkit's own):

    id                                         kwargs                                   followed when
    keywords:existence                         keywords                                 every keyword occurs (case-insensitive, also inside words)
    keywords:frequency                         keyword, frequency, relation             occurrences (as above) < or >= frequency
    keywords:forbidden_words                   forbidden_words                          none occurs as a whole word (case-insensitive)
    keywords:letter_frequency                  letter, let_frequency, let_relation      occurrences of the letter (any case) < or >=
    language:response_language                 language                                 langdetect says that language (undetectable text: followed)
    length_constraints:number_sentences        num_sentences, relation                  sentences < or >= num_sentences
    length_constraints:number_paragraphs       num_paragraphs                           exactly that many ***-separated paragraphs, none empty
    length_constraints:number_words            num_words, relation                      \\w+ tokens < or >= num_words
    length_constraints:nth_paragraph_first_word  num_paragraphs, nth_paragraph, first_word  exactly that many blank-line paragraphs, the nth starting with the word
    detectable_content:number_placeholders     num_placeholders                         at least that many [bracketed] spans
    detectable_content:postscript              postscript_marker                        the marker occurs ("P.S." also as "p. s.", any case)
    detectable_format:number_bullet_lists      num_bullets                              exactly that many lines starting with "*" (not "**") or "-"
    detectable_format:constrained_response     -                                        contains "My answer is yes." / "no." / "maybe."
    detectable_format:number_highlighted_sections  num_highlights                       at least that many *spans* (each **span** counts once more)
    detectable_format:multiple_sections        section_spliter, num_sections            at least that many "<spliter> <number>" markers
    detectable_format:json_format              -                                        the text (``` fences removed) parses as JSON
    detectable_format:title                    -                                        a non-empty <<title>> on one line
    combination:two_responses                  -                                        exactly two different responses separated by ******
    combination:repeat_prompt                  prompt_to_repeat                         starts with the prompt (case-insensitive, stripped)
    startend:end_checker                       end_phrase                               ends with the phrase (case-insensitive; outer quotes ignored)
    startend:quotation                         -                                        wrapped in double quotes
    change_case:capital_word_frequency         capital_frequency, capital_relation      all-capital words < or >= capital_frequency
    change_case:english_capital                -                                        no lowercase letter, has a cased one, and English
    change_case:english_lowercase              -                                        no uppercase letter, has a cased one, and English
    punctuation:no_comma                       -                                        no ","

Relations are IFEval's ``"less than"`` and ``"at least"``. An empty (all-whitespace) response
follows nothing, as in IFEval.

Modes (the spec option ``mode``, never a data column):

- ``strict``: the response as it is.
- ``loose``: IFEval's loose criterion, an upper bound: an instruction is followed when it holds for
  any of eight variants of the response: the response, without its first line, without its last
  line, without both (lines split at ``\\n``, the rest stripped), and each of these four with every
  ``*`` removed. Empty variants never count.

Where this differs from IFEval's reference code, on purpose: keywords, section splitters and custom
postscript markers are matched literally (IFEval compiles them as regular expressions); a missing
or ill-typed kwarg, an unknown relation or an unknown instruction id leaves the row undecided
(``None`` with the reason) where IFEval would pick a random value or crash; language detection is
seeded (``seed = 0``) so verdicts are reproducible, and ``"zh"`` matches langdetect's ``zh-cn`` and
``zh-tw``. Sentences are counted by rewardkit's own splitter (IFEval uses NLTK's Punkt model):
sentences end at ``.``, ``!``, ``?`` (and ``。！？``) followed by whitespace, never at a bare line break
(hard-wrapped text stays one sentence), and not after abbreviations (``Dr.``, ``e.g.``, ``U.S.A.``,
``Ph.D.`` unless a capitalised word follows), initials (``J. K.``), list numbers (``1.`` at a line
start) or the ``P.S.`` / ``P. S.`` postscript marker. Capital words are counted with a tokenizer
that, like NLTK's ``word_tokenize``, keeps hyphenated words whole and splits clitics (``DON'T`` ->
``DO`` + ``N'T``). Every check runs in linear time in the response's length (IFEval's bullet,
placeholder and title patterns backtrack quadratically on crafted text; their counts are reproduced
without that).
"""
from __future__ import annotations

import json
import numbers
import re
import threading
from typing import Any, Callable

from .base import Verdict

#: IFEval's two comparison relations
RELATIONS = ("less than", "at least")
MODES = ("strict", "loose")


class _BadInstruction(ValueError):
    """Unknown instruction id or malformed kwargs: the instruction (and the row) is undecided."""


# ------------------------------------------------------------------ language detection

_LANG_LOCK = threading.Lock()
_LANG_FACTORY: Any = None


def _factory() -> Any:
    """A private, seeded langdetect factory (the global one is left alone), loaded once."""
    global _LANG_FACTORY
    if _LANG_FACTORY is None:
        with _LANG_LOCK:
            if _LANG_FACTORY is None:
                from langdetect.detector_factory import PROFILES_DIRECTORY, DetectorFactory

                factory = DetectorFactory()
                factory.load_profile(PROFILES_DIRECTORY)
                factory.seed = 0  # reproducible verdicts (langdetect samples n-grams at random)
                _LANG_FACTORY = factory
    return _LANG_FACTORY


def detect_language(text: str) -> str | None:
    """langdetect's language code for ``text`` (e.g. ``"en"``, ``"zh-cn"``), or ``None`` when it finds
    no features to decide on (digits, punctuation, empty text)."""
    from langdetect.lang_detect_exception import LangDetectException

    detector = _factory().create()
    detector.append(text)
    try:
        return detector.detect()
    except LangDetectException:
        return None


def _is_language(text: str, code: str) -> bool:
    found = detect_language(text)
    if found is None:
        return True  # IFEval counts text it cannot classify as following the instruction
    code = code.lower()
    return found == code or ("-" not in code and found.split("-")[0] == code)


# ------------------------------------------------------------------ text units

_WORD = re.compile(r"\w+")


def count_words(text: str) -> int:
    """IFEval's word count: runs of word characters (``\\w+``), so "don't" is 2 and "state-of-the-art" 4."""
    return len(_WORD.findall(text))


#: abbreviations after which a period never ends a sentence
_NEVER_ENDS = frozenset("""
mr mrs ms mx dr prof rev fr hon gen col capt cpt lt sgt cmdr adm gov sen rep pres supt insp st mt ft
vs v cf e.g i.e viz al fig figs eq eqs ch sec vol pp approx ca est dept univ assn
p.s p.p.s
""".split())
#: abbreviations that end a sentence only when a capitalised word follows
_MAY_END = frozenset("etc inc ltd co corp jr sr bros plc llc a.m p.m ph.d b.a m.a b.sc m.sc d.c u.s u.k u.s.a".split())
# possessive quantifiers and a run start only (no match begins inside "....."): linear time
_TERMINAL = re.compile(r"(?<![.!?…])(?:[.!?…]++)[\"'”’)\]*_]*+(?=\s|$)|(?<![。！？])[。！？]++[\"'”’)\]」』]*+")
_LEADING_PUNCT = "\"'“‘([{*_<"
_POSTSCRIPT_END = re.compile(r"(?<!\w)[pP]\.\s?(?:[pP]\.\s?)?[sS]\.$")
_NUMBER_NEXT = re.compile(r"\s*\d")
_DOTTED = re.compile(r"^(?:[A-Za-z]{1,3}\.){2,}$")  # U.S.A. e.g. Ph.D. a.m.


def _token_before(text: str, end: int) -> tuple[str, int]:
    """The whitespace-delimited token that ends at ``end`` and where it starts."""
    start = end
    while start > 0 and not text[start - 1].isspace():
        start -= 1
    return text[start:end], start


_NEXT_WORD = re.compile(r"\s*[\"'“‘(\[{*_<]*(\S?)")


def _next_is_capitalised(text: str, pos: int) -> bool:
    first = _NEXT_WORD.match(text, pos).group(1)
    return bool(first) and first.isupper()


def _line_start(text: str, start: int) -> bool:
    i = start
    while i > 0 and text[i - 1] in " \t":
        i -= 1
    return i == 0 or text[i - 1] == "\n"


def _ends_sentence(text: str, match: re.Match[str], last: int) -> bool:
    """Whether the terminal punctuation ``match`` ends a sentence; ``last`` is the end of the text's
    last non-space character. Every test looks at a bounded neighbourhood (linear time overall)."""
    mark = match.group(0)
    if mark[0] not in ".…" or match.end() >= last:
        return True  # ! ? the CJK marks, and the end of the text
    if mark.startswith("…") or len(mark) - len(mark.lstrip(".")) >= 2:  # an ellipsis ends a sentence only before a capitalised word
        return _next_is_capitalised(text, match.end())
    if _POSTSCRIPT_END.search(text, max(0, match.start() - 8), match.start() + 1):
        return False  # "P.S." / "p. s." / "P.P.S." open a postscript
    token, start = _token_before(text, match.start() + 1)
    core = token.lstrip(_LEADING_PUNCT)
    word = core[:-1].lower()  # without the final period
    if word in _NEVER_ENDS:
        return False
    if word == "no" and _NUMBER_NEXT.match(text, match.end()):  # "No. 5"
        return False
    if len(word) == 1 and word.isalpha():  # an initial ("J. K. Rowling")
        return not core[0].isupper() and _next_is_capitalised(text, match.end())
    if word.isdigit() and _line_start(text, start):
        return False  # "1. " opening a list item
    if word in _MAY_END or _DOTTED.match(core):
        return _next_is_capitalised(text, match.end())
    return True


def split_sentences(text: str) -> list[str]:
    """Sentences of ``text`` (see the module docstring); pieces without a word character (a stray
    "***") join the sentence before them."""
    pieces: list[str] = []
    start = 0
    last = len(text.rstrip())
    for match in _TERMINAL.finditer(text):
        if _ends_sentence(text, match, last):
            pieces.append(text[start:match.end()])
            start = match.end()
    pieces.append(text[start:])
    sentences: list[str] = []
    for piece in pieces:
        piece = piece.strip()
        if not piece:
            continue
        if _WORD.search(piece) or not sentences:
            sentences.append(piece)
        else:
            sentences[-1] = f"{sentences[-1]} {piece}"
    return [s for s in sentences if _WORD.search(s)]


def count_sentences(text: str) -> int:
    return len(split_sentences(text))


_CAP_TOKEN = re.compile(r"\w+(?:[-'’.&/]\w+)*\.?")
_CLITIC = re.compile(r"^(.+?)(n['’]t|['’](?:s|m|d|ll|re|ve))$", re.IGNORECASE)


def word_tokens(text: str) -> list[str]:
    """Word tokens for capital-word counting: hyphenated words stay whole, clitics split off."""
    tokens: list[str] = []
    for token in _CAP_TOKEN.findall(text):
        m = _CLITIC.match(token)
        tokens.extend(m.groups() if m else (token,))
    return tokens


def capital_words(text: str) -> list[str]:
    """Tokens with a cased character and no lowercase one ("NASA", "I", "U.S.", "N'T")."""
    return [t for t in word_tokens(text) if t.isupper()]


# ------------------------------------------------------------------ kwargs


class _Args:
    """One instruction's kwargs, ``None`` values dropped; typed accessors raise _BadInstruction."""

    def __init__(self, instruction_id: str, kwargs: dict[str, Any]):
        self.id = instruction_id
        self.values = {k: v for k, v in kwargs.items() if v is not None}
        self.used: set[str] = set()

    def _get(self, name: str) -> Any:
        self.used.add(name)
        if name not in self.values:
            raise _BadInstruction(f"{self.id} needs the kwarg {name!r}")
        return self.values[name]

    def int(self, name: str) -> int:
        value = self._get(name)
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
            raise _BadInstruction(f"{self.id}: kwarg {name!r} must be a non-negative integer, got {value!r}")
        return int(value)

    def str(self, name: str, *, strip: bool = True) -> str:
        value = self._get(name)
        if not isinstance(value, str) or not value.strip():
            raise _BadInstruction(f"{self.id}: kwarg {name!r} must be a non-empty string, got {value!r}")
        return value.strip() if strip else value

    def strs(self, name: str) -> list[str]:
        value = self._get(name)
        values = [value] if isinstance(value, str) else value
        if not isinstance(values, (list, tuple)) or not values or not all(isinstance(v, str) and v.strip() for v in values):
            raise _BadInstruction(f"{self.id}: kwarg {name!r} must be a non-empty list of non-empty strings, got {value!r}")
        return [v.strip() for v in values]

    def relation(self, name: str) -> str:
        value = self._get(name)
        if value not in RELATIONS:
            raise _BadInstruction(f"{self.id}: kwarg {name!r} must be one of {list(RELATIONS)}, got {value!r}")
        return value

    def check_unused(self) -> None:
        extra = sorted(set(self.values) - self.used)
        if extra:
            raise _BadInstruction(f"{self.id}: unexpected kwargs {extra} (are kwargs aligned with instruction_id_list?)")


def _compare(found: int, relation: str, threshold: int) -> bool:
    return found < threshold if relation == "less than" else found >= threshold


Predicate = Callable[[str], bool]


# ------------------------------------------------------------------ instructions: kwargs -> predicate on the response


def _existence(a: _Args) -> Predicate:
    patterns = [re.compile(re.escape(k), re.IGNORECASE) for k in a.strs("keywords")]
    return lambda text: all(p.search(text) for p in patterns)


def _frequency(a: _Args) -> Predicate:
    pattern = re.compile(re.escape(a.str("keyword")), re.IGNORECASE)
    frequency, relation = a.int("frequency"), a.relation("relation")
    return lambda text: _compare(len(pattern.findall(text)), relation, frequency)


def _forbidden_words(a: _Args) -> Predicate:
    patterns = [re.compile(rf"\b{re.escape(w)}\b", re.IGNORECASE) for w in a.strs("forbidden_words")]
    return lambda text: not any(p.search(text) for p in patterns)


def _letter_frequency(a: _Args) -> Predicate:
    letter = a.str("letter").lower()
    if len(letter) != 1:
        raise _BadInstruction(f"{a.id}: kwarg 'letter' must be a single character, got {letter!r}")
    frequency, relation = a.int("let_frequency"), a.relation("let_relation")
    return lambda text: _compare(text.lower().count(letter), relation, frequency)


def _response_language(a: _Args) -> Predicate:
    code = a.str("language")
    return lambda text: _is_language(text, code)


def _number_sentences(a: _Args) -> Predicate:
    n, relation = a.int("num_sentences"), a.relation("relation")
    return lambda text: _compare(count_sentences(text), relation, n)


_DIVIDER = re.compile(r"\s?\*\*\*\s?")


def _number_paragraphs(a: _Args) -> Predicate:
    n = a.int("num_paragraphs")

    def holds(text: str) -> bool:
        parts = _DIVIDER.split(text)
        # empty text before the first or after the last divider is fine; an empty one inside is not
        if any(not p.strip() for p in parts[1:-1]):
            return False
        return sum(1 for p in parts if p.strip()) == n

    return holds


def _number_words(a: _Args) -> Predicate:
    n, relation = a.int("num_words"), a.relation("relation")
    return lambda text: _compare(count_words(text), relation, n)


_FIRST_WORD_STOP = set(".,?!'\"")


def _first_word(paragraph: str) -> str:
    token = paragraph.split()[0].lstrip("'").lstrip('"')
    out = []
    for ch in token:
        if ch in _FIRST_WORD_STOP:
            break
        out.append(ch.lower())
    return "".join(out)


def _nth_paragraph_first_word(a: _Args) -> Predicate:
    total, nth, word = a.int("num_paragraphs"), a.int("nth_paragraph"), a.str("first_word").lower()
    if nth < 1:
        raise _BadInstruction(f"{a.id}: kwarg 'nth_paragraph' counts from 1, got {nth}")

    def holds(text: str) -> bool:
        parts = text.split("\n\n")
        found = sum(1 for p in parts if p.strip())
        # IFEval indexes the raw split (blank pieces included) but counts only non-blank ones
        if nth > found or not parts[nth - 1].strip():
            return False
        return found == total and _first_word(parts[nth - 1].strip()) == word

    return holds


def placeholder_count(text: str) -> int:
    """IFEval's placeholders (non-overlapping ``[...]`` within a line, as ``re.findall(r"\\[.*?\\]")``
    counts them), in linear time: a "[" with no "]" after it on its line rules out the rest of the line."""
    count, pos = 0, 0
    while (start := text.find("[", pos)) >= 0:
        close, newline = text.find("]", start + 1), text.find("\n", start + 1)
        if close >= 0 and (newline < 0 or close < newline):
            count, pos = count + 1, close + 1
        elif newline >= 0:
            pos = newline + 1
        else:
            break
    return count


def _number_placeholders(a: _Args) -> Predicate:
    n = a.int("num_placeholders")
    return lambda text: placeholder_count(text) >= n


def _postscript(a: _Args) -> Predicate:
    marker = a.str("postscript_marker")
    if marker == "P.P.S":
        pattern = re.compile(r"p\.\s?p\.\s?s")
    elif marker == "P.S.":
        pattern = re.compile(r"p\.\s?s\.")
    else:
        pattern = re.compile(re.escape(marker.lower()))
    return lambda text: pattern.search(text.lower()) is not None


_STAR_BULLET = re.compile(r"^\s*\*[^*].*$", re.MULTILINE)
_DASH_BULLET = re.compile(r"^\s*-.*$", re.MULTILINE)


_BLANK_LINES = re.compile(r"\n(?:[^\S\n]*+\n)++")


def bullet_count(text: str) -> int:
    """IFEval's bullets: lines starting (after whitespace) with "*" not followed by another "*", or with "-".

    The patterns' leading ``\\s*`` spans blank lines, which makes them quadratic on many blank lines;
    runs of blank lines are first shortened to one (same matches, linear time)."""
    text = _BLANK_LINES.sub("\n\n", text)
    return len(_STAR_BULLET.findall(text)) + len(_DASH_BULLET.findall(text))


def _number_bullet_lists(a: _Args) -> Predicate:
    n = a.int("num_bullets")
    return lambda text: bullet_count(text) == n


_CONSTRAINED = ("My answer is yes.", "My answer is no.", "My answer is maybe.")


def _constrained_response(a: _Args) -> Predicate:
    return lambda text: any(option in text for option in _CONSTRAINED)


_SINGLE_HIGHLIGHT = re.compile(r"\*[^\n*]*\*")
_DOUBLE_HIGHLIGHT = re.compile(r"\*\*[^\n*]*\*\*")


def highlight_count(text: str) -> int:
    single = sum(1 for h in _SINGLE_HIGHLIGHT.findall(text) if h.strip("*").strip())
    double = sum(1 for h in _DOUBLE_HIGHLIGHT.findall(text) if h[2:-2].strip())
    return single + double


def _number_highlighted_sections(a: _Args) -> Predicate:
    n = a.int("num_highlights")
    return lambda text: highlight_count(text) >= n


def _multiple_sections(a: _Args) -> Predicate:
    splitter = re.compile(rf"\s?{re.escape(a.str('section_spliter'))}\s?\d+\s?")
    n = a.int("num_sections")
    return lambda text: len(splitter.split(text)) - 1 >= n


def _json_format(a: _Args) -> Predicate:
    def holds(text: str) -> bool:
        body = text.strip()
        for fence in ("```json", "```Json", "```JSON", "```"):
            body = body.removeprefix(fence)
        body = body.removesuffix("```").strip()
        try:
            json.loads(body)
        except (ValueError, RecursionError):  # RecursionError: "[[[[..." nested beyond the parser's depth
            return False
        return True

    return holds


def has_title(text: str) -> bool:
    """IFEval's title: ``<<[^\\n]+>>`` matched greedily, so per line from the first "<<" to the last
    ">>", non-empty once the brackets and spaces are stripped (computed per line: linear time)."""
    for line in text.split("\n"):
        start, end = line.find("<<"), line.rfind(">>")
        if start >= 0 and end >= start + 3 and line[start:end + 2].lstrip("<").rstrip(">").strip():
            return True
    return False


def _title(a: _Args) -> Predicate:
    return lambda text: has_title(text)


def _two_responses(a: _Args) -> Predicate:
    def holds(text: str) -> bool:
        parts = text.split("******")
        if any(not p.strip() for p in parts[1:-1]):
            return False
        answers = [p.strip() for p in parts if p.strip()]
        return len(answers) == 2 and answers[0] != answers[1]

    return holds


def _repeat_prompt(a: _Args) -> Predicate:
    prompt = a.str("prompt_to_repeat").lower()
    return lambda text: text.strip().lower().startswith(prompt)


def _end_checker(a: _Args) -> Predicate:
    phrase = a.str("end_phrase").lower()
    return lambda text: text.strip().strip('"').lower().endswith(phrase)


def _quotation(a: _Args) -> Predicate:
    def holds(text: str) -> bool:
        s = text.strip()
        return len(s) > 1 and s[0] == '"' and s[-1] == '"'

    return holds


def _capital_word_frequency(a: _Args) -> Predicate:
    n, relation = a.int("capital_frequency"), a.relation("capital_relation")
    return lambda text: _compare(len(capital_words(text)), relation, n)


def _english_capital(a: _Args) -> Predicate:
    return lambda text: text.isupper() and _is_language(text, "en")


def _english_lowercase(a: _Args) -> Predicate:
    return lambda text: text.islower() and _is_language(text, "en")


def _no_comma(a: _Args) -> Predicate:
    return lambda text: "," not in text


_BUILDERS: dict[str, Callable[[_Args], Predicate]] = {
    "keywords:existence": _existence,
    "keywords:frequency": _frequency,
    "keywords:forbidden_words": _forbidden_words,
    "keywords:letter_frequency": _letter_frequency,
    "language:response_language": _response_language,
    "length_constraints:number_sentences": _number_sentences,
    "length_constraints:number_paragraphs": _number_paragraphs,
    "length_constraints:number_words": _number_words,
    "length_constraints:nth_paragraph_first_word": _nth_paragraph_first_word,
    "detectable_content:number_placeholders": _number_placeholders,
    "detectable_content:postscript": _postscript,
    "detectable_format:number_bullet_lists": _number_bullet_lists,
    "detectable_format:constrained_response": _constrained_response,
    "detectable_format:number_highlighted_sections": _number_highlighted_sections,
    "detectable_format:multiple_sections": _multiple_sections,
    "detectable_format:json_format": _json_format,
    "detectable_format:title": _title,
    "combination:two_responses": _two_responses,
    "combination:repeat_prompt": _repeat_prompt,
    "startend:end_checker": _end_checker,
    "startend:quotation": _quotation,
    "change_case:capital_word_frequency": _capital_word_frequency,
    "change_case:english_capital": _english_capital,
    "change_case:english_lowercase": _english_lowercase,
    "punctuation:no_comma": _no_comma,
}

#: every instruction id this rule understands (IFEval's 25)
INSTRUCTION_IDS: tuple[str, ...] = tuple(_BUILDERS)


def build_instruction(instruction_id: str, kwargs: dict[str, Any] | None = None) -> Predicate:
    """The predicate ``response -> followed`` for one instruction; raises ValueError on an unknown
    id or malformed kwargs."""
    if instruction_id not in _BUILDERS:
        raise _BadInstruction(f"unknown instruction id {instruction_id!r}")
    args = _Args(instruction_id, kwargs or {})
    predicate = _BUILDERS[instruction_id](args)
    args.check_unused()
    return predicate


def response_variants(response: str, mode: str = "strict") -> list[str]:
    """The texts an instruction may hold for: the response (strict), or IFEval's eight loose variants."""
    if mode == "strict":
        return [response]
    lines = response.split("\n")
    cut = ["\n".join(lines[1:]).strip(), "\n".join(lines[:-1]).strip(), "\n".join(lines[1:-1]).strip()]
    return [response, response.replace("*", ""), *cut, *(c.replace("*", "") for c in cut)]


def follows(predicate: Predicate, variants: list[str]) -> bool:
    return any(v.strip() and predicate(v) for v in variants)


# ------------------------------------------------------------------ columns


def _parse(value: Any, name: str) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError as err:
            raise _BadInstruction(f"{name} is a string that is not JSON: {err}") from None
    return value


def _columns(instruction_id_list: Any, kwargs: Any) -> tuple[list[str], list[dict[str, Any]]]:
    ids = _parse(instruction_id_list, "instruction_id_list")
    if isinstance(ids, tuple):
        ids = list(ids)
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise _BadInstruction(f"instruction_id_list must be a list of instruction ids, got {instruction_id_list!r}")
    if not ids:
        raise _BadInstruction("instruction_id_list is empty: nothing to check")
    raw = _parse(kwargs, "kwargs") if kwargs is not None else [None] * len(ids)
    if isinstance(raw, tuple):
        raw = list(raw)
    if not isinstance(raw, list):
        raise _BadInstruction(f"kwargs must be a list of dicts aligned with instruction_id_list, got {type(raw).__name__}")
    if len(raw) != len(ids):
        raise _BadInstruction(f"kwargs has {len(raw)} entries for {len(ids)} instructions")
    dicts = []
    for i, item in enumerate(raw):
        if item is None:
            item = {}
        if not isinstance(item, dict):
            raise _BadInstruction(f"kwargs[{i}] must be a dict (or null), got {item!r}")
        dicts.append(item)
    return ids, dicts


def check_ifeval(completion: str, *, instruction_id_list: Any, kwargs: Any = None, mode: str = "strict") -> Verdict:
    """Fraction of the row's IFEval instructions the completion follows (``mode`` "strict" or
    "loose", a spec option). Unknown ids or malformed kwargs: ``None`` with the reason, the
    instructions that could be checked still listed in ``info["instructions"]``."""
    if mode not in MODES:
        return Verdict(None, f"mode must be one of {list(MODES)}, got {mode!r}")
    try:
        ids, dicts = _columns(instruction_id_list, kwargs)
    except _BadInstruction as err:
        return Verdict(None, str(err))
    variants = response_variants(completion, mode)
    followed: list[bool | None] = []
    problems: list[str] = []
    for instruction_id, kw in zip(ids, dicts):
        try:
            predicate = build_instruction(instruction_id, kw)
        except _BadInstruction as err:
            followed.append(None)
            problems.append(str(err))
            continue
        followed.append(follows(predicate, variants))
    info: dict[str, Any] = {
        "instructions": [{"id": i, "followed": f} for i, f in zip(ids, followed)],
        "followed": followed,
        "mode": mode,
    }
    if problems:
        info["prompt_level"] = None
        return Verdict(None, "; ".join(problems), info)
    info["prompt_level"] = all(followed)
    failed = [i for i, f in zip(ids, followed) if not f]
    return Verdict(sum(followed) / len(followed), f"not followed: {', '.join(failed)}" if failed else None, info)


check_ifeval.option_only = ("mode",)  # a spec option (rule:ifeval(mode='loose')), never a data column
