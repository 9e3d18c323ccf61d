"""Token-budget batching: sort by length, fill each batch up to ``max_tokens`` padded tokens; or pack
several sequences into each row (padding-free scoring).

Padding a fixed number of samples to the longest in input order wastes most of the compute on
mixed-length data; grouping similar lengths keeps padding near zero. Position ids are computed from
the attention mask, so left and right padding give the same positions for every real token.

Packing (:func:`pack_batches`, :func:`pack_batch`) goes further: the gaps a padded batch would fill
with pad tokens hold other, shorter sequences, each attending only to itself through the same
block mask that packs a preference pair into one row (:class:`PairBatch`), with positions restarting
at 0 per sequence. Readouts address a sequence by (row, offset), so they read a padded and a packed
batch alike.
"""
from __future__ import annotations

from bisect import bisect_left, bisect_right
from dataclasses import dataclass, field
from typing import Any, Literal, Sequence


@dataclass
class Batch:
    """Sequences laid out in an ``[R, T]`` tensor for one forward pass: sequence ``s`` (the caller's
    ``indices[s]``) sits in tensor row ``rows[s]``, its real token ``j`` at column ``offsets[s] + j``.
    Padded (:func:`pad_batch`): one sequence per row (``rows[s] == s``), ``offsets`` is the left
    padding. Packed (:func:`pack_batch`): several sequences per row."""

    indices: list[int]  # positions of these sequences in the caller's input
    input_ids: "object"  # LongTensor [R, T]
    attention_mask: "object"  # LongTensor [R, T] (padded); [R, 1, T, T] block mask or None (packed, see pack_batch)
    position_ids: "object"  # LongTensor [R, T]: 0.. per sequence
    offsets: list[int]  # column of each sequence's first real token in its row
    lengths: list[int]
    rows: list[int] = field(default_factory=list)  # tensor row of each sequence; empty: one row per sequence
    attention_kwargs: dict[str, Any] = field(default_factory=dict)  # more keyword arguments of the forward (varlen: sequence bounds)

    def __post_init__(self):
        if not self.rows:
            self.rows = list(range(len(self.lengths)))

    @property
    def num_tokens(self) -> int:
        return sum(self.lengths)

    @property
    def padded_tokens(self) -> int:
        """Token slots the forward pass computes (real tokens + padding)."""
        return int(self.input_ids.shape[0] * self.input_ids.shape[1]) if self.lengths else 0


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
    attention_kwargs: dict[str, Any] = field(default_factory=dict)  # none: the mask says it all

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
    ids, seg, pos = _right_padded(rows, segments, positions, pad_id)
    # the rejected tail (2) never sees the chosen tail (1); both see the shared prefix (0)
    mask = block_mask(seg, lambda q, k: ~((q == 2) & (k == 1)), dtype)
    separate = sum(len(a) + len(b) for a, b in pairs)
    return PairBatch(ids.to(device), mask.to(device), pos.to(device), torch.tensor(c_last, device=device),
                     torch.tensor(r_last, device=device), lengths, separate)


# ------------------------------------------------------------------ block masks and packing

def _right_padded(rows: Sequence[Sequence[int]], segments: Sequence[Sequence[int]], positions: Sequence[Sequence[int]], pad_id: int):
    """(token ids, segment ids, positions) of ``rows`` as right-padded ``[R, T]`` LongTensors; padding
    has segment -1 and position 0."""
    import torch

    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    seg = torch.full((len(rows), width), -1, dtype=torch.long)
    pos = torch.zeros((len(rows), width), dtype=torch.long)
    for i, (r, sg, p) in enumerate(zip(rows, segments, positions)):
        ids[i, : len(r)] = torch.as_tensor(list(r), dtype=torch.long)
        seg[i, : len(r)] = torch.as_tensor(sg, dtype=torch.long)
        pos[i, : len(r)] = torch.as_tensor(p, dtype=torch.long)
    return ids, seg, pos


