"""Bradley-Terry training of a small head over a frozen dual encoder's embeddings (the CLIP-plus-head
architecture of generated-image preference models: an aesthetic predictor, a PickScore-style
preference head), on image-text preference pairs.

One self-contained recipe, read top to bottom. The encoder is frozen, so every distinct text and
image is embedded once (token/pixel-budget batches) and training runs on the cached embeddings: a
few seconds on CPU for thousands of pairs. Pairs are what :func:`rewardkit.rewards.clip.image_text_pair`
reads: a text prompt with two image completions (which image fits the prompt better), or an image
prompt with two captions. A pair with a side that cannot be read is left out and counted.

Writes ``OUT/head`` (``head.json`` naming the backbone + ``head.safetensors``: load it with
``clip-head:OUT/head``) and ``OUT/train_results.json`` (options, held-out accuracy before and
after, the loss and accuracy per epoch, pairs left out and why).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from ..models.dual_encoder import DualEncoder, EmbeddingHead, head_inputs
from ..rewards.clip import image_key, image_text_pair
from ..types import PairRecord
from .common import bt_loss, config_dict, shuffled, training_split


@dataclass(kw_only=True)
class ClipHeadConfig:
    model: str  # the frozen dual encoder: a CLIPModel/SiglipModel directory or hub id
    output_dir: str = "runs/clip-head"
    processor: str | None = None
    features: tuple[str, ...] = ("image", "product")  # models/dual_encoder.py head_inputs
    hidden: tuple[int, ...] = ()  # () = a linear head
    activation: str = "relu"
    learning_rate: float = 1e-3
    weight_decay: float = 0.0
    label_smoothing: float = 0.0
    epochs: int = 50
    pairs_per_step: int = 64
    eval_fraction: float = 0.2  # whole prompts held out (train/common.py split_heldout)
    seed: int = 0
    max_tokens_per_batch: int = 8192
    device: str | None = None
    progress: bool = True  # progress bars while the texts and images are embedded


@dataclass
class _Embedded:
    chosen_image: Any  # [N, D]
    chosen_text: Any
    rejected_image: Any
    rejected_text: Any
    left_out: dict[str, int]  # reason -> pairs


def embed_pairs(encoder: DualEncoder, records: Sequence[PairRecord]) -> _Embedded:
    """Unit-norm embeddings of both sides of every usable pair, each distinct text and image once."""
    import torch

    sides, left_out = [], {}
    for r in records:
        c, j = image_text_pair(r.prompt, r.chosen), image_text_pair(r.prompt, r.rejected)
        reason = c if isinstance(c, str) else j if isinstance(j, str) else None
        if reason is not None:
            left_out[reason] = left_out.get(reason, 0) + 1
        else:
            sides.append((c, j))
    texts: dict[str, int] = {}
    images: dict[Any, int] = {}
    refs = []
    for pair in sides:
        for text, ref in pair:
            texts.setdefault(text, len(texts))
            if image_key(ref) not in images:
                images[image_key(ref)] = len(refs)
                refs.append(ref)
    tv = encoder.embed_texts(list(texts)).vectors
    iv = encoder.embed_images(refs)
    usable = []
    for c, j in sides:
        bad = next((iv.errors[images[image_key(ref)]] for _, ref in (c, j) if iv.errors[images[image_key(ref)]]), None)
        if bad:
            left_out[bad] = left_out.get(bad, 0) + 1
        else:
            usable.append((c, j))

    def rows(which: int, part: int) -> Any:
        if not usable:
            return torch.zeros((0, encoder.dim))
        if part == 0:
            return tv[[texts[p[which][0]] for p in usable]]
        return iv.vectors[[images[image_key(p[which][1])] for p in usable]]

    return _Embedded(rows(0, 1), rows(0, 0), rows(1, 1), rows(1, 0), left_out)


def _rewards(head: EmbeddingHead, image: Any, text: Any) -> Any:
    return head.module(head_inputs(head.features, image, text)).squeeze(-1)


def _measure(head: EmbeddingHead, data: _Embedded, cfg: ClipHeadConfig) -> dict[str, float | None]:
    """Mean BT loss and accuracy (a tie counts one half) of ``head`` on ``data``."""
    import torch

    if len(data.chosen_image) == 0:
        return {"loss": None, "accuracy": None, "pairs": 0}
    with torch.no_grad():
        rc, rr = _rewards(head, data.chosen_image, data.chosen_text), _rewards(head, data.rejected_image, data.rejected_text)
        loss = bt_loss(rc, rr, torch.zeros_like(rc), label_smoothing=cfg.label_smoothing).mean()
        acc = ((rc > rr).float() + 0.5 * (rc == rr).float()).mean()
    return {"loss": float(loss), "accuracy": float(acc), "pairs": len(rc)}


def train_clip_head(records: Sequence[PairRecord], cfg: ClipHeadConfig, eval_records: Sequence[PairRecord] | None = None,
                    encoder: DualEncoder | None = None) -> dict[str, Any]:
    """Train the head; write ``OUT/head`` and ``OUT/train_results.json``; return the results."""
    import torch

    train, held = training_split(records, eval_records, cfg, "pairs")
    encoder = encoder or DualEncoder(cfg.model, processor=cfg.processor, max_tokens_per_batch=cfg.max_tokens_per_batch,
                                     device=cfg.device, progress=cfg.progress)
    data, dev = embed_pairs(encoder, train), embed_pairs(encoder, held)
    n = len(data.chosen_image)
    if not n:
        raise ValueError(f"no usable training pairs (left out: {data.left_out})")
    head = EmbeddingHead.new(encoder.dim, cfg.features, cfg.hidden, cfg.activation, backbone=cfg.model, seed=cfg.seed)
    optimizer = torch.optim.AdamW(head.module.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    before = {"train": _measure(head, data, cfg), "heldout": _measure(head, dev, cfg)}
    history = []
    head.module.train()
    for epoch in range(cfg.epochs):
        order = shuffled(n, cfg.seed, epoch)
        for lo in range(0, n, cfg.pairs_per_step):
            idx = order[lo : lo + cfg.pairs_per_step]
            rc = _rewards(head, data.chosen_image[idx], data.chosen_text[idx])
            rr = _rewards(head, data.rejected_image[idx], data.rejected_text[idx])
            loss = bt_loss(rc, rr, torch.zeros_like(rc), label_smoothing=cfg.label_smoothing).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        history.append({"epoch": epoch + 1, "train": _measure(head, data, cfg), "heldout": _measure(head, dev, cfg)})
    head.module.eval()
    out = Path(cfg.output_dir)
    results = {"objective": "clip-head (Bradley-Terry on frozen embeddings)", "config": config_dict(cfg), "seed": cfg.seed,
               "backbone": encoder.label, "dim": encoder.dim, "before": before, "after": history[-1] if history else before,
               "history": history, "left_out": {"train": data.left_out, "heldout": dev.left_out}}
    backbone = str(Path(cfg.model).resolve()) if Path(cfg.model).exists() else cfg.model
    head.backbone = backbone
    head.save(out / "head", training={"pairs": n, "heldout_accuracy": results["after"]["heldout"]["accuracy"], "seed": cfg.seed})
    (out / "train_results.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return results
