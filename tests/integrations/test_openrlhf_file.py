"""OpenRLHF's python-file reward convention, restated from OpenRLHF v0.11's own code
(openrlhf/utils/agent.py SingleTurnAgentExecutor and samples_generator._process_response_into_experience):
the file is loaded with spec_from_file_location("reward_func", path), ``reward_func`` is called in a
worker thread with one-element lists, and the result's ``rewards`` / ``scores`` / ``extra_logs`` are
turned into tensors per sample."""
from __future__ import annotations

import asyncio
import importlib.util

import pytest
import torch

import rewardkit.integrations.openrlhf as openrlhf_mod

PROMPT = "<|im_start|>user\nWhat is 2+3?<|im_end|>\n<|im_start|>assistant\n"


def load_like_openrlhf():
    spec = importlib.util.spec_from_file_location("reward_func", openrlhf_mod.__file__)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.reward_func


async def fetch_like_openrlhf(reward_func, queries, prompts, labels):
    return await asyncio.gather(*[asyncio.to_thread(reward_func, [q], [p], [lab]) for q, p, lab in zip(queries, prompts, labels)])


def as_experience_info(rewards_info):
    """What OpenRLHF does with one sample's result."""
    score = rewards_info.get("scores")
    info = {"reward": torch.tensor([rewards_info.get("rewards")]), "score": torch.tensor([score if score is not None else rewards_info.get("rewards")])}
    for key, value in (rewards_info.get("extra_logs") or {}).items():
        if isinstance(value, torch.Tensor):
            value = value.flatten()[0].item()
        info[key] = torch.tensor([value])
    return info


@pytest.fixture
def env(monkeypatch):
    monkeypatch.setenv("REWARDKIT_REWARD", "rule:math")
    monkeypatch.delenv("REWARDKIT_UNSCORED_REWARD", raising=False)
    openrlhf_mod._state.clear()
    yield monkeypatch
    openrlhf_mod._state.clear()


def test_the_file_loads_and_scores_as_openrlhf_calls_it(env):
    reward_func = load_like_openrlhf()
    queries = [PROMPT + "2+3 = \\boxed{5}<|im_end|>", PROMPT + "It is \\boxed{6}<|im_end|><|endoftext|>", "<s>" + PROMPT + "The answer is 5."]
    results = asyncio.run(fetch_like_openrlhf(reward_func, queries, [PROMPT] * 3, ["5", "5", "5"]))
    infos = [as_experience_info(r) for r in results]
    assert [i["reward"].flatten().item() for i in infos] == [1.0, 0.0, 1.0]
    assert all(i["unscored"].item() == 0.0 and i["prompt_truncated"].item() == 0.0 for i in infos)


def test_an_unscored_sample_needs_a_fallback_and_is_flagged(env):
    reward_func = load_like_openrlhf()
    with pytest.raises(ValueError, match="REWARDKIT_UNSCORED_REWARD"):
        reward_func([PROMPT + "I don't know"], [PROMPT], ["5"])
    env.setenv("REWARDKIT_UNSCORED_REWARD", "-1")
    info = as_experience_info(reward_func([PROMPT + "I don't know"], [PROMPT], ["5"]))
    assert info["reward"].item() == -1.0 and info["unscored"].item() == 1.0


def test_a_left_truncated_prompt_and_a_batch_call(env):
    long_prompt = "<|im_start|>user\n" + "context " * 30 + "What is 2+3?<|im_end|>\n<|im_start|>assistant\n"
    body = openrlhf_mod.score_queries([long_prompt[60:] + "\\boxed{5}", long_prompt + "\\boxed{4}"], [long_prompt, long_prompt], ["5", "5"])
    assert body["rewards"] == [1.0, 0.0] and body["extra_logs"]["prompt_truncated"] == [1.0, 0.0]
    out = load_like_openrlhf()([long_prompt + "\\boxed{5}"] * 3, [long_prompt] * 3, ["5"] * 3)  # older versions pass whole batches
    assert out["rewards"].tolist() == [1.0, 1.0, 1.0]


def test_missing_configuration_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("REWARDKIT_REWARD", raising=False)
    with pytest.raises(ValueError, match="set REWARDKIT_REWARD"):
        load_like_openrlhf()([PROMPT + "x"], [PROMPT], [None])
