"""What the training recipes share, so each recipe (bt.py, regression.py, prm.py, prm_loglik.py) imports
this library and never another recipe: model preparation and LoRA, the held-out split, data order,
head readouts over one batch of sequences or packed pairs, the Bradley-Terry term, step labels, and the
export and adapter writers (replaced durably through :mod:`rewardkit.train.durable`), resume checks.
Checkpoints are in :mod:`rewardkit.train.checkpoint`.
"""
from __future__ import annotations

import json
import random
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, Sequence, TypeVar

from ..data.steps import StepRecord
from ..models import load_model, load_tokenizer, make_batches, pad_batch, pad_pair_batch, resolve_source
from ..models.batching import mask_dtype, packed_layout, packed_pair_length
from ..models.heads import hidden_states, last_token_outputs
from ..models.loading import apply_head
from .checkpoint import load_checkpoint, read_state, recover_checkpoint
from .durable import staged_dir, sweep
from .parallel import Parallel


# ------------------------------------------------------------------ options

@dataclass(kw_only=True)
class TrainOptions:
    """What every recipe that fine-tunes the LM shares. Each recipe's config extends it, and
    ``rewardkit train`` builds its flags from these fields, so every default lives here once."""

    model: str = "default"
    output_dir: str = "runs/rm"
    mode: Literal["head", "lora", "full"] = "lora"
    lora_r: int = 8
    #: LoRA scaling; ``None``: twice the rank
    lora_alpha: int | None = None
    lora_targets: tuple[str, ...] = ("q_proj", "v_proj")
    #: ``None``: 2e-5 for full fine-tuning, 2e-4 for LoRA or the head alone
    learning_rate: float | None = None
    epochs: int = 1
    max_steps: int | None = None
    max_tokens_per_micro_batch: int = 4096
    max_length: int = 512
    eval_fraction: float = 0.1
    eval_every: int = 50
    save_every: int = 50
    seed: int = 0
    progress: bool = True
    command: str = ""
    data_sources: list[str] = field(default_factory=list)


Options = TypeVar("Options", bound=TrainOptions)


def resolved(cfg: Options) -> Options:
    """``cfg`` with the defaults that depend on other fields filled in (learning rate, LoRA alpha)."""
    lr = cfg.learning_rate if cfg.learning_rate is not None else (2e-5 if cfg.mode == "full" else 2e-4)
    alpha = cfg.lora_alpha if cfg.lora_alpha is not None else 2 * cfg.lora_r
    return replace(cfg, learning_rate=lr, lora_alpha=alpha)


# ------------------------------------------------------------------ runs and data

#: options a resumed run may change (how long it runs, how often it evaluates and saves, the forward
#: size, where the data and output live); every other option is saved in each checkpoint and must match
RESUME_MAY_CHANGE = frozenset({"max_steps", "epochs", "eval_every", "save_every", "progress", "command", "output_dir",
                               "data_sources", "max_tokens_per_micro_batch", "patience", "merge_lora"})


def run_options(cfg: Any) -> dict[str, Any]:
    """The options that define a run, as JSON values: the objective (the recipe module) and every
    config field a resumed run may not change."""
    values = json.loads(json.dumps(config_dict(cfg)))
    return {"objective": type(cfg).__module__.rpartition(".")[2], **{k: v for k, v in values.items() if k not in RESUME_MAY_CHANGE}}


def check_same_run(cfg: Any, saved: dict[str, Any], out: Path) -> None:
    """An error naming each run-defining option whose value differs from the one the run in ``out``
    was started with (checkpoints without saved options are not checked)."""
    if not saved:
        return
    now = run_options(cfg)
    keys = ["objective"] if saved.get("objective") != now["objective"] else [k for k in saved if k in now and saved[k] != now[k]]
    if keys:
        changes = "; ".join(f"{k}: {saved.get(k)!r} when it started, {now.get(k)!r} now" for k in keys)
        raise ValueError(f"cannot resume {out}: the run was started with other options ({changes}); resume with the same options, "
                         "or train into another --out")


