"""PRM training on tiny random models: step targets, it learns a step-level signal, resumes to the
same weights, and the export loads as a ProcessReward that reads what was trained."""
from __future__ import annotations

import random
import warnings

import pytest

from rewardkit.data.steps import StepRecord, labels_from_first_error


def toy_solutions(n: int, seed: int = 0) -> list[StepRecord]:
    """A wrong step is marked by the word 'bad'; the PRM must find it."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        k = rng.randint(2, 4)
        fes = rng.randrange(k) if i % 2 else -1
        steps = [("bad bad step" if j == fes else "good step") + f" {j}" for j in range(k)]
        out.append(StepRecord(f"s{i}", f"question {i}", steps, labels_from_first_error(k, fes), fes, "toy"))
    return out


def test_step_targets():
    from rewardkit.train.common import step_targets

    r = StepRecord("a", "q", ["x", "y", "z"], [1.0, 0.0, None], 1)
    assert step_targets(r, "zero", False) == [1.0, 0.0, 0.0]
    assert step_targets(r, "ignore", False) == [1.0, 0.0, None]
    assert step_targets(r, "zero", True) == [None, None, 0.0]
    ok = StepRecord("b", "q", ["x", "y"], [0.7, 0.9], -1)  # soft labels pass through
    assert step_targets(ok, "zero", False) == [0.7, 0.9] and step_targets(ok, "zero", True) == [None, 1.0]


def _cfg(tiny_dirs, out, **kw):
    from rewardkit.train.prm import PRMConfig

    base = dict(model=str(tiny_dirs["lm"]), output_dir=str(out), mode="full", learning_rate=3e-3, max_steps=30,
                samples_per_step=8, eval_every=10, save_every=5, progress=False, max_length=128)
    base.update(kw)
    return PRMConfig(**base)


def test_prm_training_learns_and_exports(tiny_dirs, tmp_path):
    from rewardkit.evals.process import evaluate_process
    from rewardkit.data.formats import Dataset
    from rewardkit.rewards.process import ProcessReward
    from rewardkit.train.prm import train

    summary = train(_cfg(tiny_dirs, tmp_path / "run"), toy_solutions(160), toy_solutions(40, seed=1))
    assert summary["steps"] == 30 and summary["eval"]["auroc"] > 0.9
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prm = ProcessReward(summary["export"])
    result, _ = evaluate_process(prm, Dataset("steps", toy_solutions(80, seed=2), "toy"))  # threshold from a dev split
    assert result["auroc"] > 0.9 and result["f1"] > 0.8


def test_prm_resume_reaches_the_same_weights(tiny_dirs, tmp_path):
    import torch

    from rewardkit.train.prm import train

    data = toy_solutions(64)
    train(_cfg(tiny_dirs, tmp_path / "full", max_steps=8, eval_every=100), data, data[:8])
    train(_cfg(tiny_dirs, tmp_path / "cut", max_steps=5, eval_every=100), data, data[:8])
    with pytest.raises(FileExistsError):
        train(_cfg(tiny_dirs, tmp_path / "cut", max_steps=8, eval_every=100), data, data[:8])
    train(_cfg(tiny_dirs, tmp_path / "cut", max_steps=8, eval_every=100), data, data[:8], resume=True)
    a = torch.load(tmp_path / "full" / "checkpoints" / "last" / "trainable.pt")
    b = torch.load(tmp_path / "cut" / "checkpoints" / "last" / "trainable.pt")
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


def test_prm_lora_targets_balanced_loss_and_adapter_export(tiny_dirs, tmp_path):
    """--lora-targets reaches the adapter; the class-balanced loss weighs the rare error steps up;
    the adapter export scores like the merged model (and the cut tails change no readout)."""
    import json

    from rewardkit.cli.train import ALL_LINEAR, _targets
    from rewardkit.rewards.process import ProcessReward
    from rewardkit.train.prm import train

    assert _targets("all-linear") == ALL_LINEAR and _targets("q_proj, v_proj") == ("q_proj", "v_proj")
    data = toy_solutions(48)
    summary = train(_cfg(tiny_dirs, tmp_path / "run", mode="lora", lora_r=4, lora_targets=ALL_LINEAR, balance_labels=True,
                         after_error="ignore", max_steps=3, eval_every=100), data, toy_solutions(8, seed=1))
    n_neg = sum(1 for r in data if r.first_error_step >= 0)
    assert summary["negative_weight"] > 1 and n_neg > 0
    config = json.loads((tmp_path / "run" / "adapter" / "adapter_config.json").read_text())
    assert set(config["target_modules"]) == set(ALL_LINEAR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        merged, adapter = ProcessReward(summary["export"]), ProcessReward(str(tmp_path / "run" / "adapter"))
    probe = toy_solutions(6, seed=3)
    a = merged.score([r.prompt for r in probe], [r.steps for r in probe]).steps
    b = adapter.score([r.prompt for r in probe], [r.steps for r in probe]).steps
    assert max(abs(x - y) for s, t in zip(a, b) for x, y in zip(s, t)) < 1e-4
