"""Token-budget batching: every index exactly once, budget respected, padding bounded."""
from __future__ import annotations

import random

import pytest

from rewardkit.models import make_batches, pack_batch, pack_batches, pad_batch


def test_batches_cover_inputs_respect_budget_and_bound_padding():
    rng = random.Random(0)
    lengths = [rng.choice([rng.randint(5, 40), rng.randint(100, 600)]) for _ in range(300)]
    batches = make_batches(lengths, max_tokens=2048, max_padding=0.1)
    flat = sorted(i for b in batches for i in b)
    assert flat == list(range(len(lengths)))
    for b in batches:
        longest = max(lengths[i] for i in b)
        padded = len(b) * longest
        assert padded <= 2048 or len(b) == 1
        assert padded - sum(lengths[i] for i in b) <= 0.1 * padded + 1e-9
    padded_total = sum(len(b) * max(lengths[i] for i in b) for b in batches)
    assert sum(lengths) / padded_total > 0.9
    # fixed batches of 8 in input order (the usual baseline) waste far more
    fixed = sum(8 * max(lengths[j:j + 8]) for j in range(0, len(lengths), 8))
    assert sum(lengths) / fixed < 0.6


def test_batch_size_cap_and_oversized_sequence():
    batches = make_batches([10] * 10 + [5000], max_tokens=100, max_batch_size=3)
    assert batches[0] == [10]  # longer than the budget: alone
    assert all(len(b) <= 3 for b in batches)
    with pytest.raises(ValueError):
        make_batches([1], max_tokens=0)


def test_pad_batch_positions_ignore_padding_side():
    left = pad_batch([[5, 6, 7], [8]], [0, 1], pad_id=0, side="left")
    right = pad_batch([[5, 6, 7], [8]], [0, 1], pad_id=0, side="right")
    assert left.input_ids.tolist() == [[5, 6, 7], [0, 0, 8]] and left.offsets == [0, 2]
    assert right.input_ids.tolist() == [[5, 6, 7], [8, 0, 0]] and right.offsets == [0, 0]
    assert left.position_ids[1, 2].item() == right.position_ids[1, 0].item() == 0
    assert left.attention_mask.tolist() == [[1, 1, 1], [0, 0, 1]]


def _row_fill(lengths, row):
    return sum(lengths[i] for i in row)


@pytest.mark.parametrize("max_padding", [0.0, 0.1, 0.5])
def test_packed_forwards_cover_inputs_and_respect_budget_and_width(max_padding):
    rng = random.Random(1)
    lengths = [rng.choice([rng.randint(5, 40), rng.randint(100, 600)]) for _ in range(300)] + [3000]
    forwards = pack_batches(lengths, max_tokens=2048, max_padding=max_padding)
    assert sorted(i for rows in forwards for row in rows for i in row) == list(range(len(lengths)))
    for rows in forwards:
        width = max(lengths[row[0]] for row in rows)  # rows are as wide as the forward's longest sequence
        assert all(_row_fill(lengths, row) <= width for row in rows)
        assert len(rows) * width <= 2048 or len(rows) == 1
        openers = [lengths[row[0]] for row in rows]  # each row is opened by a sequence within max_padding of the width
        assert all(width - n <= max_padding * width for n in openers)
    assert [[lengths[i] for i in row] for row in forwards[0]] == [[3000]]  # over the budget: alone, first
    padded = sum(len(rows) * max(_row_fill(lengths, r) for r in rows) for rows in forwards)
    batches = make_batches(lengths, max_tokens=2048, max_padding=max_padding)
    padded_batches = sum(len(b) * max(lengths[i] for i in b) for b in batches)
    assert padded <= padded_batches  # packing computes no more token slots than padding