def block_mask(seg, sees, dtype=None):
    """The ``[R, 1, T, T]`` attention mask of rows that hold several segments (``seg``: ``[R, T]``
    segment id per token, -1 for padding): a token attends to the real tokens at or before it whose
    segment ``sees(query_segment, key_segment)`` allows (broadcasting bool tensors). A padding token
    attends to itself only (a fully masked query would give NaN).

    ``dtype``: ``torch.bool`` (sdpa takes it as is: a quarter of the memory of a float mask) or a
    float dtype, the additive 0 / dtype-min mask eager attention adds (default float32).
    Masked keys cost sdpa as much as visible ones: a row's attention is ``T x T`` whatever it holds.
    """
    import torch

    dtype = dtype or torch.float32
    width = seg.shape[1]
    col = torch.arange(width, device=seg.device)
    causal = col[:, None] >= col[None, :]  # [T, T] query row, key column
    q, k = seg[:, :, None], seg[:, None, :]
    allowed = sees(q, k).expand(seg.shape[0], width, width).clone()  # [R, T, T], then in place: one allocation
    allowed &= causal
    allowed &= k >= 0
    allowed |= torch.eye(width, dtype=torch.bool, device=seg.device)
    if dtype == torch.bool:
        return allowed[:, None]
    mask = torch.zeros(allowed.shape, dtype=dtype, device=seg.device)
    mask.masked_fill_(~allowed, torch.finfo(dtype).min)
    return mask[:, None]


Layout = Literal["mask", "varlen"]


def packed_layout(model: Any) -> Layout | None:
    """How ``model``'s attention takes several sequences in one row.

    * ``"mask"`` (``sdpa``, ``eager``; the CPU path): rows as wide as the forward's longest sequence,
      each sequence confined to itself by the 4D :func:`block_mask` (the one training uses for pairs);
    * ``"varlen"`` (``flash_attention_2`` / ``_3``, with ``flash_attn`` on a GPU): all sequences in one
      unpadded row, their bounds passed as cumulative lengths (``cu_seq_lens_q/k``), so the kernel
      attends within each sequence and computes nothing masked;
    * ``None``: any other implementation (flex attention, a custom one), and sdpa / eager on a model
      with sliding-window layers (Mistral, Gemma 2/3): a 4D mask replaces every layer's own, so the
      window would be lost.
    """
    config = getattr(model, "config", None)
    impl = getattr(config, "_attn_implementation", None)
    if impl in ("sdpa", "eager"):
        sliding = any("sliding" in str(t) for t in getattr(config, "layer_types", None) or []) or (
            getattr(config, "sliding_window", None) is not None and getattr(config, "use_sliding_window", None) is not False)
        return None if sliding else "mask"
    if impl in ("flash_attention_2", "flash_attention_3"):
        return "varlen"
    return None


def mask_dtype(model: Any):
    """The dtype of the 4D masks given to ``model``: bool for sdpa, the model's float dtype for eager."""
    import torch

    if getattr(model.config, "_attn_implementation", None) == "sdpa":
        return torch.bool
    return next(model.parameters()).dtype


