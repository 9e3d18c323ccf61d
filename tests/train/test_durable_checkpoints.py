"""Checkpoints and exports survive a kill at each dangerous point of their replacement (SIGKILL of a
training subprocess between the renames and in the middle of deleting the old copy): --resume
continues from the last completed step to the weights of an uninterrupted run, leftovers are swept,
and a damaged checkpoint or changed run options give a clear error instead of a traceback."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from rewardkit.cli.main import main

#: runs a BT training in a subprocess and SIGKILLs it at the ``at``-th save of ``checkpoints/last``:
#: ``rename`` just before the new copy is renamed to ``last``; ``delete`` while the copy it replaces
#: is being deleted (one file gone)
KILLER = r"""
import json, os, shutil, signal, sys
from pathlib import Path

point, at, cfg, data = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3]), sys.argv[4]
calls = []
real_replace, real_rmtree = os.replace, shutil.rmtree

def replace(src, dst, *args, **kwargs):
    if point == "rename" and Path(dst).name == "last":
        calls.append(dst)
        if len(calls) == at:
            os.kill(os.getpid(), signal.SIGKILL)
    return real_replace(src, dst, *args, **kwargs)

def rmtree(path, *args, **kwargs):
    if point == "delete" and Path(path).name.startswith("last"):
        calls.append(path)
        if len(calls) == at - 1:  # the first save replaces nothing
            next(p for p in sorted(Path(path).rglob("*")) if p.is_file()).unlink()
            os.kill(os.getpid(), signal.SIGKILL)
    return real_rmtree(path, *args, **kwargs)

