"""Compositions checked against hand-computed values, spec parsing, YAML reward files, and rule
applicability in evaluations."""
from __future__ import annotations

import json
import math

import pytest

from rewardkit import FunctionReward, RewardOutput, load_reward
from rewardkit.rewards.ensemble import EnsembleReward, GateReward, TransformReward
from rewardkit.rewards.rules import RuleReward, Verdict
from rewardkit.specs import RewardSpecError, parse_spec


def const(values, name):
    """A reward returning fixed scores (None allowed), whatever the input."""
    return FunctionReward(lambda prompts, completions: RewardOutput(scores=list(values)[: len(prompts)]), name=name)


def by_text(table, name):
    """Score = table[completion] (None if absent): lets reference responses get their own score."""
    return FunctionReward(lambda prompts, completions: [table.get(c) for c in completions], name=name)


A = const([1.0, 4.0, None], "a")
B = const([3.0, 0.0, 2.0], "b")
P, C = ["p1", "p2", "p3"], ["x", "y", "z"]


def test_ensemble_statistics_by_hand():
    out = EnsembleReward([A, B], "mean").score(P, C)
    assert out.scores[:2] == [2.0, 2.0] and out.scores[2] is None
    assert "a" in out.extras["reason"][2]
    assert out.dims == ("a", "b") and out.vector == [[1.0, 3.0], [4.0, 0.0], [None, 2.0]]
    assert EnsembleReward([A, B], "min").score(P, C).scores[:2] == [1.0, 0.0]
    assert EnsembleReward([A, B], "max").score(P, C).scores[:2] == [3.0, 4.0]
    # mean - k * population std: std of (1, 3) = 1, of (4, 0) = 2
    assert EnsembleReward([A, B], "lcb", k=0.5).score(P, C).scores[:2] == [1.5, 1.0]
    assert EnsembleReward([A, B], "weighted", weights=[0.25, 2]).score(P, C).scores[:2] == [6.25, 1.0]


def test_sum_as_and_by_hand():
    ls = lambda x: math.log(1 / (1 + math.exp(-x)))  # noqa: E731
    out = EnsembleReward([A, B], "and", centers=[1.0, 2.0]).score(P, C)
    assert out.scores[0] == pytest.approx(ls(0.0) + ls(1.0))
    assert out.scores[1] == pytest.approx(ls(3.0) + ls(-2.0))
    # centres from each member's score of the `reference` response
    ra, rb = by_text({"x": 2.0, "ref": 1.0}, "ra"), by_text({"x": 0.5, "ref": 1.5}, "rb")
    out = EnsembleReward([ra, rb], "and").score(["p"], ["x"], reference=["ref"])
    assert out.scores[0] == pytest.approx(ls(1.0) + ls(-1.0))


def test_transforms_by_hand():
    assert TransformReward(B, "zscore", mean=1.0, std=2.0).score(P, C).scores == [1.0, -0.5, 0.5]
    assert TransformReward(B, "clip", min=0.5, max=2.5).score(P, C).scores == [2.5, 0.5, 2.0]
    assert TransformReward(B, "clip", max=1.0).score(P, C).scores == [1.0, 0.0, 1.0]
    par = TransformReward(B, "par", center=2.0).score(P, C)
    assert par.scores[0] == pytest.approx(1 / (1 + math.exp(-1.0))) and par.extras["raw_score"] == [3.0, 0.0, 2.0]
    assert TransformReward(B, "logsigmoid", center=3.0).score(P, C).scores[0] == pytest.approx(math.log(0.5))
    ref = TransformReward(by_text({"y": 3.0, "r": 1.0}, "t"), "par").score(["p"], ["y"], reference=["r"])
    assert ref.scores[0] == pytest.approx(1 / (1 + math.exp(-2.0)))


def test_group_normalisation_over_completions_of_one_prompt():
    r = const([1.0, 3.0, 10.0, 5.0, None], "r")
    prompts = ["q1", "q1", "q2", "q1", "q2"]
    out = TransformReward(r, "group", eps=0.0).score(prompts, ["a"] * 5)
    # q1 group: 1, 3, 5 -> mean 3, std sqrt(8/3); q2: only 10 scored -> 0
    sd = math.sqrt(8 / 3)
    assert out.scores[0] == pytest.approx(-2 / sd) and out.scores[3] == pytest.approx(2 / sd)
    assert out.scores[1] == 0.0 and out.scores[2] == 0.0 and out.scores[4] is None
    centred = TransformReward(r, "group", scale=False).score(prompts, ["a"] * 5)
    assert centred.scores[:4] == [-2.0, 0.0, 0.0, 2.0]
    by_column = TransformReward(r, "group", eps=0.0).score(["x"] * 5, ["a"] * 5, group_id=[1, 1, 2, 1, 2])
    assert by_column.scores[0] == pytest.approx(-2 / sd)


def test_gate_uses_verifier_then_fallback_and_records_source():
    verifier = const([1.0, None, 0.0], "v")
    fallback = FunctionReward(lambda prompts, completions: [len(c) * 10.0 for c in completions], name="f")
    out = GateReward(verifier, fallback).score(P, ["a", "bb", "ccc"])
    assert out.scores == [1.0, 20.0, 0.0]
    assert out.extras["source"] == ["verifier", "fallback", "verifier"]
    scaled = GateReward(verifier, fallback, verifier_scale=4, verifier_offset=-2).score(P, ["a", "bb", "ccc"])
    assert scaled.scores == [2.0, 20.0, -2.0]