def test_packing_fills_gaps_best_fit_and_caps_sequences():
    # width 100: rows opened by 100 and 95 (within 10%); the gaps (0 and 5) take what fits: 5
    assert pack_batches([100, 95, 60, 5, 40], max_tokens=250, max_padding=0.1) == [[[0], [1, 3]], [[2]], [[4]]]
    # with more padding allowed, 60 opens a row too and 40 fills its gap
    assert pack_batches([100, 95, 60, 5, 40], max_tokens=300, max_padding=0.5) == [[[0], [1, 3], [2, 4]]]
    capped = pack_batches([10] * 7, max_tokens=1000, max_batch_size=3)
    assert [sum(len(r) for r in rows) for rows in capped] == [3, 3, 1]
    varlen = pack_batches([100, 95, 60, 5, 40], max_tokens=150, layout="varlen")
    assert varlen == [[[0, 4, 3]], [[1]], [[2]]]  # one row per forward, the gap of 50 takes 40 then 5 (best fit)
    with pytest.raises(ValueError):
        pack_batches([1], max_tokens=10, layout="flat")


def test_pack_batch_layout_and_block_mask_by_hand():
    import torch

    batch = pack_batch([[[5, 6, 7], [8]], [[9, 10]]], [4, 2, 7], pad_id=0, layout="mask", dtype=torch.bool)
    assert batch.input_ids.tolist() == [[5, 6, 7, 8], [9, 10, 0, 0]]
    assert batch.position_ids.tolist() == [[0, 1, 2, 0], [0, 1, 0, 0]]
    assert (batch.rows, batch.offsets, batch.lengths, batch.indices) == ([0, 0, 1], [0, 3, 0], [3, 1, 2], [4, 2, 7])
    assert batch.padded_tokens == 8 and batch.num_tokens == 6
    expected = [
        [[1, 0, 0, 0], [1, 1, 0, 0], [1, 1, 1, 0], [0, 0, 0, 1]],  # token 8 sees itself only, not 5 6 7
        [[1, 0, 0, 0], [1, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]],  # padding sees itself only (no NaN)
    ]
    assert batch.attention_mask[:, 0].int().tolist() == expected
    additive = pack_batch([[[5, 6, 7], [8]], [[9, 10]]], [4, 2, 7], pad_id=0, layout="mask", dtype=torch.float32).attention_mask
    assert torch.equal(additive[:, 0] == 0, torch.tensor(expected, dtype=torch.bool))
    assert additive.min().item() == torch.finfo(torch.float32).min

    flat = pack_batch([[[5, 6, 7], [8]], [[9, 10]]], [4, 2, 7], pad_id=0, layout="varlen")
    assert flat.input_ids.tolist() == [[5, 6, 7, 8, 9, 10]] and flat.attention_mask is None
    assert flat.position_ids.tolist() == [[0, 1, 2, 0, 0, 1]]
    assert (flat.rows, flat.offsets) == ([0, 0, 0], [0, 3, 4])
    assert flat.attention_kwargs["cu_seq_lens_q"].tolist() == [0, 3, 4, 6] and flat.attention_kwargs["max_length_k"] == 3
    with pytest.raises(ValueError):
        pack_batch([[[5], []]], [0, 1], pad_id=0)


def test_packed_layout_follows_the_attention_kernel_and_refuses_sliding_windows():
    from types import SimpleNamespace

    from transformers import Gemma2Config, LlamaConfig, MistralConfig, Qwen2Config

    from rewardkit.models import packed_layout

    def layout(config, impl):
        config._attn_implementation = impl
        return packed_layout(SimpleNamespace(config=config))

    assert [layout(LlamaConfig(), impl) for impl in ("sdpa", "eager", "flash_attention_2", "flex_attention")] == ["mask", "mask", "varlen", None]
    assert layout(Qwen2Config(), "sdpa") == "mask"  # use_sliding_window=False
    # sliding-window layers: a 4D mask would replace each layer's window; flash attention keeps it
    assert (layout(MistralConfig(), "sdpa"), layout(Gemma2Config(), "eager"), layout(Gemma2Config(), "flash_attention_2")) == (None, None, "varlen")
