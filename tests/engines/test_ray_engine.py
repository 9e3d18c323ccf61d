"""`--engine ray` gives the local engine's results: the same score per id (a rule and a tiny random
model), the same results.json, every input row exactly once and in input order, also when an actor
process dies mid-shard and when the driver is killed (SIGKILL) and rerun. One local Ray cluster
(2 CPUs) serves the whole module; the rewards below are imported by its workers from this file."""
from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rewardkit.cli.main import main

HERE = Path(__file__).resolve().parent
SRC = HERE.parents[1] / "src"
TOL = 1e-5  # as the batch-invariance tests: fp32 scores of one sample in other batches


# ------------------------------------------------------------------ rewards the workers import
# Their settings travel as data columns: Ray workers do not see environment variables set after the
# cluster started.

def words(prompts, completions, *, log=None, crash=None, delay=None):
    """``py:test_ray_engine:words``: word counts. ``log``: a file to append "pid row" per scored sample;
    ``crash``: a marker file per sample: the first process to score that sample writes its pid there and
    dies (``os._exit``), as a native crash or the OOM killer would end it ("always": every time);
    ``delay``: seconds per call."""
    ids = [str(p).rsplit(" ", 1)[-1] for p in prompts]
    for marker in crash or []:
        if marker == "always":
            os._exit(1)
        if marker and not os.path.exists(marker):
            Path(marker).write_text(str(os.getpid()))
            os._exit(1)
    if log and log[0]:
        with open(log[0], "a") as fh:
            fh.write("".join(f"{os.getpid()} {i}\n" for i in ids))
    if delay and delay[0]:
        time.sleep(float(delay[0]))
    return [float(len(str(c).split())) for c in completions]


WORDS = "py:test_ray_engine:words"


# ------------------------------------------------------------------ the cluster and helpers

@pytest.fixture(scope="module")
def cluster():
    ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'rewardkit[ray]')")
    # the raylet and its workers inherit this: they import rewardkit and this file's rewards
    os.environ["PYTHONPATH"] = os.pathsep.join([str(SRC), str(HERE), os.environ.get("PYTHONPATH", "")])
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


def _samples(path: Path, n: int, **columns) -> Path:
    """``n`` sample rows; every fifth without an id (named by its line), prompts end with the row number."""
    rows = []
    for i in range(n):
        row = {"prompt": f"question {i}", "completion": " ".join(["w"] * (1 + i % 7)), **{k: v(i) if callable(v) else v for k, v in columns.items()}}
        if i % 5:
            row["id"] = f"r{i}"
        rows.append(row)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _ids(path: Path) -> list[str]:
    return [str(r.get("id", f"line-{n}")) for n, r in enumerate(_rows(path), 1)]


def _expected_ids(n: int) -> list[str]:
    return [f"r{i}" if i % 5 else f"line-{i + 1}" for i in range(n)]


def _same_scores(a: list, b: list) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert (x is None) == (y is None)
        if x is not None:
            assert abs(x - y) < TOL


def _without_nulls(d: dict | None) -> dict:
    """A row's details without null keys: a key is present as null when another sample of the same
    batch had a value for it, so its presence depends on the batch; its value does not."""
    return {k: v for k, v in (d or {}).items() if v is not None}


# ------------------------------------------------------------------ tests

