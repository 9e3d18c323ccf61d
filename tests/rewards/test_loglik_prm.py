"""The likelihood-head PRM: per-step surprise features, the logistic head, one pass = per prefix,
batch invariance, training end to end on a tiny model, loading by spec, and clear errors."""
from __future__ import annotations

import json
import math
import random

import pytest
import torch

from rewardkit.data.steps import StepRecord, labels_from_first_error
from rewardkit.rewards.process.likelihood import FEATURES, LikelihoodPRM, apply_head, read_head, step_features


def test_step_features_by_hand():
    lp = [-1.0, -3.0, -0.5, -2.0, -0.1]
    gap = [0.5, 2.0, 0.0, 1.5, 0.0]
    digit = [False, True, False, True, False]
    f = step_features(lp, gap, digit, [(0, 3), (3, 5)])
    assert f[0]["mean_lp"] == pytest.approx(-1.5) and f[0]["min_lp"] == -3.0 and f[0]["mean_gap"] == pytest.approx(2.5 / 3)
    assert f[0]["digit_min_lp"] == -3.0 and f[0]["digit_max_gap"] == 2.0 and f[0]["has_digit"] == 1.0
    assert f[1]["digit_min_lp"] == -2.0 and f[1]["digit_mean_lp"] == -2.0 and f[1]["digit_max_gap"] == 1.5
    # running extremes keep the first step's worse digit visible
    assert f[1]["prefix_digit_min_lp"] == -3.0 and f[1]["prefix_digit_max_gap"] == 2.0
    none = step_features([-1.0], [0.2], [False], [(0, 1)])[0]
    assert none["has_digit"] == 0.0 and none["digit_min_lp"] == 0.0
    assert set(f[0]) == set(FEATURES)


def test_apply_head_is_a_standardised_logistic():
    head = {"features": ["mean_lp", "min_lp"], "weights": [2.0, -1.0], "mean": [-1.0, -2.0], "std": [0.5, 2.0], "bias": 0.3}
    feats = [{"mean_lp": -0.5, "min_lp": -4.0}, {"mean_lp": -300.0, "min_lp": 0.0}]
    z0 = 0.3 + 2.0 * (0.5 / 0.5) - 1.0 * (-2.0 / 2.0)
    p = apply_head(head, feats)
    assert p[0] == pytest.approx(1 / (1 + math.exp(-z0)))
    assert 0.0 <= p[1] < 1e-100  # no overflow on extreme inputs


def test_fit_logistic_recovers_a_known_model():
    from rewardkit.train.prm_loglik import fit_logistic

    rng = random.Random(0)
    rows, ys = [], []
    for _ in range(4000):
        x = rng.gauss(0, 1)
        rows.append([x, rng.gauss(0, 1)])
        ys.append(1.0 if rng.random() < 1 / (1 + math.exp(-(2.0 * x - 0.5))) else 0.0)
    fit = fit_logistic(rows, ys, l2=0.0)
    w_raw = [w / s for w, s in zip(fit["weights"], fit["std"])]
    assert w_raw[0] == pytest.approx(2.0, abs=0.2) and abs(w_raw[1]) < 0.15
    with pytest.raises(ValueError, match="one class"):
        fit_logistic([[0.0], [1.0]], [1.0, 1.0])


def _head_file(tmp_path, model, **over):
    head = {"model": str(model), "features": ["mean_lp", "digit_max_gap"], "weights": [1.0, -0.5], "mean": [-3.0, 1.0],
            "std": [1.0, 1.0], "bias": 0.1, "step_end": "\n"}
    head.update(over)
    d = tmp_path / "head"
    d.mkdir(exist_ok=True)
    (d / "prm_head.json").write_text(json.dumps(head))
    return d


def test_one_pass_equals_per_prefix_and_is_batch_invariant(tiny_dirs, tmp_path):
    d = _head_file(tmp_path, tiny_dirs["lm"])
    prompts = ["What is 2+3?", "Count 1 to 3", "Q"]
    comps = [["2 + 3 = 5", "so 5"], ["1, 2, 3", "done 3 4", "end"], ["x = 12"]]
    ref = LikelihoodPRM(str(d)).score(prompts, comps)
    for kwargs in ({"batch_size": 1}, {"padding_side": "left"}, {"max_tokens_per_batch": 16}):
        other = LikelihoodPRM(str(d), **kwargs).score(prompts, comps)
        assert max(abs(a - b) for x, y in zip(ref.steps, other.steps) for a, b in zip(x, y)) < 1e-6
    prm = LikelihoodPRM(str(d))
    for p, c, steps in zip(prompts, comps, ref.steps):
        for k in range(len(c)):
            alone = prm.score([p], [c[: k + 1]]).steps[0]
            assert alone[k] == pytest.approx(steps[k], abs=1e-6)
    assert ref.scores[1] == pytest.approx(min(ref.steps[1]))


