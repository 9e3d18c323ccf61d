"""Readers for the supported data layouts (rewardkit.data.formats) and benchmark resolution."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from rewardkit.data.benchmarks import Benchmark, builtin_benchmarks, resolve_data
from rewardkit.data.formats import (
    DataFormatError,
    detect_format,
    is_hh_transcript,
    load_dataset,
    parse_hh_transcript,
    split_hh,
)
from rewardkit.types import BestOfNRecord, PairRecord, SampleRecord, ScoredBestOfN, ScoredPair

HH_HARMLESS = Path("/work/shared/data/pairwise/hh_rlhf_harmless.jsonl")


def write_jsonl(path: Path, rows: list) -> Path:
    with path.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write((row if isinstance(row, str) else json.dumps(row)) + "\n")
    return path


def write_json(path: Path, data) -> Path:
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def user(text):
    return {"role": "user", "content": text}


def assistant(text):
    return {"role": "assistant", "content": text}


# ---------------------------------------------------------------- pairwise


def test_trl_text_preference_rows(tmp_path):
    path = write_jsonl(tmp_path / "pairs.jsonl", [
        {"prompt": "What is 2+2?", "chosen": "4", "rejected": "5"},
        {"id": "q2", "prompt": "Capital of France?", "chosen": "Paris", "rejected": "Lyon"},
    ])
    data = load_dataset(path)
    assert data.kind == "pairs"
    assert data.format == "pairwise"
    assert data.source == str(path)
    assert len(data) == 2
    first, second = data.records
    assert first == PairRecord("line-1", "What is 2+2?", "4", "5", "default", {})
    assert second.id == "q2"
    assert (second.prompt, second.chosen, second.rejected) == ("Capital of France?", "Paris", "Lyon")
    assert second.columns == {}


def test_rewardbench_rows_keep_subset(tmp_path):
    path = write_jsonl(tmp_path / "rb.jsonl", [
        {"id": 7, "prompt": "p1", "chosen": "good", "rejected": "bad", "subset": "alpacaeval-easy"},
        {"id": 8, "prompt": "p2", "chosen": "good", "rejected": "bad", "subset": "math-prm"},
    ])
    records = load_dataset(path).records
    assert [r.subset for r in records] == ["alpacaeval-easy", "math-prm"]
    assert [r.id for r in records] == ["7", "8"]  # ids are strings
    assert all("subset" not in r.columns and "id" not in r.columns for r in records)


def test_conversational_rows_with_explicit_prompt(tmp_path):
    row = {
        "prompt": [{"role": "system", "content": "Be brief."}, user("Hi there")],
        "chosen": [assistant("Hello!")],
        "rejected": [assistant("Go away.")],
    }
    path = write_jsonl(tmp_path / "conv.jsonl", [row])
    (rec,) = load_dataset(path).records
    assert isinstance(rec, PairRecord)
    assert rec.prompt == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi there"}]
    assert rec.chosen == "Hello!"
    assert rec.rejected == "Go away."


def test_conversational_message_extra_keys_are_dropped(tmp_path):
    row = {"prompt": [{"role": "user", "content": "Hi", "name": "bob"}], "chosen": "a", "rejected": "b"}
    (rec,) = load_dataset(write_jsonl(tmp_path / "c.jsonl", [row])).records
    assert rec.prompt == [{"role": "user", "content": "Hi"}]


def test_trl_implicit_prompt_conversational(tmp_path):
    shared = [user("What is the capital of France?"), assistant("Paris."), user("And of Italy?")]
    row = {
        "chosen": shared + [assistant("Rome.")],
        "rejected": shared + [assistant("Milan.")],
        "subset": "geo",
    }
    path = write_jsonl(tmp_path / "implicit.jsonl", [row])
    assert detect_format(row) == "pairwise"
    (rec,) = load_dataset(path).records
    assert rec.prompt == shared
    assert rec.chosen == "Rome."
    assert rec.rejected == "Milan."
    assert rec.subset == "geo"


def test_trl_implicit_prompt_single_turn(tmp_path):
    row = {"chosen": [user("Hi"), assistant("Hello!")], "rejected": [user("Hi"), assistant("What?")]}
    (rec,) = load_dataset(write_jsonl(tmp_path / "i.jsonl", [row])).records
    assert rec.prompt == [user("Hi")]
    assert (rec.chosen, rec.rejected) == ("Hello!", "What?")


def test_presplit_steps_need_format_override(tmp_path):
    row = {"prompt": "Solve", "chosen": ["step 1", "step 2"], "rejected": ["step 1", "wrong step"]}
    path = write_jsonl(tmp_path / "steps.jsonl", [row])
    # lists of strings look like RewardBench 2 best-of-N rows to the detector ...
    assert detect_format(row) == "best-of-n"
    # ... so pairwise step lists need the explicit format
    data = load_dataset(path, format="pairwise")
    assert data.kind == "pairs" and data.format == "pairwise"
    (rec,) = data.records
    assert rec.chosen == ["step 1", "step 2"]
    assert rec.rejected == ["step 1", "wrong step"]


# ---------------------------------------------------------------- HH-RLHF


def test_parse_hh_transcript_multi_turn():
    text = "\n\nHuman: Hi there\n\nAssistant: Hello! How can I help?\n\nHuman: Tell me a joke.\n\nAssistant:"
    assert is_hh_transcript(text)
    assert parse_hh_transcript(text) == [
        user("Hi there"),
        assistant("Hello! How can I help?"),
        user("Tell me a joke."),
    ]


def test_parse_hh_transcript_keeps_nonempty_final_assistant_turn():
    text = "\n\nHuman: Hi\n\nAssistant: Hello there"
    assert parse_hh_transcript(text) == [user("Hi"), assistant("Hello there")]


def test_parse_hh_transcript_without_leading_newlines():
    assert parse_hh_transcript("Human: a\n\nAssistant:") == [user("a")]


def test_is_hh_transcript_rejects_plain_text():
    assert not is_hh_transcript("What is the capital of France?")
    assert not is_hh_transcript("Human: no assistant turn here")
    assert not is_hh_transcript(["\n\nHuman: x\n\nAssistant:"])


def test_split_hh_at_last_assistant_turn():
    transcript = "\n\nHuman: Hi\n\nAssistant: Hello\n\nHuman: How are you?\n\nAssistant: I'm fine, thanks."
    prompt, response = split_hh(transcript)
    assert prompt == "\n\nHuman: Hi\n\nAssistant: Hello\n\nHuman: How are you?\n\nAssistant:"
    assert response == " I'm fine, thanks."
    assert prompt + response == transcript


def test_split_hh_without_assistant_raises():
    with pytest.raises(ValueError, match="Assistant"):
        split_hh("\n\nHuman: only a question")


def test_raw_hh_rows_single_turn(tmp_path):
    row = {
        "chosen": "\n\nHuman: How do I boil an egg?\n\nAssistant: Simmer it for nine minutes.",
        "rejected": "\n\nHuman: How do I boil an egg?\n\nAssistant: Eggs cannot be boiled.",
    }
    path = write_jsonl(tmp_path / "hh.jsonl", [row])
    assert detect_format(row) == "hh-rlhf"
    data = load_dataset(path)
    assert data.format == "hh-rlhf" and data.kind == "pairs"
    (rec,) = data.records
    assert rec.prompt == [user("How do I boil an egg?")]
    assert rec.chosen.strip() == "Simmer it for nine minutes."
    assert rec.rejected.strip() == "Eggs cannot be boiled."
    assert "prompt_mismatch" not in rec.columns


def test_raw_hh_rows_multi_turn(tmp_path):
    prefix = "\n\nHuman: Hi\n\nAssistant: Hello, what can I do for you?\n\nHuman: Name a fruit.\n\nAssistant:"
    row = {"chosen": prefix + " An apple.", "rejected": prefix + " I won't.", "source": "helpful-base"}
    (rec,) = load_dataset(write_jsonl(tmp_path / "hh.jsonl", [row])).records
    assert rec.prompt == [user("Hi"), assistant("Hello, what can I do for you?"), user("Name a fruit.")]
    assert rec.prompt[-1]["role"] == "user"
    assert rec.chosen.strip() == "An apple."
    assert rec.rejected.strip() == "I won't."
    assert rec.columns["source"] == "helpful-base"


def test_raw_hh_rows_with_diverging_prefix_are_rejected(tmp_path):
    """Pairing rejected with chosen's prompt would score it against the wrong conversation."""
    row = {
        "chosen": "\n\nHuman: A\n\nAssistant: x\n\nHuman: B\n\nAssistant: good",
        "rejected": "\n\nHuman: A\n\nAssistant: y\n\nHuman: B\n\nAssistant: bad",
    }
    with pytest.raises(DataFormatError) as info:
        load_dataset(write_jsonl(tmp_path / "hh.jsonl", [row]))
    assert info.value.field == "rejected" and info.value.where == "line 1"


