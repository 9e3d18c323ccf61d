"""rewardkit annotate: sample N responses per prompt (or take given ones), score them with one or more
rewards, and write preference pairs, best-of-N picks and a report (resumable)."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .common import add_generator_option, add_reward_options, command_line, output_dir, quiet_libraries, reward_options
from .flags import Flag, add_flags, non_negative_float, positive_int, probability, values

HELP = "sample responses, score them with several rewards, and pick preference pairs (and best-of-N) from them"
EPILOG = """examples:
  rewardkit annotate --generator default --reward rule:math --reward default \\
      --data gsm8k_train.jsonl --limit 100 --n 8 --out runs/annotate
  rewardkit annotate --generator openai:qwen@http://127.0.0.1:8000/v1 --reward judge:openai:qwen@http://127.0.0.1:8000/v1 \\
      --data prompts.jsonl --n 16 --pairs topk --k 4 --out runs/judged
  rewardkit annotate --candidates pools.jsonl --reward rule:math --reward default --pairs gate \\
      --consistency all-agree --out runs/gated
  rewardkit train --data runs/annotate/pairs.jsonl --out runs/rm      # train on the pairs

--data: prompt rows {"prompt": text or chat messages, ...} or {"question", "answer", ...} (GSM8K).
--candidates instead of --generator/--data: responses that already exist, one pool per row
({"prompt", "completions": [..]}, RewardBench 2's {"prompt", "chosen": [..], "rejected": [..]}) or one
response per row ({"prompt", "completion"}, grouped by id, else by prompt). Every other field (e.g. a
gold "answer") reaches the rewards as a keyword column and is copied into the output rows.

Sampling is seeded per (seed, prompt, sample), so a sample does not depend on its batch; identical
samples of one prompt are kept once (with their count). The reward that decides the pairs is the
first --reward (--primary names another); every reward's score is kept. Pair strategies:
  best-worst  the top sample against the bottom one
  topk        the i-th best against the i-th worst, i < --k
  margin      every pair whose difference is at least --min-margin (which also filters the others)
  gate        a verifier (a rule:/verify: reward, or --verifier) decides when it splits the pool:
              the correct response the primary reward likes most against the incorrect one it likes
              most; otherwise the primary reward decides, as best-worst
--consistency all-agree keeps only pairs every reward orders the same way (a tie or an unscored side
is not agreement); weight keeps all and writes the agreeing share as "pair_weight" (rewardkit train
weights each pair's loss by it). Ties and unscored samples never become pairs.

Writes OUT/samples.jsonl (one row per prompt: every distinct sample with all its scores), OUT/pairs.jsonl
(TRL's preference format: prompt, chosen, rejected, plus chosen_scores/rejected_scores per reward,
margin = the deciding reward's difference, agreement, rewards, generator, seed), OUT/best_of_n.jsonl
({"prompt", "completion", "scores"}: the top response per prompt, for rejection-sampling SFT; under gate
the correct one the primary reward likes most, and no row, counted, when the verifier found every
response it could judge wrong: a wrong answer is no target to fine-tune on),
OUT/summary.json and OUT/report.md (pairs, prompts without a pair and why, agreement between rewards,
samples/s). Note: TRL's RewardTrainer subtracts a "margin" column inside its loss; drop or rescale it
when the rewards' units do not suit that. Rows are written per batch of prompts; rerun the same
command to resume (no prompt is generated twice). Other generator, sampling, reward or seed settings
are refused (--overwrite starts afresh); other pair options just re-derive the pairs from the samples.
Pairs, best-of-N and the summary cover this input's prompts only (id and input fingerprint): rows of
other prompts (an earlier, larger --limit) stay in samples.jsonl and are counted, not used."""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("annotate", help=HELP, description=HELP, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_sources(p)
    p.add_argument("--reward", action="append", required=True, metavar="SPEC",
                   help="reward spec (repeatable); the first decides the pairs unless --primary names another")
    add_pair_options(p)
    p.add_argument("--out", required=True, type=output_dir, metavar="DIR")
    p.add_argument("--overwrite", action="store_true", help="start OUT afresh instead of resuming it")
    add_reward_options(p)
    p.set_defaults(func=run)


def add_sources(p: argparse.ArgumentParser, samples: bool = False) -> None:
    """Where the responses come from: generated for --data prompts, given by --candidates, or (``samples``)
    already scored by an annotate run."""
    from ..use.annotate import SamplingConfig

    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--data", metavar="FILE", help='prompt rows {"prompt", ...} or {"question", "answer", ...} (JSONL/JSON/Parquet)')
    src.add_argument("--candidates", metavar="FILE", help="existing responses to score instead of generating (pools or one response per row)")
    if samples:
        src.add_argument("--samples", metavar="FILE", help="samples.jsonl of a `rewardkit annotate` run whose rewards include both specs (nothing is scored again)")
    add_generator_option(p, "samples the responses (with --data)")
    p.add_argument("--limit", type=positive_int, default=None, metavar="N", help="the first N prompts")
    g = p.add_argument_group("sampling (with --data)")
    add_flags(g, SamplingConfig, [Flag("n", help="samples per prompt", type=positive_int), Flag("temperature", type=non_negative_float),
                                  Flag("top_p", type=probability), Flag("max_new_tokens", type=positive_int),
                                  Flag("batch_prompts", type=positive_int, help="prompts generated and scored together (a kill loses at most these)")])


def add_pair_options(p: argparse.ArgumentParser) -> None:
    from ..use.pairs import PairConfig

    g = p.add_argument_group("pair selection")
    add_flags(g, PairConfig, [Flag("pairs", help="how pairs are chosen (see below)"), Flag("k", type=positive_int, help="topk: pairs per prompt"),
                              Flag("min_margin", type=non_negative_float, help="drop pairs whose deciding reward differs by less"),
                              Flag("consistency", help="across rewards: none, all-agree (keep pairs every reward orders alike), weight (pair_weight = agreeing share)"),
                              Flag("primary", metavar="SPEC", help="the reward that decides the pairs (default: the first --reward)"),
                              Flag("verifier", metavar="SPEC", help="gate: the reward that checks correctness (default: the first rule:/verify: reward; added to the rewards if not among them)")])


def load_pools(args: argparse.Namespace) -> tuple[list, str]:
    """(pools, their source) from --data or --candidates."""
    from ..data.pools import load_candidates, load_prompts

    if args.candidates:
        return load_candidates(args.candidates, limit=args.limit), args.candidates
    return load_prompts(args.data, limit=args.limit), args.data


def settings(args: argparse.Namespace, specs: list[str]) -> dict:
    """What makes the samples what they are (a rerun with other values is refused)."""
    from ..use.annotate import SamplingConfig

    sampling = {k: v for k, v in values(SamplingConfig, args).items() if k != "batch_prompts"}
    plain = {k: v for k, v in reward_options(args).items() if isinstance(v, (str, int, float, bool, type(None)))}
    return {"generator": None if args.candidates else args.generator, "candidates": args.candidates,
            "sampling": None if args.candidates else sampling, "seed": args.seed, "rewards": specs, "reward_options": plain}


def loaders(args: argparse.Namespace, specs: list[str]):
    from .common import generator_from_args
    from ..specs import load_reward

    def load_rewards() -> dict:
        return {spec: load_reward(spec, **reward_options(args)) for spec in specs}

    load_client = None if args.candidates else (lambda: generator_from_args(args))
    return load_client, load_rewards


def run(args: argparse.Namespace) -> int:
    from ..use.annotate import SamplingConfig, annotate, check_pair_columns
    from ..use.pairs import PairConfig

    quiet_libraries()
    specs = list(args.reward)
    if args.verifier and args.verifier not in specs:
        specs.append(args.verifier)
    if len(set(specs)) < len(specs):
        raise ValueError(f"a --reward is given twice ({', '.join(sorted({s for s in specs if specs.count(s) > 1}))}); scores are kept per spec")
    pools, source = load_pools(args)
    check_pair_columns(pools, source)
    sampling = SamplingConfig(**values(SamplingConfig, args))
    if not args.candidates and sampling.temperature == 0 and sampling.n > 1:
        print(f"note: --temperature 0 is greedy decoding: the {sampling.n} samples of a prompt will be identical", file=sys.stderr)
    load_client, load_rewards = loaders(args, specs)
    summary = annotate(pools, Path(args.out), names=specs, load_rewards=load_rewards, load_client=load_client, sampling=sampling,
                       pairs=PairConfig(**values(PairConfig, args)), seed=args.seed, settings=settings(args, specs),
                       generator=f"candidates:{args.candidates}" if args.candidates else args.generator, overwrite=args.overwrite,
                       about={"command": command_line(args.argv), "data": source})
    keys = ("prompts", "samples_drawn", "duplicates", "pairs", "prompts_with_pair", "pair_share", "no_pair", "best_of_n_rows", "no_best_of_n",
            "agreement", "samples_per_second")
    print(json.dumps({k: summary[k] for k in keys}, indent=2))
    return 0
