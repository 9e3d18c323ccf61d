"""rewardkit train: train a reward model (Bradley-Terry; head, LoRA or full fine-tune)."""
from __future__ import annotations

import argparse
import json
import sys

from .common import command_line, output_dir, quiet_libraries
from ..train.parallel import is_main_process, launched
from .flags import Flag, add_flags, fraction, non_negative_float, positive_float, positive_int, share, values

HELP = "train a reward model: Bradley-Terry on pairs, regression / multi-objective on ratings, or both (resumable)"
EPILOG = """examples:
  rewardkit train --out runs/rm                                  # embedded model, built-in suite train split
  rewardkit train --data pairs.jsonl --mode full --max-steps 500 --out runs/rm-full
  rewardkit train --out runs/rm --resume                         # continue after a crash or kill
  rewardkit train --objective regression --data helpsteer2.jsonl --attributes helpfulness,correctness,coherence \
      --combination fixed --weights 1,1,0.5 --out runs/rm-hs2          # one head per attribute, fixed combination
  rewardkit train --objective bt+regression --data ratings.jsonl --data pairs.jsonl --attributes a,b \
      --combination learned --out runs/rm-mo                           # heads from ratings, weights from pairs
  rewardkit train --data pairs.jsonl --model HUB_ID --launcher accelerate --num-processes 8 \
      --pairs-per-step 64 --out runs/rm-ddp                            # data parallel on 8 GPUs (DDP)
  accelerate launch --config_file examples/accelerate/ddp.yaml -m rewardkit.cli train \
      --data pairs.jsonl --out runs/rm-ddp                             # the same under your own accelerate config
  rewardkit train --objective vlm-bt --model HuggingFaceTB/SmolVLM-256M-Instruct --data vl_pairs.jsonl \
      --out runs/vlm-rm                                                # image-text pairs; score with vlm-classifier:runs/vlm-rm/model

Objectives: bt (pairs), regression (rated samples: prompt + completion/response + numeric attribute
columns; one head per attribute, MSE on standardised ratings, missing ratings masked), bt+regression
(both kinds of data; the BT term acts on the combined score), prm (step-labelled solutions), vlm-bt
(pairs whose prompts carry images, on an image-text-to-text model: a scalar head at the last real token;
transformers has no sequence-classification class for VLMs, so OUT/model is the VLM, its processor and
reward_head.safetensors, loaded by --reward vlm-classifier:OUT/model).

Several processes (accelerate launch, torchrun, or --launcher accelerate, which re-runs this command
under `accelerate launch`): each takes every N-th pair of each step's --pairs-per-step (the global
batch), so a run's weights do not depend on the number of processes (up to float rounding); only the
first process writes checkpoints, the export and logs; --resume works with any number of processes.

Writes checkpoints (durably: a kill leaves the last complete one; --resume refuses changed run options)
under OUT/checkpoints, the exported model under OUT/model (loadable by
transformers.AutoModelForSequenceClassification, with tokenizer, chat template, reward mean/std and a
model card) and OUT/train_results.json. Evaluate the result with
  rewardkit eval --reward classifier:OUT/model --data suite"""


