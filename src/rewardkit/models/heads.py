"""Readouts: where on the token sequence a reward is read, shared by scoring and training so that
scoring reads exactly what was trained.

* :func:`hidden_states` runs the transformer under the head over one batch (padded or packed);
* :func:`last_token_outputs` reads a head at each row's last real token (classifier RMs, the BT and
  regression recipes, a PRM read per prefix);
* :func:`step_end_outputs` reads a head at given token positions of each row (value-head PRMs and
  their training);
* :func:`completion_logprobs` gives ``log p(token | prefix)`` of every completion token (the
  likelihood reward and everything built on it: DPO, density ratio, follow-up likelihood, the implicit
  PRM and the likelihood-head PRM).

A sequence is found at its tensor row ``batch.rows[s]`` from column ``batch.offsets[s]`` (left
padding, or the sequences packed before it in the row) for ``batch.lengths[s]`` tokens, never by
searching for a pad id, so left padding, right padding and packing read the same tokens.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence


def hidden_states(backbone: Any, batch: Any):
    """Last hidden states ``[R, T, H]`` of ``backbone`` (the model under its head) for one batch."""
    return backbone(input_ids=batch.input_ids, attention_mask=batch.attention_mask, position_ids=batch.position_ids,
                    use_cache=False, **batch.attention_kwargs).last_hidden_state


def last_token_outputs(head: Any, hidden: Any, batch: Any):
    """``head`` at each sequence's last real token: ``[S, num_labels]`` float32."""
    import torch

    dev = hidden.device
    last = torch.tensor([off + n - 1 for off, n in zip(batch.offsets, batch.lengths)], device=dev)
    return head(hidden[torch.tensor(batch.rows, device=dev), last]).float()


def step_end_outputs(head: Any, hidden: Any, batch: Any, ends: Sequence[Sequence[int]]):
    """``head`` at token ``ends[s][k]`` (an index into sequence s's real tokens) of every sequence:
    ``[P, num_labels]`` float32, sequences in order, each one's positions in order (P = total
    positions; ``None`` if P = 0)."""
    import torch

    rows = [batch.rows[s] for s, e in enumerate(ends) for _ in e]
    if not rows:
        return None
    dev = hidden.device
    cols = [batch.offsets[s] + x for s, e in enumerate(ends) for x in e]
    return head(hidden[torch.tensor(rows, device=dev), torch.tensor(cols, device=dev)]).float()


@dataclass
class TokenLogprobs:
    """One row's completion tokens: ``logprobs[t] = log p(targets[t] | everything before it)``
    (float32 ``[T]``), and with ``gap=True`` ``gap[t] = log p(top choice) - logprobs[t]``."""

    logprobs: Any
    targets: Any
    gap: Any = None


def completion_logprobs(lm_head: Any, hidden: Any, batch: Any, rows: Sequence[Any], *, gap: bool = False) -> list[TokenLogprobs | None]:
    """Token log-probabilities of each row's completion (tokens ``completion_start .. end``, each
    predicted from the position before it; a completion at position 0 starts at 1). Only those
    positions go through the vocabulary-sized ``lm_head``, all rows of the batch in one call.
    ``None`` for a row with no completion token to score."""
    import torch

    picks, targets, sizes = [], [], []
    for row, r, off in zip(rows, batch.rows, batch.offsets):
        start, end = max(row.completion_start, 1), len(row)
        sizes.append(max(end - start, 0))
        if start < end:
            picks.append(hidden[r, off + start - 1 : off + end - 1])
            targets.append(batch.input_ids[r, off + start : off + end])
    if not picks:
        return [None] * len(rows)
    logp = torch.log_softmax(lm_head(torch.cat(picks)).float(), dim=-1)
    target = torch.cat(targets)
    lp = logp.gather(-1, target[:, None])[:, 0]
    gaps = (logp.max(dim=-1).values - lp) if gap else None
    out: list[TokenLogprobs | None] = []
    k = 0
    for n in sizes:
        if n == 0:
            out.append(None)
            continue
        out.append(TokenLogprobs(lp[k : k + n], target[k : k + n], gaps[k : k + n] if gaps is not None else None))
        k += n
    return out
