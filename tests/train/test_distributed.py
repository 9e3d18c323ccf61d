"""Training under accelerate with two CPU processes (gloo), in real subprocesses: the weights are those
of one process with the same global batch and data order, a killed two-process run resumes to the
same weights, only the first process writes, FSDP2 gives the same weights with packed pairs, and
every shipped accelerate config is one accelerate accepts.

Tolerance (:func:`assert_same_training`). Two processes compute the same steps as one: the same pairs,
the same loss (a sum over the step's pairs divided by their number), but the float additions happen in
another order (each process sums its share, the all-reduce adds the shares, the micro-batches group
other pairs). fp32 rounds each sum at ~1e-7 relative; AdamW, dividing by sqrt(v), turns that into
larger moves of the few weights whose gradients are near zero. Measured on these runs: one process
alone, only regrouping its micro-batches (--max-tokens-per-micro-batch), moves the final weights by
1e-6 to 8e-6 at most and by 1e-6 to 8e-6 of the distance training moved them (L2 over all weights);
two processes by 1.6e-6 to 2.8e-5 and 1e-6 to 2e-5. We allow 1e-4 per weight and 1e-3 of the distance
trained, while a different data order (each pair in another step) moves them by 2e-2 per weight and
0.4 of the distance trained (the control test), so a lost, duplicated or mis-weighted pair cannot pass.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from test_bt import toy_pairs, write_pairs

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / "examples" / "accelerate"
WORKER = Path(__file__).resolve().parent / "distributed_worker.py"
PER_WEIGHT, OF_DISTANCE = 1e-4, 1e-3

#: run options of the BT runs (24 steps of 7 pairs over 60 pairs: the epochs end in short steps)
BT = ["--mode", "full", "--lr", "3e-3", "--max-steps", "24", "--pairs-per-step", "7", "--eval-every", "8",
      "--max-length", "128", "--max-tokens-per-micro-batch", "300"]

#: records, in each process of a run, what it writes under RK_AUDIT_WATCH (Python's audit hooks see
#: every open for writing, mkdir, rename and delete that goes through Python)
AUDIT = '''
import os, sys
_watch, _dir = os.environ.get("RK_AUDIT_WATCH"), os.environ.get("RK_AUDIT_DIR")
if _watch and _dir:
    _log = os.path.join(_dir, f"rank-{os.environ.get('RANK', 'none')}-{os.getpid()}.log")
    def _hook(event, args):
        if event == "open":
            path, mode, flags = args
            writes = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
                isinstance(flags, int) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT))
        elif event in ("os.mkdir", "os.rename", "os.remove", "os.rmdir", "shutil.rmtree"):
            path, writes = args[0], True
        else:
            return
        if writes and isinstance(path, (str, bytes, os.PathLike)) and os.path.abspath(os.fsdecode(path)).startswith(_watch):
            with open(_log, "a") as fh:
                fh.write(event + " " + os.fsdecode(path) + "\\n")
    sys.addaudithook(_hook)
'''


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def env(**extra: str) -> dict[str, str]:
    return {**os.environ, "TQDM_DISABLE": "1", "OMP_NUM_THREADS": "1", **extra}


def accelerate(n: int, *, config: Path | None = None, module: list[str]) -> list[str]:
    """``accelerate launch`` of ``python -m MODULE...`` on ``n`` CPU processes (DDP unless ``config``)."""
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", str(n), "--main_process_port", str(free_port()),
           "--mixed_precision", "no", "--num_machines", "1", "--dynamo_backend", "no"]
    cmd += ["--config_file", str(config)] if config else ["--multi_gpu"]
    return cmd + module


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its descendants (from /proc): torchrun starts each worker in a session of its
    own, so killing the launcher's process group would leave the workers training."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(parent, []).append(int(stat.parent.name))
    tree, todo = [], [pid]
    while todo:
        tree.append(todo.pop())
        todo += children.get(tree[-1], [])
    return tree


def weights(run: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(run / "model" / "model.safetensors"))


def worst(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max((a[k] - b[k]).abs().max().item() for k in a)


def distance(a: dict, b: dict) -> float:
    return sum(((a[k] - b[k]) ** 2).sum().item() for k in a) ** 0.5


def start_weights(model_dir: Path, num_labels: int = 1) -> dict:
    """The weights every run starts from (the recipes draw the new head with seed 0)."""
    from rewardkit.models import load_model

    return load_model(str(model_dir), "sequence-classification", num_labels=num_labels, seed=0, device="cpu").state_dict()


def assert_same_training(a: dict, b: dict, start: dict) -> float:
    """``b`` is the training of ``a`` up to float rounding (see the module docstring); returns the
    distance training moved ``a``."""
    moved = distance(a, {k: start[k] for k in a})
    assert moved > 1e-2  # training moved the weights
    assert worst(a, b) < PER_WEIGHT and distance(a, b) < OF_DISTANCE * moved, (worst(a, b), distance(a, b) / moved)
    return moved


@pytest.fixture(scope="module")
def bt_runs(tiny_dirs, tmp_path_factory) -> dict[str, Path]:
    """The same BT run in one process and in two (``rewardkit train --launcher accelerate``, every
    write of every process recorded)."""
    base = tmp_path_factory.mktemp("bt")
    data = write_pairs(base / "pairs.jsonl", toy_pairs(60))
    common = ["train", "--data", str(data), "--model", str(tiny_dirs["lm"]), *BT, "--save-every", "8"]
    subprocess.run([sys.executable, "-m", "rewardkit.cli.main", *common, "--out", str(base / "one")], check=True, capture_output=True, env=env())
    hook, audit = base / "hook", base / "audit"
    hook.mkdir()
    audit.mkdir()
    (hook / "sitecustomize.py").write_text(AUDIT)
    two = base / "two"
    done = subprocess.run([sys.executable, "-m", "rewardkit.cli.main", *common, "--out", str(two), "--launcher", "accelerate", "--num-processes", "2"],
                          capture_output=True, text=True, timeout=300,
                          env=env(PYTHONPATH=os.pathsep.join([str(hook), os.environ.get("PYTHONPATH", "")]),
                                  RK_AUDIT_WATCH=str(two.resolve()), RK_AUDIT_DIR=str(audit)))
    assert done.returncode == 0, done.stderr[-3000:]
    (base / "two.stdout").write_text(done.stdout)
    (base / "two.stderr").write_text(done.stderr)
    return {"data": data, "one": base / "one", "two": two, "audit": audit, "base": base}


def test_two_processes_reach_the_weights_of_one(bt_runs, tiny_dirs):
    assert_same_training(weights(bt_runs["one"]), weights(bt_runs["two"]), start_weights(tiny_dirs["lm"]))
    a = json.loads((bt_runs["one"] / "train_results.json").read_text())
    b = json.loads((bt_runs["two"] / "train_results.json").read_text())
    # the logs hold the step's global loss (not one process's share, which would be about half of it)
    assert [h["loss"] for h in b["history"]] == pytest.approx([h["loss"] for h in a["history"]], rel=1e-3)
    assert b["eval"]["loss"] == pytest.approx(a["eval"]["loss"], rel=1e-4) and b["steps"] == 24
    assert "training with DDP (gloo), 2 processes on cpu" in (bt_runs["base"] / "two.stderr").read_text()


def test_another_data_order_is_far_outside_the_tolerance(bt_runs, tiny_dirs):
    """The control: a different --shuffle-seed (each pair in another step) moves the weights far more."""
    out = bt_runs["base"] / "reshuffled"
    subprocess.run([sys.executable, "-m", "rewardkit.cli.main", "train", "--data", str(bt_runs["data"]), "--model", str(tiny_dirs["lm"]), *BT,
                    "--shuffle-seed", "5", "--out", str(out)], check=True, capture_output=True, env=env())
    one, other = weights(bt_runs["one"]), weights(out)
    moved = distance(one, start_weights(tiny_dirs["lm"]))
    assert worst(one, other) > 100 * PER_WEIGHT and distance(one, other) > 100 * OF_DISTANCE * moved


def test_only_the_main_process_writes(bt_runs):
    logs = {p.name.split("-")[1]: p.read_text().splitlines() for p in bt_runs["audit"].glob("rank-*.log")}
    main = logs.get("0", [])
    assert any(line.endswith("/.lock") for line in main)  # the hook sees the main process's writes: the lock,
    assert any("checkpoints/last.tmp-" in line for line in main)  # the checkpoints, the export, the results
    assert any("/model.tmp-" in line for line in main) and any(line.endswith("train_results.json") for line in main)
    assert not logs.get("1"), logs.get("1")[:5]  # the second process wrote nothing, not even the lock
    assert set(logs) <= {"0", "1"}  # nor did the launchers
    assert (bt_runs["base"] / "two.stdout").read_text().count('"train_pairs"') == 1  # one summary, from the main process


def test_killed_two_process_run_resumes_to_the_same_weights(bt_runs, tiny_dirs, tmp_path):
    """SIGKILL of the whole launch (the launcher and both training processes) after a checkpoint, then
    --resume with the shipped DDP config: the weights of the uninterrupted two-process run."""
    out = tmp_path / "killed"
    cmd = accelerate(2, config=CONFIGS / "ddp.yaml", module=["-m", "rewardkit.cli", "train", "--data", str(bt_runs["data"]),
                                                            "--model", str(tiny_dirs["lm"]), *BT, "--save-every", "1", "--out", str(out)])
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env())
    state = out / "checkpoints" / "last" / "state.json"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        try:
            if json.loads(state.read_text())["step"] >= 3:
                break
        except (OSError, ValueError):
            pass
        time.sleep(0.01)
    tree = process_tree(proc.pid)
    assert len(tree) >= 3  # the launcher and two training processes
    for pid in tree:  # the whole launch at once, as when its machine or job is killed
        os.kill(pid, signal.SIGKILL)
    proc.wait()
    time.sleep(0.5)
    assert not [pid for pid in tree if Path(f"/proc/{pid}").exists() and "zombie" not in Path(f"/proc/{pid}/status").read_text()]
    stopped_at = json.loads(state.read_text())["step"]
    assert 3 <= stopped_at < 24, "the kill must land mid-run"
    assert not (out / "model").exists()
    done = subprocess.run(cmd + ["--resume"], capture_output=True, text=True, env=env(), timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"resumed from step {stopped_at}" in done.stderr
    assert worst(weights(bt_runs["two"]), weights(out)) < 1e-6  # the same arithmetic in the same two processes
    assert_same_training(weights(bt_runs["one"]), weights(out), start_weights(tiny_dirs["lm"]))
    assert json.loads((out / "train_results.json").read_text())["steps"] == 24


def test_fsdp2_with_packed_pairs_resumes_a_one_process_run_to_its_weights(bt_runs, tiny_dirs, tmp_path):
    """A run stopped at step 12 in one process, resumed to 24 under the shipped FSDP config on two CPU
    processes (FSDP2: weights, gradients and optimizer state sharded; BT with the shared-prefix packed
    pairs): the whole checkpoint is split over the processes, the checkpoints it writes hold whole
    tensors gathered from both, and the export the weights of the uninterrupted one-process run."""
    import torch

    out = tmp_path / "fsdp"
    options = ["train", "--data", str(bt_runs["data"]), "--model", str(tiny_dirs["lm"]), *BT, "--save-every", "8", "--out", str(out)]
    assert options[options.index("--max-steps") + 1] == "24"
    first = [*options[: options.index("--max-steps") + 1], "12", *options[options.index("--max-steps") + 2:]]
    subprocess.run([sys.executable, "-m", "rewardkit.cli.main", *first], check=True, capture_output=True, env=env())
    done = subprocess.run(accelerate(2, config=CONFIGS / "fsdp.yaml", module=["-m", "rewardkit.cli", *options, "--resume"]),
                          capture_output=True, text=True, env=env(), timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "training with FSDP2 (gloo), 2 processes on cpu" in done.stderr and "resumed from step 12" in done.stderr
    start = start_weights(tiny_dirs["lm"])
    assert_same_training(weights(bt_runs["one"]), weights(out), start)
    a = torch.load(bt_runs["one"] / "checkpoints" / "last" / "trainable.pt")
    b = torch.load(out / "checkpoints" / "last" / "trainable.pt")
    assert all(type(v) is torch.Tensor for v in b.values())  # whole tensors, not shards
    assert_same_training(a, b, start)
    moments = torch.load(out / "checkpoints" / "last" / "optimizer.pt")["state"]
    assert [m["exp_avg"].shape for m in moments.values()] == [v.shape for v in a.values()]


def test_gradient_of_a_step_is_the_one_process_gradient(tiny_dirs, tmp_path):
    """One step's gradient through Parallel on two processes equals the plain gradient of the mean
    over the global batch: unequal shares (3 and 2 pairs, a micro-batch each), a process with no
    share at all (a step of one pair), DDP averaging undone by the loss scale."""
    import torch

    sys.path.insert(0, str(WORKER.parent))
    from distributed_worker import GRAD_PAIRS, step_gradients

    from rewardkit.models import load_model
    from rewardkit.train.parallel import Net

    out = tmp_path / "grads.pt"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(free_port()),
           str(WORKER), "grads", str(tiny_dirs["lm"]), str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env(), timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    got = torch.load(out)
    hf = load_model(str(tiny_dirs["lm"]), "sequence-classification", num_labels=1, seed=0, device="cpu").train()
    for name, pairs in (("five", GRAD_PAIRS), ("one", GRAD_PAIRS[:1])):
        hf.zero_grad(set_to_none=True)
        step_gradients(Net(hf), pairs, hf.config.pad_token_id, 10_000)  # one micro-batch of the whole step, one process
        want = {k: p.grad for k, p in hf.named_parameters()}
        assert got[name].keys() == want.keys()
        for k in want:
            scale = want[k].abs().max().item()
            assert scale > 0, k
            assert (got[name][k] - want[k]).abs().max().item() <= 1e-5 * scale, (name, k)


@pytest.mark.parametrize("recipe", ["regression", "prm"])
def test_regression_and_prm_on_two_processes_match_one(recipe, tiny_dirs, tmp_path):
    """Regression (LoRA, two heads, the combination learned from pairs: its logits live outside the
    wrapped model) and PRM (full): two processes, the weights of one."""
    one, two = tmp_path / "one", tmp_path / "two"
    subprocess.run([sys.executable, str(WORKER), recipe, str(tiny_dirs["lm"]), str(one)], check=True, capture_output=True, env=env(), timeout=300)
    done = subprocess.run(accelerate(2, module=[str(WORKER), recipe, str(tiny_dirs["lm"]), str(two)]), capture_output=True, text=True, env=env(),
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("steps 6") == 1
    assert_same_training(weights(one), weights(two), start_weights(tiny_dirs["lm"], 2 if recipe == "regression" else 1))
    a = json.loads((one / "train_results.json").read_text())
    b = json.loads((two / "train_results.json").read_text())
    if recipe == "regression":  # the combination moved from (0.5, 0.5) the same way
        assert b["weights"] == pytest.approx(a["weights"], abs=1e-6) and abs(a["weights"]["quality"] - 0.5) > 1e-4
        assert [h["bt_loss"] for h in b["history"]] == pytest.approx([h["bt_loss"] for h in a["history"]], rel=1e-3)
    assert [h.get("mse", h.get("loss")) for h in b["history"]] == pytest.approx([h.get("mse", h.get("loss")) for h in a["history"]], rel=1e-3)


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_accelerate_configs_are_valid(path, monkeypatch):
    """Each config goes through accelerate's own launcher checks to the environment its processes
    would get, and accelerate's plugin builds from that environment; rewardkit's requirements hold
    (its own gradient accumulation, FSDP2)."""
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser
    from accelerate.utils import DeepSpeedPlugin, FullyShardedDataParallelPlugin
    from accelerate.utils.launch import prepare_deepspeed_cmd_env, prepare_multi_gpu_env

    args, defaults, _ = _validate_launch_command(launch_command_parser().parse_args(["--config_file", str(path), "train.py"]))
    assert args.num_processes == 8 and args.mixed_precision == "bf16"
    if args.use_deepspeed:
        args.deepspeed_fields_from_accelerate_config = ",".join(defaults.deepspeed_config)
        _, launched = prepare_deepspeed_cmd_env(args)
    else:
        launched = prepare_multi_gpu_env(args)
    for key, value in launched.items():
        if key.startswith(("ACCELERATE_", "FSDP_")):
            monkeypatch.setenv(key, value)
    if args.use_deepspeed:
        plugin = DeepSpeedPlugin()
        assert plugin.gradient_accumulation_steps == 1 and plugin.zero_stage == int(path.stem[-1])
    elif args.use_fsdp:
        plugin = FullyShardedDataParallelPlugin()
        assert plugin.fsdp_version == 2 and plugin.auto_wrap_policy is not None
    else:
        assert args.multi_gpu
