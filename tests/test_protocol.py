"""The Reward protocol: TRL-compatible calls, plain functions as rewards, clear column errors, specs."""
from __future__ import annotations

import pytest

import rewardkit
from rewardkit import FunctionReward, LengthReward, MissingColumnError, Reward, RewardOutput, load_reward, reward


def test_public_api_is_pinned():
    assert sorted(rewardkit.__all__) == sorted([
        "BaseReward", "BestOfNRecord", "ClassifierReward", "Completion", "FunctionReward", "LengthReward",
        "LogLikelihoodReward", "Message", "MissingColumnError", "PairRecord", "Prompt", "Reward", "RewardOutput",
        "load_reward", "reward",
    ])
    for name in rewardkit.__all__:
        assert getattr(rewardkit, name) is not None


def test_import_does_not_load_torch():
    import subprocess
    import sys

    code = "import sys, rewardkit; from rewardkit.data import load_dataset; from rewardkit.evals import summarize; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "False"


@reward
def exact_match(prompts, completions, *, answer):
    return [None if a is None else float(c.strip() == a) for c, a in zip(completions, answer)]


def test_plain_function_is_a_reward_and_trl_callable():
    assert isinstance(exact_match, Reward)
    assert exact_match.__name__ == "exact_match"  # TRL logs reward functions by __name__
    # the way TRL's GRPOTrainer calls it: keywords, every dataset column, plus trainer extras
    scores = exact_match(prompts=["1+1?", "2+2?", "3+3?"], completions=["2", "5", "6"], answer=["2", "4", None],
                         completion_ids=[[1], [2], [3]], trainer_state=None)
    assert scores == [1.0, 0.0, None]
    out = exact_match.score(["1+1?"], ["2"], answer=["2"])
    assert isinstance(out, RewardOutput) and out.scores == [1.0]


def test_missing_column_error_names_the_column():
    with pytest.raises(MissingColumnError, match="needs the column 'answer'.*columns given: reference"):
        exact_match(prompts=["q"], completions=["a"], reference=["x"])


def test_column_length_mismatch_is_an_error():
    with pytest.raises(ValueError, match="column 'answer' has 2 values for 1 samples"):
        exact_match.score(["q"], ["a"], answer=["a", "b"])


def test_prompt_completion_count_mismatch():
    with pytest.raises(ValueError, match="2 prompts but 1 completions"):
        LengthReward().score(["a", "b"], ["c"])


def test_function_returning_wrong_count_is_caught():
    bad = FunctionReward(lambda prompts, completions: [1.0], name="bad")
    with pytest.raises(ValueError, match="returned 1 scores for 2 samples"):
        bad.score(["a", "b"], ["c", "d"])


def test_length_reward_handles_text_steps_and_conversational_completions():
    r = LengthReward()
    assert r(["p"] * 3, ["one two three", ["step one", "step two"], [{"role": "assistant", "content": "a b"}]]) == [3, 4, 2]
    assert LengthReward("chars").score(["p"], ["abcd"]).scores == [4]
    assert LengthReward(sign=-1)(["p"], ["a b"]) == [-2]


def test_reward_output_validates_shapes():
    with pytest.raises(ValueError, match="extras\\['why'\\] has 1 entries for 2 scores"):
        RewardOutput(scores=[1.0, 2.0], extras={"why": ["x"]})
    with pytest.raises(ValueError, match="vector rows must have 2 values"):
        RewardOutput(scores=[1.0], vector=[[1.0]], dims=("a", "b"))
    out = RewardOutput(scores=[1.0], vector=[[0.5, 1.5]], dims=("a", "b"), extras={"truncated": [False]})
    assert out.row(0) == {"score": 1.0, "vector": {"a": 0.5, "b": 1.5}, "truncated": False}


def test_specs():
    assert load_reward("length").name == "length"
    assert load_reward("length:chars").unit == "chars"
    from rewardkit.specs import ALIASES

    with pytest.raises(ValueError, match="unknown reward kind 'nope'") as info:
        load_reward("nope:x")
    assert all(kind in str(info.value) for kind in [*ALIASES, "py"])
    with pytest.raises(ValueError, match="empty argument"):
        load_reward("loglik:")
    fn = load_reward("py:test_protocol:exact_match")
    assert fn(prompts=["q"], completions=["a"], answer=["a"]) == [1.0]
    # options a class does not take are ignored; ones it takes are passed
    assert load_reward("length", max_length=10, seed=3).name == "length"