#: flags every objective shares, made from train/common.py's TrainOptions (through BTConfig, which extends it)
SHARED = [
    Flag("model", help="base model: default (embedded), a directory, a .gguf file or a hub id"),
    "mode", Flag("lora_r", type=positive_int),
    Flag("lora_targets", type=lambda v: _targets(v), metavar="M1,M2,..",
         help="modules that get LoRA adapters ('all-linear' = every projection of a Llama-style block)"),
    Flag("learning_rate", flag="--lr", type=positive_float, help="learning rate (default 2e-4 for lora/head, 2e-5 for full)"),
    Flag("epochs", type=positive_int), Flag("max_steps", type=positive_int),
    Flag("max_tokens_per_micro_batch", type=positive_int, help="padded tokens per forward (gradient accumulation beyond)"),
    Flag("max_length", type=positive_int), Flag("eval_fraction", type=share),
    Flag("eval_every", type=positive_int), Flag("save_every", type=positive_int), "seed",
]
BT = [
    Flag("init_adapter", metavar="DIR", help="bt, lora: continue training a saved LoRA adapter (OUT/adapter of a run, or 'default' for the packaged RM)"),
    Flag("shuffle_seed", help="seed of the data order only (default --seed); the held-out split stays fixed by --seed"),
    Flag("merge_lora", flag="--no-merge", help="export the LoRA adapter unmerged"),
    Flag("pairs_per_step", type=positive_int, help="pairs per optimizer step (regression: rated samples per step are twice this; prm: solutions per step)"),
    Flag("share_prefix", help="bt: encode chosen and rejected as separate sequences (default: one packed row per pair, their shared prompt "
                              "encoded once; same rewards, fewer tokens)"),
    Flag("margin_column", help="per-pair margin column (margin loss)"),
    Flag("center_coef", type=non_negative_float, help="reward-centering penalty coef * (r_c + r_r)^2"),
    Flag("label_smoothing", type=share),
    Flag("patience", type=positive_int, help="stop after this many evaluations without improvement"),
]
REGRESSION = [
    Flag("combination", help="how the heads combine into the scalar reward: their mean, --weights, or learned from pairs"),
    Flag("pair_coef", type=non_negative_float, help="weight of the BT term in bt+regression"),
]
PRM = [
    Flag("last_step_only", help="prm: train on the final step's label only"),
    Flag("balance_labels", help="prm: weight the loss so erroneous and correct steps count equally in total"),
]


