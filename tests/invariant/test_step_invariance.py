"""Step scores must not change with batch size, padding side, token budget or batch mates, and the
one-pass step scores must equal scoring each step prefix on its own (|diff| < 1e-5, fp32)."""
from __future__ import annotations

import warnings

TOL = 1e-5

PROMPTS = [
    "What is 2+3?",
    [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "Add 1 and 1, then double it."}],
    "Ava has 12 apples and buys 3 bags of 4. How many now?",
    "x",
]
COMPLETIONS = [
    ["2+3 = 5.", "The answer is 5."],
    "1+1 = 2.\n2*2 = 4.\nThe answer is 4.",
    ["Ava buys 3 * 4 = 12 apples.", "Now she has 12 + 12 = 24 apples.", "The answer is 24."],
    ["y"],
]


def _prm(tiny_dirs):
    from rewardkit.rewards.process import ProcessReward

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ProcessReward(str(tiny_dirs["rm"]))


def _steps(reward, prompts, completions, **settings):
    saved = {k: getattr(reward, k) for k in settings}
    try:
        for k, v in settings.items():
            setattr(reward, k, v)
        return reward.score(prompts, completions).steps
    finally:
        for k, v in saved.items():
            setattr(reward, k, v)


def _maxdiff(a, b):
    assert [len(x) for x in a] == [len(y) for y in b]
    return max(abs(p - q) for x, y in zip(a, b) for p, q in zip(x, y))


def test_step_scores_ignore_batching_and_padding(tiny_dirs):
    prm = _prm(tiny_dirs)
    prompts, completions = PROMPTS * 2, COMPLETIONS * 2
    ref = _steps(prm, prompts, completions, batch_size=1, padding_side="right")
    assert _maxdiff(ref[:4], ref[4:]) < TOL
    for batch_size in (1, 3, 64):
        for side in ("left", "right"):
            got = _steps(prm, prompts, completions, batch_size=batch_size, padding_side=side)
            assert _maxdiff(ref, got) < TOL, (batch_size, side)
    got = _steps(prm, prompts, completions, max_tokens_per_batch=64, padding_side="left")
    assert _maxdiff(ref, got) < TOL


def test_step_scores_ignore_batch_mates(tiny_dirs):
    prm = _prm(tiny_dirs)
    alone = [_steps(prm, [p], [c])[0] for p, c in zip(PROMPTS, COMPLETIONS)]
    mates = ["A much longer unrelated prompt " * 5, "z"]
    mixed = _steps(prm, mates + PROMPTS, [["filler step " * 10, "more"], ["q"]] + COMPLETIONS, batch_size=64, padding_side="left")
    assert _maxdiff(alone, mixed[2:]) < TOL


def test_one_pass_equals_per_prefix_scoring(tiny_dirs):
    prm = _prm(tiny_dirs)
    one = prm.score(PROMPTS, COMPLETIONS).steps
    per = prm.score_prefixes(PROMPTS, COMPLETIONS)
    assert _maxdiff(one, per) < TOL