os.replace, shutil.rmtree = replace, rmtree
from rewardkit.data.benchmarks import resolve_data
from rewardkit.train.bt import BTConfig, train
train(BTConfig(**cfg), resolve_data(data).records)
"""


def _pairs_file(path: Path, n: int = 40) -> Path:
    words = ["apple", "river", "stone", "cloud", "lamp", "field"]
    rows = [{"id": f"p{i}", "prompt": f"Tell me about {words[i % 6]} {words[(i * 5 + 1) % 6]} #{i}",
             "chosen": f"good answer about {words[i % 6]}", "rejected": f"bad bad {words[i % 6]}"} for i in range(n)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _cfg(lm: Path, out: Path, **kw) -> dict:
    return dict(model=str(lm), output_dir=str(out), mode="full", learning_rate=3e-3, max_steps=8, pairs_per_step=8,
                eval_every=4, save_every=1, progress=False, max_length=128) | kw


def _leftovers(out: Path) -> list[str]:
    return sorted(str(p.relative_to(out)) for p in out.rglob("*") if ".tmp-" in p.name or ".old-" in p.name)


def _weights(out: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(out / "model" / "model.safetensors"))


@pytest.fixture(scope="module")
def reference(tiny_dirs, tmp_path_factory):
    """An uninterrupted run: (pairs file, its exported weights)."""
    from rewardkit.data.benchmarks import resolve_data
    from rewardkit.train.bt import BTConfig, train

    base = tmp_path_factory.mktemp("reference")
    data = _pairs_file(base / "pairs.jsonl")
    train(BTConfig(**_cfg(tiny_dirs["lm"], base / "run")), resolve_data(str(data)).records)
    return data, _weights(base / "run")


@pytest.mark.parametrize("point, resumed_at", [("rename", 4), ("delete", 5)])
def test_kill_while_replacing_a_checkpoint_resumes_from_the_last_completed_step(tiny_dirs, tmp_path, capsys, reference, point, resumed_at):
    from rewardkit.data.benchmarks import resolve_data
    from rewardkit.train.bt import BTConfig, train

    data, expected = reference
    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-c", KILLER, point, "5", json.dumps(_cfg(tiny_dirs["lm"], out)), str(data)], check=False,
                          capture_output=True, text=True, env={**os.environ, "TQDM_DISABLE": "1"}, timeout=300)
    assert proc.returncode == -9, proc.stderr[-2000:]
    assert not (out / "model").exists()

    capsys.readouterr()
    summary = train(BTConfig(**_cfg(tiny_dirs["lm"], out)), resolve_data(str(data)).records, resume=True)
    err = capsys.readouterr().err
    assert f"resumed from step {resumed_at}" in err, err
    if point == "rename":
        assert "recovered the previous copy" in err
    assert summary["steps"] == 8 and [h["step"] for h in summary["history"]] == list(range(1, 9))
    got = _weights(out)
    assert got.keys() == expected.keys() and max((got[k] - expected[k]).abs().max().item() for k in got) < 1e-6
    assert _leftovers(out) == []


def test_leftovers_of_killed_writes_are_swept_by_the_next_save(tiny_dirs, tmp_path, reference):
    from rewardkit.data.benchmarks import resolve_data
    from rewardkit.train.bt import BTConfig, train

    data, _ = reference
    out = tmp_path / "run"
    records = resolve_data(str(data)).records
    train(BTConfig(**_cfg(tiny_dirs["lm"], out, max_steps=4, save_every=2)), records)
    ckpt = out / "checkpoints"
    (out / "model.tmp-k1ll3d").mkdir()  # an export killed mid-write
    (out / "model.tmp-k1ll3d" / "model.safetensors").write_bytes(b"\0" * 100_000)
    (ckpt / "last.tmp-123-abc").mkdir()  # a checkpoint killed mid-write
    (ckpt / "last.tmp-123-abc" / "trainable.pt").write_bytes(b"\0" * 1000)
    shutil.copytree(ckpt / "last", ckpt / "last.old-99999")  # a delete that never ran
    (ckpt / "best.tmp-7-x").mkdir()
    assert len(_leftovers(out)) == 4

    train(BTConfig(**_cfg(tiny_dirs["lm"], out, max_steps=6, save_every=2)), records, resume=True)
    assert _leftovers(out) == []
    assert json.loads((ckpt / "last" / "state.json").read_text())["step"] == 6


def _train_cli(tiny_dirs, data: Path, out: Path, *extra: str) -> list[str]:
    return ["train", "--data", str(data), "--model", str(tiny_dirs["lm"]), "--mode", "full", "--pairs-per-step", "8",
            "--save-every", "1", "--eval-every", "100", "--max-length", "128", "--out", str(out), *extra]


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


@pytest.mark.parametrize("damage, message", [
    (lambda c: _truncate(c / "state.json"), "state.json is not valid JSON"),
    (lambda c: (c / "trainable.pt").unlink(), "trainable.pt is missing"),
    (lambda c: _truncate(c / "trainable.pt"), "trainable.pt is unreadable"),
    (lambda c: _truncate(c / "optimizer.pt"), "optimizer.pt is unreadable"),
], ids=["truncated-state", "missing-weights", "truncated-weights", "truncated-optimizer"])
def test_a_damaged_checkpoint_is_a_clear_error(tiny_dirs, tmp_path, capsys, reference, damage, message):
    data, _ = reference
    out = tmp_path / "run"
    assert main(_train_cli(tiny_dirs, data, out, "--max-steps", "2")) == 0
    damage(out / "checkpoints" / "last")
    capsys.readouterr()
    assert main(_train_cli(tiny_dirs, data, out, "--max-steps", "3", "--resume")) == 2
    err = capsys.readouterr().err
    assert f"error: checkpoint {out / 'checkpoints' / 'last'}: {message}" in err, err


def test_resume_with_another_mode_names_the_option_and_both_values(tiny_dirs, tmp_path, capsys, reference):
    data, _ = reference
    out = tmp_path / "run"
    assert main(_train_cli(tiny_dirs, data, out, "--max-steps", "2")) == 0
    capsys.readouterr()
    assert main(_train_cli(tiny_dirs, data, out, "--max-steps", "3", "--resume", "--mode", "head")) == 2
    err = capsys.readouterr().err
    assert f"cannot resume {out}" in err and "mode: 'full' when it started, 'head' now" in err, err
    assert main(_train_cli(tiny_dirs, data, out, "--max-steps", "3", "--resume", "--lr", "0.5")) == 2
    assert "learning_rate: 2e-05 when it started, 0.5 now" in capsys.readouterr().err
    # options that only say how long or how often may change
    assert main(_train_cli(tiny_dirs, data, out, "--max-steps", "3", "--resume", "--eval-every", "50")) == 0
    assert json.loads((out / "train_results.json").read_text())["steps"] == 3


def test_a_second_run_in_the_same_folder_is_refused(tmp_path):
    import subprocess
    import sys
    import textwrap

    out = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        from rewardkit.train.common import lock_run
        lock_run(Path({str(out)!r}))
        print("locked", flush=True)
        time.sleep(30)
    """)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        from rewardkit.train.common import lock_run

        with pytest.raises(RuntimeError, match="in use by another training run"):
            lock_run(out)
    finally:
        holder.kill()
        holder.wait()
    lock_run(out)  # free again once the other run is gone
