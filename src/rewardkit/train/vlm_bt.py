"""Bradley-Terry training of a vision-language reward model: ``-log sigmoid(r_chosen - r_rejected)``
with ``r`` a linear head on a VLM's last hidden state at the last real token (models/vlm.py, the
readout ``vlm-classifier`` scores with), on preference pairs whose prompts carry images (chat messages
with image parts, or VL-RewardBench-style rows the data readers turn into them).

One self-contained recipe, read top to bottom. Parameter modes: ``head`` (the scalar head only; the
VLM frozen), ``lora`` (peft adapters on the *language model's* ``lora_targets`` + the head; the vision
tower stays frozen), ``full``. Each optimizer step takes ``pairs_per_step`` pairs in micro-batches of at
most ``max_tokens_per_micro_batch`` padded tokens (an image counts its image tokens). Checkpoints are
written atomically; ``resume=True`` continues from the last one with the same data order.

transformers has no sequence-classification class for these models, so the export is the VLM
(``save_pretrained``, LoRA merged), its processor, and the head beside them
(``reward_head.safetensors`` + ``reward_head.json``; models/vlm.py ``load_vlm_head`` is the loader).
"""
from __future__ import annotations

import json
import math
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from ..models import resolve_source
from ..models.loading import load_model, load_processor
from ..models.vlm import VLMItem, encode, head_outputs, language_model, new_head, save_head
from ..types import PairRecord
from .checkpoint import save_checkpoint
from .common import TrainOptions, bt_loss, config_dict, first_state, micro_batches, note_eval, restore_best, shuffled, start_run, training_split
from .durable import staged_dir


@dataclass(kw_only=True)
class VLMBTConfig(TrainOptions):
    output_dir: str = "runs/vlm-rm"
    pairs_per_step: int = 16
    weight_decay: float = 0.0
    label_smoothing: float = 0.0
    patience: int | None = None
    #: seed of the data order (default: ``seed``)
    shuffle_seed: int | None = None


