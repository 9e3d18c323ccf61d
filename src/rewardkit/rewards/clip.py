"""Image-text similarity rewards on a CLIP-style dual encoder: CLIPScore, the plain cosine, the model's
own logit (PickScore), SigLIP's match probability, the VLM-RMs goal-baseline projection, and a learned
head over the embeddings (aesthetic predictors, preference heads).

Which image meets which text, per sample:

* the completion is an image (an image generated for a text prompt; ``image-text`` rows, best-of-N
  image rows): the image against the **prompt's text** (a chat prompt: its last user message);
* the prompt carries an image and the completion is text (captioning): the **completion's text**
  against the prompt's image (its image parts, or the ``images`` / ``image`` column).

Anything else is ``None`` with the reason: images on both sides, several images on the scored side,
no image, no text, an image that cannot be read.
"""
from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Any, Literal, Sequence

from ..images import IMAGE_COLUMNS, ImageError, ImageRef, completion_images, prompt_images
from ..models.dual_encoder import DualEncoder, EmbeddingHead, HEAD_CONFIG
from ..protocol import BaseReward, completion_text, message_text
from ..types import Completion, Prompt, RewardOutput

METRICS = ("clipscore", "cosine", "logit", "probability", "goal", "head")


def prompt_text(prompt: Prompt) -> str:
    """The text an image generated for ``prompt`` is compared with: the prompt itself, or the text of
    its last user message (a system prompt or earlier turns are not what the image should show)."""
    if isinstance(prompt, str):
        return prompt
    users = [m for m in prompt if isinstance(m, dict) and m.get("role") == "user"]
    return message_text(users[-1].get("content")) if users else ""


def image_text_pair(prompt: Prompt, completion: Completion, images: Any = None) -> tuple[str, ImageRef] | str:
    """(text, image) to compare for one sample (module docstring), or why there is none."""
    try:
        in_completion = completion_images(completion) if not isinstance(completion, str) else []
        in_prompt = prompt_images(prompt, images)
    except ImageError as err:
        return str(err)
    if in_completion and in_prompt:
        return "both the prompt and the completion carry images; clip compares one image with one text"
    if in_completion:
        image, text, where = in_completion, prompt_text(prompt), "completion"
    elif in_prompt:
        image, text, where = in_prompt, completion_text(completion), "prompt"
    else:
        return "no image: clip compares an image (the completion, or the prompt's) with a text"
    if len(image) > 1:
        return f"the {where} carries {len(image)} images; clip scores one image against one text"
    if not text.strip():
        return f"no text to compare the {where}'s image with"
    return text, image[0]


def image_key(ref: ImageRef) -> Any:
    return (ref.kind, id(ref.value)) if ref.kind == "pil" else (ref.kind, ref.value)


