"""Atomic training checkpoints shared by every recipe (BT, regression, PRM).

A checkpoint is a directory with the trainable parameters, the optimizer state and the recipe's JSON
state (step, best metric, history). It is written to a temporary sibling and renamed into place, so a
kill mid-write leaves the previous checkpoint intact.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any


def trainable_state(model) -> dict[str, Any]:
    """Copies of the parameters that require grad (LoRA weights, heads, or everything)."""
    return {k: v.detach().clone() for k, v in model.named_parameters() if v.requires_grad}


def save_checkpoint(path: Path, model, optimizer, state: dict[str, Any]) -> None:
    """Write to a temp dir, then rename: a kill mid-write never leaves a broken checkpoint."""
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=path.name + ".tmp-", dir=path.parent))
    torch.save(trainable_state(model), tmp / "trainable.pt")
    torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
    (tmp / "state.json").write_text(json.dumps(state, indent=2))
    if path.exists():
        shutil.rmtree(path)
    os.replace(tmp, path)


def load_checkpoint(path: Path, model, optimizer) -> dict[str, Any]:
    """Restore parameters and optimizer state in place; returns the saved recipe state."""
    import torch

    weights = torch.load(path / "trainable.pt", map_location="cpu")
    params = dict(model.named_parameters())
    with torch.no_grad():
        for k, v in weights.items():
            params[k].copy_(v)
    optimizer.load_state_dict(torch.load(path / "optimizer.pt", map_location="cpu"))
    return json.loads((path / "state.json").read_text())
