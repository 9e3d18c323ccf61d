"""Durable training checkpoints shared by every recipe (BT, regression, PRM).

A checkpoint is a directory with the trainable parameters, the optimizer state and the recipe's JSON
state (step, best metric, history, the run-defining options), ``state.json`` written last. It is
replaced through :mod:`rewardkit.train.durable`, so a kill at any moment leaves a complete checkpoint:
the new one or the previous one (moved back by :func:`recover_checkpoint`).

Tensors are saved whole, on the CPU, whatever trained them: weights and optimizer state that FSDP
shards over processes (DTensors) are gathered (:func:`gather_checkpoint`, which every process of the
run calls) and split again when loaded, so a checkpoint resumes under any number of processes.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .durable import recover_dir, staged_dir

#: what a complete checkpoint holds; ``state.json``, written last, marks it complete
FILES = ("trainable.pt", "optimizer.pt", "state.json")


class CheckpointError(ValueError):
    """A checkpoint that cannot be resumed from: names its directory and what is wrong."""

    def __init__(self, path: Path, message: str):
        self.path = Path(path)
        super().__init__(f"checkpoint {path}: {message}")


def whole(tensor) -> Any:
    """``tensor`` whole on the CPU (a copy): a DTensor (FSDP's shard of it) is gathered from every
    process, a collective they all must call in the same order."""
    from torch.distributed.tensor import DTensor

    if isinstance(tensor, DTensor):
        tensor = tensor.full_tensor()
    return tensor.detach().to("cpu", copy=True)


def trainable_state(model) -> dict[str, Any]:
    """Whole copies of the parameters that require grad (LoRA weights, heads, or everything)."""
    return {k: whole(v) for k, v in model.named_parameters() if v.requires_grad}


def gather_checkpoint(model, optimizer) -> tuple[dict[str, Any], dict[str, Any]]:
    """(trainable weights, optimizer state), whole on the CPU (see :func:`whole`)."""
    import torch

    optim = optimizer.state_dict()
    optim["state"] = {i: {k: whole(v) if isinstance(v, torch.Tensor) else v for k, v in s.items()} for i, s in optim["state"].items()}
    return trainable_state(model), optim


def save_checkpoint(path: Path, model, optimizer, state: dict[str, Any], gathered: tuple[dict, dict] | None = None) -> None:
    """Write the checkpoint into a temporary sibling and replace ``path`` with it durably
    (``gathered``: the weights and optimizer state already gathered by :func:`gather_checkpoint`)."""
    import torch

    weights, optim = gathered or gather_checkpoint(model, optimizer)
    with staged_dir(path) as tmp:
        torch.save(weights, tmp / "trainable.pt")
        torch.save(optim, tmp / "optimizer.pt")
        (tmp / "state.json").write_text(json.dumps(state, indent=2))


def is_complete(path: Path) -> bool:
    """Whether ``path`` holds every file of a checkpoint."""
    return all((path / name).is_file() for name in FILES)


def recover_checkpoint(path: Path) -> bool:
    """Whether a checkpoint exists at ``path``, after recovering the previous one when a kill
    mid-replace left only the copy set aside."""
    return recover_dir(path, is_complete)


def read_state(path: Path) -> dict[str, Any]:
    """The recipe state saved in checkpoint ``path``; a :class:`CheckpointError` when a file is
    missing or ``state.json`` is not a complete JSON object with a step."""
    missing = [name for name in FILES if not (path / name).is_file()]
    if missing:
        raise CheckpointError(path, f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} missing "
                                    "(not a complete checkpoint; delete it to start over)")
    text = (path / "state.json").read_text(encoding="utf-8", errors="replace")
    try:
        state = json.loads(text)
    except json.JSONDecodeError as err:
        raise CheckpointError(path, f"state.json is not valid JSON ({len(text)} bytes, truncated or corrupt: {err})") from None
    if not isinstance(state, dict) or not isinstance(state.get("step"), int):
        raise CheckpointError(path, "state.json holds no training state (no integer 'step')")
    return state


def _load(path: Path, name: str) -> Any:
    import torch

    try:
        return torch.load(path / name, map_location="cpu")
    except Exception as err:  # torch raises RuntimeError, EOFError, UnpicklingError ... for a damaged file
        raise CheckpointError(path, f"{name} is unreadable ({(path / name).stat().st_size} bytes, truncated or corrupt: "
                                    f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''})") from None


def like(value, param) -> Any:
    """A whole tensor ``value`` laid out as ``param``: this process's shard when ``param`` is a
    DTensor (no communication: every process holds the whole value), else ``value`` on its device."""
    from torch.distributed.tensor import DTensor, distribute_tensor

    if isinstance(param, DTensor):
        return distribute_tensor(value.to(param.device, param.dtype), param.device_mesh, param.placements, src_data_rank=None)
    return value.to(param.device)


def shard_optimizer_state(optimizer) -> None:
    """Lay out each loaded optimizer state tensor that has its parameter's shape like the parameter
    (whole values become this process's shards under FSDP)."""
    from torch.distributed.tensor import DTensor

    for group in optimizer.param_groups:
        for p in group["params"]:
            if isinstance(p, DTensor):
                for k, v in optimizer.state.get(p, {}).items():
                    if not isinstance(v, DTensor) and getattr(v, "shape", None) == p.shape and v.dim():
                        optimizer.state[p][k] = like(v, p)


def load_checkpoint(path: Path, model, optimizer) -> dict[str, Any]:
    """Restore parameters and optimizer state in place (as shards where the model is sharded);
    returns the saved recipe state. A damaged checkpoint, or one whose parameters are not the
    model's, is a :class:`CheckpointError`."""
    import torch

    state = read_state(path)
    weights = _load(path, "trainable.pt")
    params = dict(model.named_parameters())
    expected = {k for k, v in params.items() if v.requires_grad}
    if not isinstance(weights, dict) or set(weights) != expected:
        got = set(weights) if isinstance(weights, dict) else set()
        raise CheckpointError(path, f"trainable.pt holds {len(got)} tensors, the model trains {len(expected)} "
                                    f"({len(got - expected)} unknown, {len(expected - got)} missing); was it saved by another run?")
    for k, v in weights.items():
        if params[k].shape != v.shape:
            raise CheckpointError(path, f"trainable.pt: {k} has shape {tuple(v.shape)}, the model's is {tuple(params[k].shape)}")
    optimizer_state = _load(path, "optimizer.pt")
    with torch.no_grad():
        for k, v in weights.items():
            params[k].copy_(like(v, params[k]))
    try:
        optimizer.load_state_dict(optimizer_state)
    except (ValueError, KeyError) as err:
        raise CheckpointError(path, f"optimizer.pt does not fit the optimizer ({err})") from None
    shard_optimizer_state(optimizer)
    return state
