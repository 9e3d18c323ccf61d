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


@dataclass
class PairBatch:
    """Preference pairs packed one row per pair: ``shared prefix + chosen tail + rejected tail``.

    The tokens both sides start with (the prompt, and in step-wise solutions often the first steps)
    are encoded once. The rejected tail attends to the shared prefix and to itself, never to the
    chosen tail, and its positions continue from the prefix, so every token sees exactly what it
    would see in its own sequence (causal attention) and the hidden states equal separate encoding.
    """
    input_ids: "object"  # LongTensor [B, T]
    attention_mask: "object"  # [B, 1, T, T]: bool (True = may attend), or additive float (0 / dtype min) for eager attention
    position_ids: "object"  # LongTensor [B, T]
    chosen_last: "object"  # LongTensor [B]: column of the chosen side's last token
    rejected_last: "object"  # LongTensor [B]
    lengths: list[int]  # packed length per row
    separate_tokens: int  # tokens the two sides would have taken as separate sequences

    @property
    def num_tokens(self) -> int:
        return sum(self.lengths)


def shared_prefix_length(a: Sequence[int], b: Sequence[int]) -> int:
    """Length of the common token prefix, leaving each side at least one token of its own (the
    reward is read at a side's last token, which must be that side's)."""
    limit = min(len(a), len(b)) - 1
    n = 0
    while n < limit and a[n] == b[n]:
        n += 1
    return max(n, 0)


def packed_pair_length(a: Sequence[int], b: Sequence[int]) -> int:
    return len(a) + len(b) - shared_prefix_length(a, b)


def pad_pair_batch(pairs: Sequence[tuple[Sequence[int], Sequence[int]]], pad_id: int, dtype=None, device: str = "cpu") -> PairBatch:
    """Pack ``(chosen_ids, rejected_ids)`` pairs into one right-padded row each (see ``PairBatch``);
    ``dtype`` is the mask's: ``torch.bool`` or the model's float dtype (default float32)."""
    import torch

    dtype = dtype or torch.float32
    rows, segments, positions, c_last, r_last = [], [], [], [], []
    for a, b in pairs:
        if not a or not b:
            raise ValueError("both sides of a pair need at least one token")
        s = shared_prefix_length(a, b)
        rows.append(list(a) + list(b[s:]))
        segments.append([0] * s + [1] * (len(a) - s) + [2] * (len(b) - s))
        positions.append(list(range(len(a))) + list(range(s, len(b))))
        c_last.append(len(a) - 1)
        r_last.append(len(rows[-1]) - 1)
    lengths = [len(r) for r in rows]
    width = max(lengths)
    n = len(rows)
    ids = torch.full((n, width), pad_id, dtype=torch.long)
    seg = torch.full((n, width), -1, dtype=torch.long)
    pos = torch.zeros((n, width), dtype=torch.long)
    for i, (r, sg, p) in enumerate(zip(rows, segments, positions)):
        ids[i, : len(r)] = torch.as_tensor(r, dtype=torch.long)
        seg[i, : len(r)] = torch.as_tensor(sg, dtype=torch.long)
        pos[i, : len(r)] = torch.as_tensor(p, dtype=torch.long)
    col = torch.arange(width)
    causal = col[:, None] >= col[None, :]  # [T, T] query row, key column
    allowed = causal[None] & (seg[:, None, :] >= 0)  # real keys only
    allowed &= ~((seg[:, :, None] == 2) & (seg[:, None, :] == 1))  # the rejected tail never sees the chosen tail
    allowed |= torch.eye(width, dtype=torch.bool)[None]  # padding rows attend to themselves (no all-masked row: no NaN)
    if dtype == torch.bool:  # sdpa takes it as is: a quarter of the memory of a float mask
        mask = allowed[:, None]
    else:
        mask = torch.zeros((n, 1, width, width), dtype=dtype)
        mask.masked_fill_(~allowed[:, None], torch.finfo(dtype).min)
    separate = sum(len(a) + len(b) for a, b in pairs)
    return PairBatch(ids.to(device), mask.to(device), pos.to(device), torch.tensor(c_last, device=device),
                     torch.tensor(r_last, device=device), lengths, separate)
