"""rule:ifeval - IFEval's instruction types in IFEval's row format (instruction_id_list + kwargs)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from rewardkit.rewards.rules import RULES, load_rule
from rewardkit.rewards.rules.ifeval import (
    INSTRUCTION_IDS,
    bullet_count,
    capital_words,
    check_ifeval,
    count_sentences,
    count_words,
    detect_language,
    response_variants,
)

SRC = Path(__file__).resolve().parents[3] / "src"

# Valid kwargs for every instruction type (as IFEval's input data gives them).
KWARGS = {
    "keywords:existence": {"keywords": ["cat", "dog"]},
    "keywords:frequency": {"keyword": "tea", "frequency": 3, "relation": "at least"},
    "keywords:forbidden_words": {"forbidden_words": ["bad", "awful"]},
    "keywords:letter_frequency": {"letter": "z", "let_frequency": 3, "let_relation": "at least"},
    "language:response_language": {"language": "fr"},
    "length_constraints:number_sentences": {"num_sentences": 2, "relation": "less than"},
    "length_constraints:number_paragraphs": {"num_paragraphs": 3},
    "length_constraints:number_words": {"num_words": 5, "relation": "less than"},
    "length_constraints:nth_paragraph_first_word": {"num_paragraphs": 2, "nth_paragraph": 2, "first_word": "however"},
    "detectable_content:number_placeholders": {"num_placeholders": 2},
    "detectable_content:postscript": {"postscript_marker": "P.S."},
    "detectable_format:number_bullet_lists": {"num_bullets": 2},
    "detectable_format:constrained_response": {},
    "detectable_format:number_highlighted_sections": {"num_highlights": 2},
    "detectable_format:multiple_sections": {"section_spliter": "Section", "num_sections": 2},
    "detectable_format:json_format": {},
    "detectable_format:title": {},
    "combination:two_responses": {},
    "combination:repeat_prompt": {"prompt_to_repeat": "Write a poem about tea."},
    "startend:end_checker": {"end_phrase": "Any other questions?"},
    "startend:quotation": {},
    "change_case:capital_word_frequency": {"capital_frequency": 3, "capital_relation": "at least"},
    "change_case:english_capital": {},
    "change_case:english_lowercase": {},
    "punctuation:no_comma": {},
}

# (instruction id, kwargs override or None for KWARGS[id], followed text, not-followed text) in strict mode
STRICT = [
    ("keywords:existence", None, "The Cat chased a hotdog.", "The cat sat."),  # substring match, any case
    ("keywords:frequency", None, "tea, Tea and TEA", "tea and tea"),
    ("keywords:frequency", {"keyword": "very", "frequency": 2, "relation": "less than"}, "very good", "very very good"),
    ("keywords:forbidden_words", None, "A badge is awfully fine.", "That is Bad."),  # whole words only
    ("keywords:letter_frequency", None, "Zig zag zoo", "zoo"),
    ("keywords:letter_frequency", {"letter": "A", "let_frequency": 2, "let_relation": "less than"}, "A cow", "A cat"),
    ("language:response_language", None, "Bonjour, je suis très heureux de vous rencontrer aujourd'hui.",
     "Hello, I am very happy to meet you today."),
    ("language:response_language", {"language": "zh"}, "这是一个中文句子，用来测试语言检测。", "This is an English sentence."),
    ("length_constraints:number_sentences", None, "One sentence only,\nhard wrapped over\nthree lines.", "One. Two."),
    ("length_constraints:number_sentences", None, "Dr. Smith has a Ph.D. in physics from the U.S.A. now.", "She is a doctor. She is good."),
    ("length_constraints:number_sentences", {"num_sentences": 3, "relation": "at least"},
     "Use tools, e.g. hammers. Ask Mr. Lee. Thanks!", "Use tools, e.g. hammers. Ask Mr. Lee."),
    ("length_constraints:number_paragraphs", None, "a\n***\nb\n***\nc", "a\n***\nb"),
    ("length_constraints:number_paragraphs", None, "***\na\n***\nb\n***\nc\n***", "a\n***\n\n***\nb\n***\nc"),  # an empty one inside
    ("length_constraints:number_words", None, "one two three four", "state-of-the-art stuff"),  # \w+ tokens: 5
    ("length_constraints:number_words", {"num_words": 3, "relation": "at least"}, "don't stop", "stop now"),  # don, t, stop
    ("length_constraints:nth_paragraph_first_word", None, 'Intro text.\n\n"However, this holds.', "Intro text.\n\nBut however."),
    ("length_constraints:nth_paragraph_first_word", None, "Intro.\n\nHOWEVER. yes", "Intro.\n\nHowever yes.\n\nThird."),  # count must match
    ("detectable_content:number_placeholders", None, "Dear [name], meet me at [address].", "Dear [name]."),
    ("detectable_content:postscript", None, "Thanks.\n\nP. S. See you soon.", "Thanks. PS see you soon."),
    ("detectable_content:postscript", None, "Thanks.\np.s. lowercase works", "Thanks.\nP S no dots"),
    ("detectable_content:postscript", {"postscript_marker": "P.P.S"}, "Hi.\nP.P.S one more", "Hi.\nP.S. one more"),
    ("detectable_format:number_bullet_lists", None, "Intro:\n* a\n* b", "* a\n* b\n- c"),
    ("detectable_format:number_bullet_lists", None, "-a\n*b", "- a"),  # bullets without a space count (IFEval's regex)
    ("detectable_format:number_bullet_lists", None, "**Heading**\n  * a\n  - b", "**a**\n**b**"),  # "**" opens no bullet
    ("detectable_format:constrained_response", None, "Hmm. My answer is maybe.", "my answer is yes"),  # case-sensitive
    ("detectable_format:number_highlighted_sections", None, "*one* and *two*", "*one* and * *"),
    ("detectable_format:number_highlighted_sections", {"num_highlights": 1}, "This is **key**.", "No highlights here."),
    ("detectable_format:multiple_sections", None, "Section 1\nA\nSection 2\nB", "Section 1\nA"),
    ("detectable_format:multiple_sections", None, "Section 1 A Section 2 B Section 3 C", "SECTION 1\nA\nSECTION 2\nB"),
    ("detectable_format:json_format", None, '```json\n{"a": 1}\n```', 'Here: {"a": 1}'),
    ("detectable_format:json_format", None, "[1, 2]", "[1, 2"),
    ("detectable_format:title", None, "<<Ode to Tea>>\nLeaves steep.", "<< >>\n<<Ode\nto Tea>>"),
    ("combination:two_responses", None, "Yes it is.\n******\nNo it is not.", "Yes.\n******\nYes."),
    ("combination:two_responses", None, "******\nA\n******\nB\n******", "A\n******\n******\nB"),  # an empty one inside
    ("combination:repeat_prompt", None, "write a poem about tea. Leaves...", "Sure! Write a poem about tea."),
    ("startend:end_checker", None, 'Done. any other questions?"\n', "Any other questions? Thanks."),
    ("startend:quotation", None, '  "Hello there."\n', 'Hello "there"'),
    ("startend:quotation", None, '""', '"'),
    ("change_case:capital_word_frequency", None, "I DON'T care", "I do not care"),  # I, DO, N'T
    ("change_case:capital_word_frequency", {"capital_frequency": 2, "capital_relation": "less than"},
     "STATE-OF-THE-ART tools", "NASA and ESA"),
    ("change_case:english_capital", None, "HELLO WORLD, THIS IS AN ENGLISH SENTENCE.", "Hello world, this is an English sentence."),
    ("change_case:english_lowercase", None, "hello world, this is an english sentence.", "Hello world, this is an English sentence."),
    ("change_case:english_lowercase", None, "the quick brown fox jumps over the lazy dog.",
     "bonjour, je suis très heureux de vous rencontrer aujourd'hui."),  # lowercase, but not English
    ("punctuation:no_comma", None, "red green blue", "red, green"),
]


def _one(text, instruction_id, kwargs=None, mode="strict"):
    return check_ifeval(text, instruction_id_list=[instruction_id], kwargs=[KWARGS[instruction_id] if kwargs is None else kwargs], mode=mode)


def test_all_25_instruction_types():
    assert len(INSTRUCTION_IDS) == 25
    assert set(INSTRUCTION_IDS) == set(KWARGS)
    assert {case[0] for case in STRICT} == set(INSTRUCTION_IDS)
    assert "ifeval" in RULES


@pytest.mark.parametrize("instruction_id, kwargs, good, bad", STRICT, ids=[f"{c[0]}-{i}" for i, c in enumerate(STRICT)])
def test_instruction_followed_and_not_strict(instruction_id, kwargs, good, bad):
    ok = _one(good, instruction_id, kwargs)
    assert ok.score == 1.0, ok
    assert ok.info["instructions"] == [{"id": instruction_id, "followed": True}] and ok.info["prompt_level"] is True
    no = _one(bad, instruction_id, kwargs)
    assert no.score == 0.0, no
    assert no.info["followed"] == [False] and no.info["prompt_level"] is False
    assert instruction_id in no.reason


@pytest.mark.parametrize("instruction_id, kwargs, good, bad", STRICT, ids=[f"{c[0]}-{i}" for i, c in enumerate(STRICT)])
def test_loose_accepts_whatever_strict_accepts(instruction_id, kwargs, good, bad):
    assert _one(good, instruction_id, kwargs, mode="loose").score == 1.0


# (instruction id, kwargs or None, text that fails strict but passes loose, text that fails both)
LOOSE = [
    ("startend:quotation", None, 'Sure, here it is:\n"Hello there."', 'Sure:\n"Hello" there\nbye'),  # first line dropped
    ("detectable_format:json_format", None, 'Here is the JSON:\n{"a": 1}\nHope it helps!', 'Here:\n{"a": 1} and\nbye'),  # both dropped
    ("startend:end_checker", None, "All done. Any other questions?\n(Generated text)", "Any other questions?\nOk\nbye"),  # last dropped
    ("startend:end_checker", None, "All done. **Any other questions?**", "All done.**"),  # markdown emphasis removed
    ("combination:repeat_prompt", None, "**Write a poem about tea.**\nLeaves steep slowly.", "*Tea* poem:\nWrite a poem\nabout tea."),
    ("detectable_format:constrained_response", None, "My answer is *yes*.", "My answer: yes."),
    ("keywords:existence", {"keywords": ["hot dog"]}, "A *hot* dog.", "A hot cat."),
    ("length_constraints:nth_paragraph_first_word", None, "Title\n\nIntro.\n\nHowever, yes.", "Intro.\n\nBut yes."),
    ("detectable_format:number_bullet_lists", None, "Here:\n* a\n* b\n* c is last", "* a\n* b\n* c\n* d\n* e\n* f"),
    ("length_constraints:number_words", {"num_words": 4, "relation": "less than"}, "Sure thing:\nhi there", "one two three four\nfive six seven eight\nnine ten eleven twelve"),
    ("change_case:english_lowercase", None, "Here you go:\nthis is a short english sentence about dogs.",
     "Here:\nThis Is Mixed Case text.\nEnd"),
]


@pytest.mark.parametrize("instruction_id, kwargs, rescued, failed", LOOSE, ids=[f"{c[0]}-{i}" for i, c in enumerate(LOOSE)])
def test_loose_variants(instruction_id, kwargs, rescued, failed):
    assert _one(rescued, instruction_id, kwargs).score == 0.0
    assert _one(rescued, instruction_id, kwargs, mode="loose").score == 1.0
    loose = _one(failed, instruction_id, kwargs, mode="loose")
    assert loose.score == 0.0 and loose.info["mode"] == "loose"


def test_loose_variants_are_ifevals_eight():
    text = "first *line*\nmiddle\nlast"
    assert response_variants(text) == [text]
    assert response_variants(text, "loose") == [
        text, "first line\nmiddle\nlast",
        "middle\nlast", "first *line*\nmiddle", "middle",
        "middle\nlast", "first line\nmiddle", "middle",
    ]


@pytest.mark.parametrize("mode", ["strict", "loose"])
@pytest.mark.parametrize("response", ["", "   \n\t\n  "])
def test_empty_response_follows_nothing(response, mode):
    # even instructions an empty text trivially satisfies (no commas, fewer than N words) are not followed
    out = check_ifeval(response, instruction_id_list=list(KWARGS), kwargs=list(KWARGS.values()), mode=mode)
    assert out.score == 0.0 and out.info["followed"] == [False] * 25 and out.info["prompt_level"] is False


def test_score_is_the_fraction_followed_with_a_breakdown():
    ids = ["punctuation:no_comma", "detectable_format:title", "keywords:existence", "startend:quotation"]
    out = check_ifeval("<<Tea>>\nA cat and a dog, together.", instruction_id_list=ids,
                       kwargs=[{}, {}, {"keywords": ["cat", "dog"]}, {}])
    assert out.score == 0.5
    assert out.info["followed"] == [False, True, True, False]
    assert out.info["instructions"][0] == {"id": "punctuation:no_comma", "followed": False}
    assert out.info["prompt_level"] is False
    assert "punctuation:no_comma" in out.reason and "startend:quotation" in out.reason


def test_hf_style_kwargs_with_none_values_and_json_strings():
    # the Hugging Face copy of IFEval gives every key in every dict, unused ones None
    keys = ["num_highlights", "relation", "num_words", "num_placeholders", "prompt_to_repeat", "num_paragraphs",
            "postscript_marker", "first_word", "keywords", "forbidden_words", "language", "end_phrase"]
    blank = dict.fromkeys(keys)
    kwargs = [{**blank, "num_words": 3, "relation": "at least"}, dict(blank), {**blank, "postscript_marker": "P.S."}]
    ids = ["length_constraints:number_words", "punctuation:no_comma", "detectable_content:postscript"]
    text = "Tea is lovely\nP.S. drink more"
    out = check_ifeval(text, instruction_id_list=ids, kwargs=kwargs)
    assert out.score == 1.0, out
    assert check_ifeval(text, instruction_id_list=json.dumps(ids), kwargs=json.dumps(kwargs)).score == 1.0
    # kwargs null (or absent) for instructions that take none
    assert check_ifeval("no commas here", instruction_id_list=["punctuation:no_comma"], kwargs=[None]).score == 1.0
    assert check_ifeval("no commas here", instruction_id_list=["punctuation:no_comma"]).score == 1.0


@pytest.mark.parametrize("ids, kwargs, needle", [
    (["keywords:nonsense"], [{}], "unknown instruction id 'keywords:nonsense'"),
    (["length_constraints:number_words"], [{"num_words": 5}], "needs the kwarg 'relation'"),
    (["length_constraints:number_words"], [{"num_words": 5, "relation": "at most"}], "must be one of"),
    (["length_constraints:number_words"], [{"num_words": "five", "relation": "at least"}], "non-negative integer"),
    (["keywords:letter_frequency"], [{"letter": "ab", "let_frequency": 1, "let_relation": "at least"}], "single character"),
    (["combination:repeat_prompt"], [{}], "prompt_to_repeat"),
    (["punctuation:no_comma"], [{"num_words": 3}], "unexpected kwargs"),  # misaligned kwargs
    (["punctuation:no_comma", "detectable_format:title"], [{}], "1 entries for 2 instructions"),
    ([], [], "empty"),
    ("not json", None, "not JSON"),
    (["punctuation:no_comma"], ["x"], "must be a dict"),
])
def test_undecidable_rows_are_none_with_the_reason(ids, kwargs, needle):
    out = check_ifeval("some text", instruction_id_list=ids, kwargs=kwargs)
    assert out.score is None
    assert needle in out.reason


def test_an_unknown_id_never_gives_a_confident_score_but_keeps_the_rest():
    out = check_ifeval("plain text", instruction_id_list=["punctuation:no_comma", "future:thing"], kwargs=[{}, {}])
    assert out.score is None and "future:thing" in out.reason
    assert out.info["followed"] == [True, None] and out.info["prompt_level"] is None


def test_unknown_mode():
    assert check_ifeval("x", instruction_id_list=["punctuation:no_comma"], mode="lenient").score is None


@pytest.mark.parametrize("text, n", [
    ("", 0),
    ("Hello there. How are you? Fine!", 3),
    ("This sentence is\nhard wrapped across\nseveral lines.", 1),
    ("She has a Ph.D. in physics. She moved to the U.S.A. in 2020.", 2),
    ("I live in the U.S. The weather is fine.", 2),
    ("Bring tools, e.g. hammers, i.e. heavy ones. Done.", 2),
    ("Dr. Smith met Mrs. Jones at St. Mary's. They talked.", 2),
    ("J. K. Rowling wrote it. Yes.", 2),
    ("It costs 3.5 dollars. Really.", 2),
    ("Thanks for reading.\n\nP.S. See you soon.", 2),
    ("Thanks for reading.\n\nP. S. See you soon.", 2),
    ("Thanks.\np.p.s. One more thing.", 2),
    ("Steps:\n1. Mix the flour.\n2. Bake it.", 2),  # "Steps:" has no end mark: it opens the first sentence
    ("Wait... What? Ok.", 3),
    ("no final punctuation here", 1),
    ("第一句。第二句！", 2),
])
def test_sentence_count(text, n):
    assert count_sentences(text) == n


def test_word_count_is_ifevals_regex_tokens():
    assert count_words("don't stop state-of-the-art 3.5") == 9
    assert count_words("  \n ") == 0
    assert count_words("naïve café") == 2


def test_capital_words_and_bullets():
    assert capital_words("I DON'T KNOW the U.S. well STATE-OF-THE-ART 123 JOHN'S **BOLD**") == [
        "I", "DO", "N'T", "KNOW", "U.S.", "STATE-OF-THE-ART", "JOHN", "'S", "BOLD"]
    assert bullet_count("* a\n*b\n- c\n-d\n** not\n---") == 5  # "---" starts with "-": a bullet to IFEval


def test_language_detection_is_seeded_and_thread_safe():
    text = "Ceci est une phrase. Das ist ein Satz. This is a sentence."
    first = detect_language(text)
    with ThreadPoolExecutor(4) as pool:
        assert set(pool.map(lambda _: detect_language(text), range(16))) == {first}
    assert detect_language("12345 !!!") is None
    # undetectable text counts as following, as in IFEval
    assert _one("12345 !!!", "language:response_language").score == 1.0


def test_rule_reward_batch_and_options():
    reward = load_rule("ifeval")
    assert reward.required == ["instruction_id_list"]
    out = reward.score(["p1", "p2", "p3"], ["a, b", "a b", "x"],
                       instruction_id_list=[["punctuation:no_comma"], ["punctuation:no_comma"], None],
                       kwargs=[[{}], [None], None])
    assert out.scores == [0.0, 1.0, None]
    assert out.extras["applicable"] == [True, True, False]
    assert out.extras["prompt_level"][:2] == [False, True]
    # mode is a spec option only: a data column named "mode" does not switch it
    assert "mode" not in reward.optional
    loose = load_rule("ifeval", mode="loose")
    assert loose.score(["p"], ['Sure:\n"hi"'], instruction_id_list=[["startend:quotation"]]).scores == [1.0]
    from rewardkit.specs import load_reward

    assert load_reward("rule:ifeval(mode='loose')").score(["p"], ['Sure:\n"hi"'], instruction_id_list=[["startend:quotation"]]).scores == [1.0]


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = str(SRC) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def test_cli_scores_ifeval_rows(tmp_path):
    blank = dict.fromkeys(["num_words", "relation", "postscript_marker", "keywords", "num_highlights", "end_phrase"])
    rows = [
        {"key": 1000, "prompt": "Write a short note without commas. Add a postscript starting with P.S.",
         "response": "Tea is lovely\n\nP.S. drink it hot",
         "instruction_id_list": ["punctuation:no_comma", "detectable_content:postscript"],
         "kwargs": [dict(blank), {**blank, "postscript_marker": "P.S."}]},
        {"key": 1001, "prompt": "Answer in at least 10 words, in all lowercase.",
         "response": "Fine, Thanks.",
         "instruction_id_list": ["length_constraints:number_words", "change_case:english_lowercase"],
         "kwargs": [{**blank, "num_words": 10, "relation": "at least"}, dict(blank)]},
        {"key": 1002, "prompt": "Wrap your answer in double quotes.",
         "response": 'Here it is:\n"Tea."',
         "instruction_id_list": ["startend:quotation", "not:an_instruction"],
         "kwargs": [dict(blank), dict(blank)]},
    ]
    data = tmp_path / "ifeval.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "scores.jsonl"
    proc = subprocess.run([sys.executable, "-m", "rewardkit.cli.main", "score", "--reward", "rule:ifeval", "--data", str(data), "--out", str(out)],
                          capture_output=True, text=True, env=_env(), timeout=300)
    assert proc.returncode == 0, proc.stderr
    scored = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["score"] for r in scored] == [1.0, 0.0, None]
    assert scored[0]["details"]["instructions"] == [{"id": "punctuation:no_comma", "followed": True},
                                                    {"id": "detectable_content:postscript", "followed": True}]
    assert scored[0]["details"]["prompt_level"] is True
    assert scored[1]["details"]["followed"] == [False, False]
    assert "not:an_instruction" in scored[2]["details"]["reason"]

    loose = tmp_path / "loose.jsonl"
    proc = subprocess.run([sys.executable, "-m", "rewardkit.cli.main", "score", "--reward", "rule:ifeval(mode='loose')", "--data", str(data),
                           "--out", str(loose)], capture_output=True, text=True, env=_env(), timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert [json.loads(line)["details"]["followed"] for line in loose.read_text().splitlines()][2] == [True, None]


def _ifeval_files(root: Path) -> list[Path]:
    found = []
    for path in sorted(root.rglob("*.jsonl")):
        with path.open(encoding="utf-8") as fh:
            first = fh.readline()
        if '"instruction_id_list"' in first and '"kwargs"' in first:
            found.append(path)
    return found


def test_shared_data_ifeval_smoke(shared_data):
    files = _ifeval_files(shared_data)
    if not files:
        pytest.skip("no IFEval-format file (instruction_id_list + kwargs) in ../shared/data")
    rows = [json.loads(line) for line in files[0].read_text(encoding="utf-8").splitlines()[:200] if line.strip()]
    unknown = 0
    for row in rows:
        text = row.get("response") or row.get("completion") or row["prompt"]
        out = check_ifeval(text, instruction_id_list=row["instruction_id_list"], kwargs=row["kwargs"])
        if out.score is None:
            unknown += 1
            continue
        assert 0.0 <= out.score <= 1.0 and len(out.info["followed"]) == len(row["instruction_id_list"])
    assert unknown < len(rows)


def test_ifevals_patterns_are_reproduced_exactly():
    """The linear-time counters give re.findall's counts for IFEval's own patterns (a fuzz over the
    characters that matter)."""
    import random
    import re

    from rewardkit.rewards.rules.ifeval import has_title, placeholder_count

    star, dash = re.compile(r"^\s*\*[^\*].*$", re.M), re.compile(r"^\s*-.*$", re.M)
    rng = random.Random(0)
    alphabet = ["[", "]", "\n", " ", "*", "-", "<", ">", "a", "\t", ".", "\n\n"]
    for _ in range(3000):
        t = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 30)))
        assert placeholder_count(t) == len(re.findall(r"\[.*?\]", t)), t
        assert bullet_count(t) == len(star.findall(t)) + len(dash.findall(t)), t
        assert has_title(t) == any(x.lstrip("<").rstrip(">").strip() for x in re.findall(r"<<[^\n]+>>", t)), t


@pytest.mark.parametrize("text", ["[" * 200_000, "\n" * 200_000 + "* x", " \n" * 100_000, "<<" * 100_000,
                                  "a" + "." * 200_000 + "b", ".*" * 100_000, "*" * 200_000])
def test_pathological_responses_take_linear_time(text):
    import time

    start = time.perf_counter()
    out = check_ifeval(text, instruction_id_list=[i for i in KWARGS if not i.startswith(("language", "change_case:english"))],
                       kwargs=[v for i, v in KWARGS.items() if not i.startswith(("language", "change_case:english"))], mode="loose")
    assert out.score is not None
    assert time.perf_counter() - start < 10
