"""The one lookup for what ships inside the package: trained reward models and heads under
``rewardkit/assets/``. Each asset is named once here, with the file that proves it is complete (an
install without the asset, e.g. a slim build, gets ``None`` and the callers say what is missing)."""
from __future__ import annotations

from importlib import resources
from pathlib import Path

#: asset -> (folder under rewardkit/assets, the file that must be there, what to return: the folder or that file)
PACKAGED = {
    "default_rm": ("default_rm", "adapter_config.json", "folder"),          # `--reward default`: LoRA adapter + head
    "default_prm": ("default_prm", "adapter_config.json", "folder"),        # `prm:default-value`: value-head PRM adapter
    "default_prm_head": ("default_prm_head", "prm_head.json", "file"),      # `prm:default`: likelihood-head PRM
}


def packaged(name: str) -> Path | None:
    """Path of the packaged asset ``name`` (a key of :data:`PACKAGED`), or ``None`` if this install lacks it."""
    folder, marker, returns = PACKAGED[name]
    try:
        base = Path(str(resources.files("rewardkit").joinpath("assets", folder)))
    except TypeError:  # not on a file system (a zip import): nothing to load from
        return None
    if not (base / marker).is_file():
        return None
    return base / marker if returns == "file" else base