class ClipReward(BaseReward):
    """Scores how well an image and a text go together, by a dual encoder (CLIP, SigLIP).

    model: a directory saved by ``CLIPModel`` / ``SiglipModel.save_pretrained`` (tokenizer and
        ``preprocessor_config.json`` beside it), a hub id, or a loaded :class:`DualEncoder`.
    metric (e.g. ``clip:MODEL(metric=goal, baseline='a humanoid robot', alpha=0.5)``):
        ``clipscore`` (default): ``w * max(cos, 0)``, Hessel et al., "CLIPScore: A Reference-free
        Evaluation Metric for Image Captioning" (w = 2.5; the paper prefixes captions with
        "A photo depicts": ``prefix='A photo depicts '``);
        ``cosine``: the cosine of the unit-norm embeddings, in [-1, 1];
        ``logit``: ``exp(logit_scale) * cos`` (+ SigLIP's bias): PickScore's score on its own checkpoint;
        ``probability``: ``sigmoid(logit)``, SigLIP only (trained with a per-pair sigmoid; CLIP's logits
        mean something only in a softmax over a batch);
        ``goal`` (the default when ``baseline`` is given): Rocamonde et al., "Vision-Language Models are
        Zero-Shot Reward Models for Reinforcement Learning": ``1 - |M (s - g)|^2 / 2`` with ``s`` the
        image embedding, ``g`` the text's (the goal), ``b`` the ``baseline`` text's, ``d = g - b`` and
        ``M = alpha * d d^T / |d|^2 + (1 - alpha) * I``: the image is projected with strength
        ``alpha`` onto the line from the baseline to the goal. ``alpha=0`` is the cosine with the goal,
        ``alpha=1`` keeps only the baseline-to-goal direction;
        ``head``: a learned head (``head=DIR``, or ``clip-head:DIR``).
    head: a head directory (:class:`EmbeddingHead`: ``head.json`` + ``head.safetensors``).
    prefix: text put before every compared text.
    The batching options are :class:`DualEncoder`'s (``max_tokens_per_batch`` counts text tokens and
    images at the image tower's sequence length each).
    """

    kind = "clip"
    reads_images = True

    def __init__(self, model: Any, *, metric: str | None = None, w: float = 2.5, baseline: str | None = None,
                 alpha: float = 0.5, prefix: str | None = None, head: Any = None, processor: str | None = None,
                 max_length: int | None = None, truncation_side: Literal["left", "right"] = "right",
                 max_tokens_per_batch: int = 8192, batch_size: int | None = None, max_padding: float = 0.1,
                 device: str | None = None, dtype: str = "float32", progress: bool | None = False, name: str | None = None):
        metric = metric or ("head" if head is not None else "goal" if baseline is not None else "clipscore")
        if metric not in METRICS:
            raise ValueError(f"clip: metric must be one of {', '.join(METRICS)}, got {metric!r}")
        if (metric == "head") != (head is not None):
            raise ValueError("clip: metric=head needs head=DIR" if head is None else f"clip: head= is read by metric=head, not metric={metric}")
        if (metric == "goal") != (baseline is not None):
            raise ValueError("clip: metric=goal needs baseline='TEXT' (what the image shows when the goal is not reached)"
                             if baseline is None else f"clip: baseline= is read by metric=goal, not metric={metric}")
        if not 0.0 <= float(alpha) <= 1.0:
            raise ValueError(f"clip: alpha must be in [0, 1], got {alpha}")
        self.encoder = model if isinstance(model, DualEncoder) else DualEncoder(
            str(model), processor=processor, max_length=max_length, truncation_side=truncation_side,
            max_tokens_per_batch=max_tokens_per_batch, batch_size=batch_size, max_padding=max_padding,
            device=device, dtype=dtype, progress=progress)
        if metric == "probability" and self.encoder.logit_bias is None:
            raise ValueError(f"clip: metric=probability needs a sigmoid-trained model (SigLIP); {self.encoder.label} is a "
                             f"{self.encoder.model_type} model, whose logits are meaningful only in a softmax over a batch")
        self.metric, self.w, self.alpha, self.prefix = metric, float(w), float(alpha), prefix or ""
        self.head = None
        if head is not None:
            self.head = head if isinstance(head, EmbeddingHead) else EmbeddingHead.load(head)
            if self.head.dim != self.encoder.dim:
                raise ValueError(f"clip: the head reads {self.head.dim}-dim embeddings, {self.encoder.label} gives {self.encoder.dim}")
            if self.head.backbone and Path(str(self.head.backbone)).name != Path(self.encoder.label).name:
                warnings.warn(f"clip: the head was trained on {self.head.backbone}; scoring it on {self.encoder.label}", stacklevel=2)
        self.baseline = baseline
        self._baseline = self.encoder.embed_texts([self.prefix + baseline]).vectors[0] if baseline is not None else None
        self.name = name or (f"clip-head:{head}" if metric == "head" and not isinstance(head, EmbeddingHead) else self._spec())

    def _spec(self) -> str:
        """The spec that rebuilds this reward (its options that differ from the defaults), as its name:
        two clip rewards in one lineup never share a name."""
        options = {"metric": self.metric if self.metric not in ("clipscore", "goal") else None,
                   "w": self.w if self.metric == "clipscore" and self.w != 2.5 else None,
                   "baseline": repr(self.baseline) if self.baseline is not None else None,
                   "alpha": self.alpha if self.metric == "goal" else None,
                   "prefix": repr(self.prefix) if self.prefix else None}
        shown = ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in options.items() if v is not None)
        return f"clip:{self.encoder.label}" + (f"({shown})" if shown else "")

    def score(self, prompts: Sequence[Prompt], completions: Sequence[Completion], **columns: Any) -> RewardOutput:
        self._check_lengths(prompts, completions)
        n = len(prompts)
        image_col = next((columns[c] for c in IMAGE_COLUMNS if columns.get(c) is not None), None)
        if image_col is not None and len(image_col) != n:
            raise ValueError(f"{self.name}: the image column has {len(image_col)} values for {n} samples")
        pairs = [image_text_pair(p, c, None if image_col is None else image_col[i]) for i, (p, c) in enumerate(zip(prompts, completions))]
        texts: dict[str, int] = {}
        images: dict[Any, int] = {}
        refs: list[ImageRef] = []
        for pair in pairs:
            if isinstance(pair, tuple):
                texts.setdefault(self.prefix + pair[0], len(texts))
                key = image_key(pair[1])
                if key not in images:
                    images[key] = len(refs)
                    refs.append(pair[1])
        text_emb = self.encoder.embed_texts(list(texts))
        image_emb = self.encoder.embed_images(refs)
        scores: list[float | None] = [None] * n
        reasons: list[str | None] = [p if isinstance(p, str) else None for p in pairs]
        cosines: list[float | None] = [None] * n
        truncated, num_tokens = [False] * n, [None] * n
        keep: list[tuple[int, int, int]] = []  # (sample, text row, image row)
        for i, pair in enumerate(pairs):
            if isinstance(pair, str):
                continue
            t, m = texts[self.prefix + pair[0]], images[image_key(pair[1])]
            truncated[i], num_tokens[i] = text_emb.truncated[t], text_emb.num_tokens[t]
            if image_emb.errors[m] is not None:
                reasons[i] = image_emb.errors[m]
            else:
                keep.append((i, t, m))
        if keep:
            img = image_emb.vectors[[m for _, _, m in keep]]
            txt = text_emb.vectors[[t for _, t, _ in keep]]
            cos = (img * txt).sum(-1)
            values = self._metric(img, txt, cos)
            for (i, _, _), c, v in zip(keep, cos.tolist(), values.tolist()):
                cosines[i] = c
                if math.isfinite(v):
                    scores[i] = v
                else:
                    reasons[i] = ("the goal text and the baseline embed alike: there is no baseline-to-goal direction"
                                  if self.metric == "goal" else "non-finite score")
        extras: dict[str, list] = {"cosine": cosines, "truncated": truncated, "num_tokens": num_tokens}
        if any(r is not None for r in reasons):
            extras["reason"] = reasons
        return RewardOutput(scores=scores, extras=extras)

    def _metric(self, img: Any, txt: Any, cos: Any) -> Any:
        """Scores ``[K]`` from unit-norm image and text embeddings ``[K, D]`` and their cosines ``[K]``."""
        import torch

        if self.metric == "clipscore":
            return self.w * cos.clamp_min(0.0)
        if self.metric == "cosine":
            return cos
        if self.metric in ("logit", "probability"):
            logit = self.encoder.logit_scale * cos + (self.encoder.logit_bias or 0.0)
            return torch.sigmoid(logit) if self.metric == "probability" else logit
        if self.metric == "goal":
            d = txt - self._baseline[None]  # [K, D]: baseline -> goal, per sample (the goal is the sample's text)
            v = img - txt
            dd = (d * d).sum(-1, keepdim=True)
            along = (d * v).sum(-1, keepdim=True) / dd.clamp_min(1e-12) * d
            mv = self.alpha * along + (1.0 - self.alpha) * v
            out = 1.0 - 0.5 * (mv * mv).sum(-1)
            return torch.where(dd.squeeze(-1) > 1e-12, out, torch.full_like(out, float("nan")))  # goal == baseline: no direction
        return self.head(img, txt)


def load_clip_head(head: str, *, model: str | None = None, **kwargs: Any) -> ClipReward:
    """``clip-head:DIR``: a head directory scored on the backbone its ``head.json`` names (``model=``
    overrides it, e.g. a local copy of the same checkpoint)."""
    path = Path(head)
    if not (path / HEAD_CONFIG).is_file():
        raise FileNotFoundError(f"clip-head: {head} has no {HEAD_CONFIG} (a head directory written by rewardkit, see README 'Image-text rewards')")
    loaded = EmbeddingHead.load(path)
    backbone = model or loaded.backbone
    if not backbone:
        raise ValueError(f"clip-head: {path / HEAD_CONFIG} names no backbone; pass model=DIR_OR_HUB_ID")
    if model is None and not Path(str(backbone)).is_absolute() and (path / str(backbone)).exists():
        backbone = str(path / str(backbone))
    kwargs.setdefault("name", f"clip-head:{head}")
    return ClipReward(backbone, head=loaded, **kwargs)
