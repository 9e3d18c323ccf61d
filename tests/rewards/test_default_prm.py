"""The packaged default PRM (LoRA adapter + value head over the embedded model): loads by spec,
one score per step, and its one-pass step scores equal per-prefix scoring on the real model."""
from __future__ import annotations

import warnings


def test_prm_default_loads_and_reads_every_step(embedded_available):
    from rewardkit.specs import load_reward

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prm = load_reward("prm:default", batch_size=2, padding_side="left")
    assert prm.name == "prm:default"
    prompts = ["Ava has 3 apples and buys 2 bags of 4. How many now?"] * 2
    completions = [["Ava buys 2 * 4 = 8 apples.", "Now she has 3 + 8 = 11 apples.", "The answer is 11."],
                   "Ava buys 2 * 4 = 9 apples.\nNow she has 3 + 9 = 12 apples.\nThe answer is 12."]
    out = prm.score(prompts, completions)
    assert [len(s) for s in out.steps] == [3, 3] and all(0 < x < 1 for s in out.steps for x in s)
    per = prm.score_prefixes(prompts, completions)
    assert max(abs(a - b) for x, y in zip(out.steps, per) for a, b in zip(x, y)) < 1e-4