def _wrap(vlm: Any, head: Any) -> Any:
    """One module holding the VLM and the head, so checkpoints and the optimizer see both."""
    import torch

    class RewardVLM(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.vlm, self.head = vlm, head

    return RewardVLM()


# ------------------------------------------------------------------ data

@dataclass
class _Pair:
    chosen: VLMItem
    rejected: VLMItem


def _encode(records: Sequence[PairRecord], processor: Any, max_length: int) -> tuple[list[_Pair], int]:
    """(pairs that fit ``max_length``, how many did not: a VLM sequence is not cut, so they are left out and counted)."""
    pairs, too_long = [], 0
    for r in records:
        images = r.columns.get("images", r.columns.get("image"))
        try:
            c = encode(processor, r.prompt, r.chosen, images, max_length=max_length)
            j = encode(processor, r.prompt, r.rejected, images, max_length=max_length)
        except ValueError as err:
            raise ValueError(f"pair {r.id}: {err}") from err
        if c.too_long or j.too_long:
            too_long += 1
        else:
            pairs.append(_Pair(c, j))
    return pairs, too_long


def _rewards(vlm: Any, head: Any, chunk: Sequence[_Pair], pad_id: int):
    """(r_chosen [B], r_rejected [B]) in one call (image and text-only items in their own forwards)."""
    out = head_outputs(vlm, head, [p.chosen for p in chunk] + [p.rejected for p in chunk], pad_id)[:, 0]
    return out[: len(chunk)], out[len(chunk):]


def _micro(pairs: Sequence[_Pair], budget: int) -> list[list[int]]:
    return micro_batches([max(len(p.chosen), len(p.rejected)) for p in pairs], max(1, budget // 2))


def evaluate_pairs(vlm: Any, head: Any, pairs: Sequence[_Pair], pad_id: int, cfg: VLMBTConfig) -> dict[str, float]:
    import torch

    if not pairs:
        return {}
    correct, total = 0, 0.0
    with torch.inference_mode():
        for idx in _micro(pairs, cfg.max_tokens_per_micro_batch):
            rc, rr = _rewards(vlm, head, [pairs[i] for i in idx], pad_id)
            total += bt_loss(rc, rr, torch.zeros_like(rc), label_smoothing=cfg.label_smoothing).sum().item()
            correct += int((rc > rr).sum().item())
    return {"accuracy": correct / len(pairs), "loss": total / len(pairs), "n": len(pairs)}


# ------------------------------------------------------------------ model

def _prepare(cfg: VLMBTConfig):
    """(module holding VLM + head, the VLM to run, the head, processor, pad id)."""
    import torch

    source = resolve_source(cfg.model)
    processor = load_processor(source)
    vlm = load_model(source, "image-text-to-text", seed=cfg.seed, device="cpu" if not torch.cuda.is_available() else None)
    language_model(vlm)  # refuses M-RoPE models before training
    tokenizer = processor.tokenizer
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    for p in vlm.parameters():
        p.requires_grad_(cfg.mode == "full")
    head = new_head(vlm, 1, cfg.seed)
    run = vlm
    if cfg.mode == "lora":
        from peft import LoraConfig, get_peft_model

        names = "|".join(re.escape(t) for t in cfg.lora_targets)
        text = [n for n, _ in vlm.named_modules() if re.fullmatch(rf".*text_model\..*\.({names})", n)]
        if not text:
            raise ValueError(f"no module of the language model matches --lora-targets {','.join(cfg.lora_targets)}")
        run = get_peft_model(vlm, LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=0.0, target_modules=text))
    return _wrap(run, head), run, head, processor, int(pad if pad is not None else 0)


# ------------------------------------------------------------------ the recipe

def train(cfg: VLMBTConfig, train_records: Sequence[PairRecord], eval_records: Sequence[PairRecord] | None = None, *,
          resume: bool = False) -> dict[str, Any]:
    """Train, checkpoint, export to ``output_dir/model``; returns the summary written to
    ``output_dir/train_results.json``."""
    import torch
    from tqdm.auto import tqdm

    cfg, out, ckpt_dir, par = start_run(cfg, resume)
    if par.world > 1:
        raise ValueError("--objective vlm-bt trains in one process; data-parallel launches (accelerate) cover bt, regression and prm")
    train_records, eval_records = training_split(train_records, eval_records, cfg, "pairs")
    module, vlm, head, processor, pad_id = _prepare(cfg)
    train_pairs, n_long = _encode(train_records, processor, cfg.max_length)
    eval_pairs, n_long_eval = _encode(eval_records, processor, cfg.max_length)
    if not train_pairs:
        raise ValueError(f"every training pair is longer than max_length={cfg.max_length} tokens (image tokens included)")
    trainable = [p for p in module.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    steps_per_epoch = math.ceil(len(train_pairs) / cfg.pairs_per_step)
    total_steps = cfg.max_steps if cfg.max_steps is not None else steps_per_epoch * cfg.epochs
    state = first_state(cfg, ckpt_dir, resume, module, optimizer, par, best_accuracy=None)
    stopped_early = False
    module.train()
    start = time.perf_counter()
    bar = tqdm(total=total_steps, initial=state["step"], desc="train", unit="step", disable=not cfg.progress)
    while state["step"] < total_steps and not stopped_early:
        step = state["step"]
        epoch, pos = divmod(step, steps_per_epoch)
        perm = shuffled(len(train_pairs), cfg.seed if cfg.shuffle_seed is None else cfg.shuffle_seed, epoch)
        step_pairs = [train_pairs[i] for i in perm[pos * cfg.pairs_per_step : (pos + 1) * cfg.pairs_per_step]]
        optimizer.zero_grad(set_to_none=True)
        step_loss, step_correct = 0.0, 0
        for micro in _micro(step_pairs, cfg.max_tokens_per_micro_batch):
            rc, rr = _rewards(vlm, head, [step_pairs[i] for i in micro], pad_id)
            loss = bt_loss(rc, rr, torch.zeros_like(rc), label_smoothing=cfg.label_smoothing).sum() / len(step_pairs)
            loss.backward()
            step_loss += loss.item()
            step_correct += int((rc.detach() > rr.detach()).sum().item())
        optimizer.step()
        state["step"] = step + 1
        elapsed = time.perf_counter() - start
        bar.set_postfix(loss=f"{step_loss:.4f}", acc=f"{step_correct / len(step_pairs):.2f}")
        bar.update(1)
        record: dict[str, Any] = {"step": state["step"], "loss": step_loss, "accuracy": step_correct / len(step_pairs), "elapsed": round(elapsed, 4)}
        is_last = state["step"] >= total_steps
        if eval_pairs and (state["step"] % cfg.eval_every == 0 or is_last):
            module.eval()
            metrics = evaluate_pairs(vlm, head, eval_pairs, pad_id, cfg)
            module.train()
            record["eval"] = metrics
            bar.write(f"step {state['step']}: held-out accuracy {metrics['accuracy']:.4f}, loss {metrics['loss']:.4f} on {metrics['n']} pairs")
            stopped_early = note_eval(state, metrics["accuracy"], "best_accuracy",
                                      lambda: save_checkpoint(ckpt_dir / "best", module, optimizer, state), cfg.patience)
        state["history"].append(record)
        if state["step"] % cfg.save_every == 0 or is_last or stopped_early:
            save_checkpoint(ckpt_dir / "last", module, optimizer, state)
    bar.close()

    restore_best(ckpt_dir, module, optimizer, par)
    module.eval()
    final_eval = evaluate_pairs(vlm, head, eval_pairs, pad_id, cfg) if eval_pairs else {}
    export_dir = export(vlm, head, processor, cfg, train_pairs, pad_id, final_eval, state, n_long)
    summary = {
        "config": config_dict(cfg),
        "train_pairs": len(train_pairs), "eval_pairs": len(eval_pairs),
        "too_long_train_pairs": n_long, "too_long_eval_pairs": n_long_eval,
        "steps": state["step"], "best_step": state["best_step"], "stopped_early": stopped_early,
        "eval": final_eval, "export": str(export_dir), "history": state["history"],
    }
    (out / "train_results.json").write_text(json.dumps(summary, indent=2))
    return summary


# ------------------------------------------------------------------ export

def export(vlm: Any, head: Any, processor: Any, cfg: VLMBTConfig, train_pairs: Sequence[_Pair], pad_id: int, metrics: dict,
           state: dict, n_long: int) -> Path:
    """``OUT/model``, written atomically: the VLM (LoRA merged) that ``AutoModelForImageTextToText``
    loads, its processor, the head (``reward_head.safetensors`` / ``.json``, with the mean and std of
    the training rewards) and a model card."""
    import torch

    final = vlm.merge_and_unload() if cfg.mode == "lora" else vlm
    sample = list(train_pairs)[:256]
    parts = []
    with torch.inference_mode():
        for idx in _micro(sample, cfg.max_tokens_per_micro_batch):
            parts += _rewards(final, head, [sample[i] for i in idx], pad_id)
    rewards = torch.cat(parts)
    mean, std = float(rewards.mean()), float(rewards.std()) if len(rewards) > 1 else 1.0
    out = Path(cfg.output_dir) / "model"
    with staged_dir(out) as tmp:
        final.save_pretrained(tmp)
        processor.save_pretrained(tmp)
        save_head(head, tmp, {"reward_mean": mean, "reward_std": std, "base_model": cfg.model})
        (tmp / "README.md").write_text(_model_card(cfg, metrics, state, len(train_pairs), n_long, mean, std))
    return out


def _model_card(cfg: VLMBTConfig, metrics: dict, state: dict, n_train: int, n_long: int, mean: float, std: float) -> str:
    acc = f"{100 * metrics['accuracy']:.2f}% on {metrics['n']} held-out pairs" if metrics else "no held-out evaluation"
    lora = f" (r={cfg.lora_r}, alpha={cfg.lora_alpha}, language-model targets={list(cfg.lora_targets)}, merged)" if cfg.mode == "lora" else ""
    return f"""# Vision-language reward model trained with rewardkit (Bradley-Terry)

- base model: `{cfg.model}`
- objective: Bradley-Terry `-log sigmoid(r_chosen - r_rejected)`; label smoothing: {cfg.label_smoothing}
- readout: a linear head on the language model's last hidden state at the last real token of the chat-templated conversation
- parameters trained: {cfg.mode}{lora}
- data: {', '.join(cfg.data_sources) or 'given in code'}; {n_train} training pairs ({n_long} longer than {cfg.max_length} tokens left out)
- steps: {state['step']} (best at step {state['best_step']}); {cfg.pairs_per_step} pairs per step; learning rate {cfg.learning_rate}; seed {cfg.seed}
- held-out pairwise accuracy: {acc}
- reward statistics (training rewards): mean {mean:.4f}, std {std:.4f} (in `reward_head.json`)

transformers has no sequence-classification class for this architecture: the directory holds the VLM
(`AutoModelForImageTextToText`), its processor and the head (`reward_head.safetensors`: `weight [1, H]`,
`bias [1]`). Score with rewardkit: `--reward vlm-classifier:PATH`; or by hand: run `model.model(...)`
on the processor's encoding of the conversation (completion as the final assistant turn) and apply the
head to the last hidden state at the last real token.

Produced by:

    {cfg.command or '(python API)'}
"""
