"""rewardkit label-steps: automatic step labels by Monte-Carlo rollouts (Math-Shepherd hard/soft
estimates and "Rewarding Progress" advantages), resumable, one output row per solution."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from .common import add_engine_options, add_policy_options, engine_config, output_file, quiet_libraries
from .flags import Flag, add_flags, non_negative_float, positive_int, probability, values

HELP = "label reasoning steps automatically by Monte-Carlo rollouts checked by a verifier (resumable)"
EPILOG = """examples:
  rewardkit label-steps --data gsm8k_train.jsonl --limit 50 --out runs/steps/gsm8k.jsonl
  rewardkit label-steps --data gsm8k_train.jsonl --solutions sample --rollouts 16 --label soft --out runs/steps/s.jsonl
  rewardkit label-steps --data arith-steps:train --out runs/steps/arith.jsonl      # re-label known steps
  rewardkit train --objective prm --data runs/steps/gsm8k.jsonl --out runs/prm     # train on the labels

--data: math rows {"question","answer"[, "solution"]} (GSM8K layout) or step rows with an "answer"
column. With --solutions reference (default) a GSM8K reference solution is split into steps and
labelled; with --solutions sample the generator writes the solutions first (in this process, also with
--engine ray). The output JSONL grows one solution at a time; rerun the same command to resume (done ids
are skipped). --engine ray labels the solutions on a Ray actor pool (each actor loads the generator and
the verifier once; add --ray-gpus-per-actor 1 on GPU nodes); finished shards survive a killed run in
OUT.shards and the rows land in OUT, in input order, at the end."""


def add_parser(sub: argparse._SubParsersAction) -> None:
    from ..use.label_steps import RolloutConfig

    p = sub.add_parser("label-steps", help=HELP, description=HELP, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_policy_options(p, "rolls out")
    p.add_argument("--out", required=True, type=output_file, metavar="FILE.jsonl")
    p.add_argument("--solutions", choices=["reference", "sample"], default="reference")
    add_flags(p, RolloutConfig, [Flag("rollouts", help="completions per step prefix", type=positive_int), Flag("max_new_tokens", type=positive_int),
                                 Flag("temperature", type=non_negative_float), Flag("top_p", type=probability),
                                 Flag("label", help="which estimate goes into 'labels' (both are written)"), "seed"])
    add_engine_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from .common import generator_from_args
    from ..data.benchmarks import resolve_step_data
    from ..data.io import DataFormatError, iter_rows, question_rows
    from ..data.steps import StepRecord, gsm8k_steps
    from ..specs import load_reward
    from ..use.label_steps import RolloutConfig, label_all, label_on_ray, sample_solutions

    quiet_libraries()
    ray = engine_config(args)
    cfg = RolloutConfig(**values(RolloutConfig, args))
    client = None  # loaded here only when this process generates (local engine, or --solutions sample)
    items: list[tuple[StepRecord, object]] = []
    path = Path(args.data)
    first = next(iter_rows(path), None) if path.is_file() else None
    if first is not None and "steps" not in first[1]:
        questions, answers, ids, refs = [], [], [], []
        for where, rid, row in question_rows(path, limit=args.limit, purpose="label-steps"):
            questions.append(row["question"])
            answers.append(str(row["answer"]))
            ids.append(rid)
            refs.append(row.get("solution"))
            if args.solutions == "reference" and not isinstance(row.get("solution"), str):
                raise DataFormatError(path, where, "solution", "missing (or use --solutions sample)")
        if args.solutions == "reference":
            steps = [[gsm8k_steps(s)[0]] for s in refs]
        else:
            client = generator_from_args(args)
            steps = sample_solutions(questions, client, cfg)
        for q, a, i, sols in zip(questions, answers, ids, steps):
            for j, st in enumerate(sols):
                if st:
                    items.append((StepRecord(f"{i}-{args.solutions}{j}", q, st, [None] * len(st)), a))
    else:
        data = resolve_step_data(args.data, limit=args.limit, seed=args.seed)
        for r in data.records:
            if r.columns.get("answer") is None:
                raise DataFormatError(args.data, f"record {r.id}", "answer", "missing (label-steps needs a gold answer per row)")
            items.append((r, r.columns["answer"]))
    if ray is not None:
        counts = label_on_ray(items, Path(args.out), args.generator, args.verifier, cfg, ray)
    else:
        counts = label_all(items, Path(args.out), client or generator_from_args(args), load_reward(args.verifier), cfg, total=len(items))
    print(json.dumps({"out": args.out, "solutions": len(items), **counts, "rollouts_per_step": cfg.rollouts, "seed": cfg.seed}, indent=2))
    return 0
