"""Image-text scoring throughput: ``clip:MODEL`` (token/pixel budget batches, each distinct text and image
encoded once) vs the usual loop (fixed batches in input order, text and image of every sample through
the model's forward), in one run, on the same model, preprocessing and token ids; the scores must agree.

Data: best-of-N image rows as a text-to-image evaluation has them: ``--prompts`` captions of mixed
lengths, each with ``--n`` candidate images (seeded random crops of scikit-image's public-domain
photographs, different sizes, saved as PNG and read from disk by both paths). Both timings include
reading, decoding and preprocessing the images and tokenizing the texts.

Reported: samples/s of both paths and their ratio, forward passes, text tokens and images encoded, and
the largest score difference (exit code 1 above ``--tolerance``).

Run (real weights; the Hub or a local copy):
  .venv/bin/python bench/image_scoring.py --model openai/clip-vit-base-patch32
Smoke run (a tiny random CLIP built in a temporary folder; its timings say nothing about real models):
  .venv/bin/python bench/image_scoring.py --tiny --prompts 4 --n 4
"""
from __future__ import annotations

import argparse
import json
import platform
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from rewardkit.images import ImageRef
from rewardkit.models import make_batches
from rewardkit.rewards.clip import ClipReward

REPO = Path(__file__).resolve().parent.parent
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "camera", "cat", "horse", "moon", "page", "text", "brick", "grass",
          "gravel", "immunohistochemistry", "hubble_deep_field", "retina", "colorwheel", "logo", "motorcycle_left", "clock")
CAPTIONS = [
    "a cat",
    "a cup of coffee",
    "an astronaut standing in front of the flag",
    "a rocket on the launch pad under a clear sky",
    "a man holding a camera on a tripod in a park",
    "a close-up of a brick wall",
    "a photograph of the moon's surface with craters, taken through a telescope at night",
    "a grey horse",
    "a printed page of text, slightly tilted, scanned in black and white",
    "grass",
    "a colourful wheel of hues",
    "a microscope image of stained tissue with brown and blue cells spread across the field of view",
    "gravel on a path",
    "a deep field of distant galaxies",
    "the retina of an eye photographed through the pupil, with blood vessels branching out from the optic disc",
    "a clock on a wall",
]


