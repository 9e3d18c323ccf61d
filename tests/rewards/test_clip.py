"""Image-text rewards on tiny random CLIP and SigLIP models built from the real architecture configs, on
real photographs (scikit-image). Random weights make the scores meaningless, so these tests pin what
does not depend on the weights: the preprocessing against a hand computation, every metric against a
hand computation from the model's own ``get_image_features`` / ``get_text_features`` (or SigLIP's own
forward), which text meets which image, batch invariance, truncation, the head's save/load round trip,
and that training a head moves held-out accuracy on a synthetic colour task."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

Image = pytest.importorskip("PIL.Image", reason="images need Pillow: pip install 'rewardkit[images]'")
pytest.importorskip("skimage.data", reason="the test photographs come from scikit-image")

import torch  # noqa: E402

from clip_helpers import TEXT_POSITIONS, photos, save_tiny_clip, save_tiny_siglip, tinted  # noqa: E402
from rewardkit.images import ImageRef  # noqa: E402
from rewardkit.models.dual_encoder import DualEncoder, EmbeddingHead  # noqa: E402
from rewardkit.models.loading import ModelNotFoundError  # noqa: E402
from rewardkit.rewards.clip import ClipReward  # noqa: E402
from rewardkit.specs import RewardSpecError, load_reward  # noqa: E402

CLIP_MEAN, CLIP_STD = np.array([0.48145466, 0.4578275, 0.40821073]), np.array([0.26862954, 0.26130258, 0.27577711])


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("clip")
    return {"clip": save_tiny_clip(root / "clip"), "siglip": save_tiny_siglip(root / "siglip"), "photos": photos(root)}


@pytest.fixture(scope="module")
def encoder(tiny):
    return DualEncoder(str(tiny["clip"]))


def part(path) -> list[dict]:
    return [{"type": "image", "path": str(path)}]


def hand_pixels(path: Path, *, resize_short: int | None, square: int | None, crop: int | None, mean, std) -> torch.Tensor:
    """What the checkpoint's preprocessing says, done by hand with Pillow and NumPy."""
    im = Image.open(path).convert("RGB")
    w, h = im.size
    if resize_short:
        short, long = (w, h) if w <= h else (h, w)
        new_long = int(resize_short * long / short)
        im = im.resize((resize_short, new_long) if w <= h else (new_long, resize_short), Image.BICUBIC)
    if square:
        im = im.resize((square, square), Image.BICUBIC)
    x = np.asarray(im).astype(np.float64)
    if crop:
        top, left = (x.shape[0] - crop) // 2, (x.shape[1] - crop) // 2
        x = x[top : top + crop, left : left + crop]
    x = (x / 255.0 - mean) / std
    return torch.tensor(x.transpose(2, 0, 1), dtype=torch.float32)


def hand_text(model, tokenizer, text: str, *, siglip_length: int | None = None) -> torch.Tensor:
    enc = tokenizer([text], return_tensors="pt", truncation=True, max_length=siglip_length or TEXT_POSITIONS)
    ids = enc["input_ids"]
    with torch.no_grad():
        if siglip_length:
            ids = torch.nn.functional.pad(ids, (0, siglip_length - ids.shape[1]), value=tokenizer.pad_token_id)
            out = model.get_text_features(input_ids=ids)
        else:
            out = model.get_text_features(input_ids=ids, attention_mask=enc["attention_mask"])
    v = (out if isinstance(out, torch.Tensor) else out.pooler_output)[0]
    return v / v.norm()


