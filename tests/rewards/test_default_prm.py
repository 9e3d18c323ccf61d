"""The packaged PRMs load by spec and read every step in one pass: ``prm:default`` (the likelihood
head over the embedded model) ranks an arithmetic slip below the correct step, and the value-head
``prm:default-value`` gives one-pass step scores equal to per-prefix scoring on the real model."""
from __future__ import annotations

import warnings

PROMPTS = ["Ava has 3 apples and buys 2 bags of 4. How many now?"] * 2
COMPLETIONS = [["Ava buys 2 * 4 = 8 apples.", "Now she has 3 + 8 = 11 apples.", "The answer is 11."],
               "Ava buys 2 * 4 = 9 apples.\nNow she has 3 + 9 = 12 apples.\nThe answer is 12."]


def test_prm_default_is_the_likelihood_head_and_finds_the_slip(embedded_available):
    from rewardkit.rewards.process.likelihood import LikelihoodPRM
    from rewardkit.specs import load_reward

    prm = load_reward("prm:default", batch_size=2, padding_side="left")
    assert isinstance(prm, LikelihoodPRM) and prm.name == "prm:default"
    out = prm.score(PROMPTS, COMPLETIONS)
    assert [len(s) for s in out.steps] == [3, 3] and all(0 < x < 1 for s in out.steps for x in s)
    assert out.steps[1][0] < out.steps[0][0] and out.scores[1] < out.scores[0]
    alone = prm.score(PROMPTS[:1], [COMPLETIONS[0][:2]]).steps[0]
    assert max(abs(a - b) for a, b in zip(alone, out.steps[0][:2])) < 1e-6


def test_prm_default_value_loads_and_reads_every_step(embedded_available):
    from rewardkit.specs import load_reward

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prm = load_reward("prm:default-value", batch_size=2, padding_side="left")
    assert prm.name == "prm:default-value"
    out = prm.score(PROMPTS, COMPLETIONS)
    assert [len(s) for s in out.steps] == [3, 3] and all(0 < x < 1 for s in out.steps for x in s)
    per = prm.score_prefixes(PROMPTS, COMPLETIONS)
    assert max(abs(a - b) for x, y in zip(out.steps, per) for a, b in zip(x, y)) < 1e-4


def test_load_prm_passes_every_reward_option_and_dispatches_by_what_is_on_disk(tiny_dirs, tmp_path):
    import argparse
    import inspect

    from rewardkit.cli.common import reward_options
    from rewardkit.rewards.process import LikelihoodPRM, ProcessReward, load_prm
    from rewardkit.specs import _accepted

    # every option the CLI passes to model-backed rewards reaches the PRM (none silently dropped)
    named = {n for n, p in inspect.signature(load_prm).parameters.items() if p.kind is p.KEYWORD_ONLY}
    cli = set(reward_options(argparse.Namespace(**{k: 1 for k in ("max_tokens_per_batch", "batch_size", "max_padding", "packing", "max_length",
                                                                     "truncation_side", "chat_template", "device", "seed")})))
    assert cli <= named and {"padding_side", "system_prompt"} <= named
    assert set(_accepted(load_prm, {k: 1 for k in cli | {"padding_side"}})) == cli | {"padding_side"}
    prm = load_prm(str(tiny_dirs["rm"]), max_length=64, padding_side="left")
    assert isinstance(prm, ProcessReward) and prm.max_length == 64 and prm.padding_side == "left"
    import copy
    import json

    assert type(copy.copy(prm)) is ProcessReward  # no __new__ dispatch left to trip copies
    head = {"features": ["mean_lp"], "weights": [1.0], "mean": [0.0], "std": [1.0], "bias": 0.0, "model": str(tiny_dirs["lm"])}
    (tmp_path / "prm_head.json").write_text(json.dumps(head))
    assert isinstance(load_prm(str(tmp_path)), LikelihoodPRM) and isinstance(load_prm(str(tmp_path / "prm_head.json")), LikelihoodPRM)
