"""A scalar head on a vision-language model (transformers' image-text-to-text models, e.g. SmolVLM /
Idefics3): the conversation with its images goes through the model's own processor and chat template,
the language model's last hidden state is read at the last real token (found from the attention mask)
and a linear head turns it into the reward. Shared by the ``vlm-classifier`` reward and the ``vlm-bt``
recipe, so scoring reads exactly what training trained.

transformers has no sequence-classification class for these models, so a trained model is saved as the
VLM (``save_pretrained``), its processor, and the head beside them: ``reward_head.safetensors``
(``weight [num_labels, hidden]``, ``bias [num_labels]``) with ``reward_head.json`` (readout, sizes,
reward statistics). :func:`load_vlm_head` is the whole loader.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from ..images import ImageRef, column_images, is_image_part, is_placeholder
from ..protocol import message_text
from .batching import make_batches

HEAD_WEIGHTS = "reward_head.safetensors"
HEAD_CONFIG = "reward_head.json"


@dataclass
class VLMItem:
    """One (prompt, completion) as the processor encoded it: ``ids`` already hold each image's
    expanded image tokens, ``tensors`` the image tensors (batch of one; empty without images)."""

    ids: list[int]
    tensors: dict[str, Any] = field(default_factory=dict)
    num_images: int = 0
    too_long: bool = False

    def __len__(self) -> int:
        return len(self.ids)


def _parts(content: Any) -> list[Any]:
    return list(content) if isinstance(content, (list, tuple)) else [content]


def to_chat(prompt: Any, completion: Any, images: Any = None) -> tuple[list[dict[str, Any]], list[ImageRef]]:
    """(messages in the processor's shape, their images in order): every content becomes a list of
    ``{"type": "text"}`` / ``{"type": "image"}`` parts; the completion is the final assistant turn.
    Placeholders take the ``images`` column's images in order; without placeholders the column's
    images go before the text of the last user message."""
    extra = [ImageRef.parse(v) for v in column_images(images)]
    messages = [{"role": "user", "content": [prompt]}] if isinstance(prompt, str) else [dict(m) for m in prompt]
    holes = sum(1 for m in messages for p in _parts(m.get("content")) if is_placeholder(p))
    if holes and holes != len(extra):
        raise ValueError(f"the prompt has {holes} image placeholders but the sample has {len(extra)} images in its 'images' column")
    if extra and not holes:
        users = [k for k, m in enumerate(messages) if m.get("role") == "user"]
        if not users:
            raise ValueError("the sample has images in its 'images' column but the prompt has no user message to show them in")
        last = messages[users[-1]]
        last["content"] = [{"type": "image"}] * len(extra) + _parts(last.get("content"))
    if isinstance(completion, str):
        turn = [completion]
    elif isinstance(completion, (list, tuple)) and completion and all(isinstance(c, str) for c in completion):
        turn = ["\n".join(completion)]  # pre-split steps
    elif isinstance(completion, (list, tuple)) and all(isinstance(c, dict) and "role" in c for c in completion):
        turn = [p for m in completion if m.get("role") == "assistant" for p in _parts(m.get("content"))]
    else:
        turn = _parts(completion)
    messages.append({"role": "assistant", "content": turn})
    fill = iter(extra)
    out, refs = [], []
    for m in messages:
        parts = []
        for p in _parts(m.get("content")):
            if is_image_part(p):
                refs.append(next(fill) if is_placeholder(p) else ImageRef.parse(p))
                parts.append({"type": "image"})
            elif message_text(p):
                parts.append({"type": "text", "text": message_text(p)})
        out.append({"role": str(m["role"]), "content": parts})
    return out, refs


def encode(processor: Any, prompt: Any, completion: Any, images: Any = None, *, max_length: int | None = None) -> VLMItem:
    """The processor's encoding of ``template(prompt + completion)``. A sequence longer than
    ``max_length`` is marked ``too_long`` (cutting it could cut an image's tokens apart from its
    pixels, so it is not truncated; the reward reports it as ``None``)."""
    messages, refs = to_chat(prompt, completion, images)
    text = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=False)
    loaded = [ref.load().convert("RGB") for ref in refs]
    enc = processor(text=[text], images=[loaded] if loaded else None, return_tensors="pt", add_special_tokens=False)
    ids = enc["input_ids"][0].tolist()
    tensors = {k: v for k, v in enc.items() if k not in ("input_ids", "attention_mask") and hasattr(v, "shape")} if loaded else {}
    return VLMItem(ids, tensors, len(loaded), max_length is not None and len(ids) > max_length)


def stack_image_tensors(tensors: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The processor outputs of single samples as one batch: each tensor concatenated along its first
    (batch) dimension, smaller ones zero-padded at the end of every other dimension first, as a
    processor pads a batch (an image-less slot or a smaller image is zeros, masked by its pixel mask)."""
    import torch

    keys = set(tensors[0])
    if any(set(t) != keys for t in tensors):
        raise ValueError(f"the processor returned different tensors for samples of one batch: {sorted(set().union(*map(set, tensors)))}")
    out = {}
    for key in sorted(keys):
        values = [t[key] for t in tensors]
        shape = [max(v.shape[d] for v in values) for d in range(1, values[0].dim())]
        padded = []
        for v in values:
            pad = [x for d in reversed(range(1, v.dim())) for x in (0, shape[d - 1] - v.shape[d])]
            padded.append(torch.nn.functional.pad(v, pad) if any(pad) else v)
        out[key] = torch.cat(padded, dim=0)
    return out


def language_model(vlm: Any) -> Any:
    """The module that returns the language model's hidden states for ids + pixels (``vlm.model``
    of a ``...ForConditionalGeneration``), refusing models that place image tokens with 3-D
    positions (M-RoPE: Qwen2-VL and successors), whose positions this readout does not compute."""
    if hasattr(vlm, "get_base_model"):  # a peft model: its LoRA layers live inside the base model's modules
        vlm = vlm.get_base_model()
    if any(hasattr(m, "get_rope_index") for m in (vlm, getattr(vlm, "model", None)) if m is not None):
        raise ValueError(f"{type(vlm).__name__} places image tokens with 3-D positions (M-RoPE), which the vlm-classifier readout "
                         "does not compute; it supports models with one position per token (Idefics3 / SmolVLM, LLaVA-style)")
    return getattr(vlm, "model", vlm)


def hidden_size(vlm: Any) -> int:
    config = vlm.config
    text = getattr(config, "text_config", None)
    return int(getattr(text, "hidden_size", None) or config.hidden_size)


def head_outputs(vlm: Any, head: Any, items: Sequence[VLMItem], pad_id: int, padding_side: str = "right") -> Any:
    """``head`` at each item's last real token: ``[N, num_labels]`` float32, items in order. Items with
    and without images go through separate forwards (a batch's image tensors are stacked); positions
    come from the attention mask, so neither padding side nor batch mates move a score."""
    import torch

    device = next(vlm.parameters()).device
    out: list[Any] = [None] * len(items)
    for with_images in (False, True):
        group = [i for i, it in enumerate(items) if bool(it.tensors) == with_images]
        if not group:
            continue
        width = max(len(items[i]) for i in group)
        ids = torch.full((len(group), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(group), width), dtype=torch.long)
        last = []
        for r, i in enumerate(group):
            n = len(items[i])
            cols = slice(width - n, width) if padding_side == "left" else slice(0, n)
            ids[r, cols] = torch.tensor(items[i].ids)
            mask[r, cols] = 1
            last.append(width - 1 if padding_side == "left" else n - 1)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        extra = {k: v.to(device) for k, v in stack_image_tensors([items[i].tensors for i in group]).items()} if with_images else {}
        if "pixel_values" in extra:
            extra["pixel_values"] = extra["pixel_values"].to(next(vlm.parameters()).dtype)
        hidden = language_model(vlm)(input_ids=ids.to(device), attention_mask=mask.to(device), position_ids=positions.to(device),
                                      use_cache=False, **extra).last_hidden_state
        picked = hidden[torch.arange(len(group), device=device), torch.tensor(last, device=device)]
        values = head(picked.to(head.weight.dtype)).float()
        for r, i in enumerate(group):
            out[i] = values[r]
    return torch.stack(out)


def batches(items: Sequence[VLMItem], max_tokens: int, batch_size: int | None, max_padding: float) -> list[list[int]]:
    """Forwards of at most ``max_tokens`` padded tokens, an image counting its image tokens (they are
    in the ids); items with and without images are planned apart since they never share a forward."""
    plans = []
    for with_images in (False, True):
        group = [i for i, it in enumerate(items) if bool(it.tensors) == with_images]
        if group:
            plans += [[group[b] for b in batch] for batch in make_batches([len(items[i]) for i in group], max_tokens, batch_size, max_padding)]
    return plans


def new_head(vlm: Any, num_labels: int = 1, seed: int = 0) -> Any:
    """A float32 linear head on the language model's hidden size, initialised from ``seed``."""
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        head = torch.nn.Linear(hidden_size(vlm), num_labels)
        torch.nn.init.normal_(head.weight, std=hidden_size(vlm) ** -0.5)
        torch.nn.init.zeros_(head.bias)
    return head.to(next(vlm.parameters()).device)


def save_head(head: Any, directory: Path, info: dict[str, Any]) -> None:
    """``reward_head.safetensors`` + ``reward_head.json`` in ``directory``."""
    from safetensors.torch import save_file

    directory = Path(directory)
    save_file({"weight": head.weight.detach().float().cpu().contiguous(), "bias": head.bias.detach().float().cpu().contiguous()},
              str(directory / HEAD_WEIGHTS))
    meta = {"readout": "last-token", "hidden_size": int(head.in_features), "num_labels": int(head.out_features), **info}
    (directory / HEAD_CONFIG).write_text(json.dumps(meta, indent=2))


def load_vlm_head(directory: str | Path, vlm: Any) -> tuple[Any, dict[str, Any]] | None:
    """(the saved head as a float32 ``torch.nn.Linear``, its ``reward_head.json``), or ``None`` when
    ``directory`` holds no head. The whole loader, for use without rewardkit::

        vlm = AutoModelForImageTextToText.from_pretrained(d); processor = AutoProcessor.from_pretrained(d)
        head = torch.nn.Linear(H, 1); head.load_state_dict(safetensors.torch.load_file(f"{d}/reward_head.safetensors"))
        reward = head(vlm.model(**processor(...)).last_hidden_state[:, last_real_token])
    """
    import torch
    from safetensors.torch import load_file

    directory = Path(directory)
    if not (directory / HEAD_WEIGHTS).is_file():
        return None
    meta = json.loads((directory / HEAD_CONFIG).read_text()) if (directory / HEAD_CONFIG).is_file() else {}
    state = load_file(str(directory / HEAD_WEIGHTS))
    num_labels, size = state["weight"].shape
    if size != hidden_size(vlm):
        raise ValueError(f"{directory / HEAD_WEIGHTS}: the head reads {size}-dim states, the model gives {hidden_size(vlm)}")
    head = torch.nn.Linear(size, num_labels)
    head.load_state_dict(state)
    return head.to(next(vlm.parameters()).device), meta
