"""Regression / multi-objective / BT+regression training on tiny random models."""
from __future__ import annotations

import json
import random

import pytest

from rewardkit.types import PairRecord, SampleRecord


def toy_ratings(n: int, seed: int = 0, missing_every: int = 0) -> list[SampleRecord]:
    """``quality`` follows good/bad; ``brevity`` follows the length; both learnable from the text."""
    rng = random.Random(seed)
    words = ["apple", "river", "stone", "cloud", "lamp", "field"]
    out = []
    for i in range(n):
        topic = " ".join(rng.sample(words, 2))
        good, long = rng.random() < 0.5, rng.random() < 0.5
        text = ("good answer about " if good else "bad bad ") + topic + (" and so on and so on" if long else "")
        cols = {"quality": 4.0 if good else 1.0, "brevity": 0.0 if long else 3.0}
        if missing_every and i % missing_every == 0:
            cols["brevity"] = None
        out.append(SampleRecord(f"s{i}", f"Tell me about {topic} #{i}", text, "toy", cols))
    return out


def toy_quality_pairs(n: int, seed: int = 1) -> list[PairRecord]:
    """Preferences that follow quality only (length is mixed on both sides)."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        tail_c, tail_r = rng.choice(["", " and so on and so on"]), rng.choice(["", " and so on and so on"])
        out.append(PairRecord(f"p{i}", f"Tell me about lamps #{i}", "good answer about lamp" + tail_c, "bad bad lamp" + tail_r, "toy"))
    return out


def test_read_ratings_masks_missing_and_names_bad_values():
    from rewardkit.train.regression import attribute_stats, read_ratings

    recs = [SampleRecord("a", "p", "c", columns={"x": 1, "y": None}), SampleRecord("b", "p", "c", columns={"x": 3.0})]
    ratings = read_ratings(recs, ("x", "y"))
    assert ratings == [[1.0, None], [3.0, None]]
    means, stds = attribute_stats(ratings, 2, normalize=True)
    assert means[0] == 2.0 and stds[0] == pytest.approx(2 ** 0.5) and (means[1], stds[1]) == (0.0, 1.0)
    with pytest.raises(ValueError, match=r"sample b: attribute 'x'.*'high'"):
        read_ratings([recs[0], SampleRecord("b", "p", "c", columns={"x": "high"})], ("x",))
    with pytest.raises(ValueError, match="no sample has any of the attributes"):
        read_ratings(recs, ("z",))


def test_multi_objective_regression_learns_and_exports_named_heads(tiny_dirs, tmp_path):
    import torch
    from transformers import AutoModelForSequenceClassification

    from rewardkit import ClassifierReward
    from rewardkit.train.regression import RegressionConfig, train

    cfg = RegressionConfig(attributes=("quality", "brevity"), model=str(tiny_dirs["lm"]), output_dir=str(tmp_path / "reg"),
                           mode="full", learning_rate=1e-3, max_steps=50, samples_per_step=16, eval_every=10, save_every=10,
                           progress=False, max_length=128, combination="fixed", weights=(1.0, 0.25))
    summary = train(cfg, toy_ratings(160, missing_every=3))
    attrs = summary["eval"]["attributes"]
    assert attrs["quality"]["pearson"] > 0.8 and attrs["brevity"]["pearson"] > 0.8, attrs
    assert summary["history"][-1]["mse"] < summary["history"][0]["mse"]
    export = tmp_path / "reg" / "model"
    config = json.loads((export / "config.json").read_text())
    assert config["id2label"] == {"0": "quality", "1": "brevity"} and config["reward_weights"] == [1.0, 0.25]
    assert config["attribute_mean"][0] == pytest.approx(2.5, abs=0.3)
    # rewardkit and plain transformers agree; the scalar is the weighted sum of the heads
    reward = ClassifierReward(str(export))
    out = reward.score(["Tell me about lamp field"], ["good answer about lamp field"])
    assert out.dims == ("quality", "brevity")
    assert out.scores[0] == pytest.approx(out.vector[0][0] + 0.25 * out.vector[0][1], abs=1e-5)
    plain = AutoModelForSequenceClassification.from_pretrained(export).eval()
    with torch.inference_mode():
        logits = plain(input_ids=torch.tensor([reward.encode(["Tell me about lamp field"], ["good answer about lamp field"])[0].input_ids])).logits[0]
    assert max(abs(a - b) for a, b in zip(logits.tolist(), out.vector[0])) < 1e-4
    card = (export / "README.md").read_text()
    assert "| quality | 1.000 |" in card and "Pearson" in card


def test_learned_combination_follows_the_preferences(tiny_dirs, tmp_path):
    """Pairs prefer quality regardless of length: the learned weights move toward the quality head."""
    from rewardkit.train.regression import RegressionConfig, train

    cfg = RegressionConfig(attributes=("quality", "brevity"), model=str(tiny_dirs["lm"]), output_dir=str(tmp_path / "bt+reg"),
                           mode="full", learning_rate=1e-3, max_steps=50, samples_per_step=16, pairs_per_step=8,
                           eval_every=20, save_every=20, progress=False, max_length=128, combination="learned")
    summary = train(cfg, toy_ratings(120), toy_quality_pairs(80))
    w = summary["weights"]
    assert w["quality"] > w["brevity"] and w["quality"] + w["brevity"] == pytest.approx(1.0)
    assert summary["eval"]["pair_accuracy"] >= 0.9
    assert "bt_loss" in summary["history"][-1]


def test_learned_combination_without_pairs_is_refused(tmp_path):
    from rewardkit.train.regression import RegressionConfig, train

    with pytest.raises(ValueError, match="learned combination"):
        train(RegressionConfig(attributes=("quality",), output_dir=str(tmp_path), combination="learned"), toy_ratings(4))


def test_resume_replays_the_same_steps(tiny_dirs, tmp_path):
    """Stopping after 3 steps and resuming to 6 leaves the same weights as 6 steps in one go."""
    import torch

    from rewardkit.train.regression import RegressionConfig, train

    def run(out, steps, resume=False):
        cfg = RegressionConfig(attributes=("quality", "brevity"), model=str(tiny_dirs["lm"]), output_dir=str(out), mode="full",
                               learning_rate=3e-3, max_steps=steps, samples_per_step=8, pairs_per_step=4, eval_every=100,
                               save_every=1, progress=False, max_length=128)
        return train(cfg, toy_ratings(40), toy_quality_pairs(20), resume=resume)

    run(tmp_path / "whole", 6)
    run(tmp_path / "split", 3)
    with pytest.raises(FileExistsError, match="resume"):
        run(tmp_path / "split", 6)
    assert run(tmp_path / "split", 6, resume=True)["steps"] == 6
    a = torch.load(tmp_path / "whole/checkpoints/last/trainable.pt")
    b = torch.load(tmp_path / "split/checkpoints/last/trainable.pt")
    assert max((a[k] - b[k]).abs().max().item() for k in a) < 1e-6


def test_cli_trains_on_helpsteer_style_rows(tiny_dirs, tmp_path, capsys):
    """HelpSteer2 rows (prompt, response, numeric attributes) are read as rated samples."""
    from rewardkit.cli.main import main
    from rewardkit.data.formats import load_dataset

    rows = [{"prompt": r.prompt, "response": r.completion, **r.columns} for r in toy_ratings(24)]
    data = tmp_path / "hs2.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    loaded = load_dataset(data)
    assert loaded.kind == "samples" and loaded.records[0].completion == rows[0]["response"]
    assert "response" not in loaded.records[0].columns and loaded.records[0].columns["quality"] in (1.0, 4.0)
    common = ["train", "--data", str(data), "--model", str(tiny_dirs["lm"]), "--mode", "head", "--max-steps", "2",
              "--max-length", "64", "--out", str(tmp_path / "out")]
    assert main(common + ["--objective", "regression"]) == 2
    assert "--attributes" in capsys.readouterr().err
    assert main(common + ["--objective", "bt+regression", "--attributes", "quality"]) == 2
    assert "pairs" in capsys.readouterr().err
    assert main(common + ["--objective", "regression", "--attributes", "quality,brevity"]) == 0
    config = json.loads((tmp_path / "out/model/config.json").read_text())
    assert config["id2label"] == {"0": "quality", "1": "brevity"} and config["reward_weights"] == [0.5, 0.5]


def test_multi_objective_lora_adapter_loads_with_its_heads(tiny_dirs, tmp_path):
    """The small adapter form of a multi-head model keeps its head names and weights (the base
    model's config knows nothing of them) and scores like the merged export."""
    from rewardkit import ClassifierReward
    from rewardkit.train.regression import RegressionConfig, train

    cfg = RegressionConfig(attributes=("quality", "brevity"), model=str(tiny_dirs["lm"]), output_dir=str(tmp_path / "lora"),
                           mode="lora", learning_rate=1e-2, max_steps=3, samples_per_step=8, eval_every=100, save_every=100,
                           progress=False, max_length=64, combination="fixed", weights=(2.0, 1.0))
    train(cfg, toy_ratings(24))
    prompts, completions = ["Tell me about lamp field"], ["good answer about lamp field"]
    merged = ClassifierReward(str(tmp_path / "lora/model")).score(prompts, completions)
    adapter = ClassifierReward(str(tmp_path / "lora/adapter")).score(prompts, completions)
    assert adapter.dims == merged.dims == ("quality", "brevity")
    assert max(abs(a - b) for a, b in zip(adapter.vector[0], merged.vector[0])) < 1e-4
    assert adapter.scores[0] == pytest.approx(2 * adapter.vector[0][0] + adapter.vector[0][1], abs=1e-5)
