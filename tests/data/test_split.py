import json

import pytest

from rewardkit.cli.main import main
from rewardkit.data.formats import DataFormatError
from rewardkit.data.split import split_file


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _rows(n_prompts=60, per_prompt=3):
    return [{"id": f"{p}-{k}", "prompt": f"question {p}", "chosen": f"good {k}", "rejected": f"bad {k}"}
            for p in range(n_prompts) for k in range(per_prompt)]


def test_split_keeps_prompts_on_one_side_and_rows_unchanged(tmp_path):
    rows = _rows()
    summary = split_file(_write(tmp_path / "d.jsonl", rows), tmp_path / "out", test_fraction=0.25, seed=1)
    train = [json.loads(line) for line in (tmp_path / "out/train.jsonl").open()]
    test = [json.loads(line) for line in (tmp_path / "out/test.jsonl").open()]
    assert sorted(train + test, key=lambda r: r["id"]) == sorted(rows, key=lambda r: r["id"])
    assert not {r["prompt"] for r in train} & {r["prompt"] for r in test}
    assert summary["rows"] == {"train": len(train), "test": len(test)}
    assert 5 <= summary["prompts"]["test"] <= 25  # about 15 of 60 prompts


def test_split_is_independent_of_row_order_and_depends_on_seed(tmp_path):
    rows = _rows()
    split_file(_write(tmp_path / "a.jsonl", rows), tmp_path / "a", seed=3)
    split_file(_write(tmp_path / "b.jsonl", rows[::-1]), tmp_path / "b", seed=3)
    split_file(_write(tmp_path / "c.jsonl", rows), tmp_path / "c", seed=4)
    ids = {name: {json.loads(line)["id"] for line in (tmp_path / name / "test.jsonl").open()} for name in "abc"}
    assert ids["a"] == ids["b"]
    assert ids["a"] != ids["c"]


def test_split_rejects_bad_rows_and_fractions(tmp_path):
    bad = _write(tmp_path / "bad.jsonl", _rows(2, 1) + [{"prompt": "q", "chosen": "x"}])
    with pytest.raises(DataFormatError, match=r"bad.jsonl.*line 3.*rejected"):
        split_file(bad, tmp_path / "o")
    with pytest.raises(ValueError, match="test fraction"):
        split_file(bad, tmp_path / "o", test_fraction=1.5)


def test_split_cli(tmp_path, capsys):
    data = _write(tmp_path / "d.jsonl", _rows(20, 2))
    assert main(["split", str(data), "--out", str(tmp_path / "s"), "--test-fraction", "0.5"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["rows"]["train"] + out["rows"]["test"] == 40