def test_hh_completions_lose_the_space_after_assistant(tmp_path):
    row = {"chosen": "\n\nHuman: q\n\nAssistant: yes", "rejected": "\n\nHuman: q\n\nAssistant: no"}
    (rec,) = load_dataset(write_jsonl(tmp_path / "hh.jsonl", [row])).records
    assert (rec.chosen, rec.rejected) == ("yes", "no")
    pair = {"prompt": "\n\nHuman: q\n\nAssistant:", "chosen": " yes", "rejected": " no"}
    (rec,) = load_dataset(write_jsonl(tmp_path / "p.jsonl", [pair])).records
    assert (rec.chosen, rec.rejected) == ("yes", "no")


def test_implicit_prompt_rows_must_diverge_only_at_the_last_turn(tmp_path):
    u = lambda c: {"role": "user", "content": c}  # noqa: E731
    a = lambda c: {"role": "assistant", "content": c}  # noqa: E731
    early = {"chosen": [u("q1"), a("A1"), u("q2"), a("A2")], "rejected": [u("q1"), a("B1"), u("q2"), a("B2")]}
    with pytest.raises(DataFormatError, match="diverge before the final assistant turn"):
        load_dataset(write_jsonl(tmp_path / "a.jsonl", [early]))
    unrelated = {"chosen": [u("q1"), a("A")], "rejected": [u("q2"), a("B")]}
    with pytest.raises(DataFormatError, match="share no prompt"):
        load_dataset(write_jsonl(tmp_path / "b.jsonl", [unrelated]))


