"""The packaged default reward model (LoRA adapter + head over the embedded model)."""
from __future__ import annotations

import warnings

from rewardkit import load_reward
from rewardkit.data.synth import generate
from rewardkit.assets import packaged


def test_default_spec_is_the_packaged_trained_reward_model(embedded_available):
    path = packaged("default_rm")
    assert path is not None and (path / "adapter_model.safetensors").stat().st_size < 8_000_000  # small enough to ship
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # no "head initialised randomly" warning: the head is trained
        rm = load_reward("default")
    assert rm.name == "default" and rm.num_labels == 1
    pairs = generate("test", 10, subsets=("refusal", "length-trap"))
    out = rm.score([p.prompt for p in pairs] * 2, [p.chosen for p in pairs] + [p.rejected for p in pairs])
    n = len(pairs)
    accuracy = sum(c > r for c, r in zip(out.scores[:n], out.scores[n:])) / n
    assert accuracy >= 0.9, accuracy  # the untrained head is at chance here
    assert out.scores == rm.score([p.prompt for p in pairs] * 2, [p.chosen for p in pairs] + [p.rejected for p in pairs]).scores