def test_spec_loads_the_head_and_bad_heads_name_the_field(tiny_dirs, tmp_path):
    from rewardkit.specs import load_reward

    d = _head_file(tmp_path, tiny_dirs["lm"])
    prm = load_reward(f"prm:{d}", max_length=256)
    assert isinstance(prm, LikelihoodPRM)
    assert len(prm.score(["q"], ["a 1\nb 2"]).steps[0]) == 2
    bad = _head_file(tmp_path, tiny_dirs["lm"])
    data = json.loads((bad / "prm_head.json").read_text())
    del data["bias"]
    (bad / "prm_head.json").write_text(json.dumps(data))
    with pytest.raises(ValueError, match=r"prm_head.json: field 'bias'"):
        read_head(bad)
    (bad / "prm_head.json").write_text(json.dumps({**data, "bias": 0, "features": ["nope", "min_lp"]}))
    with pytest.raises(ValueError, match="unknown feature"):
        read_head(bad)
    (bad / "prm_head.json").write_text("{\n  oops")
    with pytest.raises(ValueError, match="line 2"):
        read_head(bad)


def toy(n: int, seed: int = 0) -> list[StepRecord]:
    """Wrong steps are the ones that contain digits: the has_digit / digit features must find them."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        k = rng.randint(2, 4)
        fes = rng.randrange(k) if i % 2 else -1
        steps = [f"step {rng.randint(10, 99)} here" if j == fes else "a good step" for j in range(k)]
        out.append(StepRecord(f"t{i}", f"question {i}", steps, labels_from_first_error(k, fes), fes, "toy"))
    return out


def test_training_learns_exports_and_evaluates(tiny_dirs, tmp_path):
    from rewardkit.data.formats import Dataset
    from rewardkit.evals.process import evaluate_process
    from rewardkit.specs import load_reward
    from rewardkit.train.prm_loglik import LoglikPRMConfig, train

    torch.manual_seed(0)
    cfg = LoglikPRMConfig(model=str(tiny_dirs["lm"]), output_dir=str(tmp_path / "run"), max_length=128, data_sources=["toy"])
    summary = train(cfg, toy(120), toy(40, seed=1))
    assert summary["eval"]["auroc"] > 0.95 and summary["train_steps_labelled"] > 200
    head = json.loads((tmp_path / "run" / "prm_head.json").read_text())
    assert head["trained_on"]["sources"] == ["toy"] and "Produced by" in (tmp_path / "run" / "README.md").read_text()
    prm = load_reward(f"prm:{tmp_path / 'run'}")
    result, _ = evaluate_process(prm, Dataset("steps", toy(60, seed=2), "toy"))
    assert result["auroc"] > 0.95 and result["f1"] > 0.9


def test_cli_trains_the_head_from_a_step_file(tiny_dirs, tmp_path):
    from rewardkit.cli.main import main

    data = tmp_path / "steps.jsonl"
    data.write_text("".join(json.dumps({"id": r.id, "question": r.prompt, "steps": r.steps, "labels": r.labels,
                                        "first_error_step": r.first_error_step}) + "\n" for r in toy(60)))
    out = tmp_path / "cli-run"
    assert main(["train", "--objective", "prm", "--readout", "loglik", "--model", str(tiny_dirs["lm"]), "--data", str(data),
                 "--eval-fraction", "0.2", "--max-length", "128", "--out", str(out)]) == 0
    results = json.loads((out / "train_results.json").read_text())
    assert results["config"]["after_error"] == "ignore" and results["eval"]["auroc"] > 0.9
    assert "--readout loglik" in (out / "README.md").read_text()


def test_value_head_prm_still_copies(tiny_dirs):
    """The spec dispatch in ProcessReward.__new__ must not turn a copy of a value-head PRM into another class."""
    import copy
    import warnings

    from rewardkit.rewards.process import ProcessReward

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prm = ProcessReward(str(tiny_dirs["rm"]))
    assert type(copy.copy(prm)) is ProcessReward