def test_raw_hh_rows_without_assistant_turn_name_the_field(tmp_path):
    good = {"chosen": "\n\nHuman: q\n\nAssistant: a", "rejected": "\n\nHuman: q\n\nAssistant: b"}
    bad = {"chosen": "\n\nHuman: q\n\nAssistant: a", "rejected": "no transcript at all"}
    path = write_jsonl(tmp_path / "hh.jsonl", [good, bad])
    with pytest.raises(DataFormatError) as info:
        load_dataset(path)
    err = info.value
    assert (err.path, err.where, err.field) == (str(path), "line 2", "rejected")


def test_pairwise_prompt_in_hh_form_becomes_messages(tmp_path):
    row = {
        "prompt": "\n\nHuman: Hi\n\nAssistant: Hello.\n\nHuman: Say bye.\n\nAssistant:",
        "chosen": " Bye!",
        "rejected": " No.",
    }
    (rec,) = load_dataset(write_jsonl(tmp_path / "p.jsonl", [row])).records
    assert rec.prompt == [user("Hi"), assistant("Hello."), user("Say bye.")]
    assert rec.chosen == "Bye!"  # the space after "Assistant:" is dropped with the transcript form


def test_real_hh_rlhf_harmless_rows():
    if not HH_HARMLESS.exists():
        pytest.skip(f"{HH_HARMLESS} not available")
    data = load_dataset(HH_HARMLESS, limit=20)
    assert data.kind == "pairs"
    assert len(data) == 20
    for rec in data.records:
        assert isinstance(rec.prompt, list) and rec.prompt, rec.id
        assert all(set(m) == {"role", "content"} for m in rec.prompt)
        assert all(m["role"] in ("user", "assistant") for m in rec.prompt)
        assert rec.prompt[-1]["role"] == "user", rec.id
        assert rec.prompt[0]["role"] == "user", rec.id
        assert isinstance(rec.chosen, str) and isinstance(rec.rejected, str)
        assert "\n\nHuman:" not in rec.prompt[-1]["content"]


# ---------------------------------------------------------------- best-of-N and samples


def test_rewardbench2_best_of_n_rows(tmp_path):
    row = {"id": "rb2-1", "prompt": "Q", "chosen": ["right"], "rejected": ["w1", "w2", "w3"],
           "subset": "Math", "num_incorrect": 3, "total_completions": 4}
    path = write_jsonl(tmp_path / "rb2.jsonl", [row])
    assert detect_format(row) == "best-of-n"
    data = load_dataset(path)
    assert data.kind == "best-of-n" and data.format == "best-of-n"
    (rec,) = data.records
    assert isinstance(rec, BestOfNRecord)
    assert rec.completions == ["right", "w1", "w2", "w3"]
    assert rec.num_correct == 1
    assert rec.subset == "Math"
    assert rec.id == "rb2-1"
    assert rec.columns == {}  # num_incorrect / total_completions are layout, not columns