def start_run(cfg: Options, resume: bool) -> tuple[Options, Path, Path, Parallel]:
    """(``cfg`` with its derived defaults, the output folder, its checkpoints folder, the processes of
    the run), torch seeded from ``cfg.seed``; a folder that already holds a run is refused unless
    ``resume``, and resuming it with other run-defining options (:data:`RESUME_MAY_CHANGE`) is refused.
    Under several processes only the main one locks the folder and recovers its checkpoints; the
    others wait for it, then all read the same files."""
    import torch

    cfg = resolved(cfg)
    out = Path(cfg.output_dir)
    par = Parallel()
    ckpt_dir = out / "checkpoints"
    if par.is_main:
        lock_run(out)
        check_fresh(out, resume)
    par.wait()
    if resume and (ckpt_dir / "last").exists():
        check_same_run(cfg, read_state(ckpt_dir / "last").get("options") or {}, out)
    if par.is_main and par.world > 1:
        print(f"training with {par.describe()}", file=sys.stderr)
    torch.manual_seed(cfg.seed)
    return cfg, out, ckpt_dir, par


def first_state(cfg: Any, ckpt_dir: Path, resume: bool, trainable: Any, optimizer: Any, par: Parallel, **fresh: Any) -> dict[str, Any]:
    """The training state to start from: the last checkpoint's (weights and optimizer restored) when
    resuming, else a fresh one (``step`` 0, no best yet) with the recipe's own ``fresh`` entries;
    either holds ``cfg``'s run-defining options (saved with each checkpoint)."""
    if resume and (ckpt_dir / "last").exists():
        state = load_checkpoint(ckpt_dir / "last", trainable, optimizer)
        if par.is_main:
            print(f"resumed from step {state['step']}", file=sys.stderr)
        return state | {"options": run_options(cfg)}
    if resume and par.is_main:
        print(f"note: no checkpoint in {ckpt_dir} to resume from; starting at step 0", file=sys.stderr)
    return {"step": 0, "best_step": None, "bad_evals": 0, "history": [], **fresh, "options": run_options(cfg)}


def restore_best(ckpt_dir: Path, trainable: Any, optimizer: Any, par: Parallel) -> None:
    """Load the ``best`` checkpoint's weights, when an evaluation chose one (else the last weights
    stay), in every process once the main one has written it."""
    par.wait()
    if (ckpt_dir / "best").exists():
        load_checkpoint(ckpt_dir / "best", trainable, optimizer)


def note_eval(state: dict[str, Any], value: float, key: str, save_best: Any, patience: int | None = None) -> bool:
    """Track the best held-out ``value`` (higher is better) in ``state[key]``: a better one becomes the
    ``best`` checkpoint (``save_best()``); worse ones are counted. True when ``patience`` evaluations in a
    row have not improved (stop early)."""
    if state.get(key) is None or value > state[key]:
        state[key], state["best_step"], state["bad_evals"] = value, state["step"], 0
        save_best()
        return False
    state["bad_evals"] = state.get("bad_evals", 0) + 1
    return patience is not None and state["bad_evals"] >= patience


_LOCKS: dict[str, Any] = {}  # output folder -> the open lock file of this process's run in it


def lock_run(out: Path) -> None:
    """Take ``out/.lock`` for this process (released when it exits): a second run in the same folder
    would sweep the first one's half-written checkpoints and race its saves, so it is refused."""
    import fcntl

    out.mkdir(parents=True, exist_ok=True)
    key = str(out.resolve())
    if key in _LOCKS:
        return
    fh = open(out / ".lock", "a+")
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        fh.close()
        raise RuntimeError(f"{out} is in use by another training run (it holds {out / '.lock'}); wait for it, or choose another --out") from None
    _LOCKS[key] = fh


def check_fresh(out: Path, resume: bool) -> Path:
    """``out/checkpoints``, its checkpoints recovered when a kill mid-save left only the previous copy
    and the leftovers of killed saves removed; an error if a run already lives in ``out`` and
    ``resume`` was not asked for."""
    ckpt_dir = Path(out) / "checkpoints"
    found = [recover_checkpoint(ckpt_dir / name) for name in ("last", "best")]
    for name in ("last", "best"):
        sweep(ckpt_dir / name)
    if not resume and any(found):
        raise FileExistsError(f"{out} already has checkpoints; pass resume (--resume) to continue, or choose another --out")
    return ckpt_dir


def config_dict(cfg: Any) -> dict[str, Any]:
    """A recipe config as JSON-ready values (tuples become lists), for ``train_results.json``."""
    from dataclasses import asdict

    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(cfg).items()}


def shuffled(n: int, *key: Any) -> list[int]:
    """A permutation of ``range(n)`` seeded by ``key`` (e.g. seed and epoch): the same on every run and
    machine, so a resumed run replays the data order of an uninterrupted one."""
    perm = list(range(n))
    random.Random("|".join(str(k) for k in key)).shuffle(perm)
    return perm


