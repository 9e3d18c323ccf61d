"""Packed scoring (several sequences per row, a block mask, positions restarting per sequence) must
give the padded path's scores (|diff| < 1e-5, fp32) for the classifier (scalar and multi-objective),
the likelihood reward and the PRM readouts, whatever the budget makes of the packs; a sample's packed
score must not depend on its pack mates."""
from __future__ import annotations

import random
import warnings

import pytest

TOL = 1e-5

_rng = random.Random(0)
_WORDS = "the cat sat on a mat and then ran far away from home to find some bread".split()


def _text(n: int) -> str:
    return " ".join(_rng.choice(_WORDS) for _ in range(n))


#: mixed lengths (about 20 to 330 tokens with the tiny character-level tokenizer): chat and text
#: prompts, short, medium and long completions, pre-split steps, and one sample far longer than the rest
PROMPTS = [
    [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello! How can I help?"}, {"role": "user", "content": "Name a colour."}],
    [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "Capital of Peru?"}],
    "x",
    "Summarise the plot of a story about a dragon who learns to bake bread.",
    "Tell me a story.",
] + [_text(_rng.randint(1, 8)) for _ in range(14)]
COMPLETIONS = [
    "Blue.",
    "Lima.",
    ["Step one: think.", "Step two: answer y."],
    "A dragon called Ember moves to a fishing village, burns every loaf at first, and finally wins the harvest fair. " * 2,
    "Once upon a time " * 10,
] + [_text(_rng.choice([_rng.randint(0, 2), _rng.randint(4, 10), _rng.randint(16, 24)])) for _ in range(14)]
#: budgets that pack differently: the long sample is over the budget (a forward of its own), over
#: half of it (a one-row forward), and under a third of it (everything in three forwards)
BUDGETS = (250, 400, 600, 1000)
#: rows are opened by sequences within half the forward's width; the rest fill gaps
MAX_PADDING = 0.5


def _reward(tiny_dirs, which, **kwargs):
    from rewardkit import ClassifierReward, LogLikelihoodReward

    cls, path = {"classifier": (ClassifierReward, "rm"), "multi": (ClassifierReward, "multi"), "loglik": (LogLikelihoodReward, "lm")}[which]
    return cls(str(tiny_dirs[path]), **kwargs)


def _score(reward, prompts, completions, **settings):
    saved = {k: getattr(reward, k) for k in settings}
    try:
        for k, v in settings.items():
            setattr(reward, k, v)
        return reward.score(prompts, completions)
    finally:
        for k, v in saved.items():
            setattr(reward, k, v)


def _diff(a, b) -> float:
    """Largest |difference| of two outputs' scores, objectives and per-sample log-prob sums."""
    pairs = list(zip(a.scores, b.scores))
    if a.vector is not None:
        pairs += [(x, y) for va, vb in zip(a.vector, b.vector) for x, y in zip(va, vb)]
    if "sum_logprob" in a.extras:
        pairs += list(zip(a.extras["sum_logprob"], b.extras["sum_logprob"]))
    assert all((x is None) == (y is None) for x, y in pairs)
    return max(abs(x - y) for x, y in pairs if x is not None)


def _packed_rows(reward, encoded) -> int:
    """Rows holding more than one sequence in ``reward``'s packed plan for ``encoded``."""
    return sum(len(row) > 1 for rows in reward.plan([len(e) for e in encoded if len(e)], "mask") for row in rows)


@pytest.mark.parametrize("which", ["classifier", "multi", "loglik"])
def test_packed_scores_equal_padded_scores(tiny_dirs, which):
    reward = _reward(tiny_dirs, which)
    prompts, completions = PROMPTS, COMPLETIONS
    lengths = [len(e) for e in reward.encode(prompts, completions)]
    ref = _score(reward, prompts, completions, padding_side="right")
    assert all(s is not None for s in ref.scores)
    assert _diff(ref, _score(reward, prompts, completions, padding_side="left")) < TOL
    longest = max(lengths)
    assert BUDGETS[0] < longest and BUDGETS[1] / 2 < longest <= BUDGETS[1]
    plans, packed = [], []
    for budget, side in zip(BUDGETS, ("left", "right") * 2):  # the side has no effect on packed rows
        got = _score(reward, prompts, completions, packing="on", max_tokens_per_batch=budget, max_padding=MAX_PADDING, padding_side=side)
        assert _diff(ref, got) < TOL, f"{reward.name}: packed at budget {budget} changed a score"
        reward.max_tokens_per_batch, reward.max_padding = budget, MAX_PADDING
        plan = reward.plan(lengths, "mask")
        assert sorted(i for rows in plan for row in rows for i in row) == list(range(len(lengths)))
        packed.append(sum(len(row) > 1 for rows in plan for row in rows))
        plans.append(plan)
    assert all(packed[1:]), f"rows holding several sequences per budget: {packed}; the test would not test packing"
    assert len({repr(p) for p in plans}) == len(plans)  # every budget packs differently


def test_a_packed_score_ignores_its_pack_mates(tiny_dirs):
    reward = _reward(tiny_dirs, "loglik", packing="on", max_tokens_per_batch=100_000, max_padding=MAX_PADDING)
    alone = reward.score(PROMPTS[:1], COMPLETIONS[:1]).scores[0]
    for mates in ([3, 4], [14, 12]):  # the longest two (sample 0 fills the gap the shorter one leaves), two short ones
        idx = mates + [0]
        prompts, completions = [PROMPTS[i] for i in idx], [COMPLETIONS[i] for i in idx]
        plan = reward.plan([len(e) for e in reward.encode(prompts, completions)], "mask")
        assert any(2 in row and len(row) > 1 for rows in plan for row in rows), f"sample 0 got a row of its own: {plan}"
        assert abs(reward.score(prompts, completions).scores[2] - alone) < TOL, f"sample 0's score changed next to samples {mates}"