def test_best_of_n_completions_with_num_correct(tmp_path):
    row = {"prompt": "Q", "completions": ["a", "b", "c", "d"], "num_correct": 2, "answer": "a"}
    assert detect_format(row) == "best-of-n"
    (rec,) = load_dataset(write_jsonl(tmp_path / "bon.jsonl", [row])).records
    assert rec.completions == ["a", "b", "c", "d"]
    assert rec.num_correct == 2
    assert rec.columns == {"answer": "a"}


def test_samples_rows(tmp_path):
    rows = [{"prompt": "Q1", "completion": "A1", "answer": "x"}, {"prompt": [user("Q2")], "completion": "A2"}]
    data = load_dataset(write_jsonl(tmp_path / "s.jsonl", rows))
    assert data.kind == "samples" and data.format == "samples"
    assert detect_format(rows[0]) == "samples"
    a, b = data.records
    assert isinstance(a, SampleRecord)
    assert (a.prompt, a.completion, a.columns) == ("Q1", "A1", {"answer": "x"})
    assert b.prompt == [user("Q2")] and b.completion == "A2"


# ---------------------------------------------------------------- precomputed scores


def test_scores_chosen_rejected(tmp_path):
    rows = [
        {"id": "a", "chosen_score": 1.5, "rejected_score": -0.5, "subset": "chat", "model": "rm-1"},
        {"id": "b", "chosen_score": None, "rejected_score": 2, "subset": "chat", "model": "rm-1"},
    ]
    data = load_dataset(write_jsonl(tmp_path / "scores.jsonl", rows))
    assert data.kind == "scores" and data.format == "scores"
    a, b = data.records
    assert a == ScoredPair("a", 1.5, -0.5, "chat", "rm-1")
    assert b.chosen_score is None
    assert b.rejected_score == 2.0 and isinstance(b.rejected_score, float)


def test_scores_best_of_n(tmp_path):
    rows = [{"id": "x", "scores": [0.9, 0.1, None], "num_correct": 1, "judge_model": "j"}]
    (rec,) = load_dataset(write_jsonl(tmp_path / "s.jsonl", rows)).records
    assert rec == ScoredBestOfN("x", [0.9, 0.1, None], 1, "default", "j")


def test_judgebench_scores_map_label_to_chosen_rejected(tmp_path):
    rows = [
        {"pair_id": "p1", "score_A": 0.8, "score_B": 0.3, "label": "A>B", "judge_model": "judge-x", "source": "mmlu-pro"},
        {"pair_id": "p2", "score_A": 0.2, "score_B": 0.7, "label": "B>A", "judge_model": "judge-x", "source": "livebench"},
        {"pair_id": "p3", "score_A": None, "score_B": 0.5, "label": "B>A", "judge_model": "judge-x"},
    ]
    assert detect_format(rows[0]) == "scores"
    p1, p2, p3 = load_dataset(write_jsonl(tmp_path / "jb.jsonl", rows)).records
    assert (p1.id, p1.chosen_score, p1.rejected_score) == ("p1", 0.8, 0.3)
    assert (p2.id, p2.chosen_score, p2.rejected_score) == ("p2", 0.7, 0.2)
    assert (p3.chosen_score, p3.rejected_score) == (0.5, None)
    assert {p.model for p in (p1, p2, p3)} == {"judge-x"}
    assert p1.subset == "mmlu-pro"


def test_nan_score_becomes_none(tmp_path):
    path = tmp_path / "nan.jsonl"
    path.write_text('{"chosen_score": NaN, "rejected_score": 1.0}\n', encoding="utf-8")
    (rec,) = load_dataset(path).records
    assert rec.chosen_score is None and rec.rejected_score == 1.0


def test_scores_mixing_pairs_and_best_of_n_is_rejected(tmp_path):
    path = write_jsonl(tmp_path / "mixed.jsonl", [
        {"chosen_score": 1, "rejected_score": 0},
        {"scores": [1, 0], "num_correct": 1},
    ])
    with pytest.raises(DataFormatError, match="mixes"):
        load_dataset(path)


# ---------------------------------------------------------------- columns, file types, formats


def test_extra_columns_travel_with_record(tmp_path):
    row = {"id": "r1", "prompt": "2+2?", "chosen": "4", "rejected": "5", "subset": "math",
           "answer": "4", "source": "gsm8k", "meta": {"difficulty": 1}}
    (rec,) = load_dataset(write_jsonl(tmp_path / "c.jsonl", [row])).records
    assert rec.columns == {"answer": "4", "source": "gsm8k", "meta": {"difficulty": 1}}
    assert rec.subset == "math"


