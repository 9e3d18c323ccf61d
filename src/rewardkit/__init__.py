"""rewardkit: score with any reward, train reward models, evaluate them honestly, and use them.

Torch-backed classes are imported lazily, so ``import rewardkit`` stays cheap.
"""
from __future__ import annotations

from typing import Any

from .protocol import BaseReward, FunctionReward, MissingColumnError, Reward, reward
from .specs import load_reward
from .types import BestOfNRecord, Completion, Message, PairRecord, Prompt, RewardOutput

__version__ = "0.1.0"

_LAZY = {
    "ClassifierReward": "rewardkit.rewards.classifier",
    "LogLikelihoodReward": "rewardkit.rewards.likelihood",
    "LengthReward": "rewardkit.rewards.baselines",
}

__all__ = [
    "BaseReward",
    "BestOfNRecord",
    "ClassifierReward",
    "Completion",
    "FunctionReward",
    "LengthReward",
    "LogLikelihoodReward",
    "Message",
    "MissingColumnError",
    "PairRecord",
    "Prompt",
    "Reward",
    "RewardOutput",
    "load_reward",
    "reward",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'rewardkit' has no attribute {name!r}")