def add_parser(sub: argparse._SubParsersAction) -> None:
    from ..train.bt import BTConfig
    from ..train.prm import PRMConfig
    from ..train.prm_loglik import LoglikPRMConfig
    from ..train.regression import RegressionConfig

    p = sub.add_parser("train", help=HELP, description=HELP, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", action="append", metavar="DATA", help="preference data (repeatable); default: the built-in suite's train split")
    p.add_argument("--eval-data", metavar="DATA", help="held-out pairs; default: a split of the training prompts (--eval-fraction)")
    p.add_argument("--out", required=True, type=output_dir, metavar="DIR")
    p.add_argument("--objective", choices=["bt", "regression", "bt+regression", "prm", "vlm-bt"], default="bt",
                   help="prm: process reward model, per-step BCE on step-labelled solutions (default data: arith:train; --pairs-per-step = solutions per step); "
                        "vlm-bt: Bradley-Terry on a vision-language model (--model: an image-text-to-text checkpoint such as SmolVLM) over "
                        "image-text pairs; --mode lora adapts the language model's --lora-targets, the vision tower stays frozen"),
    p.add_argument("--attributes", metavar="A,B,..", help="rating columns, one head each (regression objectives)")
    add_flags(p, RegressionConfig, REGRESSION[:1])
    p.add_argument("--weights", metavar="W1,W2,..", help="fixed combination weights, one per attribute")
    add_flags(p, RegressionConfig, REGRESSION[1:])
    add_flags(p, BTConfig, SHARED + BT)
    g = p.add_argument_group("noisy labels (bt objective; applied to the training pairs only, counts reported)")
    g.add_argument("--vote-reward", action="append", metavar="SPEC",
                   help="score every training pair with this reward (repeat for an ensemble); pairs the ensemble disagrees with are dropped or down-weighted")
    g.add_argument("--vote-action", choices=["drop", "weight"], default="drop",
                   help="drop pairs whose agreeing share is below --min-agreement, or weight each pair's loss by its agreeing share")
    g.add_argument("--min-agreement", type=fraction, default=0.5, help="share of members that must agree with the label to keep a pair (drop)")
    g.add_argument("--drop-inconsistent-margins", action="store_true",
                   help="drop pairs whose own ratings (chosen_score/rejected_score or --margin-column) do not favour the chosen side")
    p.add_argument("--limit", type=positive_int, default=None, help="use the first N rows of each data file (suite: N per subset)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its last complete checkpoint (same run options; --max-steps, --epochs, "
                        "--eval-every, --save-every, --patience may change)")
    g = p.add_argument_group("process reward models (--objective prm)")
    g.add_argument("--readout", choices=["value", "loglik"], default="value",
                   help="prm: 'value' = a value head on the LM's hidden state (LoRA/full/head training); 'loglik' = a logistic head "
                        "over the frozen LM's per-step token surprise (seconds to fit; the packaged prm:default is one)")
    add_flags(g, LoglikPRMConfig, [Flag("l2", type=non_negative_float, help="prm --readout loglik: L2 penalty of the logistic head")])
    g.add_argument("--after-error", choices=["zero", "ignore"], default=None,
                   help="prm: label steps after the first error 0, or skip them (default: zero for --readout value, ignore for loglik)")
    add_flags(g, PRMConfig, PRM)
    g = p.add_argument_group("several processes (data parallel under accelerate; see examples/accelerate/)")
    g.add_argument("--launcher", choices=["none", "accelerate"], default="none",
                   help="accelerate: re-run this command under `accelerate launch` (one process per device; DDP unless "
                        "--accelerate-config says otherwise)")
    g.add_argument("--num-processes", type=positive_int, default=None, metavar="N",
                   help="--launcher accelerate: processes to start (default: the config's, else every GPU, else 2 on CPU)")
    g.add_argument("--accelerate-config", metavar="YAML", help="--launcher accelerate: an accelerate config file (examples/accelerate/*.yaml)")
    g.add_argument("--mixed-precision", choices=["no", "bf16", "fp16"], default=None,
                   help="--launcher accelerate: autocast precision of the forward passes (default: the config's, else no)")
    p.set_defaults(func=run)


ALL_LINEAR = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def _targets(value: str) -> tuple[str, ...]:
    if value.strip() == "all-linear":
        return ALL_LINEAR
    names = tuple(v.strip() for v in value.split(",") if v.strip())
    if not names:
        raise argparse.ArgumentTypeError("name at least one module, e.g. q_proj,v_proj")
    return names


#: set for the processes a ``--launcher accelerate`` run starts, so they train instead of launching again
LAUNCHED = "REWARDKIT_LAUNCHED"


def launch_command(args: argparse.Namespace) -> list[str]:
    """``accelerate launch ... -m rewardkit.cli.main train ARGS`` for ``--launcher accelerate``: this
    command again (launcher flags and all: the started processes ignore them), one process per device."""
    import os
    import socket

    import torch

    cmd = [sys.executable, "-m", "accelerate.commands.launch"]
    if args.accelerate_config:
        if not os.path.isfile(args.accelerate_config):
            raise FileNotFoundError(f"--accelerate-config {args.accelerate_config}: no such file")
        cmd += ["--config_file", args.accelerate_config]
    n = args.num_processes or (None if args.accelerate_config else max(torch.cuda.device_count(), 2 if not torch.cuda.is_available() else 1))
    if n is not None:
        cmd += ["--num_processes", str(n)]
    if not args.accelerate_config:
        cmd += ["--num_machines", "1", "--dynamo_backend", "no"] + (["--multi_gpu"] if n and n > 1 else [])
        with socket.socket() as sock:  # a free port for the processes' rendezvous (accelerate's fixed default may be taken)
            sock.bind(("127.0.0.1", 0))
            cmd += ["--main_process_port", str(sock.getsockname()[1])]
    if args.mixed_precision or not args.accelerate_config:
        cmd += ["--mixed_precision", args.mixed_precision or "no"]
    return cmd + ["-m", "rewardkit.cli.main", *args.argv]


def run(args: argparse.Namespace) -> int:
    import os

    if args.launcher == "accelerate" and not os.environ.get(LAUNCHED):
        cmd = launch_command(args)
        print("launching: " + " ".join(cmd[1:]), file=sys.stderr, flush=True)
        os.execve(sys.executable, cmd, {**os.environ, LAUNCHED: "1"})
    if getattr(args, "objective", "bt") == "prm":
        return run_prm(args)
    if getattr(args, "objective", "bt") == "vlm-bt":
        return run_vlm_bt(args)
    from ..data.benchmarks import resolve_data
    from ..train.bt import BTConfig, train

    quiet_libraries()
    if args.objective != "bt":
        return run_regression(args)
    sources = args.data or ["suite:train"]
    records = []
    for spec in sources:
        data = resolve_data(spec, limit=args.limit, seed=args.seed)
        if data.kind != "pairs":
            print(f"error: {spec} holds {data.kind} records; the bt objective needs preference pairs (rated samples: --objective regression)", file=sys.stderr)
            return 2
        records.extend(data.records)
    eval_records = None
    if args.eval_data:
        eval_records = resolve_data(args.eval_data, seed=args.seed).records
    filters = []
    if args.vote_reward or args.drop_inconsistent_margins:
        from ..train.common import split_heldout

        if eval_records is None:  # hold out before filtering, so the held-out pairs stay as labelled
            records, eval_records = split_heldout(records, args.eval_fraction, args.seed)
        records, filters = clean_pairs(records, args, reward_options={"seed": args.seed, "max_length": args.max_length})
    cfg = BTConfig(**values(BTConfig, args, SHARED + BT), output_dir=args.out, command=command_line(args.argv),
                   data_sources=list(sources), data_filters=filters)
    summary = train(cfg, records, eval_records, resume=args.resume)
    if is_main_process():
        print(json.dumps({k: summary[k] for k in ("train_pairs", "eval_pairs", "steps", "best_step", "eval", "export")} | {"data_filters": filters}, indent=2))
    return 0


def clean_pairs(records: list, args: argparse.Namespace, reward_options: dict) -> tuple[list, list[dict]]:
    """Apply the noisy-label options in order (margins, then votes) and print what each touched."""
    from pathlib import Path

    from ..specs import load_reward
    from ..train.noise import apply_votes, drop_inconsistent_margins, ensemble_votes, write_votes

    reports = []
    if args.drop_inconsistent_margins:
        records, report = drop_inconsistent_margins(records, args.margin_column)
        reports.append(report)
    if args.vote_reward:
        members = [load_reward(spec, **reward_options) for spec in args.vote_reward]
        votes = ensemble_votes(records, members)
        if is_main_process():
            write_votes(Path(args.out) / "pair_votes.jsonl", votes, args.vote_reward)
        records, report = apply_votes(records, votes, action=args.vote_action, min_agreement=args.min_agreement)
        reports.append(report | {"members": list(args.vote_reward)})
    for report in reports if is_main_process() else []:
        touched = {k: v for k, v in report.items() if k in ("dropped", "down_weighted", "without_ratings", "unscored", "ensemble_disagrees")}
        print(f"{report['option']}: {touched} of {report['pairs']} training pairs", file=sys.stderr)
    if not records:
        raise ValueError("the noisy-label filters dropped every training pair")
    return records, reports


def run_regression(args: argparse.Namespace) -> int:
    from ..data.benchmarks import resolve_data
    from ..train.regression import RegressionConfig, train

    if not args.data:
        print("error: --objective regression needs --data with rated samples (prompt, completion or response, numeric attribute columns)", file=sys.stderr)
        return 2
    if not args.attributes:
        print("error: name the rating columns with --attributes (e.g. helpfulness,correctness)", file=sys.stderr)
        return 2
    samples, pairs = [], []
    for spec in args.data:
        data = resolve_data(spec, limit=args.limit, seed=args.seed)
        if data.kind not in ("samples", "pairs"):
            print(f"error: {spec} holds {data.kind} records; use rated samples or preference pairs", file=sys.stderr)
            return 2
        (samples if data.kind == "samples" else pairs).extend(data.records)
    if args.objective == "bt+regression" and not pairs:
        print("error: bt+regression needs preference pairs as well as rated samples (add a --data with pairs)", file=sys.stderr)
        return 2
    if args.objective == "regression" and pairs and args.combination != "learned":
        print(f"note: ignoring {len(pairs)} preference pairs (use --objective bt+regression to train on them)", file=sys.stderr)
        pairs = []
    attributes = tuple(a.strip() for a in args.attributes.split(",") if a.strip())
    weights = tuple(float(w) for w in args.weights.split(",")) if args.weights else None
    if args.combination == "fixed" and weights is None:
        print("error: --combination fixed needs --weights", file=sys.stderr)
        return 2
    cfg = RegressionConfig(
        **values(RegressionConfig, args, SHARED + REGRESSION[:1] + ["merge_lora", "patience", "pairs_per_step"]),
        attributes=attributes, weights=weights, samples_per_step=2 * args.pairs_per_step, output_dir=args.out,
        pair_coef=args.pair_coef if args.objective == "bt+regression" or args.combination == "learned" else 0.0,
        command=command_line(args.argv), data_sources=list(args.data),
    )
    summary = train(cfg, samples, pairs, resume=args.resume)
    if is_main_process():
        print(json.dumps({k: summary[k] for k in ("train_samples", "eval_samples", "train_pairs", "eval_pairs", "steps", "best_step", "weights", "eval", "export")}, indent=2))
    return 0


def run_vlm_bt(args: argparse.Namespace) -> int:
    from ..data.benchmarks import resolve_data
    from ..train.vlm_bt import VLMBTConfig, train

    quiet_libraries()
    if args.model in (None, "default") or not args.data:
        print("error: --objective vlm-bt needs --model (an image-text-to-text checkpoint, e.g. HuggingFaceTB/SmolVLM-256M-Instruct) "
              "and --data (preference pairs whose prompts carry images)", file=sys.stderr)
        return 2
    records = []
    for spec in args.data:
        data = resolve_data(spec, limit=args.limit, seed=args.seed)
        if data.kind != "pairs":
            print(f"error: {spec} holds {data.kind} records; the vlm-bt objective needs preference pairs", file=sys.stderr)
            return 2
        records.extend(data.records)
    eval_records = resolve_data(args.eval_data, seed=args.seed).records if args.eval_data else None
    keep = SHARED + ["shuffle_seed", "pairs_per_step", "label_smoothing", "patience"]
    cfg = VLMBTConfig(**values(VLMBTConfig, args, keep), output_dir=args.out, command=command_line(args.argv), data_sources=list(args.data))
    summary = train(cfg, records, eval_records, resume=args.resume)
    print(json.dumps({k: summary[k] for k in ("train_pairs", "eval_pairs", "too_long_train_pairs", "steps", "best_step", "eval", "export")}, indent=2))
    return 0


def run_prm(args: argparse.Namespace) -> int:
    from ..data.benchmarks import resolve_step_data
    from ..train.prm import PRMConfig, train

    quiet_libraries()
    sources = args.data or ["arith:train"]
    records = []
    for spec in sources:
        records.extend(resolve_step_data(spec, limit=args.limit, seed=args.seed).records)
    eval_records = resolve_step_data(args.eval_data, seed=args.seed).records if args.eval_data else None
    if args.readout == "loglik":
        return _run_loglik(args, sources, records, eval_records)
    cfg = PRMConfig(**values(PRMConfig, args, SHARED + PRM), samples_per_step=args.pairs_per_step, output_dir=args.out,
                    after_error=args.after_error or "zero", command=command_line(args.argv), data_sources=list(sources))
    summary = train(cfg, records, eval_records, resume=args.resume)
    if is_main_process():
        print(json.dumps({k: summary[k] for k in ("train_solutions", "eval_solutions", "dropped_too_long", "steps", "best_step", "eval", "export", "seconds")}, indent=2))
    return 0


def _run_loglik(args: argparse.Namespace, sources: list[str], records: list, eval_records: list | None) -> int:
    from ..train.prm_loglik import LoglikPRMConfig, train

    if launched():
        print("error: --readout loglik fits a logistic head in seconds in one process; run it without a distributed launcher", file=sys.stderr)
        return 2
    cfg = LoglikPRMConfig(model=args.model, output_dir=args.out, l2=args.l2, after_error=args.after_error or "ignore",
                          max_length=args.max_length, eval_fraction=args.eval_fraction, seed=args.seed,
                          command=command_line(args.argv), data_sources=list(sources))
    summary = train(cfg, records, eval_records)
    print(json.dumps({k: summary[k] for k in ("train_solutions", "eval_solutions", "dropped_too_long", "train_steps_labelled", "weights", "eval", "export", "seconds")}, indent=2))
    return 0
