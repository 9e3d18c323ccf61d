"""Noisy-preference tools: ensemble votes (drop / down-weight) and margin consistency, with counts."""
from __future__ import annotations

import json

import pytest

from rewardkit.protocol import reward
from rewardkit.train.noise import WEIGHT_COLUMN, apply_votes, drop_inconsistent_margins, ensemble_votes
from rewardkit.types import PairRecord


@reward
def says_good(prompts, completions):
    return [1.0 if "good" in c else 0.0 for c in completions]


@reward
def longer(prompts, completions):
    return [float(len(c)) for c in completions]


@reward
def blind_to_x(prompts, completions):
    return [None if "x" in c else 0.5 for c in completions]


def pairs():
    return [
        PairRecord("both-agree", "q", "good long answer", "bad"),          # good: +, longer: +
        PairRecord("split", "q", "good", "bad but much longer"),           # good: +, longer: -
        PairRecord("both-disagree", "q", "bad", "good and longer"),        # good: -, longer: -
    ]


def test_votes_count_agreement_and_strength():
    votes = ensemble_votes(pairs(), [says_good, longer])
    assert [(v["agree"], v["voters"]) for v in votes] == [(2, 2), (1, 2), (0, 2)]
    assert votes[0]["strength"] == pytest.approx((1.0 + 13.0) / 2)
    unscored = ensemble_votes([PairRecord("x", "q", "x", "y")], [blind_to_x])
    assert unscored[0]["voters"] == 0 and unscored[0]["strength"] is None


def test_drop_and_weight_report_what_they_touched():
    recs = pairs()
    votes = ensemble_votes(recs, [says_good, longer])
    kept, report = apply_votes(recs, votes, action="drop", min_agreement=0.5)
    assert [r.id for r in kept] == ["both-agree", "split"]
    assert report["dropped"] == 1 and report["ensemble_disagrees"] == 1 and report["members"] == 2
    kept, report = apply_votes(recs, votes, action="weight")
    assert [r.columns[WEIGHT_COLUMN] for r in kept] == [1.0, 0.5, 0.0]
    assert report["down_weighted"] == 2 and report["dropped"] == 0
    assert WEIGHT_COLUMN not in recs[1].columns  # the input records are not modified
    with pytest.raises(ValueError, match="vote action"):
        apply_votes(recs, votes, action="flip")


def test_inconsistent_margins_are_dropped_and_counted():
    recs = [
        PairRecord("ok", "q", "a", "b", columns={"chosen_score": 8, "rejected_score": 3}),
        PairRecord("tie", "q", "a", "b", columns={"score_chosen": 5, "score_rejected": 5}),
        PairRecord("reversed", "q", "a", "b", columns={"m": -1.0}),
        PairRecord("unrated", "q", "a", "b"),
    ]
    kept, report = drop_inconsistent_margins(recs, margin_column="m")
    assert [r.id for r in kept] == ["ok", "unrated"]
    assert report == {"option": "inconsistent margins", "pairs": 4, "dropped": 2, "without_ratings": 1}


def test_zero_weight_pairs_do_not_move_the_model(tiny_dirs, tmp_path):
    """A pair weighted 0 by the votes contributes no gradient: training on it alone changes nothing."""
    from safetensors.torch import load_file

    from rewardkit.train.bt import BTConfig, train

    recs = [PairRecord(f"p{i}", f"q{i}", "good", "bad", columns={WEIGHT_COLUMN: 0.0}) for i in range(8)]
    cfg = BTConfig(model=str(tiny_dirs["lm"]), output_dir=str(tmp_path / "w0"), mode="full", learning_rate=1e-2, max_steps=2,
                   pairs_per_step=4, eval_fraction=0.0, progress=False, max_length=64)
    train(cfg, recs)
    before = load_file(str(tiny_dirs["lm"] / "model.safetensors"))
    after = load_file(str(tmp_path / "w0/model/model.safetensors"))
    shared = [k for k in after if k in before]
    assert shared and max((after[k] - before[k]).abs().max().item() for k in shared) == 0.0


def test_cli_filters_training_pairs_only_and_reports_counts(tiny_dirs, tmp_path, capsys):
    from rewardkit.cli.main import main

    rows = []
    for i in range(40):
        flipped = i % 4 == 0  # the label contradicts its own ratings
        rows.append({"prompt": f"question {i}", "chosen": "a fine and long answer" if i % 5 else "short",
                     "rejected": "meh", "chosen_score": 2 if flipped else 7, "rejected_score": 5})
    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "rm"
    assert main(["train", "--data", str(data), "--model", str(tiny_dirs["lm"]), "--mode", "head", "--max-steps", "1",
                 "--max-length", "64", "--out", str(out), "--drop-inconsistent-margins", "--vote-reward", "length",
                 "--eval-fraction", "0.25"]) == 0
    summary = json.loads((out / "train_results.json").read_text())
    margins, votes = summary["config"]["data_filters"]
    assert margins["dropped"] > 0 and margins["pairs"] < 40  # only the training side was filtered
    assert votes["members"] == ["length"] and votes["dropped"] > 0
    assert summary["train_pairs"] == margins["pairs"] - margins["dropped"] - votes["dropped"]
    assert summary["eval_pairs"] == 40 - margins["pairs"]
    assert sum(1 for _ in (out / "pair_votes.jsonl").open()) == votes["pairs"]
    assert "inconsistent margins: dropped" in (out / "model/README.md").read_text()
    assert "ensemble votes (drop)" in capsys.readouterr().err