def test_model_spec_reaches_the_model_argument(tiny_dirs):
    r = load_reward(f"classifier:{tiny_dirs['rm']}", max_length=64, seed=1)
    assert r.max_length == 64 and r.name == f"classifier:{tiny_dirs['rm']}"


def test_group_keys_and_declared_capabilities():
    from rewardkit.protocol import group_by, group_keys, groups_of, walk
    from rewardkit.rewards.baselines import LengthReward
    from rewardkit.rewards.ensemble import EnsembleReward, GateReward, TransformReward

    chat = [{"role": "user", "content": "hi"}]
    keys = group_keys(["p", "p", chat, "q"], [None, None, None, "p"])
    assert keys[0] == keys[1] and len(set(keys)) == 3  # a group_id never collides with a prompt of the same text
    assert groups_of(["b", "a", "b"]) == {"prompt:b": [0, 2], "prompt:a": [1]}
    with pytest.raises(ValueError, match="group_id"):
        group_keys(["p", "q"], [1])
    inner = TransformReward(LengthReward(), "group")
    composed = GateReward(LengthReward(), EnsembleReward([LengthReward(), inner]))
    assert group_by(composed) == "prompt" and group_by(LengthReward()) is None
    assert inner in list(walk(composed)) and group_by(lambda p, c: [0.0] * len(p)) is None

    class Wrapper:  # a user's reward that does not derive from BaseReward declares the same capabilities
        name = "wrapper"

        def __init__(self, inner):
            self.inner = inner

        def children(self):
            return [self.inner]

    from rewardkit.serve.batching import merge_safe

    assert group_by(Wrapper(inner)) == "prompt" and not merge_safe(Wrapper(inner)) and merge_safe(Wrapper(LengthReward()))


def test_tool_calling_completions_read_as_the_assistant_text_and_trainer_context_is_not_data():
    from rewardkit.protocol import completion_text, sample_columns
    from rewardkit.rewards.baselines import LengthReward

    turn = [{"role": "assistant", "content": None, "tool_calls": [{"function": {"name": "calc", "arguments": "{}"}}]},
            {"role": "tool", "content": "42"},
            {"role": "assistant", "content": [{"type": "text", "text": "It is "}, {"type": "text", "text": "42."}]}]
    assert completion_text(turn) == "It is 42."  # not "NoneIt is 42." and not the tool's output
    assert LengthReward("chars")(prompts=["q"], completions=[turn]) == [9.0]
    with pytest.raises(ValueError, match="role"):
        completion_text([{"role": "user", "content": "hi"}])
    state = object()
    cols = sample_columns({"answer": ["1", "2"], "trainer_state": state, "log_metric": print, "scale": 3, "ids": ([1], [2])}, 2)
    assert cols == {"answer": ["1", "2"], "ids": [[1], [2]]}
    with pytest.raises(ValueError, match="'answer' has 1 values for 2 samples"):
        sample_columns({"answer": ["1"]}, 2)


def test_the_whole_turn_is_an_option_tool_calls_and_results_included():
    from rewardkit.protocol import turn_text
    from rewardkit.rewards.rules import load_rule
    from rewardkit.specs import load_reward

    turn = [{"role": "assistant", "content": None, "tool_calls": [{"type": "function", "function": {"name": "calc", "arguments": '{"x": "6*7"}'}}]},
            {"role": "tool", "name": "calc", "content": "42"},
            {"role": "assistant", "content": "The answer is 42."}]
    assert turn_text(turn) == ('<tool_call>{"arguments": {"x": "6*7"}, "name": "calc"}</tool_call>\n'
                               "<tool_response>42</tool_response>\nThe answer is 42.")
    assert turn_text("plain") == "plain" and turn_text(["a", "b"]) == "a\nb"
    # a rule that must see the tool was called: the assistant text alone has no tool call in it
    rule = load_rule("regex", pattern=r'<tool_call>\{"arguments": .*"name": "calc"\}</tool_call>')
    assert rule.score(["q"], [turn]).scores == [0.0]
    whole = load_reward("transform:turn(rule:regex(pattern='<tool_call>.*calc'))")
    assert whole.score(["q"], [turn]).scores == [1.0] and whole(prompts=["q"], completions=[turn]) == [1.0]
