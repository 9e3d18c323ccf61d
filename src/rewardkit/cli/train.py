"""rewardkit train: train a reward model (Bradley-Terry; head, LoRA or full fine-tune)."""
from __future__ import annotations

import argparse
import json
import sys

from .common import command_line, quiet_libraries

HELP = "train a reward model: Bradley-Terry on pairs, regression / multi-objective on ratings, or both (resumable)"
EPILOG = """examples:
  rewardkit train --out runs/rm                                  # embedded model, built-in suite train split
  rewardkit train --data pairs.jsonl --mode full --max-steps 500 --out runs/rm-full
  rewardkit train --out runs/rm --resume                         # continue after a crash or kill
  rewardkit train --objective regression --data helpsteer2.jsonl --attributes helpfulness,correctness,coherence \
      --combination fixed --weights 1,1,0.5 --out runs/rm-hs2          # one head per attribute, fixed combination
  rewardkit train --objective bt+regression --data ratings.jsonl --data pairs.jsonl --attributes a,b \
      --combination learned --out runs/rm-mo                           # heads from ratings, weights from pairs

Objectives: bt (pairs), regression (rated samples: prompt + completion/response + numeric attribute
columns; one head per attribute, MSE on standardised ratings, missing ratings masked), bt+regression
(both kinds of data; the BT term acts on the combined score).

Writes checkpoints (atomically) under OUT/checkpoints, the exported model under OUT/model (loadable by
transformers.AutoModelForSequenceClassification, with tokenizer, chat template, reward mean/std and a
model card) and OUT/train_results.json. Evaluate the result with
  rewardkit eval --reward classifier:OUT/model --data suite"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help=HELP, description=HELP, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", action="append", metavar="DATA", help="preference data (repeatable); default: the built-in suite's train split")
    p.add_argument("--eval-data", metavar="DATA", help="held-out pairs; default: a split of the training prompts (--eval-fraction)")
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument("--objective", choices=["bt", "regression", "bt+regression", "prm"], default="bt",
                   help="prm: process reward model, per-step BCE on step-labelled solutions (default data: arith:train; --pairs-per-step = solutions per step)")
    p.add_argument("--attributes", metavar="A,B,..", help="rating columns, one head each (regression objectives)")
    p.add_argument("--combination", choices=["mean", "fixed", "learned"], default="mean",
                   help="how the heads combine into the scalar reward: their mean, --weights, or learned from pairs")
    p.add_argument("--weights", metavar="W1,W2,..", help="fixed combination weights, one per attribute")
    p.add_argument("--pair-coef", type=float, default=1.0, help="weight of the BT term in bt+regression")
    p.add_argument("--model", default="default", help="base model: default (embedded), a directory, a .gguf file or a hub id")
    p.add_argument("--mode", choices=["head", "lora", "full"], default="lora")
    p.add_argument("--lora-r", type=int, default=8)
    p.add_argument("--lora-targets", type=_targets, default=("q_proj", "v_proj"), metavar="M1,M2,..",
                   help="modules that get LoRA adapters (default q_proj,v_proj; 'all-linear' = every projection of a Llama-style block)")
    p.add_argument("--init-adapter", metavar="DIR", help="bt, lora: continue training a saved LoRA adapter (OUT/adapter of a run, or 'default' for the packaged RM)")
    p.add_argument("--shuffle-seed", type=int, default=None, help="seed of the data order only (default --seed); the held-out split stays fixed by --seed")
    p.add_argument("--no-merge", action="store_true", help="export the LoRA adapter unmerged")
    p.add_argument("--lr", type=float, default=None, help="learning rate (default 2e-4 for lora/head, 2e-5 for full)")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--max-steps", type=int, default=None)
    p.add_argument("--pairs-per-step", type=int, default=16)
    p.add_argument("--max-tokens-per-micro-batch", type=int, default=4096, help="padded tokens per forward (gradient accumulation beyond)")
    p.add_argument("--max-length", type=int, default=512)
    p.add_argument("--no-share-prefix", action="store_true",
                   help="bt: encode chosen and rejected as separate sequences (default: one packed row per pair, their shared prompt encoded once; same rewards, fewer tokens)")
    p.add_argument("--margin-column", default=None, help="per-pair margin column (margin loss)")
    p.add_argument("--center-coef", type=float, default=0.0, help="reward-centering penalty coef * (r_c + r_r)^2")
    p.add_argument("--label-smoothing", type=float, default=0.0)
    p.add_argument("--eval-fraction", type=float, default=0.1)
    p.add_argument("--eval-every", type=int, default=50)
    p.add_argument("--save-every", type=int, default=50)
    p.add_argument("--patience", type=int, default=None, help="stop after this many evaluations without improvement")
    g = p.add_argument_group("noisy labels (bt objective; applied to the training pairs only, counts reported)")
    g.add_argument("--vote-reward", action="append", metavar="SPEC",
                   help="score every training pair with this reward (repeat for an ensemble); pairs the ensemble disagrees with are dropped or down-weighted")
    g.add_argument("--vote-action", choices=["drop", "weight"], default="drop",
                   help="drop pairs whose agreeing share is below --min-agreement, or weight each pair's loss by its agreeing share")
    g.add_argument("--min-agreement", type=float, default=0.5, help="share of members that must agree with the label to keep a pair (drop)")
    g.add_argument("--drop-inconsistent-margins", action="store_true",
                   help="drop pairs whose own ratings (chosen_score/rejected_score or --margin-column) do not favour the chosen side")
    p.add_argument("--limit", type=int, default=None, help="use the first N rows of each data file (suite: N per subset)")
    p.add_argument("--resume", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    # --- process reward models (rewardkit.train.prm); the BT options above that also apply are reused
    p.add_argument("--readout", choices=["value", "loglik"], default="value",
                   help="prm: 'value' = a value head on the LM's hidden state (LoRA/full/head training); 'loglik' = a logistic head "
                        "over the frozen LM's per-step token surprise (seconds to fit; the packaged prm:default is one)")
    p.add_argument("--l2", type=float, default=1e-2, help="prm --readout loglik: L2 penalty of the logistic head")
    p.add_argument("--after-error", choices=["zero", "ignore"], default=None,
                   help="prm: label steps after the first error 0, or skip them (default: zero for --readout value, ignore for loglik)")
    p.add_argument("--last-step-only", action="store_true", help="prm: train on the final step's label only")
    p.add_argument("--balance-labels", action="store_true", help="prm: weight the loss so erroneous and correct steps count equally in total")
    p.set_defaults(func=run)


ALL_LINEAR = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def _targets(value: str) -> tuple[str, ...]:
    if value.strip() == "all-linear":
        return ALL_LINEAR
    names = tuple(v.strip() for v in value.split(",") if v.strip())
    if not names:
        raise argparse.ArgumentTypeError("name at least one module, e.g. q_proj,v_proj")
    return names


def run(args: argparse.Namespace) -> int:
    if getattr(args, "objective", "bt") == "prm":
        from .train_prm import run_prm

        return run_prm(args)
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
    lr = args.lr if args.lr is not None else (2e-5 if args.mode == "full" else 2e-4)
    cfg = BTConfig(
        model=args.model, output_dir=args.out, mode=args.mode, lora_r=args.lora_r, lora_alpha=2 * args.lora_r,
        lora_targets=args.lora_targets, merge_lora=not args.no_merge, learning_rate=lr, epochs=args.epochs, max_steps=args.max_steps,
        pairs_per_step=args.pairs_per_step, max_tokens_per_micro_batch=args.max_tokens_per_micro_batch,
        max_length=args.max_length, margin_column=args.margin_column, center_coef=args.center_coef,
        label_smoothing=args.label_smoothing, eval_fraction=args.eval_fraction, eval_every=args.eval_every,
        save_every=args.save_every, patience=args.patience, seed=args.seed, command=command_line(args.argv),
        data_sources=list(sources), data_filters=filters, init_adapter=args.init_adapter, shuffle_seed=args.shuffle_seed,
        share_prefix=not args.no_share_prefix,
    )
    summary = train(cfg, records, eval_records, resume=args.resume)
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
        write_votes(Path(args.out) / "pair_votes.jsonl", votes, args.vote_reward)
        records, report = apply_votes(records, votes, action=args.vote_action, min_agreement=args.min_agreement)
        reports.append(report | {"members": list(args.vote_reward)})
    for report in reports:
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
    lr = args.lr if args.lr is not None else (2e-5 if args.mode == "full" else 2e-4)
    cfg = RegressionConfig(
        attributes=attributes, model=args.model, output_dir=args.out, mode=args.mode, lora_r=args.lora_r, lora_alpha=2 * args.lora_r,
        lora_targets=args.lora_targets,
        merge_lora=not args.no_merge, learning_rate=lr, epochs=args.epochs, max_steps=args.max_steps,
        samples_per_step=2 * args.pairs_per_step, pairs_per_step=args.pairs_per_step, max_tokens_per_micro_batch=args.max_tokens_per_micro_batch,
        max_length=args.max_length, combination=args.combination, weights=weights,
        pair_coef=args.pair_coef if args.objective == "bt+regression" or args.combination == "learned" else 0.0,
        eval_fraction=args.eval_fraction, eval_every=args.eval_every, patience=args.patience, save_every=args.save_every,
        seed=args.seed, command=command_line(args.argv), data_sources=list(args.data),
    )
    summary = train(cfg, samples, pairs, resume=args.resume)
    print(json.dumps({k: summary[k] for k in ("train_samples", "eval_samples", "train_pairs", "eval_pairs", "steps", "best_step", "weights", "eval", "export")}, indent=2))
    return 0