def test_without_ray_the_engine_says_how_to_install_it_and_local_still_works(tmp_path):
    data = _samples(tmp_path / "s.jsonl", 4)
    code = ("import sys; sys.modules['ray'] = None\n"  # `import ray` fails as if Ray were not installed
            "from rewardkit.cli.main import main\n"
            f"assert main(['score', '--reward', 'length', '--data', {str(data)!r}, '--out', {str(tmp_path / 'local.jsonl')!r}]) == 0\n"
            f"sys.exit(main(['score', '--reward', 'length', '--data', {str(data)!r}, '--out', {str(tmp_path / 'ray.jsonl')!r}, '--engine', 'ray']))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(SRC)})
    assert proc.returncode == 2, proc.stderr
    assert "error: --engine ray needs Ray Data, which is not installed" in proc.stderr
    assert "pip install 'rewardkit[ray]'" in proc.stderr
    assert len(_rows(tmp_path / "local.jsonl")) == 4 and not (tmp_path / "ray.jsonl").exists()


def test_bad_input_gives_the_local_error_before_any_ray_work(tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "a", "completion": "b"}\n{"prompt": "c", "completion": 3}\n')
    errors = []
    for engine in ("local", "ray"):
        assert main(["score", "--reward", "length", "--data", str(bad), "--out", str(tmp_path / f"{engine}.jsonl"), "--engine", engine]) == 2
        errors.append(capsys.readouterr().err.strip().splitlines()[-1])
    assert errors[0] == errors[1] and f"{bad}:line 2: field 'completion'" in errors[0]


def test_rule_reward_on_ray_equals_local_with_every_row_once_in_input_order(cluster, tmp_path):
    # rule:math with a gold answer on some rows only; shard 2 (rows 8-11) has no row with one at all,
    # and must still say "not applicable" (None), as the local run does, rather than "missing column"
    n = 23
    data = _samples(tmp_path / "math.jsonl", n, completion=lambda i: f"so the answer is {i % 4}")
    rows = _rows(data)
    for i, row in enumerate(rows):
        if i % 6 and not 8 <= i < 12:
            row["answer"] = str(i % 3)
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    local, ray = tmp_path / "local.jsonl", tmp_path / "ray.jsonl"
    assert main(["score", "--reward", "rule:math", "--data", str(data), "--out", str(local)]) == 0
    assert main(["score", "--reward", "rule:math", "--data", str(data), "--out", str(ray), "--engine", "ray",
                 "--ray-batch-size", "4", "--ray-actors", "2"]) == 0
    assert _ids(ray) == _ids(local) == _expected_ids(n)
    a, b = _rows(local), _rows(ray)
    assert [r["score"] for r in b] == [None if i % 6 == 0 or 8 <= i < 12 else float(i % 4 == i % 3) for i in range(n)]  # by hand
    assert [r["score"] for r in b] == [r["score"] for r in a]
    assert [r.get("not_applicable") for r in b] == [r.get("not_applicable") for r in a]
    assert [r["input_sha"] for r in b] == [r["input_sha"] for r in a]
    assert [_without_nulls(r.get("details")) for r in b] == [_without_nulls(r.get("details")) for r in a]
    assert not Path(str(ray) + ".shards").exists()  # merged into --out, then dropped


def test_tiny_model_eval_on_ray_gives_the_local_results_json(cluster, tiny_dirs, tmp_path):
    pairs = tmp_path / "pairs.jsonl"
    rows = [{"id": f"p{i}", "prompt": f"Question {i}: what is {i} plus {i}?", "chosen": f"It is {2 * i}.",
             "rejected": "I do not know." + " really" * (i % 4), "subset": ["math", "chat"][i % 2]} for i in range(11)]
    pairs.write_text("".join(json.dumps(r) + "\n" for r in rows))
    spec = f"classifier:{tiny_dirs['rm']}"
    local, ray = tmp_path / "local", tmp_path / "ray"
    assert main(["eval", "--reward", spec, "--data", str(pairs), "--out", str(local), "--bootstrap", "50"]) == 0
    assert main(["eval", "--reward", spec, "--data", str(pairs), "--out", str(ray), "--bootstrap", "50",
                 "--engine", "ray", "--ray-batch-size", "3"]) == 0
    a, b = (json.loads((d / "results.json").read_text()) for d in (local, ray))
    assert a.pop("timing")["samples"] == b.pop("timing")["samples"] == 22
    assert a == b
    sa, sb = _rows(local / "scores.jsonl"), _rows(ray / "scores.jsonl")
    assert [r["id"] for r in sb] == [r["id"] for r in sa] == [f"p{i}" for i in range(11)]
    _same_scores([r["chosen_score"] for r in sb] + [r["rejected_score"] for r in sb],
                 [r["chosen_score"] for r in sa] + [r["rejected_score"] for r in sa])
    assert not (ray / "scores.jsonl.shards").exists()


def test_an_actor_killed_mid_shard_loses_and_duplicates_nothing(cluster, tmp_path):
    n = 30
    log = tmp_path / "calls.log"
    # rows 7 and 22 (shards 1 and 4 of 6) each kill the process that first scores them
    data = _samples(tmp_path / "s.jsonl", n, log=str(log), crash=lambda i: str(tmp_path / f"crashed-{i}") if i in (7, 22) else None)
    out = tmp_path / "out.jsonl"
    assert main(["score", "--reward", WORDS, "--data", str(data), "--out", str(out), "--engine", "ray",
                 "--ray-batch-size", "5", "--ray-actors", "2", "--ray-retries", "2"]) == 0
    rows = _rows(out)
    assert _ids(out) == _expected_ids(n)
    assert [r["score"] for r in rows] == [float(1 + i % 7) for i in range(n)]
    # each row scored (and logged) once; the crashing calls logged nothing, their shards were scored
    # again by a restarted actor: another process than the one that died
    logged = [line.split() for line in log.read_text().splitlines()]
    assert sorted(int(i) for _, i in logged) == list(range(n))
    pid = {int(i): p for p, i in logged}
    for row in (7, 22):
        died = (tmp_path / f"crashed-{row}").read_text()
        assert died and pid[row] != died


def test_a_shard_that_always_kills_its_actor_fails_the_run_naming_it(cluster, tmp_path):
    from rewardkit.engines.ray import ShardCrashError

    data = _samples(tmp_path / "s.jsonl", 6, crash=lambda i: "always" if i == 4 else None)
    with pytest.raises(ShardCrashError, match=r"shard 1 killed its worker 2 times \(more than --ray-retries 1\)"):
        main(["score", "--reward", WORDS, "--data", str(data), "--out", str(tmp_path / "o.jsonl"), "--engine", "ray",
              "--ray-batch-size", "3", "--ray-retries", "1"])
    assert len(list(Path(str(tmp_path / "o.jsonl") + ".shards").glob("0*.jsonl"))) == 1  # shard 0 is kept for a rerun


def test_a_killed_driver_resumes_from_its_finished_shards(cluster, tmp_path):
    n = 48
    log = tmp_path / "calls.log"
    data = _samples(tmp_path / "s.jsonl", n, log=str(log), delay="0.5")
    out = tmp_path / "out.jsonl"
    shards = Path(str(out) + ".shards")
    args = ["score", "--reward", WORDS, "--data", str(data), "--out", str(out), "--engine", "ray", "--ray-batch-size", "4"]
    proc = subprocess.Popen([sys.executable, "-m", "rewardkit.cli.main", *args, "--ray-address", cluster],
                            env={**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), str(HERE)])},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        deadline = time.time() + 60
        while time.time() < deadline and len(list(shards.glob("0*.jsonl"))) < 3 and proc.poll() is None:
            time.sleep(0.1)
        finished = sorted(p.name for p in shards.glob("0*.jsonl"))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert 3 <= len(finished) < math.ceil(n / 4), proc.stderr.read().decode()[-2000:]
    assert not out.exists()  # killed before the merge
    log.write_text("")  # what is scored from here on (a dying actor can only still log rows of unfinished shards)
    done_ids = {str(r["id"]) for name in finished for r in _rows(shards / name)}

    assert main(args) == 0  # the same command, in this process (its Ray is the module's cluster)
    assert _ids(out) == _expected_ids(n)
    assert [r["score"] for r in _rows(out)] == [float(1 + i % 7) for i in range(n)]
    rescored = {f"r{i}" if i % 5 else f"line-{i + 1}" for i in (int(line.split()[1]) for line in log.read_text().splitlines())}
    assert rescored and not rescored & done_ids  # finished shards were not scored again
    assert len(rescored) <= n - 4 * len(finished)


