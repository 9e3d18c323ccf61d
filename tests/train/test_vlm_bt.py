"""Bradley-Terry training of a vision-language reward model, end to end through the CLI in a real
subprocess, on a synthetic task the test builds: a picture of one colour (red or blue, shades, sizes
and noise drawn from a seeded RNG, saved as PNG files beside the data) with the question "What
colour?"; chosen = the right colour word, rejected = the other. Each word is chosen in exactly half
the pairs, so the text alone is worth 50%: only a model that reads the pixels can do better.
The backbone is a tiny random Idefics3 (SmolVLM's architecture) built in code.

Pinned: LoRA training lifts held-out accuracy to >= 90% (chance 50%) within 30 steps; the export,
reloaded as ``vlm-classifier:OUT/model``, reproduces the trained model's held-out accuracy and loss
and the reward mean written at export (within 1e-6); plain transformers + the head file reproduce
a score by hand; head-only training leaves every VLM weight as it was."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("PIL.Image", reason="images need Pillow: pip install 'rewardkit[images]'")
pytest.importorskip("peft")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "rewards"))
from vlm_helpers import save_tiny_idefics3  # noqa: E402
from rewardkit.rewards.vlm_classifier import VLMClassifierReward  # noqa: E402

SRC = Path(__file__).resolve().parents[2] / "src"


def write_pairs(path: Path, n: int, seed: int) -> list[dict]:
    """``n`` colour pairs as JSONL rows whose images are PNG files in ``path``'s folder (half red)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    rows = []
    for k in range(n):
        red = k % 2 == 0
        hi, lo = int(rng.integers(150, 256)), rng.integers(0, 90, size=2)
        rgb = (hi, lo[0], lo[1]) if red else (lo[0], lo[1], hi)
        h, w = rng.integers(12, 33, size=2)
        img = (np.array(rgb)[None, None, :] + rng.integers(-20, 21, (h, w, 3))).clip(0, 255).astype(np.uint8)
        name = f"{path.stem}-{k}.png"
        Image.fromarray(img).save(path.parent / name)
        right, wrong = ("red", "blue") if red else ("blue", "red")
        rows.append({"prompt": [{"role": "user", "content": [{"type": "image", "path": name}, {"type": "text", "text": "What colour?"}]}],
                     "chosen": right, "rejected": wrong})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return rows


def cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-c", "import sys; from rewardkit.cli.main import main; sys.exit(main())", *args],
                          env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("vlmbt")
    base = save_tiny_idefics3(root / "tiny")
    train_rows = write_pairs(root / "train.jsonl", 160, 1)
    held_rows = write_pairs(root / "heldout.jsonl", 64, 2)
    done = cli("train", "--objective", "vlm-bt", "--model", str(base), "--data", str(root / "train.jsonl"),
               "--eval-data", str(root / "heldout.jsonl"), "--mode", "lora", "--lr", "1e-2", "--max-steps", "30",
               "--eval-every", "10", "--out", str(root / "run"))
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((root / "run" / "train_results.json").read_text())
    return root, base, summary, train_rows, held_rows


def rows_of(rows: list[dict], root: Path) -> tuple[list, list, list]:
    """(prompts, chosen, rejected) with the image paths made absolute, as the data reader makes them."""
    prompts = [[{"role": "user", "content": [{"type": "image", "path": str(root / r["prompt"][0]["content"][0]["path"])},
                                             {"type": "text", "text": "What colour?"}]}] for r in rows]
    return prompts, [r["chosen"] for r in rows], [r["rejected"] for r in rows]


def test_training_reads_the_pixels(trained):
    root, base, summary, _, held_rows = trained
    assert summary["eval"]["n"] == 64 and summary["train_pairs"] == 160
    assert summary["eval"]["accuracy"] >= 0.9, summary["history"]
    with pytest.warns(UserWarning, match="random head"):
        untrained = VLMClassifierReward(str(base))
    prompts, chosen, rejected = rows_of(held_rows, root)
    c, r = untrained.score(prompts, chosen).scores, untrained.score(prompts, rejected).scores
    assert 0.3 <= np.mean(np.array(c) > np.array(r)) <= 0.7, "the untrained model should be near chance"


