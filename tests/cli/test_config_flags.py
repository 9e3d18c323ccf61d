"""Verb flags come from the config dataclasses: a flag's default is the dataclass default (no second
copy to drift), and the thin verbs still run end to end (search and label-steps on tiny models)."""
from __future__ import annotations

import argparse
import dataclasses
import json

import pytest

from rewardkit.cli.main import main


def _parser():
    from rewardkit.cli import label_steps, search, serve, train

    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="verb")
    for verb in (train, serve, search, label_steps):
        verb.add_parser(sub)
    return parser


def _defaults_of(cls):
    return {f.name: (f.default if f.default is not dataclasses.MISSING else f.default_factory()) for f in dataclasses.fields(cls)}


@pytest.mark.parametrize("argv, cls, flags, overrides", [
    (["train", "--out", "X"], "rewardkit.train.bt:BTConfig", "SHARED+BT", {}),
    (["train", "--out", "X", "--objective", "prm"], "rewardkit.train.prm:PRMConfig", "SHARED+PRM", {}),
    (["serve", "--reward", "length"], "rewardkit.serve.settings:ServeSettings", None, {}),
    (["search", "--data", "d", "--out", "o"], "rewardkit.use.search:SearchConfig", None, {}),
    (["label-steps", "--data", "d", "--out", "o"], "rewardkit.use.label_steps:RolloutConfig", None, {}),
])
def test_unset_flags_give_the_dataclass_defaults(argv, cls, flags, overrides):
    import importlib

    from rewardkit.cli import train
    from rewardkit.cli.flags import values

    module, _, name = cls.partition(":")
    klass = getattr(importlib.import_module(module), name)
    args = _parser().parse_args(argv)
    names = None
    if flags:
        names = [f if isinstance(f, str) else f.field for part in flags.split("+") for f in getattr(train, part)]
    got = values(klass, args, names)
    assert got, "no flag was made from the dataclass"
    defaults = _defaults_of(klass)
    assert {k: (tuple(v) if isinstance(v, list) else v) for k, v in got.items()} == {k: defaults[k] for k in got}


def test_learning_rate_and_alpha_defaults_live_in_one_place():
    from rewardkit.train.bt import BTConfig
    from rewardkit.train.common import resolved

    assert resolved(BTConfig(mode="full")).learning_rate == 2e-5 and resolved(BTConfig()).learning_rate == 2e-4
    assert resolved(BTConfig(lora_r=16)).lora_alpha == 32 and resolved(BTConfig(learning_rate=1e-3)).learning_rate == 1e-3


def test_search_and_label_steps_verbs_run_on_tiny_models(tiny_dirs, tmp_path, capsys):
    data = tmp_path / "math.jsonl"
    data.write_text("\n".join(json.dumps({"id": f"q{i}", "question": f"What is {i} + {i}?", "answer": str(2 * i),
                                          "solution": f"{i} + {i} = {2 * i}\n#### {2 * i}"}) for i in range(2)) + "\n")
    out = tmp_path / "search"
    lm = str(tiny_dirs["lm"])
    argv = ["search", "--data", str(data), "--out", str(out), "--generator", lm, "--prm", f"implicit-prm:{lm}",
            "--limit", "1", "--max-steps", "2", "--max-step-tokens", "4", "--beam-width", "1", "--expansions", "2"]
    assert main(argv) == 0
    result = json.loads((out / "results.json").read_text())
    assert result["n"] == 1 and result["config"]["max_step_tokens"] == 4 and result["generator"] == lm
    assert main(argv) == 0  # resumes: nothing new to do, same summary
    assert len((out / "search.jsonl").read_text().splitlines()) == 1
    labels = tmp_path / "labels.jsonl"
    assert main(["label-steps", "--data", str(data), "--out", str(labels), "--generator", lm, "--rollouts", "2",
                 "--max-new-tokens", "4", "--limit", "2"]) == 0
    rows = [json.loads(line) for line in labels.read_text().splitlines()]
    assert len(rows) == 2 and all(len(r["labels"]) == len(r["steps"]) for r in rows)
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"question": "q"}) + "\n")
    capsys.readouterr()
    assert main(["search", "--data", str(bad), "--out", str(tmp_path / "s2"), "--generator", lm]) != 0
    err = capsys.readouterr().err
    assert "line 1" in err and "answer" in err
