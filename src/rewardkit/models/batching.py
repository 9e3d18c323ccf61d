"""Token-budget batching: sort by length, fill each batch up to ``max_tokens`` padded tokens.

Padding a fixed number of samples to the longest in input order wastes most of the compute on
mixed-length data; grouping similar lengths keeps padding near zero. Position ids are computed from
the attention mask, so left and right padding give the same positions for every real token.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Sequence


@dataclass
class Batch:
    indices: list[int]  # positions of these rows in the caller's input
    input_ids: "object"  # LongTensor [B, T]
    attention_mask: "object"  # LongTensor [B, T]
    position_ids: "object"  # LongTensor [B, T]
    offsets: list[int]  # left padding per row: real token j of row r sits at column offsets[r] + j
    lengths: list[int]

    @property
    def num_tokens(self) -> int:
        return sum(self.lengths)

    @property
    def padded_tokens(self) -> int:
        return len(self.lengths) * (max(self.lengths) if self.lengths else 0)


def make_batches(
    lengths: Sequence[int],
    max_tokens: int,
    max_batch_size: int | None = None,
    max_padding: float = 0.1,
) -> list[list[int]]:
    """Group indices into batches with ``len(batch) * longest <= max_tokens`` (a longer single
    sequence gets a batch of its own), longest first so memory trouble shows up at once.

    A batch is also closed when adding the next (shorter) sequence would make more than
    ``max_padding`` of its padded tokens padding: on long-tailed data a pure token budget still mixes
    lengths 2:1 in one batch, and on CPU a few more, smaller forwards cost less than the padding.
    """
    if max_tokens <= 0:
        raise ValueError("max_tokens must be positive")
    if not 0.0 <= max_padding < 1.0:
        raise ValueError("max_padding must be in [0, 1)")
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    batches: list[list[int]] = []
    current: list[int] = []
    real = 0
    for i in order:
        if current:
            longest = lengths[current[0]]
            padded = (len(current) + 1) * longest
            full = max_batch_size is not None and len(current) >= max_batch_size
            wasteful = padded - (real + lengths[i]) > max_padding * padded
            if full or padded > max_tokens or wasteful:
                batches.append(current)
                current, real = [], 0
        current.append(i)
        real += lengths[i]
    if current:
        batches.append(current)
    return batches


def pad_batch(
    sequences: Sequence[Sequence[int]],
    indices: list[int],
    pad_id: int,
    side: Literal["left", "right"] = "right",
    device: str = "cpu",
) -> Batch:
    import torch

    lengths = [len(s) for s in sequences]
    width = max(lengths)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    offsets = []
    for r, seq in enumerate(sequences):
        start = width - len(seq) if side == "left" else 0
        ids[r, start : start + len(seq)] = torch.as_tensor(list(seq), dtype=torch.long)
        mask[r, start : start + len(seq)] = 1
        offsets.append(start)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    return Batch(indices, ids.to(device), mask.to(device), positions.to(device), offsets, lengths)
