"""Local generation with a vision-language model (transformers' image-text-to-text models, e.g.
SmolVLM / Idefics3): the prompts' images go through the model's own processor and chat template, and
decoding is :class:`LocalClient`'s loop, so sampling is seeded per sample the same way (run seed,
the prompt's rendered text and its images' bytes, sample index) and a sample's text does not depend
on its batch mates.

Prompts are text or chat messages whose content may hold image parts in any shape
:mod:`rewardkit.images` reads; each image part becomes the processor's ``{"type": "image"}`` where
it stood, and the image itself is read under the image policy in force.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Sequence

from ..images import ImageRef, is_image_part
from ..models import make_batches, resolve_source
from ..models.encoding import special_prefix, to_messages, with_prefix
from ..models.loading import load_model, load_processor
from ..models.vlm import stack_image_tensors as stack
from ..protocol import message_text
from ..types import Prompt
from .base import Generation, RawText, Sampling, per_prompt
from .local import LocalClient


@dataclass
class _Prepared:
    ids: list[int]
    key: str  # what seeds the prompt's samples: rendered text + image digests
    tensors: dict[str, Any] = field(default_factory=dict)  # the processor's image tensors (batch-major, batch of one)


class LocalVLMClient(LocalClient):
    """Generate with a local vision-language model.

    model: a directory or hub id that ``AutoModelForImageTextToText`` and ``AutoProcessor`` load, or a
        loaded model (then pass ``processor``).
    processor: its processor (tokenizer, image processor and chat template); loaded with the model by default.
    images: read the prompts' images (``False``: a judge on this client refuses image samples).
    Batching, the token budget and ``system_prompt`` are :class:`LocalClient`'s; prompts with and
    without images are batched apart. Models that place image tokens with 3-D positions (M-RoPE:
    Qwen2-VL and its successors) are refused: this loop gives one position per token, which would
    misplace them; serve such a model with vLLM and use ``openai:MODEL@URL`` with ``images=True``.
    """

    def __init__(self, model: Any, *, processor: Any = None, images: bool = True, system_prompt: str | None = None,
                 max_tokens_per_batch: int = 16384, max_batch_size: int = 16, device: str | None = None,
                 dtype: str = "float32", name: str | None = None):
        if isinstance(model, str):
            source = resolve_source(model)
            processor = processor if processor is not None else load_processor(source)
            loaded = load_model(source, "image-text-to-text", dtype=dtype, device=device)
            name = name or f"local:{source.display}"
        else:
            if processor is None:
                raise ValueError("pass processor=... together with an already loaded model")
            loaded = model
        if any(hasattr(m, "get_rope_index") for m in (loaded, getattr(loaded, "model", None)) if m is not None):
            raise ValueError(f"{type(loaded).__name__} places image tokens with 3-D positions (M-RoPE), which LocalVLMClient does "
                             "not compute; serve it with vLLM or SGLang and use openai:MODEL@URL with images=True")
        tokenizer = getattr(processor, "tokenizer", None)
        if tokenizer is None:
            raise ValueError(f"the processor {type(processor).__name__} has no tokenizer")
        self.processor = processor
        super().__init__(loaded, tokenizer=tokenizer, system_prompt=system_prompt, max_tokens_per_batch=max_tokens_per_batch,
                         max_batch_size=max_batch_size, device=device, dtype=dtype, name=name)
        self.chat_template = getattr(processor, "chat_template", None) or getattr(tokenizer, "chat_template", None)
        if not self.chat_template:
            raise ValueError(f"{self.name}: neither the processor nor the tokenizer has a chat template; a vision-language model "
                             "needs one to place its images")
        self.reads_images = bool(images)
        self.image_hint = None if images else f"{self.name} was built with images=False"

    # ----------------------------------------------------------------- prompts
    def _chat(self, prompt: Prompt) -> tuple[list[dict[str, Any]], list[ImageRef]]:
        """(messages in the processor's shape, the images in order): every content is a list of
        ``{"type": "text", "text": ...}`` / ``{"type": "image"}`` parts."""
        to_messages(prompt)  # the same validation of the shape
        if isinstance(prompt, str):
            return [{"role": "user", "content": [{"type": "text", "text": prompt}]}], []
        messages, refs = [], []
        for m in prompt:
            content = m["content"]
            parts = []
            for p in content if isinstance(content, (list, tuple)) else [content]:
                if is_image_part(p):
                    if not self.reads_images:
                        raise ValueError(f"{self.name} was built with images=False and the prompt carries images")
                    refs.append(ImageRef.parse(p))
                    parts.append({"type": "image"})
                elif message_text(p):
                    parts.append({"type": "text", "text": message_text(p)})
            messages.append({"role": str(m["role"]), "content": parts})
        if self.system_prompt and messages[0]["role"] != "system":
            messages = [{"role": "system", "content": [{"type": "text", "text": self.system_prompt}]}] + messages
        return messages, refs

    def render(self, prompt: Prompt, assistant_prefix: str = "") -> str:
        """The text the model continues (each image as the chat template's image placeholder, which
        the processor expands into the image's tokens)."""
        if isinstance(prompt, RawText):
            return str(prompt) + assistant_prefix
        messages, _ = self._chat(prompt)
        return self.processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True) + assistant_prefix

    def _prepare(self, prompt: Prompt, assistant_prefix: str) -> _Prepared:
        text = self.render(prompt, assistant_prefix)
        refs = [] if isinstance(prompt, RawText) else self._chat(prompt)[1]
        raws = [ref.data() for ref in refs]
        images = [ImageRef("bytes", raw, ref.where).load().convert("RGB") for raw, ref in zip(raws, refs)]
        enc = self.processor(text=[text], images=[images] if images else None, return_tensors="pt", add_special_tokens=False)
        if getattr(self, "_special_prefix", None) is None:
            self._special_prefix = special_prefix(self.tokenizer)
        ids = with_prefix(enc["input_ids"][0].tolist(), self._special_prefix)
        key = text + "".join("|image:" + hashlib.sha256(raw).hexdigest() for raw in raws)
        tensors = {k: v for k, v in enc.items() if k not in ("input_ids", "attention_mask") and hasattr(v, "shape")} if images else {}
        return _Prepared(ids, key, tensors)

    # ----------------------------------------------------------------- generation
    def generate(self, prompts: Sequence[Prompt], *, assistant_prefix: Sequence[str] | str | None = None,
                 **options: Any) -> list[list[Generation]]:
        """As :meth:`LocalClient.generate`; prompts may carry images."""
        o = Sampling.of(self.name, options)
        if o.seed is None and o.temperature > 0:
            raise ValueError("sampling needs a seed (results must be reproducible); pass seed=<int>")
        prefixes = per_prompt(assistant_prefix, len(prompts))
        items = [self._prepare(p, pre) for p, pre in zip(prompts, prefixes)]
        results: list[list[Generation]] = [[] for _ in prompts]
        with self._lock:
            for with_images in (False, True):  # a batch's image tensors are stacked: batched apart from text-only prompts
                group = [i for i, it in enumerate(items) if bool(it.tensors) == with_images]
                lengths = [(len(items[i].ids) + o.max_new_tokens) * o.n for i in group]
                for batch in make_batches(lengths, self.max_tokens_per_batch, self.max_batch_size, max_padding=0.5) if group else []:
                    chosen = [items[group[b]] for b in batch]
                    outs = self._generate_batch([it.ids for it in chosen], [it.key for it in chosen], o.max_new_tokens,
                                                o.temperature, o.top_p, o.n, o.seed, o.stop, o.wants_logprobs, o.top_logprobs,
                                                inputs=stack([it.tensors for it in chosen]) if with_images else None)
                    for b, gens in zip(batch, outs):
                        results[group[b]] = gens
        return results