def build_data(root: Path, prompts: int, n: int, seed: int) -> tuple[list[str], list[list[dict]]]:
    """``prompts`` captions, each with ``n`` distinct images (random crops, 160-640 px), prompt-major."""
    from PIL import Image
    from skimage import data

    rng = random.Random(seed)
    pool = []
    for name in PHOTOS:
        try:
            array = getattr(data, name)()
        except Exception:  # a photograph this scikit-image version lacks, or one it would download
            continue
        if array.dtype == bool:
            array = array.astype(np.uint8) * 255
        if array.ndim == 3 and array.shape[-1] == 4:
            array = array[..., :3]
        pool.append(array.astype(np.uint8))
    texts, completions = [], []
    for k in range(prompts):
        caption = CAPTIONS[k % len(CAPTIONS)] + ("" if k < len(CAPTIONS) else f" ({k})")
        for j in range(n):
            array = pool[rng.randrange(len(pool))]
            h, w = array.shape[:2]
            ch, cw = rng.randint(h // 2, h), rng.randint(w // 2, w)
            top, left = rng.randint(0, h - ch), rng.randint(0, w - cw)
            im = Image.fromarray(array[top : top + ch, left : left + cw])
            side = rng.randint(160, 640)
            im = im.resize((side, max(1, side * ch // cw)))
            path = root / f"p{k}-{j}.png"
            im.save(path)
            texts.append(caption)
            completions.append([{"type": "image", "path": str(path)}])
    return texts, completions


def save_tiny_clip(path: Path) -> Path:
    """A tiny random CLIP (real architecture, 32 px images, a character tokenizer) for a smoke run."""
    import string

    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import CLIPConfig, CLIPImageProcessorPil, CLIPModel, PreTrainedTokenizerFast

    vocab = {t: i for i, t in enumerate(["<pad>", "<unk>", "<s>", "</s>"] + sorted(set(string.printable)))}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split("", behavior="isolated")
    tok.post_processor = processors.TemplateProcessing(single="<s> $A </s>", special_tokens=[("<s>", 2), ("</s>", 3)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>", unk_token="<unk>")
    config = CLIPConfig(text_config=dict(vocab_size=len(fast), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                                         max_position_embeddings=128, bos_token_id=2, eos_token_id=3, pad_token_id=0),
                        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, image_size=32, patch_size=8),
                        projection_dim=16)
    torch.manual_seed(0)
    CLIPModel(config).save_pretrained(path)
    fast.save_pretrained(path)
    CLIPImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(path)
    return path


def score_baseline(reward: ClipReward, texts: list[str], completions: list[list[dict]], batch_size: int) -> tuple[list[float], int]:
    """The usual loop: fixed batches in input order, every sample's text and image through ``model(...)``
    (tokenizer padding to the batch's longest, or to the full length for SigLIP as it was trained)."""
    enc = reward.encoder
    scores, forwards = [], 0
    with torch.inference_mode():
        for s in range(0, len(texts), batch_size):
            images = [ImageRef.parse(c[0]).load() for c in completions[s : s + batch_size]]
            pixels = enc.pixel_values(images).to(enc.device)
            tok = enc.tokenizer(texts[s : s + batch_size], padding="max_length" if enc.side.pad_to_max else True, truncation=True,
                                max_length=enc.max_length, return_tensors="pt").to(enc.device)
            kwargs = {"attention_mask": tok["attention_mask"]} if enc.side.attention_mask else {}
            out = enc.model(input_ids=tok["input_ids"], pixel_values=pixels, **kwargs)
            img = out.image_embeds / out.image_embeds.norm(dim=-1, keepdim=True)
            txt = out.text_embeds / out.text_embeds.norm(dim=-1, keepdim=True)
            scores.extend((img * txt).sum(-1).float().tolist())
            forwards += 1
    return scores, forwards


def timed(fn, repeats: int):
    best, result = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    return best, result


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--model", help="a CLIPModel/SiglipModel directory or hub id (e.g. openai/clip-vit-base-patch32)")
    ap.add_argument("--tiny", action="store_true", help="build a tiny random CLIP for a smoke run instead of --model")
    ap.add_argument("--processor", default=None, help="where the tokenizer and image processor are, if not beside the weights")
    ap.add_argument("--prompts", type=int, default=16, help="captions (best-of-N rows)")
    ap.add_argument("--n", type=int, default=8, help="candidate images per caption")
    ap.add_argument("--max-tokens-per-batch", type=int, default=8192, help="clip: the token budget (an image counts as the vision tower's sequence length)")
    ap.add_argument("--baseline-batch-size", type=int, default=8, help="fixed batch size of the usual loop")
    ap.add_argument("--repeats", type=int, default=2, help="timed runs of each path (best is kept)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the crops and sizes")
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    ap.add_argument("--tolerance", type=float, default=1e-4, help="max allowed |score difference| between the paths")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "image_scoring.json", help="JSON result file")
    args = ap.parse_args(argv)
    if bool(args.model) == args.tiny:
        ap.error("give --model MODEL, or --tiny for a smoke run")
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        model = str(save_tiny_clip(root / "tiny-clip")) if args.tiny else args.model
        reward = ClipReward(model, metric="cosine", processor=args.processor, max_tokens_per_batch=args.max_tokens_per_batch)
        enc = reward.encoder
        texts, completions = build_data(root, args.prompts, args.n, args.seed)
        reward.score(texts[:4], completions[:4])  # warm-up of both paths
        score_baseline(reward, texts[:4], completions[:4], args.baseline_batch_size)
        rk_s, rk = timed(lambda: reward.score(texts, completions), args.repeats)
        bl_s, (bl_scores, bl_forwards) = timed(lambda: score_baseline(reward, texts, completions, args.baseline_batch_size), args.repeats)
        ids, truncated, _ = enc.tokenize(sorted(set(texts)))
        lengths = [enc.max_length if enc.side.pad_to_max else len(x) for x in ids]
        rk_forwards = len(make_batches(lengths, enc.max_tokens_per_batch, enc.batch_size, enc.max_padding)) + \
            len(make_batches([enc.image_cost] * len(texts), enc.max_tokens_per_batch, enc.batch_size))
    unscored = [i for i, s in enumerate(rk.scores) if s is None]
    diff = max(abs(a - b) for a, b in zip(rk.scores, bl_scores)) if not unscored else float("inf")
    agree = diff < args.tolerance
    n = len(texts)
    print(f"model       {enc.label} ({enc.model_type}, dim {enc.dim}, image = {enc.image_cost} tokens, text max {enc.max_length} tokens)"
          + ("  [tiny random weights: timings say nothing about real models]" if args.tiny else ""))
    print(f"torch       {torch.__version__}, threads={torch.get_num_threads()}, device={enc.device}")
    print(f"data        {args.prompts} captions x {args.n} images = {n} samples; {len(set(texts))} distinct texts ({sum(truncated)} truncated)")
    print(f"{'path':<46}{'forwards':>9}{'seconds':>9}{'samples/s':>11}")
    for label, fw, secs in ((f"clip (budget {args.max_tokens_per_batch}, distinct inputs once)", rk_forwards, rk_s),
                            (f"usual loop (batch {args.baseline_batch_size}, input order)", bl_forwards, bl_s)):
        print(f"{label:<46}{fw:>9}{secs:>9.2f}{n / secs:>11.1f}")
    print(f"agreement   max |score diff| = {diff:.2e} (tolerance {args.tolerance:g}) -> {'OK' if agree else 'MISMATCH'}")
    print(f"speedup     {bl_s / rk_s:.2f}x samples/s")
    result = {"model": enc.label, "tiny_random_weights": args.tiny, "model_type": enc.model_type, "image_tokens": enc.image_cost,
              "torch": torch.__version__, "threads": torch.get_num_threads(), "device": enc.device,
              "machine": platform.processor() or platform.machine(), "config": {k: str(v) for k, v in vars(args).items()},
              "samples": n, "distinct_texts": len(set(texts)), "seed": args.seed,
              "clip": {"seconds": rk_s, "samples_per_s": n / rk_s, "forwards": rk_forwards},
              "baseline": {"seconds": bl_s, "samples_per_s": n / bl_s, "forwards": bl_forwards},
              "speedup": bl_s / rk_s, "max_abs_score_diff": diff, "scores_agree": agree}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote       {args.out}")
    return 0 if agree else 1


if __name__ == "__main__":
    sys.exit(main())