def test_gate_falls_back_when_the_verifier_column_is_absent():
    def needs_answer(completion, *, answer):
        return float(completion == answer)

    out = GateReward(RuleReward(needs_answer), FunctionReward(lambda p, c: [7.0] * len(c), name="f")).score(["p"], ["x"])
    assert out.scores == [7.0] and out.extras["source"] == ["fallback"] and "answer" in out.extras["verifier_reason"][0]


def test_composition_specs():
    tree = parse_spec("ensemble:lcb(loglik:default, transform:clip(length, min=-1, max=2), k=0.5)")
    assert tree.func == "ensemble:lcb" and tree.args[0] == "loglik:default" and tree.kwargs == {"k": 0.5}
    assert tree.args[1].kwargs == {"min": -1, "max": 2}
    r = load_reward("ensemble:weighted(length, length:chars, weights=[0.5, 2])")
    assert r.score(["p"], ["ab cd"]).scores == [0.5 * 2 + 2 * 5]
    g = load_reward("gate(transform:clip(length, max=1), length:chars)")
    assert g.score(["p"], ["a b c"]).scores == [1.0]
    for bad, message in [("ensemble:mean(length", "missing '\\)'"), ("ensemble:mean(length,,)", "expected a reward"),
                         ("gate(length)", "verifier and a fallback"), ("foo(length)", "not a composition"),
                         ("ensemble:mean(k=1, length)", "positional argument follows"), ("ensemble:median(length)", "unknown ensemble")]:
        with pytest.raises(ValueError, match=message):
            load_reward(bad)


def test_yaml_reward_files(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("kind: ensemble\nhow: weighted\nweights: [1, -1]\nmembers:\n  - length\n  - kind: length\n    unit: chars\n")
    r = load_reward(str(path))
    assert r.score(["p"], ["ab cd"]).scores == [2 - 5]
    bad = tmp_path / "bad.yaml"
    bad.write_text("members: [length]\n")
    with pytest.raises(RewardSpecError, match="bad.yaml.*needs 'kind'"):
        load_reward(str(bad))


def test_every_shipped_reward_yaml_instantiates():
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "examples" / "rewards"
    files = sorted(root.glob("*.yaml"))
    assert files, "ship at least one example reward file"
    for path in files:
        reward = load_reward(str(path))
        assert reward.score(["What is 1+1?"], ["The answer is 2."], answer=["2"]).scores[0] is not None


def test_rule_not_applicable_items_are_reported_apart(tmp_path):
    from rewardkit.cli.main import main

    data = tmp_path / "d.jsonl"
    rows = [{"prompt": "q", "chosen": "4", "rejected": "5", "answer": "4", "subset": "math"},
            {"prompt": "q", "chosen": "5", "rejected": "4", "answer": "4", "subset": "math"},
            {"prompt": "q", "chosen": "a", "rejected": "b", "subset": "chat"}]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "o"
    assert main(["eval", "--reward", "py:test_ensemble:exact_rule", "--data", str(data), "--out", str(out), "--bootstrap", "20"]) == 0
    result = json.loads((out / "results.json").read_text())
    assert result["overall"] == 0.5 and result["n"] == 2 and result["not_applicable"] == 1
    assert result["subsets"]["chat"]["n"] == 0 and result["subsets"]["chat"]["not_applicable"] == 1
    rows = [json.loads(line) for line in (out / "scores.jsonl").read_text().splitlines()]
    assert [r.get("not_applicable", False) for r in rows] == [False, False, True]
    assert not any("applicable" in r.get(side, {}) for r in rows for side in ("chosen_details", "rejected_details"))
    again = tmp_path / "again"
    assert main(["eval", "--scores", str(out / "scores.jsonl"), "--out", str(again), "--bootstrap", "20"]) == 0
    assert json.loads((again / "results.json").read_text())["not_applicable"] == 1


def _exact(completion, *, answer):
    return Verdict(float(completion.strip() == answer), info={"extracted": completion.strip()})


exact_rule = RuleReward(_exact, name="exact")


def test_rule_options_in_specs(monkeypatch):
    import rewardkit.rewards.rules as rules

    monkeypatch.setitem(rules.RULES, "exact", ("test_ensemble:_exact", "exact match (a test rule)"))
    r = load_reward("rule:exact(answer='4')")
    assert r.score(["q", "q"], ["4", "5"]).scores == [1.0, 0.0]
    with pytest.raises(ValueError, match="unknown option"):
        load_reward("rule:exact(nope=1)")
    assert parse_spec("rule:regex(pattern='^a, (b)$')").kwargs == {"pattern": "^a, (b)$"}


def test_review_regressions_optional_columns_and_group_ids():
    # an optional column that is None for a sample keeps the check's default
    def near(completion, *, answer, tol=0.5):
        return float(abs(float(completion) - float(answer)) <= tol)

    assert RuleReward(near).score(["p"] * 2, ["1.2", "1.2"], answer=["1", "1"], tol=[0.1, None]).scores == [0.0, 1.0]
    # samples without a group_id are grouped by their prompt, not lumped together
    length = FunctionReward(lambda prompts, completions: [float(len(c)) for c in completions], name="len")
    t = TransformReward(length, "group", eps=0.0)
    by_prompt = t.score(["a", "a", "b", "b"], ["x", "xxx", "y", "yyyyy"]).scores
    assert t.score(["a", "a", "b", "b"], ["x", "xxx", "y", "yyyyy"], group_id=[None] * 4).scores == by_prompt == [-1.0, 1.0, -1.0, 1.0]