def hand_image(model, pixels: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        out = model.get_image_features(pixel_values=pixels[None])
    v = (out if isinstance(out, torch.Tensor) else out.pooler_output)[0]
    return v / v.norm()


# ------------------------------------------------------------------ preprocessing

def test_clip_preprocessing_is_resize_shortest_side_center_crop_normalize(tiny, encoder):
    for name in ("coffee", "camera", "rocket"):  # 400x600 RGB, 512x512 greyscale, 427x640 RGB
        path = tiny["photos"][name]
        got = encoder.pixel_values([Image.open(path)])[0]
        want = hand_pixels(path, resize_short=32, square=None, crop=32, mean=CLIP_MEAN, std=CLIP_STD)
        assert got.shape == (3, 32, 32)
        assert torch.allclose(got, want, atol=1e-5), (name, (got - want).abs().max())
    assert type(encoder.image_processor).__name__.endswith("Pil")  # the Pillow/NumPy backend, torchvision or not


def test_siglip_preprocessing_is_a_square_resize(tiny):
    enc = DualEncoder(str(tiny["siglip"]))
    path = tiny["photos"]["chelsea"]
    got = enc.pixel_values([Image.open(path)])[0]
    want = hand_pixels(path, resize_short=None, square=32, crop=None, mean=np.array([0.5] * 3), std=np.array([0.5] * 3))
    assert torch.allclose(got, want, atol=1e-5)


# ------------------------------------------------------------------ metrics against hand computations

def test_clipscore_cosine_and_logit_match_the_models_own_features(tiny, encoder):
    p = tiny["photos"]
    prompts = ["an astronaut", "a cup of coffee on a table", "a cat", "a rocket on the launch pad"]
    images = [p["astronaut"], p["coffee"], p["chelsea"], p["rocket"]]
    model, tok = encoder.model, encoder.tokenizer
    cos = []
    for text, path in zip(prompts, images):
        pixels = hand_pixels(path, resize_short=32, square=None, crop=32, mean=CLIP_MEAN, std=CLIP_STD)
        cos.append(float(hand_image(model, pixels) @ hand_text(model, tok, text)))
    completions = [part(x) for x in images]
    for metric, expected in {"cosine": cos, "clipscore": [2.5 * max(c, 0.0) for c in cos],
                             "logit": [float(model.logit_scale.detach().exp()) * c for c in cos]}.items():
        out = ClipReward(encoder, metric=metric).score(prompts, completions)
        assert out.scores == pytest.approx(expected, abs=1e-5), metric
        assert out.extras["cosine"] == pytest.approx(cos, abs=1e-5)
    assert ClipReward(encoder, w=100.0).score(prompts, completions).scores == pytest.approx([100 * max(c, 0) for c in cos], abs=1e-4)
    assert ClipReward(encoder, prefix="A photo depicts ").score(prompts[:1], completions[:1]).extras["cosine"][0] == pytest.approx(
        float(hand_image(model, hand_pixels(images[0], resize_short=32, square=None, crop=32, mean=CLIP_MEAN, std=CLIP_STD))
              @ hand_text(model, tok, "A photo depicts an astronaut")), abs=1e-5)


def test_siglip_probability_is_its_own_forward_pass(tiny):
    from transformers import SiglipModel

    reward = ClipReward(str(tiny["siglip"]), metric="probability")
    p = tiny["photos"]
    prompts, images = ["a cat", "an astronaut"], [p["chelsea"], p["astronaut"]]
    model = SiglipModel.from_pretrained(tiny["siglip"]).eval()
    tok = reward.encoder.tokenizer
    want = []
    for text, path in zip(prompts, images):
        pixels = hand_pixels(path, resize_short=None, square=32, crop=None, mean=np.array([0.5] * 3), std=np.array([0.5] * 3))
        ids = tok([text], return_tensors="pt")["input_ids"]
        ids = torch.nn.functional.pad(ids, (0, 16 - ids.shape[1]), value=tok.pad_token_id)  # SigLIP: padded to the full length
        with torch.no_grad():
            logit = model(input_ids=ids, pixel_values=pixels[None]).logits_per_image[0, 0]
        want.append(float(torch.sigmoid(logit)))
    assert reward.score(prompts, [part(x) for x in images]).scores == pytest.approx(want, abs=1e-5)
    with pytest.raises(ValueError, match="sigmoid-trained"):
        ClipReward(str(tiny["clip"]), metric="probability")


def test_vlm_rm_goal_baseline_projection_matches_the_paper_formula(tiny, encoder):
    """R = 1 - |(s - g) M|^2 / 2, M = alpha * P + (1 - alpha) * I, P the projection on d = g - b (D x D, by hand)."""
    p = tiny["photos"]
    model, tok = encoder.model, encoder.tokenizer
    goal, baseline = "a humanoid robot kneeling", "a humanoid robot"
    b = hand_text(model, tok, baseline).double()
    g = hand_text(model, tok, goal).double()
    d = (g - b)[None]
    P = d.T @ d / d.norm() ** 2
    for alpha in (0.0, 0.25, 1.0):
        M = alpha * P + (1 - alpha) * torch.eye(P.shape[0], dtype=torch.float64)
        reward = load_reward(f"clip:{tiny['clip']}(baseline='{baseline}', alpha={alpha})")
        assert reward.metric == "goal" and reward.alpha == alpha
        paths = [p["astronaut"], p["rocket"], p["camera"]]
        want = []
        for path in paths:
            s = hand_image(model, hand_pixels(path, resize_short=32, square=None, crop=32, mean=CLIP_MEAN, std=CLIP_STD)).double()
            want.append(float(1 - ((s - g) @ M).norm() ** 2 / 2))
            if alpha == 0.0:  # no projection: the cosine with the goal (unit vectors)
                assert want[-1] == pytest.approx(float(s @ g), abs=1e-6)
        assert reward.score([goal] * 3, [part(x) for x in paths]).scores == pytest.approx(want, abs=1e-5)
    same = ClipReward(encoder, baseline=goal).score([goal], [part(p["astronaut"])])
    assert same.scores == [None] and "baseline embed alike" in same.extras["reason"][0]


# ------------------------------------------------------------------ which text meets which image

def test_generated_image_meets_the_prompt_and_a_caption_meets_the_prompt_image(tiny, encoder):
    p = tiny["photos"]
    reward = ClipReward(encoder, metric="cosine")
    generated = reward.score(["a cat on a sofa"], [part(p["chelsea"])]).scores[0]
    chat = [{"role": "system", "content": "You draw."}, {"role": "user", "content": "ignored earlier turn"},
            {"role": "assistant", "content": "ok"}, {"role": "user", "content": [{"type": "text", "text": "a cat on a sofa"}]}]
    captioned = [{"role": "user", "content": [{"type": "image", "path": str(p["chelsea"])}, {"type": "text", "text": "Describe it."}]}]
    out = reward.score([chat, captioned, "Describe it.", "Describe it."],
                       [part(p["chelsea"]), "a cat on a sofa", "a cat on a sofa", "a cat on a sofa"],
                       images=[None, None, [str(p["chelsea"])], None])
    # the chat prompt's last user message; the caption (completion) against the prompt's image; the images column
    assert out.scores[:3] == pytest.approx([generated] * 3, abs=1e-6)
    assert out.scores[3] is None and "no image" in out.extras["reason"][3]


def test_samples_clip_cannot_read_are_none_with_the_reason(tiny, encoder, tmp_path):
    p = tiny["photos"]
    both = [{"role": "user", "content": [{"type": "image", "path": str(p["camera"])}, {"type": "text", "text": "edit it"}]}]
    out = ClipReward(encoder).score(
        ["a cat", both, "two cats", "   ", "a cat", "a cat"],
        [part(p["chelsea"]), part(p["chelsea"]), part(p["chelsea"]) + part(p["coffee"]), part(p["chelsea"]),
         part(tmp_path / "missing.png"), "a cat"])
    reasons = out.extras["reason"]
    assert out.scores[0] is not None and reasons[0] is None
    assert out.scores[1:] == [None] * 5
    assert "both the prompt and the completion" in reasons[1]
    assert "2 images" in reasons[2]
    assert "no text" in reasons[3]
    assert "missing.png" in reasons[4] and "no such file" in reasons[4]
    assert "no image" in reasons[5]


# ------------------------------------------------------------------ batching, truncation

def test_scores_do_not_depend_on_batch_size_order_or_batch_mates(tiny):
    p = tiny["photos"]
    texts = ["a cat", "an astronaut holding a flag next to the moon lander", "coffee", "a rocket", "a man with a camera", "a cat"]
    images = [p["chelsea"], p["astronaut"], p["coffee"], p["rocket"], p["camera"], p["coffee"]]
    base = ClipReward(str(tiny["clip"]), metric="cosine")
    whole = base.score(texts, [part(x) for x in images]).scores
    alone = [base.score([t], [part(x)]).scores[0] for t, x in zip(texts, images)]
    assert alone == pytest.approx(whole, abs=1e-5)
    for budget, rows in ((17, None), (40, 2), (10_000, 3)):  # one image a batch; two texts; three rows
        small = ClipReward(base.encoder, metric="cosine")
        small.encoder.max_tokens_per_batch, small.encoder.batch_size = budget, rows
        order = [4, 0, 5, 2, 1, 3]
        got = small.score([texts[i] for i in order], [part(images[i]) for i in order]).scores
        assert [got[order.index(i)] for i in range(6)] == pytest.approx(whole, abs=1e-5)
    base.encoder.max_tokens_per_batch, base.encoder.batch_size = 8192, None
    siglip = ClipReward(str(tiny["siglip"]), metric="cosine")
    together = siglip.score(texts, [part(x) for x in images]).scores
    assert [siglip.score([t], [part(x)]).scores[0] for t, x in zip(texts, images)] == pytest.approx(together, abs=1e-5)


def test_long_texts_are_truncated_at_the_text_towers_positions_and_reported(tiny, encoder):
    p = tiny["photos"]
    long = "a very long description of an astronaut " * 3  # > 24 positions
    out = ClipReward(encoder, metric="cosine").score([long, "short"], [part(p["astronaut"]), part(p["astronaut"])])
    assert out.extras["truncated"] == [True, False]
    assert out.extras["num_tokens"] == [len(long) + 2, 7]
    # what was scored: BOS, the first 22 characters, EOS (the tokenizer keeps the end token)
    kept = long[: TEXT_POSITIONS - 2]
    img = hand_image(encoder.model, hand_pixels(p["astronaut"], resize_short=32, square=None, crop=32, mean=CLIP_MEAN, std=CLIP_STD))
    assert out.scores[0] == pytest.approx(float(img @ hand_text(encoder.model, encoder.tokenizer, kept)), abs=1e-5)
    assert ClipReward(str(tiny["clip"]), max_length=10, metric="cosine").score([long], [part(p["astronaut"])]).scores[0] == pytest.approx(
        float(img @ hand_text(encoder.model, encoder.tokenizer, long[:8])), abs=1e-5)
    with pytest.raises(ValueError, match="outside the text tower's 1..24 positions"):
        DualEncoder(str(tiny["clip"]), max_length=100)


def test_a_tokenizer_without_the_end_token_is_refused_at_load(tmp_path):
    path = save_tiny_clip(tmp_path / "no-eos", eos=False)
    with pytest.raises(ValueError, match="end token"):
        DualEncoder(str(path))


# ------------------------------------------------------------------ specs

def test_specs_take_options_and_name_bad_ones(tiny):
    r = load_reward(f"clip:{tiny['clip']}(metric=logit)")
    assert r.metric == "logit" and r.name == f"clip:{tiny['clip']}(metric=logit)"
    assert load_reward(f"clip:{tiny['clip']}").metric == "clipscore"
    with pytest.raises(RewardSpecError, match="unexpected keyword argument 'alfa'"):
        load_reward(f"clip:{tiny['clip']}(baseline=x, alfa=1)")
    with pytest.raises(ValueError, match="metric=goal needs baseline"):
        load_reward(f"clip:{tiny['clip']}(metric=goal)")
    with pytest.raises(ValueError, match="alpha must be in"):
        load_reward(f"clip:{tiny['clip']}(baseline=x, alpha=2)")
    with pytest.raises(ModelNotFoundError, match="not a dual encoder"):
        DualEncoder("default")


# ------------------------------------------------------------------ heads

def test_head_save_load_round_trip_and_clip_head_spec(tiny, encoder, tmp_path):
    p = tiny["photos"]
    head = EmbeddingHead.new(encoder.dim, ("image", "product"), hidden=(8,), activation="gelu", backbone=str(tiny["clip"]), seed=3)
    prompts, comps = ["a cat", "coffee", "a rocket"], [part(p["chelsea"]), part(p["coffee"]), part(p["rocket"])]
    direct = ClipReward(encoder, head=head).score(prompts, comps)
    # by hand: the MLP over [image, image * text]
    emb_i = encoder.embed_images([ImageRef.parse(c[0]) for c in comps]).vectors
    emb_t = encoder.embed_texts(prompts).vectors
    with torch.no_grad():
        want = head.module(torch.cat([emb_i, emb_i * emb_t], -1)).squeeze(-1).tolist()
    assert direct.scores == pytest.approx(want, abs=1e-6)
    head.save(tmp_path / "head")
    loaded = load_reward(f"clip-head:{tmp_path / 'head'}")
    assert loaded.name == f"clip-head:{tmp_path / 'head'}"
    assert loaded.score(prompts, comps).scores == pytest.approx(direct.scores, abs=1e-6)
    assert json.loads((tmp_path / "head" / "head.json").read_text())["features"] == ["image", "product"]
    wrong = EmbeddingHead.new(encoder.dim + 1)
    with pytest.raises(ValueError, match="17-dim embeddings"):
        ClipReward(encoder, head=wrong)


def test_training_a_head_moves_heldout_accuracy_on_a_colour_task(tiny, encoder, tmp_path):
    """Prompts ask for a red or a blue picture; the chosen image has that tint. Held out: other photographs."""
    from skimage import data

    from rewardkit.data import load_dataset
    from rewardkit.train.clip_head import ClipHeadConfig, train_clip_head
    from rewardkit.types import PairRecord

    names = ["astronaut", "coffee", "chelsea", "rocket", "camera", "cat", "immunohistochemistry", "horse", "moon", "page", "text", "brick"]
    pics = {}
    for name in names:
        array = getattr(data, name)()
        if array.dtype == bool:
            array = array.astype(np.uint8) * 255
        for colour in ("red", "blue"):
            pics[name, colour] = tmp_path / f"{name}-{colour}.png"
            Image.fromarray(tinted(array, colour)).resize((48, 40)).save(pics[name, colour])
    prompts = {"red": ["a red picture", "something red"], "blue": ["a blue picture", "something blue"]}

    def pairs(photo_names):  # TRL-style preference rows whose completions are images, read by the pairwise reader
        rows = [{"id": f"{name}-{prompt}", "prompt": prompt, "chosen": part(pics[name, want]), "rejected": part(pics[name, other])}
                for name in photo_names for want, other in (("red", "blue"), ("blue", "red")) for prompt in prompts[want]]
        path = tmp_path / f"pairs-{photo_names[0]}.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        records = load_dataset(path).records
        assert all(isinstance(r, PairRecord) for r in records)
        return records

    # an MLP over [image, text, image * text]: random towers share no "red" direction between two wordings,
    # so a linear head on image * text cannot fit both; a hidden layer can
    cfg = ClipHeadConfig(model=str(tiny["clip"]), output_dir=str(tmp_path / "run"), features=("image", "text", "product"),
                         hidden=(32,), learning_rate=0.05, epochs=60, pairs_per_step=16, seed=0)
    results = train_clip_head(pairs(names[:8]), cfg, eval_records=pairs(names[8:]), encoder=encoder)
    before, after = results["before"]["heldout"]["accuracy"], results["after"]["heldout"]["accuracy"]
    assert results["after"]["heldout"]["pairs"] == 16 and results["after"]["train"]["pairs"] == 32
    assert after >= 0.9 and after - before >= 0.3, (before, after)
    assert results["after"]["train"]["loss"] < results["before"]["train"]["loss"]
    # the exported head scores the held-out pairs the way training measured them
    reward = load_reward(f"clip-head:{tmp_path / 'run' / 'head'}")
    held = pairs(names[8:])
    out = reward.score([r.prompt for r in held] * 2, [r.chosen for r in held] + [r.rejected for r in held]).scores
    acc = np.mean([(c > r) + 0.5 * (c == r) for c, r in zip(out[:16], out[16:])])
    assert acc == pytest.approx(after)
    saved = json.loads((tmp_path / "run" / "train_results.json").read_text())
    assert saved["seed"] == 0 and len(saved["history"]) == 60


# ------------------------------------------------------------------ eval end to end

def test_rewardkit_eval_on_best_of_n_image_rows(tiny, tmp_path):
    p = tiny["photos"]
    rows = [
        {"id": "cat", "prompt": "a cat", "completions": [part(p["chelsea"]), part(p["coffee"]), part(p["rocket"])], "num_correct": 1},
        {"id": "moon", "prompt": "an astronaut", "chosen": [part(p["astronaut"])], "rejected": [part(p["camera"]), part(p["coffee"])],
         "subset": "space"},
        {"id": "text", "prompt": "a cat", "completions": ["a text answer", part(p["chelsea"])], "num_correct": 1},
    ]
    data = tmp_path / "bon.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "eval"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.run([sys.executable, "-m", "rewardkit.cli.main", "eval", "--reward", f"clip:{tiny['clip']}(metric=cosine)",
                           "--data", str(data), "--out", str(out), "--bootstrap", "50"], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    scored = {r["id"]: r for r in map(json.loads, (out / "scores.jsonl").read_text().splitlines())}
    assert [len(scored[k]["scores"]) for k in ("cat", "moon", "text")] == [3, 3, 2]
    direct = ClipReward(str(tiny["clip"]), metric="cosine").score(["a cat"] * 3, rows[0]["completions"]).scores
    assert scored["cat"]["scores"] == pytest.approx(direct, abs=1e-5)
    assert scored["text"]["scores"][0] is None and "no image" in scored["text"]["details"][0]["reason"]
    results = json.loads((out / "results.json").read_text())
    assert results["n"] == 3 and (out / "report.md").is_file()


# ------------------------------------------------------------------ serving

def test_served_clip_scores_remote_images_as_local(tiny, encoder):
    """``rewardkit serve`` with a clip reward, ``remote:`` sending local files and an in-memory image inline:
    the scores are the local ones (the server reads no path: the client inlines the pixels)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "serve"))
    from serve_helpers import ServerThread

    from rewardkit.rewards.remote import RemoteReward

    p = tiny["photos"]
    prompts = ["a cat", [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Describe it."}]}], "coffee"]
    completions = [part(p["chelsea"]), "a man with a camera", [{"type": "image", "image": Image.open(p["coffee"])}]]
    images = [None, [str(p["camera"])], None]
    local = ClipReward(encoder).score(prompts, completions, images=images)
    assert all(s is not None for s in local.scores)
    with ServerThread(ClipReward(encoder)) as srv, RemoteReward(srv.url) as remote:
        got = remote.score(prompts, completions, images=images)
    assert got.scores == pytest.approx(local.scores, abs=1e-6)
    assert got.extras["cosine"] == pytest.approx(local.extras["cosine"], abs=1e-6)
