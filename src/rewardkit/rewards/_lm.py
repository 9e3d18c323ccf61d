"""Shared machinery for rewards that run a transformer over (prompt, completion) token ids:
model + tokenizer loading, encoding, token-budget batching under ``torch.inference_mode``."""
from __future__ import annotations

from typing import Any, Callable, Literal, Sequence

from ..models import Encoded, Encoder, load_model, load_tokenizer, make_batches, pad_batch, resolve_source
from ..models.heads import hidden_states
from ..models.loading import resolve_device
from ..protocol import BaseReward


class TransformerReward(BaseReward):
    """Base for model-backed rewards. The keyword arguments are the configuration:

    model: ``default`` (embedded SmolLM2-135M-Instruct), a directory, a .gguf file, a hub id,
        or an already loaded ``PreTrainedModel`` (then pass ``tokenizer`` too).
    max_tokens_per_batch: padded-token budget of one forward pass (sorted by length, so padding is small).
    batch_size: optional cap on rows per batch on top of the token budget.
    max_padding: close a batch rather than let padding exceed this share of its tokens.
    max_length: truncate longer inputs (default: the model's context size); truncation is reported
        per sample in ``extras["truncated"]``.
    truncation_side: "left" keeps the end of the conversation (the completion), "right" keeps the start.
    padding_side: has no effect on scores (positions come from the attention mask); exposed so tests
        and users can check that.
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
        self.missing_weights: list[str] = []
        if isinstance(model, str):
            source = resolve_source(model)
            self.model_label = source.display
            self.tokenizer = tokenizer if tokenizer is not None else load_tokenizer(source)
            self.model, self.missing_weights = load_model(
                source, self.task, dtype=dtype, device=device, seed=seed, return_missing=True, **load_kwargs
            )
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
        self.progress = progress
        self.seed = seed
        pad = self.tokenizer.pad_token_id
        if pad is None:
            pad = self.tokenizer.eos_token_id if self.tokenizer.eos_token_id is not None else 0
        self.pad_id = int(pad)

    @property
    def backbone(self):
        return self.model.base_model

    def encode(self, prompts: Sequence[Any], completions: Sequence[Any]) -> list[Encoded]:
        self._check_lengths(prompts, completions)
        return self.encoder.encode_many(prompts, completions)

    def hidden_states(self, batch):
        """Last hidden states ``[B, T, H]`` of the backbone for one padded batch."""
        return hidden_states(self.backbone, batch)

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
        one batch's ``forward(batch)`` (default: the backbone's last hidden states ``[B, T, H]``) into
        one result per row. Results come back in input order; empty inputs give ``None``."""
        import torch
        from tqdm.auto import tqdm

        results: list[Any] = [None] * len(encoded)
        todo = [i for i, e in enumerate(encoded) if len(e) > 0]
        lengths = [len(encoded[i]) for i in todo]
        batches = make_batches(lengths, self.max_tokens_per_batch, self.batch_size, self.max_padding)
        disable = None if self.progress is None else not self.progress
        with torch.inference_mode(), tqdm(total=sum(lengths), unit="tok", desc=f"{self.name} {desc}", disable=disable, leave=False) as bar:
            for local in batches:
                idx = [todo[j] for j in local]
                rows = [encoded[i] for i in idx]
                batch = pad_batch([r.input_ids for r in rows], idx, self.pad_id, padding_side or self.padding_side, self.device)
                out = (forward or self.hidden_states)(batch)
                for i, value in zip(idx, readout(out, batch, rows)):
                    results[i] = value
                bar.update(batch.num_tokens)
        return results
