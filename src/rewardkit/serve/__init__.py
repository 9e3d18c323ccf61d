"""The reward server (``rewardkit serve``): ``schemas`` (shared with ``rewards.remote``), the
micro-batching queue (``batching``), the FastAPI app (``app``). Imported lazily, so the remote client
does not pull in the server stack."""
from __future__ import annotations

from typing import Any

__all__ = ["ServeSettings", "check_bind", "create_app", "is_loopback", "make_server"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import app

        return getattr(app, name)
    raise AttributeError(f"module 'rewardkit.serve' has no attribute {name!r}")
