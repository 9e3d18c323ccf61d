"""A sample's score must not change with batch size, padding side, token budget or batch mates
(|diff| < 1e-5 in fp32), for the tiny random models and for the embedded model."""
from __future__ import annotations


import pytest

TOL = 1e-5

PROMPTS = [
    "What is 2+2?",
    "Tell me a joke about cats, please. Keep it short.",
    [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello! How can I help?"}, {"role": "user", "content": "Name a colour."}],
    "Summarise the plot of a story about a dragon who learns to bake bread in a small village by the sea.",
    "x",
    [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "Capital of Peru?"}],
]
COMPLETIONS = [
    "4",
    "Why did the cat sit on the computer? To keep an eye on the mouse!",
    "Blue.",
    "A dragon called Ember moves to a fishing village, burns every loaf at first, and finally wins the harvest fair " * 2,
    ["Step one: think.", "Step two: answer y."],
    "Lima.",
]


def _rewards(tiny_dirs):
    from rewardkit import ClassifierReward, LogLikelihoodReward

    return {
        "tiny-classifier": ClassifierReward(str(tiny_dirs["rm"])),
        "tiny-multi": ClassifierReward(str(tiny_dirs["multi"])),
        "tiny-loglik": LogLikelihoodReward(str(tiny_dirs["lm"])),
    }


def _scores(reward, prompts, completions, **settings):
    saved = {k: getattr(reward, k) for k in settings}
    try:
        for k, v in settings.items():
            setattr(reward, k, v)
        out = reward.score(prompts, completions)
        return out.scores, out.vector
    finally:
        for k, v in saved.items():
            setattr(reward, k, v)


def _check_invariance(reward):
    prompts, completions = PROMPTS * 2, COMPLETIONS * 2  # 12 samples, duplicates must agree too
    ref, ref_vec = _scores(reward, prompts, completions, batch_size=1, padding_side="right")
    assert all(s is not None for s in ref)
    assert max(abs(a - b) for a, b in zip(ref[:6], ref[6:])) < TOL
    for batch_size in (1, 7, 64):
        for side in ("left", "right"):
            got, vec = _scores(reward, prompts, completions, batch_size=batch_size, padding_side=side)
            diff = max(abs(a - b) for a, b in zip(ref, got))
            assert diff < TOL, f"{reward.name}: batch_size={batch_size} padding={side} changed a score by {diff:.2e}"
            if ref_vec is not None:
                vdiff = max(abs(a - b) for ra, ga in zip(ref_vec, vec) for a, b in zip(ra, ga))
                assert vdiff < TOL
    # a tiny token budget forces one sample per batch; a huge one puts everything together
    for budget in (16, 100_000):
        got, _ = _scores(reward, prompts, completions, max_tokens_per_batch=budget, batch_size=None)
        assert max(abs(a - b) for a, b in zip(ref, got)) < TOL
    # different batch mates: sample 0 scored next to long samples vs next to short ones
    long_mates, _ = _scores(reward, [prompts[0], prompts[3], prompts[3]], [completions[0], completions[3], completions[3]], batch_size=64)
    short_mates, _ = _scores(reward, [prompts[4], prompts[0]], [completions[4], completions[0]], batch_size=64)
    assert abs(long_mates[0] - ref[0]) < TOL and abs(short_mates[1] - ref[0]) < TOL


@pytest.mark.parametrize("which", ["tiny-classifier", "tiny-multi", "tiny-loglik"])
def test_tiny_model_scores_are_batch_invariant(tiny_dirs, which):
    reward = _rewards(tiny_dirs)[which]
    _check_invariance(reward)


def test_embedded_loglik_is_batch_invariant(embedded_loglik):
    _check_invariance(embedded_loglik)


def test_embedded_classifier_is_batch_invariant(embedded_classifier):
    _check_invariance(embedded_classifier)


def test_invariance_check_detects_a_readout_bug(tiny_dirs, monkeypatch):
    """The check above must be able to fail: a readout that assumes right padding (last token at
    length - 1, ignoring the left-padding offset) reads pad positions under left padding."""
    import rewardkit.rewards._lm as lm
    from rewardkit import ClassifierReward

    real = lm.pad_batch

    def offsets_ignored(*args, **kwargs):
        batch = real(*args, **kwargs)
        batch.offsets = [0] * len(batch.offsets)
        return batch

    reward = ClassifierReward(str(tiny_dirs["rm"]))
    monkeypatch.setattr(lm, "pad_batch", offsets_ignored)
    with pytest.raises(AssertionError):
        _check_invariance(reward)
