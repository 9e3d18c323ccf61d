"""Shared machinery for rewards that run a transformer over (prompt, completion) token ids:
model + tokenizer loading, encoding, token-budget batching (padded or packed) under ``torch.inference_mode``."""
from __future__ import annotations

import warnings
from typing import Any, Callable, Literal, Sequence

from ..models import Encoded, Encoder, load_model, load_tokenizer, make_batches, pack_batch, pack_batches, pad_batch, packed_layout, resolve_source
from ..models.batching import mask_dtype
from ..models.heads import hidden_states
from ..models.loading import flash_attention_available, resolve_device
from ..protocol import BaseReward


class TransformerReward(BaseReward):
    """Base for model-backed rewards. The keyword arguments are the configuration:

    model: ``default`` (embedded SmolLM2-135M-Instruct), a directory, a .gguf file, a hub id,
        or an already loaded ``PreTrainedModel`` (then pass ``tokenizer`` too).
    max_tokens_per_batch: padded-token budget of one forward pass (sorted by length, so padding is small).
    batch_size: optional cap on rows per batch on top of the token budget.
    max_padding: close a batch rather than let padding exceed this share of its tokens (packed: open a
        row only for a sequence within this share of the forward's longest; shorter ones fill gaps).
    max_length: truncate longer inputs (default: the model's context size); truncation is reported
        per sample in ``extras["truncated"]``.
    truncation_side: "left" keeps the end of the conversation (the completion), "right" keeps the start.
    padding_side: has no effect on scores (positions come from the attention mask); exposed so tests
        and users can check that.
    packing: "off" pads each batch to its longest sequence (sorted by length, so padding stays small).
        "on" packs several sequences into each row instead, up to the token budget, positions
        restarting per sequence: with sdpa / eager attention (the CPU path) rows are as wide as the
        batch's longest sequence and a 4D block mask keeps sequences apart (the mask training uses for
        pairs; masked keys still cost attention work); with flash attention (loaded automatically when
        ``flash_attn`` is installed, the device is a GPU and ``dtype`` is float16/bfloat16) all
        sequences share one unpadded row and the variable-length kernel attends within each, computing
        nothing masked. "auto" packs only in that flash-attention case. Scores equal the padded
        path's within float rounding (tests/invariant/test_packed_scoring.py); other attention
        implementations cannot pack ("on" is then an error, "auto" pads).
    attn_implementation: transformers' attention kernel (sdpa, eager, flash_attention_2 ...); default:
        transformers' choice, or flash_attention_2 when ``packing`` is not "off" and it can run.
    """

    task: Literal["causal-lm", "sequence-classification"] = "causal-lm"
    kind = "lm"

    def __init__(
        self,
        model: Any = "default",
        *,
        tokenizer: Any = None,
        max_tokens_per_batch: int = 8192,
        batch_size: int | None = None,
        max_padding: float = 0.1,
        max_length: int | None = None,
        truncation_side: Literal["left", "right"] = "left",
        padding_side: Literal["left", "right"] = "right",
        packing: Literal["auto", "on", "off"] = "off",
        attn_implementation: str | None = None,
        chat_template: Literal["auto", "on", "off"] = "auto",
        system_prompt: str | None = None,
        device: str | None = None,
        dtype: str = "float32",
        seed: int = 0,
        progress: bool | None = False,
        name: str | None = None,
        **load_kwargs: Any,
    ):
        if padding_side not in ("left", "right"):
            raise ValueError(f"padding_side must be 'left' or 'right', got {padding_side!r}")
        if packing not in ("auto", "on", "off"):
            raise ValueError(f"packing must be 'auto', 'on' or 'off', got {packing!r}")
        self.missing_weights: list[str] = []
        if isinstance(model, str):
            source = resolve_source(model)
            self.model_label = source.display
            self.tokenizer = tokenizer if tokenizer is not None else load_tokenizer(source)
            self.model, self.missing_weights = self._load(source, packing, attn_implementation, dtype=dtype, device=device, seed=seed,
                                                          **load_kwargs)
            spec_model = model
        else:
            if tokenizer is None:
                raise ValueError("pass tokenizer=... together with an already loaded model")
            self.model, self.tokenizer = model, tokenizer
            self.model.eval()
            self.model_label = getattr(model.config, "_name_or_path", type(model).__name__) or type(model).__name__
            spec_model = self.model_label
        self.name = name or f"{self.kind}:{spec_model}"
        self.device = str(next(self.model.parameters()).device) if device is None else resolve_device(device)
        context = getattr(self.model.config, "max_position_embeddings", None)
        self.max_length = max_length if max_length is not None else context
        self.encoder = Encoder(
            self.tokenizer,
            chat_template=chat_template,
            max_length=self.max_length,
            truncation_side=truncation_side,
            system_prompt=system_prompt,
        )
        self.max_tokens_per_batch = int(max_tokens_per_batch)
        self.batch_size = batch_size
        self.max_padding = max_padding
        self.padding_side = padding_side
        self.packing = packing
        _ = self.layout  # packing="on" where the attention cannot pack is refused now, not at the first batch
        self.progress = progress
        self.seed = seed
        pad = self.tokenizer.pad_token_id
        if pad is None:
            pad = self.tokenizer.eos_token_id if self.tokenizer.eos_token_id is not None else 0
        self.pad_id = int(pad)

    def _load(self, source, packing: str, attn_implementation: str | None, **kwargs: Any):
        """(model, missing weights), with flash attention 2 when packing is wanted and it can run here
        (its variable-length kernel is the padding-free path); a model class without flash attention
        support falls back to transformers' default attention, with a warning."""
        if attn_implementation is None and packing != "off" and flash_attention_available(resolve_device(kwargs.get("device")), kwargs.get("dtype")):
            try:
                return load_model(source, self.task, return_missing=True, attn_implementation="flash_attention_2", **kwargs)
            except (ValueError, ImportError) as err:
                warnings.warn(f"flash attention is installed but this model cannot use it ({err}); packing with sdpa's block mask", stacklevel=3)
        return load_model(source, self.task, return_missing=True, attn_implementation=attn_implementation, **kwargs)

    @property
    def layout(self) -> str | None:
        """How :meth:`run` lays batches out: None = padded, "mask" / "varlen" = packed (models/batching.py)."""
        layout = packed_layout(self.model)
        if self.packing == "on" and layout is None:
            raise ValueError(f"{self.name}: packing='on' needs sdpa, eager or flash attention; this model uses "
                             f"{getattr(self.model.config, '_attn_implementation', None)!r} (use packing='off')")
        return layout if self.packing == "on" or (self.packing == "auto" and layout == "varlen") else None

    @property
    def backbone(self):
        return self.model.base_model

    def encode(self, prompts: Sequence[Any], completions: Sequence[Any]) -> list[Encoded]:
        self._check_lengths(prompts, completions)
        return self.encoder.encode_many(prompts, completions)

    def hidden_states(self, batch):
        """Last hidden states ``[R, T, H]`` of the backbone for one (padded or packed) batch."""
        return hidden_states(self.backbone, batch)

    def plan(self, lengths: Sequence[int], layout: str | None = None) -> list[list[list[int]]]:
        """The forward passes :meth:`run` makes over sequences of these ``lengths``: per forward, its
        tensor rows, each a list of indices into ``lengths`` (one per row when padded, ``layout=None``)."""
        if layout is None:
            return [[[j] for j in b] for b in make_batches(lengths, self.max_tokens_per_batch, self.batch_size, self.max_padding)]
        return pack_batches(lengths, self.max_tokens_per_batch, self.batch_size, self.max_padding, layout)

    def run(
        self,
        encoded: Sequence[Encoded],
        readout: Callable[[Any, Any, list[Encoded]], list[Any]],
        *,
        forward: Callable[[Any], Any] | None = None,
        padding_side: str | None = None,
        desc: str = "scoring",
    ) -> list[Any]:
        """Run the model over ``encoded`` in token-budget batches; ``readout(out, batch, rows)`` turns
        one batch's ``forward(batch)`` (default: the backbone's last hidden states ``[R, T, H]``) into
        one result per sequence (``rows``, the batch's encoded sequences in ``batch`` order). Batches
        are packed as ``self.layout`` says, unless a ``forward`` of its own is given (it gets padded
        batches). Results come back in input order; empty inputs give ``None``."""
        import torch
        from tqdm.auto import tqdm

        results: list[Any] = [None] * len(encoded)
        todo = [i for i, e in enumerate(encoded) if len(e) > 0]
        lengths = [len(encoded[i]) for i in todo]
        layout = self.layout if forward is None else None
        disable = None if self.progress is None else not self.progress
        with torch.inference_mode(), tqdm(total=sum(lengths), unit="tok", desc=f"{self.name} {desc}", disable=disable, leave=False) as bar:
            for group in self.plan(lengths, layout):
                idx = [todo[j] for row in group for j in row]
                rows = [encoded[i] for i in idx]
                if layout is None:
                    batch = pad_batch([r.input_ids for r in rows], idx, self.pad_id, padding_side or self.padding_side, self.device)
                else:
                    batch = pack_batch([[encoded[todo[j]].input_ids for j in row] for row in group], idx, self.pad_id, layout,
                                       mask_dtype(self.model), self.device)
                out = (forward or self.hidden_states)(batch)
                for i, value in zip(idx, readout(out, batch, rows)):
                    results[i] = value
                bar.update(batch.num_tokens)
        return results
