"""verl: any rewardkit reward as verl's custom reward function.

verl's reward managers call ``compute_score(data_source=, solution_str=, ground_truth=, extra_info=)``
once per sample (the naive manager), or with lists (the batch manager), adding the config's
``custom_reward_function.reward_kwargs`` as keywords (taking precedence). Point verl at this module::

    reward.custom_reward_function.path=pkg://rewardkit.integrations.verl     # verl 0.9: module paths
    reward.custom_reward_function.name=compute_score                         # compute_score_async: awaited
    +reward.custom_reward_function.reward_kwargs.reward='rule:math'

Older verl versions read ``custom_reward_function`` at the top level and take a file path only:
``$(python -c "import rewardkit.integrations.verl as m; print(m.__file__)")``; their batch manager calls
``compute_score_batch``.

What the conventions require, and what this module does about each:

* **No ``None``**: verl writes the score into a tensor. A sample the reward cannot score gets ``unscored``
  (a number, default 0.0) and ``unscored: 1.0`` in the returned dict, so it is visible in verl's logs.
* **The same keys for every sample**: ``reward_extra_info`` is built by appending each dict's values per
  key, so every call returns exactly ``{"score", "unscored"}``.
* **No prompt from verl**: the naive manager passes only the response. A reward that reads the prompt (a
  model reward, a judge) takes it from ``extra_info[prompt_key]`` (default: ``prompt``, then ``question``);
  without one the sample is unscored instead of being scored against an empty prompt.
* **Ray workers**: verl may cloudpickle the function into other processes. Nothing is loaded at import;
  each process loads the reward on its first call and keeps it (one per spec and options).

Configuration: ``reward_kwargs`` (``reward``, ``unscored``, ``prompt_key``, ``max_length``, ``device``), else the
environment (``REWARDKIT_VERL_REWARD``, ``REWARDKIT_VERL_UNSCORED``), else ``rule:math`` and 0.0. The gold
``ground_truth`` reaches the reward as its ``answer`` column (what ``rule:math`` reads).
"""
from __future__ import annotations

import asyncio
import math
import os
import threading
from typing import Any, Sequence

DEFAULT_REWARD = "rule:math"
KEYS = ("score", "unscored")  # the reward_extra_info keys, identical for every sample

_loaded: dict[tuple, Any] = {}
_lock = threading.Lock()


def _settings(reward: str | None, unscored: float | None, options: dict[str, Any]) -> tuple[str, float, dict]:
    spec = reward or os.environ.get("REWARDKIT_VERL_REWARD") or DEFAULT_REWARD
    value = unscored if unscored is not None else float(os.environ.get("REWARDKIT_VERL_UNSCORED", "0.0"))
    if not math.isfinite(float(value)):
        raise ValueError(f"unscored must be a finite number (verl writes it into a tensor), got {value!r}")
    known = {k: v for k, v in options.items() if k in ("max_length", "device", "max_tokens_per_batch", "chat_template", "seed")}
    return spec, float(value), known


def _reward(spec: str, options: dict[str, Any]) -> Any:
    key = (spec, tuple(sorted(options.items())))
    with _lock:
        if key not in _loaded:
            from ..specs import load_reward

            _loaded[key] = load_reward(spec, **options)
        return _loaded[key]


def _needs_prompt(reward: Any) -> bool:
    from ..rewards.rules.base import RuleReward

    return not (isinstance(reward, RuleReward) and not reward.wants_prompt)


def _prompt(extra: Any, prompt_key: str | None) -> Any:
    if not isinstance(extra, dict):
        return None
    for key in ([prompt_key] if prompt_key else ["prompt", "question"]):
        value = extra.get(key)
        if isinstance(value, str) or (isinstance(value, list) and value):
            return value
    return None


def _score(solutions: Sequence[str], truths: Sequence[Any], extras: Sequence[Any], *, reward: str | None, unscored: float | None,
           prompt_key: str | None, options: dict[str, Any]) -> list[dict[str, float]]:
    spec, value, known = _settings(reward, unscored, options)
    rm = _reward(spec, known)
    prompts = [_prompt(e, prompt_key) for e in extras]
    needs = _needs_prompt(rm)
    todo = [i for i, p in enumerate(prompts) if p is not None or not needs]
    out = [{"score": value, "unscored": 1.0} for _ in solutions]
    if todo:
        answers = [None if truths[i] is None else str(truths[i]) for i in todo]
        scores = rm([prompts[i] if prompts[i] is not None else "" for i in todo], [str(solutions[i]) for i in todo], answer=answers)
        for i, s in zip(todo, scores):
            if s is not None and math.isfinite(float(s)):
                out[i] = {"score": float(s), "unscored": 0.0}
    return out


def compute_score(data_source: Any = None, solution_str: str = "", ground_truth: Any = None, extra_info: Any = None, *,
                  reward: str | None = None, unscored: float | None = None, prompt_key: str | None = None, **options: Any) -> dict[str, float]:
    """One sample, as verl's naive reward manager calls it: ``{"score": float, "unscored": 0.0 | 1.0}``."""
    return _score([solution_str], [ground_truth], [extra_info], reward=reward, unscored=unscored, prompt_key=prompt_key, options=options)[0]


def compute_score_batch(data_sources: Sequence[Any] = (), solution_strs: Sequence[str] = (), ground_truths: Sequence[Any] = (),
                        extra_infos: Sequence[Any] | None = None, *, reward: str | None = None, unscored: float | None = None,
                        prompt_key: str | None = None, **options: Any) -> list[dict[str, float]]:
    """A batch, as verl's batch reward manager calls it (one forward pass for a model reward)."""
    n = len(solution_strs)
    extras = list(extra_infos) if extra_infos is not None else [None] * n
    truths = list(ground_truths) if len(ground_truths) else [None] * n
    if len(truths) != n or len(extras) != n:
        raise ValueError(f"got {n} solutions, {len(truths)} ground truths and {len(extras)} extra_infos")
    return _score(list(solution_strs), truths, extras, reward=reward, unscored=unscored, prompt_key=prompt_key, options=options)


async def compute_score_async(data_source: Any = None, solution_str: str = "", ground_truth: Any = None, extra_info: Any = None,
                              **kwargs: Any) -> dict[str, float]:
    """The same as :func:`compute_score`, awaitable (verl's async reward loop awaits coroutine functions);
    the scoring runs in a worker thread so other samples' requests go on meanwhile."""
    return await asyncio.to_thread(compute_score, data_source, solution_str, ground_truth, extra_info, **kwargs)
