"""Bradley-Terry training on tiny random models: it learns, resumes after a kill to the same
weights, and exports a model that plain transformers scores exactly like rewardkit."""
from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time

import pytest

from rewardkit.types import PairRecord


def toy_pairs(n: int, seed: int = 0) -> list[PairRecord]:
    import random

    rng = random.Random(seed)
    words = ["apple", "river", "stone", "cloud", "lamp", "field"]
    out = []
    for i in range(n):
        topic = " ".join(rng.sample(words, 2))
        out.append(PairRecord(f"p{i}", f"Tell me about {topic} #{i}", f"good answer about {topic}", f"bad bad {topic}", "toy"))
    return out


def write_pairs(path, records):
    path.write_text("".join(json.dumps({"id": r.id, "prompt": r.prompt, "chosen": r.chosen, "rejected": r.rejected}) + "\n" for r in records))
    return path


def test_bt_loss_by_hand():
    import torch

    from rewardkit.train.common import bt_loss

    rc, rr = torch.tensor([2.0, 0.0]), torch.tensor([1.0, 0.0])
    ls = lambda x: math.log(1 / (1 + math.exp(-x)))  # noqa: E731
    assert bt_loss(rc, rr, torch.zeros(2)).tolist() == pytest.approx([-ls(1.0), -ls(0.0)])
    assert bt_loss(rc, rr, torch.tensor([0.5, 0.0]))[0].item() == pytest.approx(-ls(0.5))
    smoothed = bt_loss(rc, rr, torch.zeros(2), label_smoothing=0.1)[0].item()
    assert smoothed == pytest.approx(-0.9 * ls(1.0) - 0.1 * ls(-1.0))
    centred = bt_loss(rc, rr, torch.zeros(2), center_coef=0.01)[0].item()
    assert centred == pytest.approx(-ls(1.0) + 0.01 * 9.0)


@pytest.mark.parametrize("mode", ["full", "lora", "head"])
def test_training_learns_and_exports_for_plain_transformers(tiny_dirs, tmp_path, mode):
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from rewardkit import ClassifierReward
    from rewardkit.train.bt import BTConfig, train

    lr = {"full": 3e-3, "lora": 2e-2, "head": 5e-2}[mode]
    cfg = BTConfig(model=str(tiny_dirs["lm"]), output_dir=str(tmp_path / mode), mode=mode, lora_targets=("q_proj", "v_proj"),
                   learning_rate=lr, max_steps=30, pairs_per_step=8, eval_every=10, save_every=10, progress=False, max_length=128)
    summary = train(cfg, toy_pairs(80))
    first, last = summary["history"][0]["loss"], summary["history"][-1]["loss"]
    assert last < first, (first, last)
    assert summary["eval"]["accuracy"] >= 0.75 and summary["eval"]["n"] > 0
    export = tmp_path / mode / "model"
    assert (export / "README.md").read_text().count("Bradley-Terry") >= 1
    config = json.loads((export / "config.json").read_text())
    assert "reward_mean" in config and config["reward_std"] > 0
    # plain transformers (no rewardkit) gives the same score as ClassifierReward
    model = AutoModelForSequenceClassification.from_pretrained(export).eval()
    tok = AutoTokenizer.from_pretrained(export)
    reward = ClassifierReward(str(export))
    prompts, completions = ["Tell me about lamp field"], ["good answer about lamp field"]
    ids = reward.encode(prompts, completions)[0].input_ids
    with torch.inference_mode():
        plain = model(input_ids=torch.tensor([ids])).logits[0, 0].item()
    assert abs(plain - reward.score(prompts, completions).scores[0]) < 1e-4
    assert tok.chat_template


