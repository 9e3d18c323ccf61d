"""Hardening (issue "Hardening", item 12): bad input gives a clear error naming the file, line and
field, or a warning, never a traceback from deep inside: JSON and specs nested too deeply, data columns
that collide with reward.score's own parameters, YAML Python tags, config classes that are not
rewards, invalid UTF-8, out-of-range numeric flags, duplicate row ids, ``--out`` of the wrong kind, and
non-finite scores (unscored, with a reason)."""
from __future__ import annotations

import json
import math
import textwrap
import warnings

import pytest

from rewardkit.data.formats import DataFormatError, load_dataset
from rewardkit.specs import RewardSpecError, load_reward, parse_spec

PAIR = {"prompt": "p", "chosen": "a b", "rejected": "a"}


def _jsonl(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path


# ---------------------------------------------------------------- nesting depth

def test_deeply_nested_json_line_is_a_data_error_naming_file_and_line(tmp_path):
    path = _jsonl(tmp_path / "deep.jsonl", [PAIR, "[" * 100_000 + "]" * 100_000])
    with pytest.raises(DataFormatError) as err:
        load_dataset(path)
    assert f"{path}:line 2" in str(err.value) and "nested too deeply" in str(err.value)


def test_deeply_nested_json_file_is_a_data_error(tmp_path):
    path = tmp_path / "deep.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(DataFormatError, match="nested too deeply") as err:
        load_dataset(path)
    assert str(path) in str(err.value)


def test_deeply_nested_reward_spec_is_a_depth_error():
    spec = "transform:group(" * 2000 + "length" + ")" * 2000
    with pytest.raises(RewardSpecError, match="nested more than 64 deep"):
        load_reward(spec)
    assert parse_spec("transform:group(" * 64 + "length" + ")" * 64).func == "transform:group"  # the limit itself is fine


def test_deeply_nested_yaml_config_is_a_depth_error(tmp_path):
    flow = tmp_path / "flow.yaml"
    flow.write_text("[" * 2000 + "]" * 2000)
    with pytest.raises(RewardSpecError, match="nested too deeply") as err:
        load_reward(str(flow))
    assert str(flow) in str(err.value)
    # rewards inside rewards (inner: ...), each level a mapping
    text = "".join("  " * k + "kind: transform\n" + "  " * k + "how: group\n" + "  " * k + "inner:\n" for k in range(100))
    deep = tmp_path / "deep.yaml"
    deep.write_text(text + "  " * 100 + "length\n")
    with pytest.raises(RewardSpecError, match="nested more than 64 deep") as err:
        load_reward(str(deep))
    assert str(deep) in str(err.value)


def test_reward_file_that_names_itself_is_an_error_not_a_recursion(tmp_path):
    path = tmp_path / "loop.yaml"
    path.write_text(f"kind: transform\nhow: group\ninner: {path}\n")
    with pytest.raises(RewardSpecError, match="already being read") as err:
        load_reward(str(path))
    assert str(path) in str(err.value)


# ---------------------------------------------------------------- columns named like score()'s parameters

@pytest.mark.parametrize("column", ["prompts", "self"])
def test_column_named_like_a_score_parameter_is_refused(tmp_path, column):
    path = _jsonl(tmp_path / "cols.jsonl", [PAIR, {**PAIR, column: "x"}])
    with pytest.raises(DataFormatError) as err:
        load_dataset(path)
    assert f"{path}:line 2: field '{column}'" in str(err.value) and "collide" in str(err.value)


def test_step_rows_cannot_carry_a_completions_column(tmp_path):
    row = {"question": "q", "steps": ["a", "b"], "labels": [1, 0], "completions": ["x"]}
    path = _jsonl(tmp_path / "steps.jsonl", [row])
    with pytest.raises(DataFormatError, match="field 'completions'") as err:
        load_dataset(path)
    assert str(path) in str(err.value)


def test_reserved_column_through_the_cli_is_a_clear_error(tmp_path, capsys):
    from rewardkit.cli.main import main

    path = _jsonl(tmp_path / "cols.jsonl", [{**PAIR, "self": 1}])
    assert main(["eval", "--reward", "length", "--data", str(path), "--out", str(tmp_path / "o"), "--bootstrap", "10"]) == 2
    assert f"{path}:line 1: field 'self'" in capsys.readouterr().err


# ---------------------------------------------------------------- YAML: tags and classes

def test_yaml_python_tags_are_refused_naming_file_and_line(tmp_path):
    marker = tmp_path / "ran"
    path = tmp_path / "evil.yaml"
    path.write_text(f"kind: length\nname: !!python/object/apply:os.system ['touch {marker}']\n")
    with pytest.raises(RewardSpecError) as err:
        load_reward(str(path))
    assert f"{path}:line 2" in str(err.value) and "python/object/apply:os.system" in str(err.value)
    assert not marker.exists()


def test_benchmark_declaration_with_a_python_tag_is_refused(tmp_path):
    from rewardkit.data.benchmarks import resolve_data

    path = tmp_path / "bench.yaml"
    path.write_text("name: b\nsource: !!python/name:os.system\n")
    with pytest.raises(DataFormatError, match="line 2") as err:
        resolve_data(str(path))
    assert str(path) in str(err.value)


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    """An importable module ``ce_user_rewards`` with a reward class and a class that is not one (whose
    ``__init__`` records that it ran)."""
    (tmp_path / "ce_user_rewards.py").write_text(textwrap.dedent("""
        import math

        from rewardkit.protocol import BaseReward
        from rewardkit.types import RewardOutput

        CALLS = []

        class NotAReward:
            def __init__(self, **kwargs):
                CALLS.append(kwargs)

        class Constant(BaseReward):
            name = "constant"

            def score(self, prompts, completions, **columns):
                return RewardOutput(scores=[1.0] * len(prompts))

        def infinite(prompts, completions):
            return [math.inf if c == "a b" else 1.0 for c in completions]
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    import importlib
    import sys

    sys.modules.pop("ce_user_rewards", None)
    yield importlib.import_module("ce_user_rewards")
    sys.modules.pop("ce_user_rewards", None)


def test_yaml_class_that_is_not_a_reward_is_refused_before_it_is_instantiated(tmp_path, user_module):
    path = tmp_path / "cls.yaml"
    path.write_text("class: ce_user_rewards:NotAReward\nanything: 1\n")
    with pytest.raises(RewardSpecError) as err:
        load_reward(str(path))
    assert str(path) in str(err.value) and "ce_user_rewards:NotAReward" in str(err.value) and "not a reward" in str(err.value)
    assert user_module.CALLS == []
    with pytest.raises(RewardSpecError, match="not a reward"):
        load_reward("py:ce_user_rewards:NotAReward")
    assert user_module.CALLS == []
    good = tmp_path / "good.yaml"
    good.write_text("class: ce_user_rewards:Constant\n")
    assert load_reward(str(good)).score(["p"], ["c"]).scores == [1.0]


# ---------------------------------------------------------------- invalid UTF-8

def test_invalid_utf8_in_jsonl_names_file_line_and_offset(tmp_path):
    path = tmp_path / "latin1.jsonl"
    first = (json.dumps(PAIR) + "\n").encode()
    path.write_bytes(first * 2 + '{"prompt": "caf\xe9", "chosen": "a", "rejected": "b"}\n'.encode("latin-1"))
    with pytest.raises(DataFormatError) as err:
        load_dataset(path)
    message = str(err.value)
    assert f"{path}:line 3" in message and "UTF-8" in message and "0xe9" in message
    assert f"offset {2 * len(first) + 15}" in message


def test_invalid_utf8_in_json_and_yaml_names_file_and_line(tmp_path):
    path = tmp_path / "latin1.json"
    path.write_bytes(b'[\n{"prompt": "caf\xe9", "chosen": "a", "rejected": "b"}\n]\n')
    with pytest.raises(DataFormatError, match="line 2") as err:
        load_dataset(path)
    assert str(path) in str(err.value) and "UTF-8" in str(err.value)
    config = tmp_path / "r.yaml"
    config.write_bytes(b"kind: length\nname: caf\xe9\n")
    with pytest.raises(RewardSpecError, match="line 2") as err:
        load_reward(str(config))
    assert str(config) in str(err.value) and "UTF-8" in str(err.value)


# ---------------------------------------------------------------- numeric flags

def _parse(argv):
    from rewardkit.cli.main import build_parser

    return build_parser().parse_args(argv)


@pytest.mark.parametrize("argv, flag", [
    (["eval", "--reward", "length", "--data", "suite", "--out", "o", "--limit", "0"], "--limit"),
    (["eval", "--reward", "length", "--data", "suite", "--out", "o", "--bootstrap", "0"], "--bootstrap"),
    (["eval", "--reward", "length", "--data", "suite", "--out", "o", "--batch-size", "-1"], "--batch-size"),
    (["eval", "--reward", "length", "--data", "suite", "--out", "o", "--max-padding", "1"], "--max-padding"),
    (["eval", "--reward", "length", "--data", "suite", "--out", "o", "--dev-fraction", "0"], "--dev-fraction"),
    (["score", "--reward", "length", "--data", "suite", "--out", "o.jsonl", "--max-tokens-per-batch", "0"], "--max-tokens-per-batch"),
    (["train", "--out", "o", "--epochs", "0"], "--epochs"),
    (["train", "--out", "o", "--eval-every", "0"], "--eval-every"),
    (["train", "--out", "o", "--pairs-per-step", "-3"], "--pairs-per-step"),
    (["train", "--out", "o", "--lr", "nan"], "--lr"),
    (["train", "--out", "o", "--limit", "0"], "--limit"),
    (["search", "--data", "d", "--out", "o", "--beam-width", "0"], "--beam-width"),
    (["search", "--data", "d", "--out", "o", "--limit", "0"], "--limit"),
    (["label-steps", "--data", "d", "--out", "o.jsonl", "--rollouts", "0"], "--rollouts"),
    (["label-steps", "--data", "d", "--out", "o.jsonl", "--top-p", "0"], "--top-p"),
    (["serve", "--reward", "length", "--max-batch-samples", "0"], "--max-batch-samples"),
    (["serve", "--reward", "length", "--port", "70000"], "--port"),
    (["serve", "--reward", "length", "--unscored-reward", "nan"], "--unscored-reward"),
    (["split", "data.jsonl", "--out", "o", "--test-fraction", "1"], "--test-fraction"),
    (["suite", "--out", "o", "--train-size", "0"], "--train-size"),
])
def test_nonsense_numeric_flags_are_refused_by_argparse(argv, flag, capsys):
    with pytest.raises(SystemExit) as exit_:
        _parse(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {flag}: must be" in err and argv[-1] in err


def test_sensible_edge_values_still_parse():
    args = _parse(["serve", "--reward", "length", "--port", "0", "--max-wait-ms", "0"])
    assert (args.port, args.max_wait_ms) == (0, 0.0)
    args = _parse(["eval", "--reward", "length", "--data", "suite", "--out", "o", "--limit", "1", "--max-padding", "0", "--seed", "-1"])
    assert (args.limit, args.max_padding, args.seed) == (1, 0.0, -1)
    assert _parse(["train", "--out", "o", "--eval-fraction", "0"]).eval_fraction == 0.0


# ---------------------------------------------------------------- --out of the wrong kind

def test_out_file_that_is_a_directory_is_refused(tmp_path, capsys):
    with pytest.raises(SystemExit):
        _parse(["label-steps", "--data", "d", "--out", str(tmp_path)])
    assert f"argument --out: {tmp_path} is a directory" in capsys.readouterr().err


def test_out_directory_that_is_a_file_is_refused(tmp_path, capsys):
    path = tmp_path / "results.json"
    path.write_text("{}")
    for argv in (["eval", "--reward", "length", "--data", "suite"], ["train"], ["suite"], ["search", "--data", "d"]):
        with pytest.raises(SystemExit):
            _parse(argv + ["--out", str(path)])
        assert f"argument --out: {path} exists and is not a directory" in capsys.readouterr().err


# ---------------------------------------------------------------- duplicate ids

def _warnings_of(fn):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = fn()
    return result, [str(w.message) for w in caught if "more than once" in str(w.message)]


def test_duplicate_ids_are_warned_once_with_count_and_first_ids(tmp_path):
    path = _jsonl(tmp_path / "dup.jsonl", [{**PAIR, "id": f"r{i % 3}"} for i in range(7)] + [{**PAIR, "id": "unique"}])
    data, messages = _warnings_of(lambda: load_dataset(path))
    assert len(data) == 8 and len(messages) == 1
    assert str(path) in messages[0] and "3 row id(s)" in messages[0] and "'r0' (3 times)" in messages[0] and "'r1' (2 times)" in messages[0]
    _, none = _warnings_of(lambda: load_dataset(_jsonl(tmp_path / "ok.jsonl", [PAIR, PAIR])))  # no ids: rows are named by line
    assert none == []


def test_duplicate_ids_in_step_and_question_files_are_warned(tmp_path):
    from rewardkit.data.io import question_rows

    step = {"id": "s", "question": "q", "steps": ["a"], "labels": [1]}
    _, messages = _warnings_of(lambda: load_dataset(_jsonl(tmp_path / "steps.jsonl", [step, step])))
    assert len(messages) == 1 and "'s' (2 times)" in messages[0]
    q = {"id": "q1", "question": "1+1?", "answer": "2"}
    _, messages = _warnings_of(lambda: question_rows(_jsonl(tmp_path / "q.jsonl", [q, q, q])))
    assert len(messages) == 1 and "'q1' (3 times)" in messages[0] and "q.jsonl" in messages[0]


# ---------------------------------------------------------------- non-finite scores

def test_non_finite_scores_become_unscored_with_a_reason():
    from rewardkit.protocol import reward
    from rewardkit.types import RewardOutput

    out = RewardOutput(scores=[1.0, math.nan, -math.inf, None], extras={"reason": [None, "judge said 7/0", None, "empty"]})
    assert out.scores == [1.0, None, None, None]
    assert out.extras["reason"][0] is None and out.extras["reason"][3] == "empty"
    assert "judge said 7/0" in out.extras["reason"][1] and "non-finite" in out.extras["reason"][1] and "inf" in out.extras["reason"][2]

    @reward
    def broken(prompts, completions):
        return [float("nan"), 2]

    assert broken(prompts=["p", "p"], completions=["a", "b"]) == [None, 2.0]


def test_non_finite_scores_are_not_counted_as_numbers_by_eval_and_score(tmp_path, user_module):
    from rewardkit.cli.main import main

    data = _jsonl(tmp_path / "pairs.jsonl", [PAIR, {**PAIR, "chosen": "x y z"}])
    out = tmp_path / "eval"
    assert main(["eval", "--reward", "py:ce_user_rewards:infinite", "--data", str(data), "--out", str(out), "--bootstrap", "10"]) == 0
    rows = [json.loads(line) for line in (out / "scores.jsonl").read_text().splitlines()]
    assert rows[0]["chosen_score"] is None and "non-finite" in rows[0]["chosen_details"]["reason"]
    result = json.loads((out / "results.json").read_text())
    assert result["subsets"]["default"]["unscored"] == 1 and result["overall"] == 0.0  # inf > 1 would have won
    scored = tmp_path / "scored.jsonl"
    assert main(["score", "--reward", "py:ce_user_rewards:infinite", "--data", str(data), "--out", str(scored)]) == 0
    assert "Infinity" not in scored.read_text() and json.loads(scored.read_text().splitlines()[0])["chosen_score"] is None


def test_non_finite_precomputed_scores_are_unscored(tmp_path):
    path = tmp_path / "s.jsonl"
    path.write_text('{"chosen_score": Infinity, "rejected_score": 1.0}\n{"chosen_score": 2.0, "rejected_score": -Infinity}\n')
    first, second = load_dataset(path).records
    assert first.chosen_score is None and second.rejected_score is None and second.chosen_score == 2.0
