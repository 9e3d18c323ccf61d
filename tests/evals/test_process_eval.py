"""ProcessBench-style evaluation: first-error prediction, F1, AUROC, dev-chosen threshold, and the
per-prefix fallback for rewards without step scores."""
from __future__ import annotations

import pytest

from rewardkit.data.formats import Dataset
from rewardkit.data.steps import StepRecord
from rewardkit.evals.process import (
    auroc, choose_threshold, evaluate_process, first_error_metrics, predict_first_error, score_steps, process_table,
)
from rewardkit.protocol import reward
from rewardkit.types import RewardOutput


def test_auroc_by_hand():
    assert auroc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]) == pytest.approx(0.75)
    assert auroc([0.5, 0.5], [0, 1]) == pytest.approx(0.5)
    assert auroc([0.2, 0.3], [1, 1]) is None


def test_first_error_f1_by_hand():
    scores = [[0.9, 0.2, 0.8], [0.9, 0.9], [0.3, 0.9], None]
    assert [predict_first_error(s, 0.5) for s in scores] == [1, -1, 0, None]
    m = first_error_metrics(scores, [1, -1, 1, -1], 0.5)
    # erroneous: hit, miss -> 0.5; correct: hit, unscored -> 0.5
    assert m["error_accuracy"] == 0.5 and m["correct_accuracy"] == 0.5 and m["f1"] == pytest.approx(0.5) and m["unscored"] == 1


def test_threshold_is_chosen_to_maximise_dev_f1():
    scores = [[0.9, 0.3], [0.8, 0.7], [0.6, 0.9]]
    t = choose_threshold(scores, [1, -1, -1])
    assert 0.3 < t <= 0.6 and first_error_metrics(scores, [1, -1, -1], t)["f1"] == 1.0


def _records(n=40):
    out = []
    for i in range(n):
        fes = i % 3 - 1 if i % 2 else -1  # a mix of correct and erroneous solutions
        steps = [f"step {k} of {i}" for k in range(3)]
        labels = [1.0 if fes < 0 or k < fes else 0.0 if k == fes else None for k in range(3)]
        out.append(StepRecord(f"r{i}", f"question {i}", steps, labels, fes, "s", {"fes": fes}))
    return Dataset("steps", out, "mem", "processbench")


@reward
def oracle(prompts, completions, *, fes):
    """Perfect step scores from the gold first error (a test double)."""
    steps = [[0.1 if f >= 0 and k >= f else 0.9 for k in range(len(c))] for c, f in zip(completions, fes)]
    return RewardOutput(scores=[min(s) for s in steps], steps=steps)


@reward
def outcome(prompts, completions, *, fes):
    """An outcome reward: only the whole (prefix) completion is scored."""
    return [0.1 if f >= 0 and len(c) > f else 0.9 for c, f in zip(completions, fes)]


def test_evaluate_process_oracle_and_per_prefix():
    data = _records()
    result, rows = evaluate_process(oracle, data, dev_fraction=0.3)
    assert result["f1"] == 1.0 and result["auroc"] == 1.0 and result["step_scores"] == "steps"
    assert 0.1 < result["threshold"] <= 0.9 and result["dev"]["n"] + result["n"] == len(data)
    assert {r["split"] for r in rows} == {"dev", "test"}
    scores, mode = score_steps(outcome, data.records)
    assert mode == "per-prefix" and scores[1] == [0.1, 0.1, 0.1] and scores[0] == [0.9, 0.9, 0.9]
    result, _ = evaluate_process(outcome, data, threshold=0.5)
    assert result["f1"] == 1.0 and result["threshold_chosen_on"] == "given"


def test_a_bad_reward_scores_badly():
    @reward
    def inverted(prompts, completions, *, fes):
        steps = [[0.9 if f >= 0 and k >= f else 0.1 for k in range(len(c))] for c, f in zip(completions, fes)]
        return RewardOutput(scores=[min(s) for s in steps], steps=steps)

    result, _ = evaluate_process(inverted, _records(), threshold=0.5)
    assert result["auroc"] == 0.0 and result["f1"] < 0.5


def test_truncation_of_any_prefix_is_reported_per_solution_and_in_the_summary():
    @reward
    def clipped(prompts, completions, *, fes):
        """An outcome reward that reports cutting every prefix of three or more steps."""
        return RewardOutput(scores=[0.5] * len(completions), extras={"truncated": [len(c) >= 3 for c in completions]})

    data = _records()
    flags: list[bool] = []
    score_steps(clipped, data.records, truncated=flags)
    assert flags == [len(r.steps) >= 3 for r in data.records] and any(flags)
    result, rows = evaluate_process(clipped, data, threshold=0.4)
    assert result["truncated"] == sum(flags) and [r["truncated"] for r in rows] == flags
    assert "trunc" in process_table(result)
    result, rows = evaluate_process(oracle, data, threshold=0.5)  # no truncation flags: none reported
    assert result["truncated"] == 0 and not any(r["truncated"] for r in rows)
