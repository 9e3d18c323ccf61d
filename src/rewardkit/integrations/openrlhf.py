"""OpenRLHF: any rewardkit reward as OpenRLHF's python-file reward function.

OpenRLHF loads a ``.py`` file given as its remote reward URL with ``importlib.util.spec_from_file_location``
and calls its ``reward_func(queries, prompts, labels)`` in a worker thread, one sample per call in
v0.11 (whole batches in older versions). ``queries[i]`` is the decoded prompt + response, special
tokens included; it reads ``rewards`` (the advantage), ``scores`` (dynamic filtering) and
``extra_logs`` (each value logged per sample) from the returned dict. Point OpenRLHF at this file::

    export REWARDKIT_REWARD='rule:math'                    # any reward spec
    --reward.remote_url $(python -c "import rewardkit.integrations.openrlhf as m; print(m.__file__)")

This file is executed on its own (as module ``reward_func``), so it imports rewardkit absolutely. What
the convention requires, and what this does about each (the same rules as ``rewardkit serve``'s
``/get_reward``):

* **The response** is what follows the prompt in the query (leading padding / BOS allowed, a
  left-truncated prompt found by its end, trailing padding stripped): :func:`rewardkit.serve.openrlhf.split_queries`.
* **A number for every sample**: OpenRLHF puts ``rewards`` into tensors. A sample the reward cannot
  score gets ``REWARDKIT_UNSCORED_REWARD`` and ``extra_logs["unscored"] = 1``; without that setting
  the call raises, naming the sample and the reason (as the server answers 422), rather than
  return a ``None`` that fails later inside OpenRLHF.
* **Threads**: calls arrive from many threads at once; the reward is loaded once per process (on the
  first call) and scores one call at a time.

Environment: ``REWARDKIT_REWARD`` (required), ``REWARDKIT_UNSCORED_REWARD``, ``REWARDKIT_LABELS_COLUMN``
(default ``answer``: what ``rule:math`` reads), ``REWARDKIT_STRIP`` (comma-separated padding strings),
``REWARDKIT_CHAT_TEMPLATE`` (default ``auto``: OpenRLHF's prompts arrive rendered and are read as such).
"""
from __future__ import annotations

import math
import os
import threading
from typing import Any, Sequence

from rewardkit.serve.openrlhf import end_tokens, openrlhf_answer, reward_inputs, reward_strip_tokens, split_queries
from rewardkit.types import RewardOutput

_state: dict[str, Any] = {}
_load_lock = threading.Lock()
_score_lock = threading.Lock()


def _settings() -> dict[str, Any]:
    spec = os.environ.get("REWARDKIT_REWARD")
    if not spec:
        raise ValueError("set REWARDKIT_REWARD to the reward spec OpenRLHF should use (e.g. rule:math or classifier:./my-rm)")
    raw = os.environ.get("REWARDKIT_UNSCORED_REWARD")
    unscored = None
    if raw not in (None, ""):
        unscored = float(raw)
        if not math.isfinite(unscored):
            raise ValueError(f"REWARDKIT_UNSCORED_REWARD must be a finite number, got {raw!r}")
    strip = [t for t in os.environ.get("REWARDKIT_STRIP", "").split(",") if t]
    return {"spec": spec, "unscored": unscored, "labels": os.environ.get("REWARDKIT_LABELS_COLUMN", "answer"),
            "strip": strip, "chat_template": os.environ.get("REWARDKIT_CHAT_TEMPLATE", "auto")}


def _reward(settings: dict[str, Any]) -> Any:
    key = (settings["spec"], settings["chat_template"])
    with _load_lock:
        if _state.get("key") != key:
            from rewardkit.specs import load_reward

            reward = load_reward(settings["spec"], chat_template=settings["chat_template"])  # ignored by rewards without one
            _state.update(key=key, reward=reward, strip=settings["strip"] + [t for t in reward_strip_tokens(reward) if t not in settings["strip"]])
        return _state["reward"]


def score_queries(queries: Sequence[str], prompts: Sequence[str], labels: Sequence[Any] | None = None) -> dict[str, Any]:
    """The reward for OpenRLHF's queries as plain lists: ``{"rewards", "scores", "extra_logs"}``."""
    settings = _settings()
    reward = _reward(settings)
    n = len(queries)
    split = split_queries(list(queries), list(prompts), _state["strip"])
    found, rendered, responses = reward_inputs(split, list(prompts), _state["strip"], end_tokens(reward))  # as /get_reward
    columns: dict[str, list[Any]] = {}
    if labels is not None and any(label is not None for label in labels):
        if len(labels) != n:
            raise ValueError(f"got {len(labels)} labels for {n} queries")
        columns[settings["labels"]] = [labels[i] for i in found]
    scored = RewardOutput(scores=[])
    if found:
        with _score_lock:
            scored = reward.score(rendered, responses, **columns)
    out, body = openrlhf_answer(scored, split, found, settings["unscored"])
    missing = [i for i, s in enumerate(out.scores) if s is None or not math.isfinite(float(s))]
    if missing and settings["unscored"] is None:
        reasons = out.extras.get("reason") or [None] * n
        raise ValueError(f"{len(missing)} of {n} samples could not be scored (sample {missing[0]}: "
                         f"{reasons[missing[0]] or 'the reward returned no score'}); OpenRLHF needs a number for every sample: "
                         "set REWARDKIT_UNSCORED_REWARD (e.g. your reward's minimum); those samples are then flagged in extra_logs.unscored")
    return body


def reward_func(queries: Sequence[str], prompts: Sequence[str], labels: Sequence[Any] | None = None, **kwargs: Any) -> dict[str, Any]:
    """OpenRLHF's entry point: the same as :func:`score_queries`, with tensors (as OpenRLHF's own
    examples return them)."""
    import torch

    body = score_queries(queries, prompts, labels)
    return {
        "rewards": torch.tensor(body["rewards"], dtype=torch.float),
        "scores": torch.tensor(body["scores"], dtype=torch.float),
        "extra_logs": {k: torch.tensor(v, dtype=torch.float) for k, v in body["extra_logs"].items()},
    }