def split_heldout(records: Sequence[Any], fraction: float, seed: int) -> tuple[list[Any], list[Any]]:
    """Hold out whole prompts (pairs sharing a prompt stay on one side), deterministically."""
    keys = sorted({json.dumps(r.prompt, sort_keys=True) for r in records})
    random.Random(seed).shuffle(keys)
    held = set(keys[: max(1, int(round(fraction * len(keys))))]) if fraction > 0 and len(keys) > 1 else set()
    train = [r for r in records if json.dumps(r.prompt, sort_keys=True) not in held]
    dev = [r for r in records if json.dumps(r.prompt, sort_keys=True) in held]
    return train, dev



def training_split(records: Sequence[Any], eval_records: Sequence[Any] | None, cfg: Any, what: str) -> tuple[list[Any], list[Any]]:
    """(training records, held-out records): the held-out records given, or whole prompts held out of
    ``records`` (``cfg.eval_fraction``, seeded by ``cfg.seed``); an error when no ``what`` is left to train on."""
    train, held = (list(records), list(eval_records)) if eval_records is not None else split_heldout(records, cfg.eval_fraction, cfg.seed)
    if not train:
        raise ValueError(f"no training {what}")
    return train, held


def step_targets(record: StepRecord, after_error: str, last_step_only: bool) -> list[float | None]:
    """Training label per step (None = no loss at this step). ``after_error="zero"`` labels the steps
    after the first error 0 (Math-Shepherd's hard estimate), ``"ignore"`` leaves their labels as given."""
    fes = record.first_error_step
    if last_step_only:
        return [None] * (len(record.steps) - 1) + [1.0 if fes < 0 else 0.0]
    out: list[float | None] = []
    for j, label in enumerate(record.labels):
        if fes >= 0 and j > fes and after_error == "zero":
            out.append(0.0)
        else:
            out.append(label)
    return out


# ------------------------------------------------------------------ model

def prepare_model(cfg: Any, device: Any, num_labels: int = 1):
    """(trainable model, the plain HF model whose modules it shares, tokenizer), from a
    :class:`TrainOptions` (``init_adapter``, where a recipe has it, continues a saved adapter), on
    ``device`` (this process's, :attr:`Parallel.device`)."""
    source = resolve_source(cfg.model)
    tokenizer = load_tokenizer(source)
    hf = load_model(source, "sequence-classification", num_labels=num_labels, seed=cfg.seed, device=str(device))
    if hf.config.pad_token_id is None:
        hf.config.pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    for p in hf.parameters():
        p.requires_grad_(cfg.mode == "full")
    model = hf
    if cfg.mode == "lora" and getattr(cfg, "init_adapter", None):
        model = load_adapter(hf, cfg)
    elif cfg.mode == "lora":
        from peft import LoraConfig, get_peft_model

        lora = LoraConfig(task_type="SEQ_CLS", r=cfg.lora_r, lora_alpha=resolved(cfg).lora_alpha, lora_dropout=0.0,
                          target_modules=list(cfg.lora_targets), modules_to_save=["score"])
        model = get_peft_model(hf, lora)
    else:
        for p in hf.score.parameters():
            p.requires_grad_(True)
    return model, hf, tokenizer


def load_adapter(hf, cfg: Any):
    """A trainable PeftModel from a saved adapter, whose base must be the model being trained."""
    from peft import PeftModel

    path = cfg.init_adapter
    if path == "default":
        from ..assets import packaged

        path = packaged("default_rm")
        if path is None:
            raise FileNotFoundError("this install has no packaged default reward model to continue from")
    path = Path(path)
    if not (path / "adapter_config.json").is_file():
        raise FileNotFoundError(f"--init-adapter {path}: no adapter_config.json there (expected a LoRA adapter directory)")
    base = json.loads((path / "adapter_config.json").read_text()).get("base_model_name_or_path")
    if base != cfg.model:
        raise ValueError(f"--init-adapter {path} was trained on base {base!r}, but --model is {cfg.model!r}")
    return PeftModel.from_pretrained(hf, str(path), is_trainable=True)


def head_outputs(hf, sequences: Sequence[Sequence[int]], pad_id: int):
    """Head outputs ``[N, num_labels]`` read at each sequence's last real token (right padding)."""
    batch = pad_batch(sequences, list(range(len(sequences))), pad_id, "right", str(next(hf.parameters()).device))
    return last_token_outputs(hf.score, hidden_states(hf.base_model, batch), batch)


def can_share_prefix(hf) -> bool:
    """Whether the model's attention takes the custom 4D mask that prefix sharing needs."""
    return packed_layout(hf) == "mask"