def test_resume_after_kill_reaches_the_same_weights(tiny_dirs, tmp_path):

    data = write_pairs(tmp_path / "pairs.jsonl", toy_pairs(64))
    common = ["--data", str(data), "--model", str(tiny_dirs["lm"]), "--mode", "full", "--lr", "3e-3", "--max-steps", "40",
              "--pairs-per-step", "8", "--save-every", "1", "--eval-every", "4", "--max-length", "128"]
    cli = [sys.executable, "-m", "rewardkit.cli.main", "train"]
    env = {**os.environ, "TQDM_DISABLE": "1"}
    subprocess.run(cli + common + ["--out", str(tmp_path / "whole")], check=True, capture_output=True, env=env)

    killed = tmp_path / "killed"
    proc = subprocess.Popen(cli + common + ["--out", str(killed)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    state = killed / "checkpoints" / "last" / "state.json"
    deadline = time.time() + 120
    while time.time() < deadline:
        if state.exists() and json.loads(state.read_text())["step"] >= 3:
            break
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    stopped_at = json.loads(state.read_text())["step"]
    assert 3 <= stopped_at < 40, "the kill must land mid-run"
    assert not (killed / "model").exists()
    # without --resume the run refuses to overwrite; with it, it continues
    again = subprocess.run(cli + common + ["--out", str(killed)], capture_output=True, text=True, env=env)
    assert again.returncode == 2 and "--resume" in again.stderr
    subprocess.run(cli + common + ["--out", str(killed), "--resume"], check=True, capture_output=True, env=env)

    from safetensors.torch import load_file

    a = load_file(str(tmp_path / "whole" / "model" / "model.safetensors"))
    b = load_file(str(killed / "model" / "model.safetensors"))
    assert a.keys() == b.keys()
    worst = max((a[k] - b[k]).abs().max().item() for k in a)
    assert worst < 1e-6, worst
    assert json.loads((killed / "train_results.json").read_text())["steps"] == 40


def test_unmerged_lora_adapter_loads_as_a_reward(tiny_dirs, tmp_path):
    """An adapter export names its base by spec and scores like the merged export of the same run."""
    from rewardkit import ClassifierReward
    from rewardkit.train.bt import BTConfig, train

    outs = {}
    for merge in (True, False):
        cfg = BTConfig(model=str(tiny_dirs["lm"]), output_dir=str(tmp_path / f"merge-{merge}"), mode="lora", merge_lora=merge,
                       learning_rate=2e-2, max_steps=8, pairs_per_step=8, eval_every=4, save_every=4, progress=False, max_length=128)
        train(cfg, toy_pairs(40))
        outs[merge] = tmp_path / f"merge-{merge}" / "model"
    adapter = json.loads((outs[False] / "adapter_config.json").read_text())
    assert adapter["base_model_name_or_path"] == str(tiny_dirs["lm"])
    assert not (outs[False] / "model.safetensors").exists()  # small: adapter + head only
    prompts, completions = ["Tell me about lamp field", "q"], ["good answer about lamp field", "bad bad"]
    merged = ClassifierReward(str(outs[True])).score(prompts, completions).scores
    from_adapter = ClassifierReward(str(outs[False])).score(prompts, completions).scores
    assert max(abs(a - b) for a, b in zip(merged, from_adapter)) < 1e-4
    # a merged LoRA run also keeps the small adapter form (tokenizer from the base)
    side = tmp_path / "merge-True" / "adapter"
    assert (side / "adapter_config.json").is_file() and not (side / "tokenizer.json").exists()
    assert max(abs(a - b) for a, b in zip(merged, ClassifierReward(str(side)).score(prompts, completions).scores)) < 1e-4


def test_training_continues_from_a_saved_adapter(tiny_dirs, tmp_path):
    """--init-adapter starts from the adapter's weights (lr 0: the export scores exactly like the
    original) and refuses an adapter trained on another base."""
    from rewardkit import ClassifierReward
    from rewardkit.train.bt import BTConfig, train

    first = BTConfig(model=str(tiny_dirs["lm"]), output_dir=str(tmp_path / "first"), mode="lora", learning_rate=2e-2,
                     max_steps=4, pairs_per_step=8, eval_every=4, save_every=4, progress=False, max_length=128)
    train(first, toy_pairs(40))
    again = BTConfig(model=str(tiny_dirs["lm"]), output_dir=str(tmp_path / "again"), mode="lora", learning_rate=0.0,
                     max_steps=1, pairs_per_step=8, eval_every=1, save_every=1, progress=False, max_length=128,
                     init_adapter=str(tmp_path / "first" / "adapter"), shuffle_seed=7)
    train(again, toy_pairs(40))
    prompts, completions = ["Tell me about lamp field", "q"], ["good answer about lamp field", "bad bad"]
    a = ClassifierReward(str(tmp_path / "first/model")).score(prompts, completions).scores
    b = ClassifierReward(str(tmp_path / "again/model")).score(prompts, completions).scores
    assert max(abs(x - y) for x, y in zip(a, b)) < 1e-5
    assert "continued from the adapter" in (tmp_path / "again/model/README.md").read_text()
    saved = json.loads((tmp_path / "again/adapter/adapter_config.json").read_text())["modules_to_save"]
    assert len(saved) == len(set(saved)) and "score" in saved  # continuing does not pile up head names
    wrong = BTConfig(model=str(tiny_dirs["rm"]), output_dir=str(tmp_path / "wrong"), mode="lora", max_steps=1,
                     progress=False, init_adapter=str(tmp_path / "first" / "adapter"))
    with pytest.raises(ValueError, match="trained on base"):
        train(wrong, toy_pairs(8))


def _packing_cases():
    """(chosen, rejected) id pairs covering the packing edge cases: a long shared prompt, no shared
    token, one side a prefix of the other, identical sides, one-token sides."""
    return [
        ([5, 6, 7, 8, 9, 10, 11], [5, 6, 7, 8, 12, 13]),
        ([20, 21, 22], [30, 31, 32, 33, 34, 35, 36, 37]),
        ([5, 6, 7], [5, 6, 7, 8, 9]),
        ([5, 6, 7, 8, 9], [5, 6, 7]),
        ([9, 9, 9, 9], [9, 9, 9, 9]),
        ([14], [15]),
    ]


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_shared_prefix_packing_gives_the_rewards_of_separate_sequences(tiny_dirs, attn):
    """One packed row per pair (prompt encoded once) must read the same head outputs as two
    separate sequences, for every pair in a padded batch, values and gradients."""
    import torch
    from transformers import AutoModelForSequenceClassification

    from rewardkit.train.common import head_outputs, pair_head_outputs

    hf = AutoModelForSequenceClassification.from_pretrained(tiny_dirs["multi"], attn_implementation=attn).eval()
    pairs = _packing_cases()
    pad = hf.config.pad_token_id
    hc, hr = pair_head_outputs(hf, pairs, pad, share_prefix=True)
    for i, (c, r) in enumerate(pairs):
        alone = head_outputs(hf, [c, r], pad)
        assert torch.allclose(hc[i], alone[0], atol=1e-5), (i, hc[i], alone[0])
        assert torch.allclose(hr[i], alone[1], atol=1e-5), (i, hr[i], alone[1])
    sc, sr = pair_head_outputs(hf, pairs, pad, share_prefix=False)
    assert torch.allclose(hc, sc, atol=1e-5) and torch.allclose(hr, sr, atol=1e-5)

    def grads(share):
        hf.zero_grad()
        a, b = pair_head_outputs(hf, pairs, pad, share_prefix=share)
        (a - b).pow(2).sum().backward()
        return {n: p.grad.clone() for n, p in hf.named_parameters() if p.grad is not None}

    g1, g2 = grads(True), grads(False)
    assert g1.keys() == g2.keys() and all(torch.isfinite(g).all() for g in g1.values())
    worst = max(((g1[k] - g2[k]).abs().max() / (g2[k].abs().max() + 1e-8)).item() for k in g1)
    assert worst < 1e-4, worst


def test_packed_pair_batch_layout():
    import torch

    from rewardkit.models import pad_pair_batch
    from rewardkit.models.batching import shared_prefix_length

    assert shared_prefix_length([1, 2, 3], [1, 2, 4]) == 2
    assert shared_prefix_length([1, 2], [1, 2, 3]) == 1  # each side keeps its last token
    assert shared_prefix_length([7], [7]) == 0
    b = pad_pair_batch([([1, 2, 3, 4], [1, 2, 5]), ([8], [9, 9])], pad_id=0)
    assert b.lengths == [5, 3] and b.separate_tokens == 10
    assert b.input_ids.tolist() == [[1, 2, 3, 4, 5], [8, 9, 9, 0, 0]]
    assert b.position_ids[0].tolist() == [0, 1, 2, 3, 2]  # the rejected tail continues after the shared prefix
    assert b.chosen_last.tolist() == [3, 0] and b.rejected_last.tolist() == [4, 2]
    allowed = (b.attention_mask[:, 0] == 0)
    assert allowed[0, 4].tolist() == [True, True, False, False, True]  # rejected token: prompt + itself, not the chosen tail
    assert allowed[0, 3].tolist() == [True, True, True, True, False]
    assert allowed[1, 2].tolist() == [False, True, True, False, False]  # no shared prefix: the second side starts fresh
    assert allowed[1, 4].tolist() == [True, True, True, False, True]  # padding never a key; as a query it sees itself (no all-masked row)
    assert not allowed[1, :3, 3:].any()  # real tokens never see padding
    assert torch.isfinite(b.attention_mask).all()
    as_bool = pad_pair_batch([([1, 2, 3, 4], [1, 2, 5]), ([8], [9, 9])], pad_id=0, dtype=torch.bool).attention_mask
    assert as_bool.dtype == torch.bool and torch.equal(as_bool, b.attention_mask == 0)


def test_training_with_and_without_prefix_sharing_agrees(tiny_dirs, tmp_path):
    from rewardkit.train.bt import BTConfig, train

    runs = {}
    for share in (True, False):
        cfg = BTConfig(model=str(tiny_dirs["lm"]), output_dir=str(tmp_path / str(share)), mode="full", learning_rate=3e-3,
                       max_steps=6, pairs_per_step=8, eval_every=3, save_every=3, progress=False, max_length=128, share_prefix=share)
        runs[share] = train(cfg, toy_pairs(48))
    a = [h["loss"] for h in runs[True]["history"]]
    b = [h["loss"] for h in runs[False]["history"]]
    assert a == pytest.approx(b, rel=1e-4, abs=1e-5)
    assert runs[True]["eval"]["loss"] == pytest.approx(runs[False]["eval"]["loss"], rel=1e-4)
