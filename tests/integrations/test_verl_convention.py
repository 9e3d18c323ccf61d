"""rewardkit as verl's custom reward function. verl does not install without its GPU stack here, so its
convention is restated from its own files (verl/workers/reward_manager/naive.py and batch.py,
verl/trainer/ppo/reward.py get_custom_reward_fn, as of 2025): the naive manager calls the function once
per sample with data_source / solution_str / ground_truth / extra_info keywords plus the config's
reward_kwargs, writes the number (or dict["score"]) into a float tensor, and appends every dict key's value
to reward_extra_info, which must line up across samples."""
from __future__ import annotations

import asyncio
import math

import pytest


def naive_manager(compute_score, rows, reward_kwargs=None):
    """verl's per-sample loop, restated: what it passes, and what it needs back."""
    extra_info: dict[str, list] = {}
    rewards = []
    for row in rows:
        result = compute_score(data_source=row["data_source"], solution_str=row["response"], ground_truth=row["ground_truth"],
                               extra_info=row.get("extra_info", {}), **(reward_kwargs or {}))
        score = result["score"] if isinstance(result, dict) else result
        assert isinstance(score, float) and math.isfinite(score), result  # it goes into a float tensor
        rewards.append(score)
        for key, value in (result.items() if isinstance(result, dict) else ()):
            extra_info.setdefault(key, []).append(value)
    assert all(len(v) == len(rows) for v in extra_info.values()), "reward_extra_info keys must be the same for every sample"
    return rewards, extra_info


ROWS = [
    {"data_source": "gsm8k", "response": "So the answer is \\boxed{4}.", "ground_truth": "4"},
    {"data_source": "gsm8k", "response": "#### 5", "ground_truth": "4"},
    {"data_source": "gsm8k", "response": "The answer is 7.", "ground_truth": None},  # no gold: the rule cannot decide
]


def test_compute_score_follows_the_naive_manager_convention():
    from rewardkit.integrations.verl import KEYS, compute_score

    rewards, extra = naive_manager(compute_score, ROWS)
    assert rewards == [1.0, 0.0, 0.0] and set(extra) == set(KEYS) and extra["unscored"] == [0.0, 0.0, 1.0]
    rewards, _ = naive_manager(compute_score, ROWS, {"unscored": -1.0})  # custom_reward_function.reward_kwargs
    assert rewards == [1.0, 0.0, -1.0]


def test_a_reward_that_reads_the_prompt_takes_it_from_extra_info_or_is_unscored():
    from rewardkit.integrations.verl import compute_score

    rows = [{"data_source": "x", "response": "a b c", "ground_truth": None, "extra_info": {"question": "Say three words."}},
            {"data_source": "x", "response": "a b", "ground_truth": None, "extra_info": {"index": 3}}]
    rewards, extra = naive_manager(compute_score, rows, {"reward": "length"})
    assert rewards == [3.0, 0.0] and extra["unscored"] == [0.0, 1.0]  # never scored against an empty prompt


def test_batch_and_async_forms_and_cloudpickle():
    import cloudpickle

    from rewardkit.integrations import verl

    batch = verl.compute_score_batch(data_sources=["g"] * 3, solution_strs=[r["response"] for r in ROWS],
                                     ground_truths=[r["ground_truth"] for r in ROWS], extra_infos=[{}] * 3)
    assert [b["score"] for b in batch] == [1.0, 0.0, 0.0] and [b["unscored"] for b in batch] == [0.0, 0.0, 1.0]
    single = asyncio.run(verl.compute_score_async(data_source="g", solution_str="\\boxed{4}", ground_truth="4"))
    assert single == {"score": 1.0, "unscored": 0.0}
    again = cloudpickle.loads(cloudpickle.dumps(verl.compute_score))  # what Ray does to ship it to a reward worker
    assert again(data_source="g", solution_str="\\boxed{4}", ground_truth="4", extra_info=None)["score"] == 1.0
    with pytest.raises(ValueError, match="finite"):
        verl.compute_score(data_source="g", solution_str="x", ground_truth="1", unscored=float("nan"))


def test_importing_loads_no_reward(tmp_path):
    import subprocess
    import sys

    code = "import rewardkit.integrations.verl as v, sys; assert not v._loaded; assert 'torch' not in sys.modules; print('ok')"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "ok" in done.stdout, done.stderr