PAIR_ROWS = [
    {"id": "a", "prompt": "p1", "chosen": "c1", "rejected": "r1", "subset": "s1", "answer": "x"},
    {"id": "b", "prompt": "p2", "chosen": "c2", "rejected": "r2", "subset": "s2", "answer": "y"},
    {"id": "c", "prompt": "p3", "chosen": "c3", "rejected": "r3", "subset": "s1", "answer": "z"},
]


def test_json_list_reads_like_jsonl(tmp_path):
    a = load_dataset(write_jsonl(tmp_path / "d.jsonl", PAIR_ROWS))
    b = load_dataset(write_json(tmp_path / "d.json", PAIR_ROWS))
    c = load_dataset(write_json(tmp_path / "w.json", {"data": PAIR_ROWS}))
    assert a.records == b.records == c.records
    assert a.kind == b.kind == "pairs"


def test_parquet_reads_like_jsonl(tmp_path):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    path = tmp_path / "d.parquet"
    pq.write_table(pa.Table.from_pylist(PAIR_ROWS), path)
    a = load_dataset(write_jsonl(tmp_path / "d.jsonl", PAIR_ROWS))
    b = load_dataset(path)
    assert b.records == a.records
    assert b.format == "pairwise"


def test_parquet_conversational_rows(tmp_path):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    rows = [{"prompt": [user("Hi")], "chosen": [assistant("Hello")], "rejected": [assistant("Bye")]}]
    path = tmp_path / "c.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)
    (rec,) = load_dataset(path).records
    assert rec.prompt == [user("Hi")]
    assert (rec.chosen, rec.rejected) == ("Hello", "Bye")
    assert rec.id == "record-1"


def test_limit(tmp_path):
    data = load_dataset(write_jsonl(tmp_path / "d.jsonl", PAIR_ROWS), limit=2)
    assert [r.id for r in data.records] == ["a", "b"]


def test_blank_lines_are_skipped_and_ids_follow_line_numbers(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"prompt": "p", "chosen": "c", "rejected": "r"}\n\n{"prompt": "q", "chosen": "c", "rejected": "r"}\n')
    assert [r.id for r in load_dataset(path).records] == ["line-1", "line-3"]


@pytest.mark.parametrize("row, expected", [
    ({"prompt": "p", "chosen": "c", "rejected": "r"}, "pairwise"),
    ({"prompt": [user("p")], "chosen": [assistant("c")], "rejected": [assistant("r")]}, "pairwise"),
    ({"chosen": [user("p"), assistant("c")], "rejected": [user("p"), assistant("r")]}, "pairwise"),
    ({"chosen": "\n\nHuman: p\n\nAssistant: c", "rejected": "\n\nHuman: p\n\nAssistant: r"}, "hh-rlhf"),
    ({"prompt": "\n\nHuman: p\n\nAssistant:", "chosen": " c", "rejected": " r"}, "pairwise"),
    ({"prompt": "p", "chosen": ["c"], "rejected": ["r1", "r2"]}, "best-of-n"),
    ({"prompt": "p", "completions": ["a", "b"], "num_correct": 1}, "best-of-n"),
    ({"prompt": "p", "completion": "c"}, "samples"),
    ({"chosen_score": 1, "rejected_score": 0}, "scores"),
    ({"scores": [1, 0], "num_correct": 1}, "scores"),
    ({"score_A": 1, "score_B": 0, "label": "A>B"}, "scores"),
])
def test_detect_format(row, expected):
    assert detect_format(row) == expected


def test_detect_format_unknown_fields():
    with pytest.raises(ValueError, match="cannot tell the format"):
        detect_format({"question": "q", "answer": "a"})


def test_format_override(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [{"prompt": "p", "chosen": "c", "rejected": "r"}])
    data = load_dataset(path, format="best-of-n")
    assert data.kind == "best-of-n" and data.format == "best-of-n"
    (rec,) = data.records
    assert rec.completions == ["c", "r"] and rec.num_correct == 1

    hh = write_jsonl(tmp_path / "hh.jsonl", [{"chosen": "\n\nHuman: q\n\nAssistant: a", "rejected": "\n\nHuman: q\n\nAssistant: b"}])
    forced = load_dataset(hh, format="hh-rlhf")
    assert forced.format == "hh-rlhf"
    assert forced.records[0].prompt == [user("q")]

    samples = write_jsonl(tmp_path / "s.jsonl", [{"prompt": "p", "completion": "c"}])
    assert load_dataset(samples, format="samples").kind == "samples"
    with pytest.raises(DataFormatError) as info:
        load_dataset(samples, format="pairwise")
    assert info.value.field == "chosen"


