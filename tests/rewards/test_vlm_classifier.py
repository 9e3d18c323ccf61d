"""Vision-language reward models on a tiny random Idefics3 built in code (SmolVLM's architecture; its
scores mean nothing): what does not depend on the weights is pinned: a sample's score does not move
with batch size, batch mates (with and without images, images of other sizes) or padding side; the
pixels reach the score; text-only samples score; too-long and unreadable samples are None with the
reason; the spec kind builds it."""
from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("PIL.Image", reason="images need Pillow: pip install 'rewardkit[images]'")
sys.path.insert(0, str(Path(__file__).resolve().parent))
from vlm_helpers import png_part, save_tiny_idefics3  # noqa: E402
from rewardkit.rewards.vlm_classifier import VLMClassifierReward  # noqa: E402
from rewardkit.specs import load_reward  # noqa: E402


def solid(rgb, size=(24, 24)) -> np.ndarray:
    return np.broadcast_to(np.array(rgb, dtype=np.uint8), (*size, 3)).copy()


def ask(image: dict | None, text: str = "What colour is this?") -> list[dict]:
    return [{"role": "user", "content": ([image] if image else []) + [{"type": "text", "text": text}]}]


@pytest.fixture(scope="module")
def tiny_vlm(tmp_path_factory):
    return save_tiny_idefics3(tmp_path_factory.mktemp("idefics3") / "tiny")


@pytest.fixture(scope="module")
def reward(tiny_vlm):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the random head's warning (tested below)
        return VLMClassifierReward(str(tiny_vlm), seed=3)


RNG = np.random.default_rng(0)
SAMPLES = [
    (ask(png_part(solid((220, 20, 20)))), "red"),
    (ask(png_part(RNG.integers(0, 255, (50, 40, 3), dtype=np.uint8))), "a noisy picture, mostly grey"),  # split into crops
    ("What colour is the sky?", "blue"),  # text only
    (ask(png_part(solid((20, 20, 220), (16, 30)))), "blue, I think"),
]


def test_scores_do_not_depend_on_batch_size_mates_or_padding_side(reward, tiny_vlm):
    prompts, completions = [s[0] for s in SAMPLES], [s[1] for s in SAMPLES]
    alone = [reward.score([p], [c]).scores[0] for p, c in SAMPLES]
    assert all(isinstance(s, float) for s in alone)
    together = reward.score(prompts, completions)
    assert together.extras["num_images"] == [1, 1, 0, 1]
    np.testing.assert_allclose(together.scores, alone, atol=1e-5, rtol=0)
    order = [3, 0, 2, 1]  # other batch mates, other order
    np.testing.assert_allclose(reward.score([prompts[i] for i in order], [completions[i] for i in order]).scores,
                               [alone[i] for i in order], atol=1e-5, rtol=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        left = VLMClassifierReward(str(tiny_vlm), seed=3, padding_side="left", batch_size=3)
    np.testing.assert_allclose(left.score(prompts, completions).scores, alone, atol=1e-5, rtol=0)
    assert len(set(np.round(alone, 6))) == 4, "distinct samples should not collapse onto one score"


def test_the_pixels_reach_the_score(reward):
    red = reward.score([ask(png_part(solid((220, 20, 20))))], ["red"]).scores[0]
    blue = reward.score([ask(png_part(solid((20, 20, 220))))], ["red"]).scores[0]
    assert abs(red - blue) > 1e-4
    # the images column fills the prompt as an inline part does
    column = reward.score([ask(None)], ["red"], images=[[png_part(solid((220, 20, 20)))["base64"]]]).scores[0]
    assert column == pytest.approx(red, abs=1e-6)


def test_unscorable_samples_are_none_with_the_reason(tiny_vlm):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        short = VLMClassifierReward(str(tiny_vlm), max_length=40)
    out = short.score([ask(png_part(solid((1, 2, 3)))), "hi", ask({"type": "image", "path": "/nonexistent/x.png"})], ["red", "ok", "red"])
    assert out.scores[0] is None and "exceed max_length=40" in out.extras["reason"][0] and out.extras["truncated"][0]
    assert isinstance(out.scores[1], float) and out.extras["reason"][1] is None
    assert out.scores[2] is None and "x.png" in out.extras["reason"][2]


def test_spec_kind_and_random_head_warning(tiny_vlm):
    with pytest.warns(UserWarning, match="random head"):
        r = load_reward(f"vlm-classifier:{tiny_vlm}")
    assert r.reads_images and r.name == f"vlm-classifier:{tiny_vlm}"