def pack_batches(
    lengths: Sequence[int],
    max_tokens: int,
    max_batch_size: int | None = None,
    max_padding: float = 0.1,
    layout: Layout = "mask",
) -> list[list[list[int]]]:
    """Group indices into forward passes of packed rows: ``[forward][row] -> indices``, every index once.

    ``"mask"``: a forward's rows are as wide as its longest waiting sequence ``W``, at most
    ``max_tokens // W`` of them. The longest waiting sequences open a row each while their padding
    would stay within ``max_padding`` of ``W`` (so padding stays bounded as in :func:`make_batches`,
    per row), then the gap left in each row takes the longest waiting sequences that fit (best fit,
    decreasing). Sequences shorter than that open no row here: they fill gaps or wait for a narrower
    forward, because a row costs ``W x W`` attention whatever it holds and a short sequence in a
    wide row of its own would pay for the width. ``"varlen"``: one row of up to ``max_tokens``
    tokens per forward, the longest waiting sequence first, then best fit.

    ``max_batch_size`` caps the sequences of one forward. A sequence longer than the budget gets a
    forward of its own.
    """
    if max_tokens <= 0:
        raise ValueError("max_tokens must be positive")
    if not 0.0 <= max_padding < 1.0:
        raise ValueError("max_padding must be in [0, 1)")
    if layout not in ("mask", "varlen"):
        raise ValueError(f"layout must be 'mask' or 'varlen', got {layout!r}")
    waiting: dict[int, list[int]] = {}  # length -> indices of that length, the smallest index last
    for i in sorted(range(len(lengths)), key=lambda i: -i):
        waiting.setdefault(lengths[i], []).append(i)
    present = sorted(waiting)  # the distinct lengths still waiting, ascending

    def take(n: int) -> int:
        same = waiting[n]
        i = same.pop()
        if not same:
            del waiting[n]
            present.pop(bisect_left(present, n))
        return i

    cap = max(1, max_batch_size) if max_batch_size is not None else len(lengths)
    forwards: list[list[list[int]]] = []
    while present:
        longest = present[-1]
        width = max(longest, max_tokens) if layout == "varlen" else longest
        n_rows = 1 if layout == "varlen" else max(1, max_tokens // longest)
        rows: list[list[int]] = []
        room: list[int] = []
        while present and len(rows) < min(n_rows, cap) and (not rows or longest - present[-1] <= max_padding * longest):
            n = present[-1]  # a row per sequence close to the longest
            rows.append([take(n)])
            room.append(width - n)
        taken = len(rows)
        for r in range(len(rows)):  # then the gaps: the longest waiting sequence that fits, while one does
            while present and taken < cap and present[0] <= room[r]:
                n = present[bisect_right(present, room[r]) - 1]
                rows[r].append(take(n))
                room[r] -= n
                taken += 1
        forwards.append(rows)
    return forwards


def pack_batch(
    rows: Sequence[Sequence[Sequence[int]]],
    indices: list[int],
    pad_id: int,
    layout: Layout = "mask",
    dtype=None,
    device: str = "cpu",
) -> Batch:
    """Lay out ``rows`` (per row, the token ids of its sequences; ``indices`` names the sequences in
    that order) for one forward pass with positions restarting at 0 per sequence.

    ``"mask"``: ``[R, W]`` right-padded rows and the ``[R, 1, W, W]`` :func:`block_mask` of ``dtype``
    (bool for sdpa, the model's float dtype for eager). ``"varlen"``: every sequence in one ``[1, N]``
    row, no padding and no mask; ``attention_kwargs`` carries ``cu_seq_lens_q/k`` (int32 ``[S + 1]``,
    where each sequence starts) and ``max_length_q/k``, which transformers hands to flash attention's
    variable-length kernel (given only ``position_ids``, transformers would infer the same bounds).
    """
    import torch

    seqs = [list(s) for row in rows for s in row]
    lengths = [len(s) for s in seqs]
    if len(seqs) != len(indices):
        raise ValueError(f"{len(seqs)} sequences but {len(indices)} indices")
    if not seqs or min(lengths) == 0:
        raise ValueError("every packed sequence needs at least one token")
    if layout == "varlen":
        starts = [0]
        for n in lengths:
            starts.append(starts[-1] + n)
        ids = torch.tensor([t for s in seqs for t in s], dtype=torch.long)[None]
        pos = torch.tensor([j for n in lengths for j in range(n)], dtype=torch.long)[None]
        bounds = torch.tensor(starts, dtype=torch.int32, device=device)
        kwargs = {"cu_seq_lens_q": bounds, "cu_seq_lens_k": bounds, "max_length_q": max(lengths), "max_length_k": max(lengths)}
        return Batch(indices, ids.to(device), None, pos.to(device), starts[:-1], lengths, [0] * len(seqs), kwargs)
    if layout != "mask":
        raise ValueError(f"layout must be 'mask' or 'varlen', got {layout!r}")
    flat_rows, segments, positions, row_of, offsets = [], [], [], [], []
    for r, row in enumerate(rows):
        tokens: list[int] = []
        seg: list[int] = []
        pos: list[int] = []
        for k, s in enumerate(row):
            row_of.append(r)
            offsets.append(len(tokens))
            tokens.extend(s)
            seg.extend([k] * len(s))
            pos.extend(range(len(s)))
        flat_rows.append(tokens)
        segments.append(seg)
        positions.append(pos)
    ids, seg_ids, pos_ids = _right_padded(flat_rows, segments, positions, pad_id)
    mask = block_mask(seg_ids, lambda q, k: q == k, dtype)
    return Batch(indices, ids.to(device), mask.to(device), pos_ids.to(device), offsets, lengths, row_of)
