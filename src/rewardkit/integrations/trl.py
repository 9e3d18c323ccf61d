"""TRL: every rewardkit reward already is a ``GRPOTrainer`` reward function (``reward_funcs=[rm]``).
This module adds the async form, for rewards that wait on something else (a reward server, an API
judge): TRL awaits all async reward functions of a step together (``asyncio.gather``), so several of
them overlap instead of running one after another.

    from rewardkit.integrations.trl import async_reward
    trainer = GRPOTrainer(..., reward_funcs=[async_reward("remote:http://rm:8000"), async_reward("judge:openai:m@http://vllm:8000/v1")])
"""
from __future__ import annotations

import asyncio
from typing import Any

from ..specs import load_reward


class AsyncReward:
    """A reward TRL awaits (``async def __call__``, which TRL's ``is_async_callable`` detects). The call
    runs the wrapped reward in a worker thread, with exactly the arguments TRL passes, so the scores and
    the ``log_metric`` statistics are those of the reward called synchronously."""

    def __init__(self, reward: Any):
        self.reward = reward

    @property
    def __name__(self) -> str:  # TRL logs reward functions by name
        return getattr(self.reward, "__name__", getattr(self.reward, "name", type(self.reward).__name__))

    @property
    def name(self) -> str:
        return self.__name__

    async def __call__(self, prompts: Any = None, completions: Any = None, **kwargs: Any) -> list[float | None]:
        return await asyncio.to_thread(self.reward, prompts=prompts, completions=completions, **kwargs)

    def children(self) -> list[Any]:
        return [self.reward]

    def __repr__(self) -> str:
        return f"AsyncReward({self.reward!r})"


def async_reward(spec: Any, **options: Any) -> AsyncReward:
    """:class:`AsyncReward` around ``load_reward(spec, **options)`` (or around a reward object)."""
    return AsyncReward(load_reward(spec, **options))