def test_eager_attention_packs_with_an_additive_mask(tiny_dirs):
    reward = _reward(tiny_dirs, "classifier", attn_implementation="eager", max_tokens_per_batch=600, max_padding=MAX_PADDING)
    assert reward.model.config._attn_implementation == "eager"
    ref = reward.score(PROMPTS, COMPLETIONS)
    assert _diff(ref, _score(reward, PROMPTS, COMPLETIONS, packing="on")) < TOL
    assert _packed_rows(reward, reward.encode(PROMPTS, COMPLETIONS))


def test_varlen_layout_gives_the_same_scores(tiny_dirs, monkeypatch):
    """The flash-attention layout (one unpadded row, bounds as cumulative lengths) on the CPU: sdpa
    ignores ``cu_seq_lens_*`` and transformers rebuilds the block mask from the restarting positions,
    so the readouts over this layout are checked here; the bounds must be the ones flash attention
    would infer from those positions."""
    import torch
    from transformers.modeling_flash_attention_utils import prepare_fa_kwargs_from_position_ids

    import rewardkit.rewards._lm as lm
    from rewardkit.models import pack_batch

    reward = _reward(tiny_dirs, "loglik", max_tokens_per_batch=600)
    ref = reward.score(PROMPTS, COMPLETIONS)
    monkeypatch.setattr(lm, "packed_layout", lambda model: "varlen")
    assert _diff(ref, _score(reward, PROMPTS, COMPLETIONS, packing="auto")) < TOL
    batch = pack_batch([[[5, 6, 7], [8]], [[9, 10]]], [0, 1, 2], 0, "varlen")
    (cu_q, cu_k), (max_q, max_k) = prepare_fa_kwargs_from_position_ids(batch.position_ids)
    assert batch.attention_kwargs["cu_seq_lens_q"].tolist() == cu_q.tolist() == [0, 3, 4, 6]
    assert torch.equal(batch.attention_kwargs["cu_seq_lens_k"], cu_k)
    assert batch.attention_kwargs["max_length_q"] == int(max_q) == 3


def test_the_check_catches_a_leaking_block_mask(tiny_dirs, monkeypatch):
    """Must be able to fail: a mask letting a sequence see the ones before it in its row changes scores."""
    import rewardkit.models.batching as batching

    reward = _reward(tiny_dirs, "loglik")
    ref = reward.score(PROMPTS, COMPLETIONS)
    real = batching.block_mask
    monkeypatch.setattr(batching, "block_mask", lambda seg, sees, dtype=None: real(seg, lambda q, k: q >= 0, dtype))
    assert _diff(ref, _score(reward, PROMPTS, COMPLETIONS, packing="on", max_tokens_per_batch=600, max_padding=MAX_PADDING)) > 1e-3


def test_prm_readouts_pack(tiny_dirs, tmp_path):
    """Step-end readouts (value-head PRM, one pass and per prefix) and the likelihood-head PRM's
    token statistics read the same values from packed rows."""
    import json

    from rewardkit.rewards.process import LikelihoodPRM, ProcessReward

    steps = [c if isinstance(c, list) else c.split(". ") for c in COMPLETIONS]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prm = ProcessReward(str(tiny_dirs["rm"]), max_tokens_per_batch=600, max_padding=MAX_PADDING)
    assert _packed_rows(prm, prm.encode_steps(PROMPTS, steps)[1])
    ref = prm.score(PROMPTS, steps).steps
    packed = _score(prm, PROMPTS, steps, packing="on").steps
    assert max(abs(a - b) for x, y in zip(ref, packed) for a, b in zip(x, y)) < TOL
    ref_prefix = prm.score_prefixes(PROMPTS, steps)
    prm.packing = "on"
    packed_prefix = prm.score_prefixes(PROMPTS, steps)
    assert max(abs(a - b) for x, y in zip(ref_prefix, packed_prefix) for a, b in zip(x, y)) < TOL

    head = {"features": ["mean_lp", "min_lp"], "weights": [1.0, -0.5], "mean": [0.0, 0.0], "std": [1.0, 1.0], "bias": 0.1,
            "model": str(tiny_dirs["lm"])}
    (tmp_path / "prm_head.json").write_text(json.dumps(head))
    lik = LikelihoodPRM(str(tmp_path / "prm_head.json"), max_tokens_per_batch=600, max_padding=MAX_PADDING)
    ref = lik.score(PROMPTS, steps).steps
    lik.lm.packing = "on"
    packed = lik.score(PROMPTS, steps).steps
    assert max(abs(a - b) for x, y in zip(ref, packed) for a, b in zip(x, y)) < TOL


def test_packing_options_are_checked(tiny_dirs, monkeypatch):
    import rewardkit.rewards._lm as lm

    with pytest.raises(ValueError, match="packing must be"):
        _reward(tiny_dirs, "classifier", packing="yes")
    monkeypatch.setattr(lm, "packed_layout", lambda model: None)  # an attention that takes no block mask
    with pytest.raises(ValueError, match="packing='on' needs sdpa, eager or flash attention"):
        _reward(tiny_dirs, "classifier", packing="on")
    assert _reward(tiny_dirs, "classifier", packing="auto").layout is None  # auto pads instead
