"""Vision-language reward models: a scalar head on a VLM backbone (SmolVLM / Idefics3-style
image-text-to-text models), read at the last real token of the chat-templated conversation with its
images (:mod:`rewardkit.models.vlm`). Trained by ``rewardkit train --objective vlm-bt``."""
from __future__ import annotations

import warnings
from typing import Any, Literal, Sequence

from ..images import ImageError
from ..models import resolve_source
from ..models.loading import load_model, load_processor
from ..models.vlm import VLMItem, batches, encode, head_outputs, language_model, load_vlm_head, new_head
from ..protocol import BaseReward
from ..types import Completion, Prompt, RewardOutput


class VLMClassifierReward(BaseReward):
    """Scores (prompt, completion) pairs whose prompt (or completion) may carry images.

    model: a directory written by ``rewardkit train --objective vlm-bt`` (the VLM, its processor and
        ``reward_head.safetensors``), or any image-text-to-text checkpoint / hub id (then the head is
        random, seeded by ``seed``, with a warning: reproducible, not meaningful).
    max_tokens_per_batch: padded tokens per forward; an image counts its image tokens.
    max_length: longer samples (image tokens included) are ``None`` with the reason (default: the
        language model's context); a VLM sequence is not cut, since a cut could split an image's tokens.
    padding_side: has no effect on scores (positions come from the attention mask); exposed for tests.
    Images are read under the image policy in force; an unreadable image makes its sample ``None``.
    """

    kind = "vlm-classifier"
    reads_images = True

    def __init__(self, model: Any, *, processor: Any = None, head: Any = None, max_tokens_per_batch: int = 8192,
                 batch_size: int | None = None, max_padding: float = 0.1, max_length: int | None = None,
                 padding_side: Literal["left", "right"] = "right", device: str | None = None, dtype: str = "float32",
                 seed: int = 0, progress: bool | None = False, name: str | None = None):
        if padding_side not in ("left", "right"):
            raise ValueError(f"padding_side must be 'left' or 'right', got {padding_side!r}")
        info: dict[str, Any] = {}
        if isinstance(model, str):
            source = resolve_source(model)
            self.processor = processor if processor is not None else load_processor(source)
            self.model = load_model(source, "image-text-to-text", dtype=dtype, device=device, seed=seed)
            self.name = name or f"{self.kind}:{source.display}"
            if head is None and source.path is not None:
                found = load_vlm_head(source.path, self.model)
                if found is not None:
                    head, info = found
        else:
            if processor is None:
                raise ValueError("pass processor=... together with an already loaded model")
            self.model, self.processor = model, processor
            self.name = name or f"{self.kind}:{type(model).__name__}"
        self.model.eval()
        language_model(self.model)  # refuses M-RoPE models now, not at the first batch
        if head is None:
            warnings.warn(f"{self.name}: no reward head (reward_head.safetensors) beside the model; a random head was "
                          f"initialised (seed={seed}): scores are reproducible but not meaningful until the head is trained.", stacklevel=2)
            head = new_head(self.model, 1, seed)
        self.head, self.head_info = head.eval(), info
        if int(self.head.out_features) != 1:
            raise ValueError(f"{self.name}: the head has {self.head.out_features} outputs; vlm-classifier reads one scalar")
        tokenizer = getattr(self.processor, "tokenizer", None)
        if tokenizer is None:
            raise ValueError(f"the processor {type(self.processor).__name__} has no tokenizer")
        if not (getattr(self.processor, "chat_template", None) or getattr(tokenizer, "chat_template", None)):
            raise ValueError(f"{self.name}: the processor has no chat template; a vision-language model needs one to place its images")
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        self.pad_id = int(pad if pad is not None else 0)
        text_config = getattr(self.model.config, "text_config", self.model.config)
        self.max_length = max_length if max_length is not None else getattr(text_config, "max_position_embeddings", None)
        self.max_tokens_per_batch, self.batch_size, self.max_padding = int(max_tokens_per_batch), batch_size, max_padding
        self.padding_side, self.seed, self.progress = padding_side, seed, progress

    def encode(self, prompts: Sequence[Prompt], completions: Sequence[Completion], images: Sequence[Any] | None = None) -> list[VLMItem | str]:
        """Each sample's :class:`VLMItem`, or why it cannot be encoded (an unreadable image, a bad shape)."""
        out: list[VLMItem | str] = []
        for k, (p, c) in enumerate(zip(prompts, completions)):
            try:
                out.append(encode(self.processor, p, c, images[k] if images is not None else None, max_length=self.max_length))
            except (ImageError, ValueError) as err:
                out.append(str(err))
        return out

    def score(self, prompts: Sequence[Prompt], completions: Sequence[Completion], **columns: Any) -> RewardOutput:
        import torch
        from tqdm.auto import tqdm

        self._check_lengths(prompts, completions)
        images = columns.get("images", columns.get("image"))
        encoded = self.encode(prompts, completions, images)
        todo = [i for i, e in enumerate(encoded) if isinstance(e, VLMItem) and not e.too_long and len(e)]
        values: dict[int, float] = {}
        items = [encoded[i] for i in todo]
        disable = None if self.progress is None else not self.progress
        with torch.inference_mode(), tqdm(total=sum(map(len, items)), unit="tok", desc=f"{self.name} scoring", disable=disable, leave=False) as bar:
            for batch in batches(items, self.max_tokens_per_batch, self.batch_size, self.max_padding):
                out = head_outputs(self.model, self.head, [items[b] for b in batch], self.pad_id, self.padding_side)
                for b, v in zip(batch, out[:, 0].tolist()):
                    values[todo[b]] = float(v)
                bar.update(sum(len(items[b]) for b in batch))
        scores: list[float | None] = []
        reasons: list[str | None] = []
        for i, e in enumerate(encoded):
            reason = e if isinstance(e, str) else (f"{len(e)} tokens (image tokens included) exceed max_length={self.max_length}; "
                                                    "a VLM sequence is not truncated" if e.too_long else None if len(e) else "empty input")
            reasons.append(reason)
            scores.append(values.get(i) if reason is None else None)
        extras: dict[str, list] = {
            "truncated": [isinstance(e, VLMItem) and e.too_long for e in encoded],
            "num_tokens": [len(e) if isinstance(e, VLMItem) else 0 for e in encoded],
            "num_images": [e.num_images if isinstance(e, VLMItem) else 0 for e in encoded],
        }
        if any(reasons):
            extras["reason"] = reasons
        return RewardOutput(scores=scores, extras=extras)
