"""rewardkit rewards inside TRL's own GRPOTrainer (a one-step run with a tiny random policy on CPU):
local, composed and served rewards, text and conversational prompts, called exactly as TRL calls them
(``trainer_state`` a real TrainerState, the ``log_extra`` / ``log_metric`` callbacks, ``completion_ids``)."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "serve"))
from serve_helpers import ServerThread  # noqa: E402

trl = pytest.importorskip("trl", reason="TRL is in the test extra: pip install -e '.[test]'")


class Recording:
    """Wraps a reward and records every keyword TRL passed to it, and what it returned."""

    def __init__(self, reward):
        self.reward, self.calls = reward, []
        self.__name__ = reward.__name__

    def __call__(self, prompts, completions, **kwargs):
        out = self.reward(prompts=prompts, completions=completions, **kwargs)
        self.calls.append({"kwargs": kwargs, "out": out, "completions": completions})
        return out


def _train(tiny_dirs, tmp_path, rewards, rows):
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = str(tiny_dirs["lm"])
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path)
    cfg = trl.GRPOConfig(output_dir=str(tmp_path / "grpo"), per_device_train_batch_size=4, num_generations=2, max_completion_length=6,
                         max_steps=1, logging_steps=1, report_to="none", save_strategy="no", use_cpu=True, bf16=False, seed=0,
                         dataloader_num_workers=0)
    trainer = trl.GRPOTrainer(model=model, reward_funcs=rewards, args=cfg, train_dataset=Dataset.from_list(rows), processing_class=tokenizer)
    trainer.train()
    return trainer


@pytest.mark.slow
@pytest.mark.parametrize("conversational", [False, True])
def test_local_composed_and_served_rewards_in_a_grpo_step(tiny_dirs, tmp_path, conversational):
    from rewardkit import load_reward
    from transformers import TrainerState

    from rewardkit.rewards.baselines import LengthReward

    rows = [{"prompt": [{"role": "user", "content": f"Say {i}."}] if conversational else f"Say {i}.", "answer": str(i)} for i in range(4)]
    with ServerThread(LengthReward()) as srv:
        local = Recording(load_reward("length"))
        composed = Recording(load_reward("transform:group(rule:math)"))
        gate = load_reward("gate(rule:math, length)")
        served = Recording(load_reward(f"remote:{srv.url}"))
        grouped_remote = Recording(load_reward(f"transform:group(remote:{srv.url})"))
        trainer = _train(tiny_dirs, tmp_path, [local, composed, served, grouped_remote, gate], rows)
    port = srv.url.rsplit(":", 1)[1]
    assert served.__name__ == f"remote:length@127.0.0.1:{port}"  # named after the served reward (and where it is served)
    for rec in (local, composed, served, grouped_remote):
        (call,) = rec.calls
        assert isinstance(call["kwargs"]["trainer_state"], TrainerState)  # what TRL really passes
        assert callable(call["kwargs"]["log_metric"]) and callable(call["kwargs"]["log_extra"])
        assert len(call["out"]) == 4  # 2 prompts x 2 generations per step
    # the served reward scores what the local one scores, sample for sample
    assert served.calls[0]["out"] == local.calls[0]["out"]
    # group normalisation over each prompt's 2 generations: every group sums to zero (or is unscored)
    group = [s for s in grouped_remote.calls[0]["out"]]
    assert all(s is not None for s in group) and abs(sum(group)) < 1e-6
    logged = trainer.state.log_history[0]
    assert f"rewards/{served.__name__}/mean" in logged, sorted(logged)
    # rewardkit's own statistics reach TRL's logs through the log_metric callback it passes, under the same name
    assert logged["length/unscored"] == 0.0 and logged[f"{served.__name__}/unscored"] == 0.0
    assert logged["gate(rule:math,length)/verifier_share"] + logged["gate(rule:math,length)/fallback_share"] == pytest.approx(1.0)


class Slow:
    """A reward that takes a while and records when it ran (a stand-in for a reward server or an API judge)."""

    def __init__(self, name, spans):
        self.__name__, self.spans = name, spans

    def __call__(self, prompts, completions, **kwargs):
        import time

        start = time.monotonic()
        time.sleep(0.5)
        self.spans[self.__name__] = (start, time.monotonic())
        return [float(len(c if isinstance(c, str) else c[0]["content"])) for c in completions]


@pytest.mark.slow
def test_async_rewards_are_awaited_together_by_grpo(tiny_dirs, tmp_path):
    from rewardkit.integrations.trl import AsyncReward

    spans: dict[str, tuple[float, float]] = {}
    rows = [{"prompt": f"Say {i}."} for i in range(2)]
    first, second = AsyncReward(Slow("slow_a", spans)), AsyncReward(Slow("slow_b", spans))
    assert trl.trainer.utils.is_async_callable(first)  # how TRL decides to await it
    trainer = _train(tiny_dirs, tmp_path, [first, second], rows)
    (a0, a1), (b0, b1) = spans["slow_a"], spans["slow_b"]
    assert a0 < b1 and b0 < a1, spans  # the two calls overlapped in time instead of running one after the other
    assert "rewards/slow_a/mean" in trainer.state.log_history[0]