def test_a_reward_that_groups_by_prompt_needs_whole_local_chunks(cluster, tmp_path, capsys):
    data = _samples(tmp_path / "s.jsonl", 6)
    assert main(["score", "--reward", "transform:group(length)", "--data", str(data), "--out", str(tmp_path / "o.jsonl"),
                 "--engine", "ray", "--ray-batch-size", "4"]) == 2
    assert "--ray-batch-size that is a multiple of 512 (got 4)" in capsys.readouterr().err


def test_label_steps_on_ray_writes_the_local_rows(cluster, tiny_dirs, tmp_path):
    # Monte-Carlo step labels with the tiny random LM as the generator: sampling is seeded per prompt
    # and sample, so the rows (labels, values, progress) must be the local ones, in the same order
    common = ["label-steps", "--data", "arith-steps:test", "--limit", "2", "--generator", str(tiny_dirs["lm"]),
              "--rollouts", "2", "--max-new-tokens", "4"]
    local, ray = tmp_path / "local.jsonl", tmp_path / "ray.jsonl"
    assert main([*common, "--out", str(local)]) == 0
    assert main([*common, "--out", str(ray), "--engine", "ray", "--ray-batch-size", "1"]) == 0
    rows = _rows(ray)
    assert len(rows) == 4 and rows == _rows(local)  # two solutions (chosen, rejected) per --limit item
    assert all(len(r["soft_labels"]) == len(r["steps"]) for r in rows)
    assert not Path(str(ray) + ".shards").exists()
