"""Loading language models and tokenizers (local dir, hub id, GGUF file, the embedded default),
turning prompt/completion pairs into token ids, and batching them by a token budget (padded, or
several sequences packed per row)."""
from .loading import ModelSource, embedded_default_path, load_model, load_tokenizer, resolve_source
from .encoding import Encoded, Encoder
from .batching import Batch, PairBatch, make_batches, pack_batch, pack_batches, pad_batch, pad_pair_batch, packed_layout

__all__ = [
    "ModelSource", "embedded_default_path", "load_model", "load_tokenizer", "resolve_source",
    "Encoded", "Encoder", "Batch", "PairBatch", "make_batches", "pack_batch", "pack_batches", "pad_batch", "pad_pair_batch",
    "packed_layout",
]