def test_export_round_trip(trained):
    root, _, summary, train_rows, held_rows = trained
    model_dir = root / "run" / "model"
    reward = VLMClassifierReward(str(model_dir))  # no warning: the head is found
    prompts, chosen, rejected = rows_of(held_rows, root)
    c, r = np.array(reward.score(prompts, chosen).scores), np.array(reward.score(prompts, rejected).scores)
    assert np.mean(c > r) == summary["eval"]["accuracy"]
    loss = float(np.mean(np.logaddexp(0.0, -(c - r))))  # -log sigmoid(c - r)
    assert loss == pytest.approx(summary["eval"]["loss"], abs=1e-5)  # trained (LoRA unmerged) vs exported (merged)
    head = json.loads((model_dir / "reward_head.json").read_text())
    prompts, chosen, rejected = rows_of(train_rows, root)
    both = reward.score(prompts + prompts, chosen + rejected).scores
    assert float(np.mean(both)) == pytest.approx(head["reward_mean"], abs=1e-6)  # the merged model before saving vs after reloading


def test_plain_transformers_and_the_head_file_reproduce_a_score(trained):
    import torch
    from safetensors.torch import load_file
    from transformers import AutoModelForImageTextToText, AutoProcessor

    root, _, _, _, held_rows = trained
    model_dir = root / "run" / "model"
    from PIL import Image

    vlm = AutoModelForImageTextToText.from_pretrained(model_dir).eval()
    processor = AutoProcessor.from_pretrained(model_dir)
    head = torch.nn.Linear(vlm.config.text_config.hidden_size, 1)
    head.load_state_dict(load_file(str(model_dir / "reward_head.safetensors")))
    row = held_rows[0]
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What colour?"}]},
                {"role": "assistant", "content": [{"type": "text", "text": row["chosen"]}]}]
    text = processor.apply_chat_template(messages, tokenize=False)
    image = Image.open(root / row["prompt"][0]["content"][0]["path"]).convert("RGB")
    enc = processor(text=[text], images=[[image]], return_tensors="pt", add_special_tokens=False)
    with torch.no_grad():
        by_hand = head(vlm.model(**enc).last_hidden_state[0, -1]).item()
    prompts, chosen, _ = rows_of(held_rows[:1], root)
    assert VLMClassifierReward(str(model_dir)).score(prompts, chosen).scores[0] == pytest.approx(by_hand, abs=1e-6)


def test_head_only_training_leaves_the_vlm_as_it_was(trained, tmp_path):
    from safetensors.torch import load_file

    from rewardkit.train.vlm_bt import VLMBTConfig, train
    from rewardkit.types import PairRecord

    root, base, _, train_rows, _ = trained
    prompts, chosen, rejected = rows_of(train_rows[:32], root)
    records = [PairRecord(id=str(k), prompt=p, chosen=c, rejected=r) for k, (p, c, r) in enumerate(zip(prompts, chosen, rejected))]
    summary = train(VLMBTConfig(model=str(base), output_dir=str(tmp_path / "run"), mode="head", max_steps=3, pairs_per_step=8,
                                progress=False), records[:24], records[24:])
    assert summary["steps"] == 3
    before, after = load_file(str(base / "model.safetensors")), load_file(str(tmp_path / "run" / "model" / "model.safetensors"))
    assert before.keys() == after.keys() and all(np.array_equal(before[k].numpy(), after[k].numpy()) for k in before)
    assert (tmp_path / "run" / "model" / "reward_head.safetensors").is_file()


def test_resume_reaches_the_weights_of_an_uninterrupted_run(trained, tmp_path):
    from safetensors.torch import load_file

    from rewardkit.train.vlm_bt import VLMBTConfig, train
    from rewardkit.types import PairRecord

    root, base, _, train_rows, _ = trained
    prompts, chosen, rejected = rows_of(train_rows[:24], root)
    records = [PairRecord(id=str(k), prompt=p, chosen=c, rejected=r) for k, (p, c, r) in enumerate(zip(prompts, chosen, rejected))]

    def run(out: Path, steps: int, resume: bool = False) -> None:
        train(VLMBTConfig(model=str(base), output_dir=str(out), mode="lora", learning_rate=1e-2, max_steps=steps, pairs_per_step=4,
                          eval_every=100, save_every=1, progress=False), records[:20], records[20:], resume=resume)

    run(tmp_path / "whole", 4)
    run(tmp_path / "split", 2)
    run(tmp_path / "split", 4, resume=True)
    for name in ("reward_head.safetensors", "model.safetensors"):
        a, b = load_file(str(tmp_path / "whole" / "model" / name)), load_file(str(tmp_path / "split" / "model" / name))
        assert all(np.allclose(a[k].numpy(), b[k].numpy(), atol=1e-6) for k in a), name
    assert json.loads((tmp_path / "split" / "train_results.json").read_text())["steps"] == 4