def pair_head_outputs(hf, pairs: Sequence[tuple[Sequence[int], Sequence[int]]], pad_id: int, share_prefix: bool = True):
    """Head outputs ``([B, num_labels], [B, num_labels])`` for the chosen and rejected side of each
    ``(chosen_ids, rejected_ids)`` pair, in one forward pass: one packed row per pair whose shared
    prefix is encoded once (``share_prefix``), or the 2B sequences as rows of one batch."""
    import torch

    if not share_prefix:
        h = head_outputs(hf, [c for c, _ in pairs] + [r for _, r in pairs], pad_id)
        return h[: len(pairs)], h[len(pairs):]
    batch = pad_pair_batch(pairs, pad_id, dtype=mask_dtype(hf), device=str(next(hf.parameters()).device))
    hidden = hidden_states(hf.base_model, batch)
    rows = torch.arange(len(pairs), device=hidden.device)
    h = hf.score(torch.cat([hidden[rows, batch.chosen_last], hidden[rows, batch.rejected_last]])).float()
    return h[: len(pairs)], h[len(pairs):]


def bt_loss(r_chosen, r_rejected, margins, *, center_coef: float = 0.0, label_smoothing: float = 0.0):
    """Per-pair BT loss ``[B]``, with optional margin, centering penalty and label smoothing."""
    import torch.nn.functional as F

    diff = r_chosen - r_rejected - margins
    loss = -(1 - label_smoothing) * F.logsigmoid(diff) - label_smoothing * F.logsigmoid(-diff)
    if center_coef:
        loss = loss + center_coef * (r_chosen + r_rejected) ** 2
    return loss


def pair_micro_batches(pairs: Sequence[tuple[Sequence[int], Sequence[int]]], budget: int, share_prefix: bool) -> list[list[int]]:
    """Group ``(chosen_ids, rejected_ids)`` pairs into forwards of at most ``budget`` padded tokens:
    one packed row per pair (``share_prefix``), else two rows of the pair's longer length."""
    if share_prefix:
        return make_batches([packed_pair_length(c, r) for c, r in pairs], budget, None, max_padding=0.25)
    return make_batches([max(len(c), len(r)) for c, r in pairs], max(1, budget // 2), None, max_padding=0.25)


def micro_batches(lengths: Sequence[int], budget: int) -> list[list[int]]:
    """Sequences grouped into forwards of at most ``budget`` padded tokens (gradient accumulation)."""
    return make_batches(lengths, max(1, budget), None, max_padding=0.25)


# ------------------------------------------------------------------ export

def write_export(final, tokenizer, cfg: Any, head: dict[str, Any], card: str) -> Path:
    """Write ``OUT/model`` atomically: the model with ``head`` (names of the outputs in ``id2label``,
    reward statistics, combination weights) in its config, the tokenizer and the model card. An
    adapter's base config knows nothing of the head, so adapters get it beside them in
    ``reward_normalization.json`` (which models/loading.py applies when loading)."""
    out = Path(cfg.output_dir) / "model"
    apply_head(final.config, head)
    with staged_dir(out) as tmp:
        final.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        if cfg.mode == "lora" and not cfg.merge_lora:
            name_base(tmp, cfg)
            (tmp / "reward_normalization.json").write_text(json.dumps(head, indent=2))
        elif cfg.mode == "lora":
            (Path(cfg.output_dir) / "adapter" / "reward_normalization.json").write_text(json.dumps(head, indent=2))
        (tmp / "README.md").write_text(card)
    return out


def name_base(adapter_dir: Path, cfg: Any) -> None:
    """An adapter names its base by the spec it was trained from (e.g. ``default``), not by the local
    cache path, so it loads on any machine that has that base. peft appends its head names to
    ``modules_to_save`` each time an adapter is loaded for more training; they are kept once."""
    config = json.loads((adapter_dir / "adapter_config.json").read_text())
    config["base_model_name_or_path"] = cfg.model
    if config.get("modules_to_save"):
        config["modules_to_save"] = list(dict.fromkeys(config["modules_to_save"]))
    (adapter_dir / "adapter_config.json").write_text(json.dumps(config, indent=2))


def save_adapter(model, cfg: Any, out: Path, card: str | None = None) -> Path:
    """Save only the LoRA adapter and the head (a few MB; loads with ``classifier:OUT``, the
    tokenizer coming from the base model), with ``card`` as its README when given."""
    with staged_dir(out) as tmp:
        model.save_pretrained(tmp)
        name_base(tmp, cfg)
        if card is not None:
            (tmp / "README.md").write_text(card)
    return out