def test_unknown_format_name(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", PAIR_ROWS)
    with pytest.raises(ValueError, match="unknown format 'csv'"):
        load_dataset(path, format="csv")


# ---------------------------------------------------------------- errors


GOOD = {"prompt": "p", "chosen": "c", "rejected": "r"}


def _error(path, **kwargs) -> DataFormatError:
    with pytest.raises(DataFormatError) as info:
        load_dataset(path, **kwargs)
    return info.value


def test_invalid_json_line(tmp_path):
    path = write_jsonl(tmp_path / "bad.jsonl", [GOOD, GOOD, '{"prompt": "p", "chosen": '])
    err = _error(path)
    assert str(path) in str(err)
    assert "line 3" in str(err)
    assert "invalid JSON" in str(err)
    assert (err.path, err.where, err.field) == (str(path), "line 3", None)


def test_jsonl_line_that_is_not_an_object(tmp_path):
    path = write_jsonl(tmp_path / "bad.jsonl", [GOOD, "[1, 2]"])
    err = _error(path)
    assert err.where == "line 2" and "line 2" in str(err) and "list" in str(err)


def test_invalid_json_file(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('[\n{"prompt": "p",\n"chosen": }\n]')
    err = _error(path)
    assert err.where == "line 3"
    assert str(path) in str(err) and "invalid JSON" in str(err)


def test_json_file_not_a_list(tmp_path):
    path = write_json(tmp_path / "bad.json", {"prompt": "p"})
    err = _error(path)
    assert str(path) in str(err) and "list" in str(err)


def test_missing_field(tmp_path):
    path = write_jsonl(tmp_path / "bad.jsonl", [GOOD, {"prompt": "p", "chosen": "c"}])
    err = _error(path)
    assert (err.path, err.where, err.field) == (str(path), "line 2", "rejected")
    assert str(path) in str(err) and "line 2" in str(err) and "'rejected'" in str(err) and "missing" in str(err)


def test_missing_field_in_json_file_names_record(tmp_path):
    path = write_json(tmp_path / "bad.json", [GOOD, {"prompt": "p", "chosen": "c"}])
    err = _error(path)
    assert (err.where, err.field) == ("record 2", "rejected")
    assert f"{path}:record 2" in str(err)


def test_null_field_counts_as_missing(tmp_path):
    path = write_jsonl(tmp_path / "bad.jsonl", [GOOD, {"prompt": None, "chosen": "c", "rejected": "r"}])
    err = _error(path)
    assert (err.where, err.field) == ("line 2", "prompt")


def test_wrong_type(tmp_path):
    path = write_jsonl(tmp_path / "bad.jsonl", [GOOD, GOOD, {"prompt": "p", "chosen": 3, "rejected": "r"}])
    err = _error(path)
    assert (err.where, err.field) == ("line 3", "chosen")
    assert "int" in str(err) and "line 3" in str(err) and str(path) in str(err)


def test_wrong_prompt_type(tmp_path):
    path = write_jsonl(tmp_path / "bad.jsonl", [{"prompt": 12, "chosen": "c", "rejected": "r"}])
    err = _error(path)
    assert (err.where, err.field) == ("line 1", "prompt")


def test_message_without_content(tmp_path):
    row = {"prompt": [user("hi"), {"role": "assistant"}], "chosen": "c", "rejected": "r"}
    path = write_jsonl(tmp_path / "bad.jsonl", [GOOD, row])
    err = _error(path)
    assert (err.where, err.field) == ("line 2", "prompt[1]")
    assert "content" in str(err)


def test_completion_message_without_content(tmp_path):
    row = {"prompt": [user("hi")], "chosen": [{"role": "assistant"}], "rejected": [assistant("r")]}
    err = _error(write_jsonl(tmp_path / "bad.jsonl", [row]))
    assert (err.where, err.field) == ("line 1", "chosen")


def test_best_of_n_num_correct_out_of_range(tmp_path):
    good = {"prompt": "p", "completions": ["a", "b", "c"], "num_correct": 1}
    for k in (0, 3, "1", True):
        path = write_jsonl(tmp_path / f"bad{k}.jsonl", [good, {**good, "num_correct": k}])
        err = _error(path)
        assert (err.where, err.field) == ("line 2", "num_correct"), k
        assert "[1, 2]" in str(err)


def test_best_of_n_needs_two_completions(tmp_path):
    good = {"prompt": "p", "completions": ["a", "b"], "num_correct": 1}
    err = _error(write_jsonl(tmp_path / "bad.jsonl", [good, {**good, "completions": ["a"]}]))
    assert (err.where, err.field) == ("line 2", "completions")


def test_best_of_n_empty_rejected(tmp_path):
    good = {"prompt": "p", "chosen": ["a"], "rejected": ["b"]}
    err = _error(write_jsonl(tmp_path / "bad.jsonl", [good, {**good, "rejected": []}]))
    assert (err.where, err.field) == ("line 2", "rejected")


def test_non_numeric_score(tmp_path):
    path = write_jsonl(tmp_path / "bad.jsonl", [
        {"chosen_score": 1, "rejected_score": 0},
        {"chosen_score": "high", "rejected_score": 0},
    ])
    err = _error(path)
    assert (err.where, err.field) == ("line 2", "chosen_score")
    assert "str" in str(err)


def test_boolean_score_is_not_a_number(tmp_path):
    err = _error(write_jsonl(tmp_path / "bad.jsonl", [{"chosen_score": 1, "rejected_score": True}]))
    assert err.field == "rejected_score"


def test_non_numeric_score_in_list(tmp_path):
    err = _error(write_jsonl(tmp_path / "bad.jsonl", [{"scores": [1, "x", 0], "num_correct": 1}]))
    assert (err.where, err.field) == ("line 1", "scores[1]")


def test_missing_rejected_score(tmp_path):
    path = write_jsonl(tmp_path / "bad.jsonl", [{"chosen_score": 1, "rejected_score": 0}, {"chosen_score": 1}])
    err = _error(path)
    assert (err.where, err.field) == ("line 2", "rejected_score")


@pytest.mark.parametrize("label", ["A=B", "a>b", None, "A<B"])
def test_bad_judgebench_label(tmp_path, label):
    path = write_jsonl(tmp_path / "bad.jsonl", [
        {"score_A": 1, "score_B": 0, "label": "A>B"},
        {"score_A": 1, "score_B": 0, "label": label},
    ])
    err = _error(path)
    assert (err.where, err.field) == ("line 2", "label")
    assert "A>B" in str(err)


@pytest.mark.parametrize("content", ["", "\n\n  \n"])
def test_empty_file(tmp_path, content):
    path = tmp_path / "empty.jsonl"
    path.write_text(content)
    err = _error(path)
    assert err.path == str(path)
    assert str(path) in str(err) and "no rows" in str(err)


def test_empty_json_list(tmp_path):
    err = _error(write_json(tmp_path / "empty.json", []))
    assert "no rows" in str(err)


def test_missing_file(tmp_path):
    path = tmp_path / "nope.jsonl"
    with pytest.raises(FileNotFoundError, match="nope.jsonl"):
        load_dataset(path)


def test_row_that_fits_no_format(tmp_path):
    path = write_jsonl(tmp_path / "bad.jsonl", [{"question": "q", "answer": "a"}])
    err = _error(path)
    assert (err.path, err.where, err.field) == (str(path), "line 1", None)
    assert "cannot tell the format" in str(err) and "answer, question" in str(err)


def test_error_message_layout(tmp_path):
    err = DataFormatError("/x/y.jsonl", "line 4", "chosen", "missing")
    assert str(err) == "/x/y.jsonl:line 4: field 'chosen': missing"
    assert isinstance(err, ValueError)
    assert str(DataFormatError("/x/y.jsonl", "", None, "no rows")) == "/x/y.jsonl: no rows"


# ---------------------------------------------------------------- benchmarks


def test_resolve_suite_default_split():
    data = resolve_data("suite")
    assert data.kind == "pairs"
    assert data.sections == {
        "reasoning": {"arith": 1.0},
        "instruction-following": {"constraints": 1.0},
        "robustness": {"length-trap": 1.0},
        "safety": {"refusal": 1.0},
    }
    assert all(isinstance(r, PairRecord) for r in data.records)
    assert {r.columns["split"] for r in data.records} == {"test"}
    assert {r.subset for r in data.records} == {"arith", "constraints", "length-trap", "refusal"}


def test_resolve_suite_train_with_limit():
    data = resolve_data("suite:train", limit=5)
    assert {r.columns["split"] for r in data.records} == {"train"}
    # for the suite, --limit is per subset
    counts = {}
    for r in data.records:
        counts[r.subset] = counts.get(r.subset, 0) + 1
    assert counts == {"arith": 5, "constraints": 5, "length-trap": 5, "refusal": 5}
    assert set(data.sections) == {"reasoning", "instruction-following", "robustness", "safety"}


def test_resolve_suite_bad_split():
    with pytest.raises(ValueError, match="unknown split"):
        resolve_data("suite:validation")


def test_resolve_unknown_name():
    with pytest.raises(FileNotFoundError, match="no-such-benchmark"):
        resolve_data("no-such-benchmark")


def test_resolve_data_file(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", PAIR_ROWS)
    data = resolve_data(str(path), limit=2)
    assert [r.id for r in data.records] == ["a", "b"]
    assert data.sections == {}


def test_builtin_benchmarks_all_load(tmp_path):
    gsm = tmp_path / "gsm8k.jsonl"
    gsm.write_text(json.dumps({"question": "Tom has 2 apples and buys 3. How many?", "solution": "2 + 3 = <<2+3=5>>5\n#### 5"}) + "\n")
    benches = builtin_benchmarks()
    assert {"suite", "arith-steps", "gsm8k-errors"} <= set(benches)
    for name, bench in benches.items():
        assert bench.name == name
        data = bench.load(str(gsm) if bench.argument == "path" else None, limit=3)
        assert len(data) > 0, name
        assert data.sections == {k: dict(v) for k, v in bench.sections.items()}
    # every --data spelling of the step benchmarks resolves through the one resolver
    assert resolve_data("arith-steps:train", limit=2).kind == "steps" and resolve_data("arith", limit=2).source.startswith("builtin:arith-steps/test")
    errs = resolve_data(f"gsm8k-errors:{gsm}")
    assert [r.first_error_step for r in errs.records] == [-1, 0]
    with pytest.raises(ValueError, match="needs a path"):
        resolve_data("gsm8k-errors")
    with pytest.raises(ValueError, match="unknown split"):
        resolve_data("arith-steps:dev")


def test_yaml_declaration_with_local_file(tmp_path):
    write_jsonl(tmp_path / "local.jsonl", PAIR_ROWS + [
        {"id": "d", "prompt": "p4", "chosen": "c4", "rejected": "r4", "subset": "s3"},
    ])
    decl = tmp_path / "mine.yaml"
    decl.write_text(
        "name: mine\n"
        "description: a local benchmark\n"
        "source: local.jsonl\n"
        "format: pairwise\n"
        "subsets: [s1, s2]\n"
        "sections:\n"
        "  first: {s1: 2, s2: 1}\n"
        "  second: {s2: 0.5}\n"
    )
    bench = Benchmark.from_yaml(decl)
    assert bench.name == "mine" and bench.base_dir == tmp_path
    data = bench.load()
    assert [r.id for r in data.records] == ["a", "b", "c"]  # s3 filtered out
    assert data.sections == {"first": {"s1": 2, "s2": 1}, "second": {"s2": 0.5}}

    via_resolve = resolve_data(str(decl))
    assert via_resolve.records == data.records
    assert via_resolve.sections == data.sections


@pytest.mark.parametrize("body, needle", [
    ("name: x\nsource: d.jsonl\nweights: {a: 1}\n", "unknown field"),
    ("name: x\ndescription: no source\n", "'source' is required"),
    ("source: d.jsonl\n", "'name' is required"),
    ("name: x\nsource: d.jsonl\nsections:\n  s: {a: 0}\n", "positive weights"),
    ("name: x\nsource: d.jsonl\nsections:\n  s: {a: -1}\n", "positive weights"),
    ("name: x\nsource: d.jsonl\nsections:\n  s: {}\n", "positive weights"),
    ("name: x\nsource: d.jsonl\nsections:\n  s: {a: heavy}\n", "positive weights"),
    ("- just\n- a list\n", "must be a mapping"),
])
def test_bad_declarations(tmp_path, body, needle):
    decl = tmp_path / "bad.yaml"
    decl.write_text(body)
    with pytest.raises(ValueError) as info:
        Benchmark.from_yaml(decl)
    assert str(decl) in str(info.value)
    assert needle in str(info.value)


def test_parquet_errors_name_the_record(tmp_path):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    rows = [dict(GOOD), {"prompt": "p", "chosen": "c", "rejected": None}]
    path = tmp_path / "bad.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)
    err = _error(path)
    assert (err.path, err.where, err.field) == (str(path), "record 2", "rejected")
    assert f"{path}:record 2" in str(err)
