"""ProcessReward (one-pass step scores, aggregates) and ImplicitPRM on tiny random models."""
from __future__ import annotations

import math
import warnings

import pytest

from rewardkit.rewards.process import aggregate

PROMPTS = ["What is 2+3?", "Add 1 and 1."]
STEPS = [["2+3 = 5.", "The answer is 5."], ["1+1 = 3.", "So 3.", "The answer is 3."]]


@pytest.fixture(scope="module")
def prm(tiny_dirs):
    from rewardkit.rewards.process import ProcessReward

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ProcessReward(str(tiny_dirs["rm"]))


def test_one_score_per_step_and_text_is_split(prm):
    out = prm.score(PROMPTS, STEPS)
    assert [len(s) for s in out.steps] == [2, 3]
    assert all(0 < x < 1 for s in out.steps for x in s)
    assert out.scores == [min(s) for s in out.steps]
    text = prm.score(PROMPTS, ["\n".join(s) for s in STEPS])
    assert text.steps == out.steps


def test_step_ends_are_the_last_token_of_each_step(prm):
    enc = prm.encoder.encode_steps(PROMPTS[:1], STEPS[:1])[0]
    tok = prm.tokenizer
    assert enc.input_ids[enc.completion_start : enc.ends[0] + 1] == tok("2+3 = 5.\n", add_special_tokens=False)["input_ids"]
    assert enc.ends[-1] == len(enc.input_ids) - 1


def test_one_pass_equals_per_prefix(prm):
    one = prm.score(PROMPTS, STEPS).steps
    per = prm.score_prefixes(PROMPTS, STEPS)
    assert max(abs(a - b) for x, y in zip(one, per) for a, b in zip(x, y)) < 1e-5


def test_aggregates():
    s = [0.9, 0.2, 0.6]
    assert aggregate(s, "min")[0] == 0.2 and aggregate(s, "last")[0] == 0.6
    assert math.isclose(aggregate(s, "product")[0], 0.108) and math.isclose(aggregate(s, "mean")[0], 1.7 / 3)
    value, rewards = aggregate(s, "clip", 0.5)
    assert rewards == pytest.approx([0.0, -0.3, 0.0]) and value == pytest.approx(-0.3)
    value, rewards = aggregate(s, "delta")
    assert rewards == pytest.approx([0.7, -0.4, 0.6]) and value == pytest.approx(0.9)
    # repeating a good step cannot raise the clipped or delta return
    assert aggregate(s + [0.9, 0.9], "clip", 0.5)[0] <= value
    assert aggregate(s + [0.6, 0.6], "delta")[0] == pytest.approx(aggregate(s, "delta")[0])
    with pytest.raises(ValueError):
        aggregate(s, "median")


def test_unscorable_samples_are_none_with_a_reason(tiny_dirs):
    from rewardkit.rewards.process import ProcessReward

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        short = ProcessReward(str(tiny_dirs["rm"]), max_length=20, aggregate="clip")
    out = short.score(["q", "q"], ["", ["x" * 40]])
    assert out.scores == [None, None] and out.extras["reason"][0].startswith("no steps")
    assert "max_length" in out.extras["reason"][1]


def test_spec_and_default(tiny_dirs):
    from rewardkit.specs import load_reward

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = load_reward(f"prm:{tiny_dirs['rm']}")
    assert type(r).__name__ == "ProcessReward"


def test_implicit_prm_sums_log_ratios_per_step(tiny_dirs):
    from rewardkit.rewards.process import ImplicitPRM
    from rewardkit.rewards.likelihood import LogLikelihoodReward

    lm = LogLikelihoodReward(str(tiny_dirs["lm"]))
    same = ImplicitPRM(lm, reference=lm, beta=2.0)
    out = same.score(PROMPTS, STEPS)
    assert all(abs(x) < 1e-9 for s in out.steps for x in s)  # policy == reference: no process reward
    alone = ImplicitPRM(lm, beta=1.0)
    steps = alone.score(PROMPTS, STEPS).steps
    # the sum over steps is the completion's log-likelihood of the step-wise token ids
    enc = lm.encoder.encode_steps(PROMPTS, STEPS)
    from rewardkit.models.encoding import Encoded

    total = lm.run([Encoded(e.input_ids, e.completion_start) for e in enc], lm._readout)
    for s, (t, _) in zip(steps, total):
        assert sum(s) == pytest.approx(t, abs=1e-4)
    mean = ImplicitPRM(lm, reduction="mean").score(PROMPTS, STEPS).steps
    assert all(abs(m) < abs(x) + 1e-12 for a, b in zip(mean, steps) for m, x in zip(a, b))
