"""`rewardkit score` never loses written rows: a rerun after a kill keeps them and scores only the
rest (rows with and without ids, repeated ids, a torn last line), --overwrite starts afresh, and an
--out that is the input file or a directory is refused before anything is written."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from rewardkit.cli.main import main

HERE = Path(__file__).resolve().parent


def counted_length(prompts, completions):
    """``py:test_score_resume:counted_length``: word counts; appends how many completions each call
    scored to $RK_SCORE_LOG and sleeps $RK_SCORE_DELAY seconds after each call."""
    if os.environ.get("RK_SCORE_LOG"):
        with open(os.environ["RK_SCORE_LOG"], "a") as fh:
            fh.write(f"{len(completions)}\n")
    scores = [float(len(str(c).split())) for c in completions]
    time.sleep(float(os.environ.get("RK_SCORE_DELAY", "0")))
    return scores


REWARD = "py:test_score_resume:counted_length"


def _write_samples(path: Path, n: int) -> Path:
    """Sample rows; every third has no id (its id comes from its line), two share the id 'dup'."""
    rows = []
    for i in range(n):
        row = {"prompt": f"question {i}", "completion": " ".join(["w"] * (1 + i % 7)) + f" {i}"}
        if i % 3:
            row["id"] = "dup" if i in (1, 2) else f"r{i}"
        rows.append(row)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _scored(log: Path) -> int:
    return sum(int(n) for n in log.read_text().split()) if log.exists() else 0


def test_rerun_after_a_torn_write_keeps_the_rows_and_scores_only_the_rest(tmp_path, capsys, monkeypatch):
    data = _write_samples(tmp_path / "samples.jsonl", 30)
    clean = tmp_path / "clean.jsonl"
    assert main(["score", "--reward", REWARD, "--data", str(data), "--out", str(clean)]) == 0
    lines = clean.read_text().splitlines(keepends=True)
    assert {r["id"] for r in _rows(clean)} >= {"line-1", "dup", "r4"} and len(lines) == 30

    out = tmp_path / "out.jsonl"
    out.write_text("".join(lines[:7]) + lines[7][: len(lines[7]) // 2])  # a kill mid-line after 7 rows
    log = tmp_path / "calls.log"
    monkeypatch.setenv("RK_SCORE_LOG", str(log))
    capsys.readouterr()
    assert main(["score", "--reward", REWARD, "--data", str(data), "--out", str(out)]) == 0
    assert "resuming: 7 rows already in" in capsys.readouterr().err
    assert _scored(log) == 23  # the 7 complete rows were kept, not scored again
    assert out.read_text() == clean.read_text()  # every input row once, in input order, same scores

    assert main(["score", "--reward", REWARD, "--data", str(data), "--out", str(out)]) == 0
    assert "nothing left to score" in capsys.readouterr().err and _scored(log) == 23
    assert main(["score", "--reward", REWARD, "--data", str(data), "--out", str(out), "--overwrite"]) == 0
    assert _scored(log) == 53 and out.read_text() == clean.read_text()


def test_rerun_keeps_rows_of_the_input_and_leaves_other_ids_alone(tmp_path, capsys):
    data = _write_samples(tmp_path / "samples.jsonl", 12)
    clean = tmp_path / "clean.jsonl"
    assert main(["score", "--reward", REWARD, "--data", str(data), "--out", str(clean)]) == 0
    lines = clean.read_text().splitlines(keepends=True)
    out = tmp_path / "out.jsonl"
    foreign = json.dumps({"id": "elsewhere", "subset": "default", "score": 9.0}) + "\n"
    assert [json.loads(line)["id"] for line in lines[1:3]] == ["dup", "dup"]
    out.write_text(lines[0] + foreign + lines[1] + lines[2] + lines[1] + lines[3])  # 'dup' once more than the input has it
    capsys.readouterr()
    assert main(["score", "--reward", REWARD, "--data", str(data), "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "resuming: 4 rows already in" in err and "dropped 1 lines" in err and "kept 1 rows" in err
    # the row of an id this input does not hold is left alone (a run with a larger --limit wrote it)
    assert sorted(out.read_text().splitlines()) == sorted(clean.read_text().splitlines() + [foreign.strip()])


def test_an_out_holding_other_rows_is_refused_unless_overwritten(tmp_path, capsys):
    data = _write_samples(tmp_path / "samples.jsonl", 5)
    other = tmp_path / "other.jsonl"
    other.write_text(json.dumps({"id": "r1", "prompt": "keep me", "completion": "x"}) + "\n")
    before = other.read_bytes()
    assert main(["score", "--reward", REWARD, "--data", str(data), "--out", str(other)]) == 2
    assert f"--out {other}:line 1 is not a score row" in capsys.readouterr().err and other.read_bytes() == before
    assert main(["score", "--reward", REWARD, "--data", str(data), "--out", str(other), "--overwrite"]) == 0
    assert len(_rows(other)) == 5


def test_out_that_is_the_input_is_refused_and_the_input_untouched(tmp_path, capsys):
    data = _write_samples(tmp_path / "samples.jsonl", 5)
    before = data.read_bytes()
    link = tmp_path / "link.jsonl"
    link.symlink_to(data)
    for out in (data, link, tmp_path / "." / "samples.jsonl"):
        for extra in ([], ["--overwrite"]):
            assert main(["score", "--reward", REWARD, "--data", str(data), "--out", str(out), *extra]) == 2
            assert "is the --data file" in capsys.readouterr().err
            assert data.read_bytes() == before


def test_out_that_is_a_directory_is_refused(tmp_path, capsys):
    data = _write_samples(tmp_path / "samples.jsonl", 3)
    folder = tmp_path / "scores"
    folder.mkdir()
    assert main(["score", "--reward", REWARD, "--data", str(data), "--out", str(folder)]) == 2
    assert f"--out {folder} is a directory" in capsys.readouterr().err
    assert list(folder.iterdir()) == []


def test_killed_score_run_resumes_to_the_rows_of_a_clean_run(tmp_path, capsys, monkeypatch):
    """SIGKILL a `rewardkit score` subprocess after its first batch of 512 rows, then rerun."""
    data = _write_samples(tmp_path / "samples.jsonl", 1100)
    clean = tmp_path / "clean.jsonl"
    assert main(["score", "--reward", REWARD, "--data", str(data), "--out", str(clean)]) == 0

    out = tmp_path / "killed.jsonl"
    path = os.pathsep.join(p for p in (os.environ.get("PYTHONPATH"), str(HERE)) if p)
    env = {**os.environ, "PYTHONPATH": path, "TQDM_DISABLE": "1", "RK_SCORE_DELAY": "3"}
    proc = subprocess.Popen([sys.executable, "-m", "rewardkit.cli.main", "score", "--reward", REWARD, "--data", str(data), "--out", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if out.exists() and out.read_text().count("\n") >= 512:
            break
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    written = out.read_text().count("\n")
    assert 512 <= written < 1100, "the kill must land mid-run"

    log = tmp_path / "calls.log"
    monkeypatch.setenv("RK_SCORE_LOG", str(log))
    capsys.readouterr()
    assert main(["score", "--reward", REWARD, "--data", str(data), "--out", str(out)]) == 0
    assert f"resuming: {written} rows already in" in capsys.readouterr().err
    assert _scored(log) == 1100 - written
    assert out.read_text() == clean.read_text()


def test_a_changed_input_or_reward_never_reuses_old_scores(tmp_path, capsys):
    """Rows without their own id are named by line number: a line inserted at the top must not hand
    the old scores to other text; and a rerun with another reward must not mix the two."""
    rows = [{"prompt": f"p{i}", "completion": "word " * (i + 1)} for i in range(4)]
    data = tmp_path / "noids.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "out.jsonl"
    assert main(["score", "--reward", "length", "--data", str(data), "--out", str(out), "--limit", "2"]) == 0
    data.write_text("".join(json.dumps(r) + "\n" for r in [{"prompt": "new", "completion": "w " * 50}] + rows))
    assert main(["score", "--reward", "length", "--data", str(data), "--out", str(out)]) == 0
    fresh = tmp_path / "fresh.jsonl"
    assert main(["score", "--reward", "length", "--data", str(data), "--out", str(fresh)]) == 0
    by_id = lambda path: {r["id"]: r["score"] for r in _rows(path)}
    assert by_id(out) == by_id(fresh)
    capsys.readouterr()
    assert main(["score", "--reward", "rule:length", "--data", str(data), "--out", str(out)]) == 2
    assert "other settings" in capsys.readouterr().err


def test_resume_reads_rows_holding_unicode_line_separators(tmp_path, capsys, monkeypatch):
    """JSON written with ensure_ascii=False keeps U+2028, U+2029 and U+0085 raw inside strings; only
    "\\n" ends a JSONL row, so a rerun must keep such rows, not call the file foreign."""
    odd = "x\u2028y\u2029w\x85z"
    rows = [{"id": f"{odd}-{i}", "prompt": f"q {odd}", "completion": f"a {odd} " + "w " * i} for i in range(6)]
    data = tmp_path / "odd.jsonl"
    data.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    clean = tmp_path / "clean.jsonl"
    assert main(["score", "--reward", REWARD, "--data", str(data), "--out", str(clean)]) == 0
    raw = clean.read_bytes()
    assert "\u2028".encode() in raw and len(raw.split(b"\n")) == 7  # written raw, 6 rows
    out = tmp_path / "out.jsonl"
    cut = raw.split(b"\n")
    out.write_bytes(b"\n".join(cut[:3]) + b"\n" + cut[3][:10])  # 3 rows and a torn one
    (tmp_path / "out.jsonl.meta.json").write_bytes((tmp_path / "clean.jsonl.meta.json").read_bytes())
    log = tmp_path / "calls.log"
    monkeypatch.setenv("RK_SCORE_LOG", str(log))
    capsys.readouterr()
    assert main(["score", "--reward", REWARD, "--data", str(data), "--out", str(out)]) == 0
    assert "resuming: 3 rows already in" in capsys.readouterr().err and _scored(log) == 3
    assert out.read_bytes() == raw


def test_a_run_from_before_a_new_option_resumes_and_a_set_option_still_refuses(tmp_path, capsys, monkeypatch):
    """OUT.meta.json of an older rewardkit lacks options added since (unset, as they were then): the
    rerun resumes; an option given a value now that the old run did not have is still a change."""
    data = _write_samples(tmp_path / "rows.jsonl", 6)
    out = tmp_path / "out.jsonl"
    assert main(["score", "--reward", REWARD, "--data", str(data), "--out", str(out), "--limit", "3"]) == 0
    meta = tmp_path / "out.jsonl.meta.json"
    old = json.loads(meta.read_text())
    assert "packing" in old["options"]  # an option this test pretends is new
    del old["options"]["packing"]
    meta.write_text(json.dumps(old))
    log = tmp_path / "calls.log"
    monkeypatch.setenv("RK_SCORE_LOG", str(log))
    capsys.readouterr()
    assert main(["score", "--reward", REWARD, "--data", str(data), "--out", str(out)]) == 0
    assert "resuming: 3 rows already in" in capsys.readouterr().err and _scored(log) == 3
    assert main(["score", "--reward", REWARD, "--data", str(data), "--out", str(out), "--max-length", "64"]) == 2
    assert "other settings" in capsys.readouterr().err
