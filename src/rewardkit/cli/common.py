"""Options and helpers shared by the verbs."""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

from .flags import Flag, add_flags, non_negative_float, non_negative_int, positive_float, positive_int, share, values


def add_reward_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("reward options (passed to every model-backed reward)")
    g.add_argument("--max-tokens-per-batch", type=positive_int, default=None, metavar="N",
                   help="padded-token budget per forward pass; inputs are sorted by length so padding stays small (default 8192)")
    g.add_argument("--batch-size", type=positive_int, default=None, metavar="N", help="cap on rows per batch, on top of the token budget")
    g.add_argument("--max-padding", type=share, default=None, metavar="FRACTION",
                   help="close a batch rather than let padding exceed this share of its tokens (default 0.1); packed: open a row "
                        "only for a sequence within this share of the forward's longest (shorter ones fill gaps)")
    g.add_argument("--packing", choices=["auto", "on", "off"], default=None,
                   help="on: several sequences per row, no padding (block mask; flash attention's varlen kernel where flash_attn "
                        "runs on a GPU in fp16/bf16); auto: only in that flash-attention case; off (default): padded batches. "
                        "Scores are the same either way")
    g.add_argument("--max-length", type=positive_int, default=None, metavar="TOKENS",
                   help="truncate longer inputs (default: the model's context); truncation is reported per sample and in the summary")
    g.add_argument("--truncation-side", choices=["left", "right"], default=None,
                   help="left (default) drops the oldest tokens and keeps the completion; right drops the end")
    g.add_argument("--chat-template", choices=["auto", "on", "off"], default=None,
                   help="apply the tokenizer's chat template (auto: when the model has one)")
    g.add_argument("--device", default=None, help="cpu, cuda, cuda:1, mps ... (default: best available)")
    g.add_argument("--seed", type=int, default=0, help="seed for anything random (new heads, bootstrap); reported in results")


def add_image_options(p: argparse.ArgumentParser) -> None:
    """The image policy of the verbs that read data files (score, eval): local paths are read (your
    own data), URLs only from the hosts named here."""
    p.add_argument("--allow-image-urls", type=lambda text: tuple(h.strip() for h in text.split(",") if h.strip()), default=(),
                   metavar="HOSTS", help="comma-separated hosts whose image URLs (in --data) may be fetched, * for any; "
                                         "default: a data file with an image URL is refused at once, naming the row")


def image_policy_of(args: argparse.Namespace) -> Any:
    """The ``with`` block a verb that reads data runs in: its ``--allow-image-urls`` as the image policy."""
    from ..images import ImagePolicy, image_policy

    return image_policy(ImagePolicy(allow_urls=tuple(args.allow_image_urls)))


def add_engine_options(p: argparse.ArgumentParser) -> None:
    """``--engine`` and the Ray engine's flags (from :class:`~rewardkit.engines.ray.RayConfig`)."""
    from ..engines.ray import RayConfig

    p.add_argument("--engine", choices=["local", "ray"], default="local",
                   help="local: this process (default); ray: a Ray Data actor pool on a Ray cluster (pip install 'rewardkit[ray]')")
    g = p.add_argument_group("Ray engine (--engine ray): each actor loads the reward once; output shards are written as they "
                             "finish, and a rerun skips the finished ones")
    add_flags(g, RayConfig, [
        Flag("ray_address", metavar="ADDRESS", help="an existing cluster: HOST:6379, or auto on a cluster node (default: $RAY_ADDRESS, else a local cluster started here)"),
        Flag("ray_actors", type=positive_int, help="actors in the pool"),
        Flag("ray_cpus_per_actor", type=positive_float, metavar="N"),
        Flag("ray_gpus_per_actor", type=non_negative_float, metavar="N", help="1 for a model reward on GPU nodes"),
        Flag("ray_batch_size", type=positive_int, help="input rows per Ray call and per output shard; the reward still batches its "
             "forward passes by --max-tokens-per-batch inside it"),
        Flag("ray_retries", type=non_negative_int, help="times a shard may kill its actor's process (Ray restarts the actor and "
             "resubmits the shard) before the run fails"),
        Flag("ray_num_cpus", type=positive_int, help="CPUs of a local cluster started here (default: all)"),
    ])


def engine_config(args: argparse.Namespace) -> Any:
    """The :class:`~rewardkit.engines.ray.RayConfig` of ``--engine ray`` (``None`` for local); a
    missing Ray is an error that says how to install it."""
    if getattr(args, "engine", "local") != "ray":
        return None
    from ..engines.ray import RayConfig, require_ray

    try:
        require_ray()
    except ImportError as err:
        raise ValueError(str(err)) from None
    return RayConfig(**values(RayConfig, args))


def add_policy_options(p: argparse.ArgumentParser, what: str) -> None:
    """The flags of the verbs that generate math solutions and check them (search, label-steps)."""
    p.add_argument("--data", required=True, metavar="DATA", help='math rows {"question", "answer", ...} (JSONL/JSON/Parquet)')
    add_generator_option(p, what)
    p.add_argument("--verifier", default="rule:math", help="reward spec that checks a finished solution against the 'answer' column")
    p.add_argument("--limit", type=positive_int, default=None, metavar="N", help="the first N rows of --data")


def add_generator_option(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--generator", default="default",
                   help=f"the model that {what}: default (embedded model), a model dir/.gguf/hub id, or openai:MODEL@URL "
                        "(any OpenAI-compatible server)")
    p.add_argument("--generator-batch-tokens", type=positive_int, default=None, metavar="N",
                   help="local generator: budget of rows x (prompt + new tokens) decoded together (default 16384). On a CPU "
                        "a decoding step costs about the same for 8 rows as for 64, so a larger budget is faster while memory allows")
    p.add_argument("--generator-concurrency", type=positive_int, default=None, metavar="N",
                   help="openai: generator: requests in flight (default 8)")


def generator_from_args(args: argparse.Namespace) -> Any:
    """The generation client the --generator flags name (local options go to a local model only)."""
    from ..clients import client_from_spec

    spec = args.generator
    kwargs: dict[str, Any] = {}
    if spec.startswith("openai:"):
        if getattr(args, "generator_concurrency", None):
            kwargs["concurrency"] = args.generator_concurrency
    elif getattr(args, "generator_batch_tokens", None):
        kwargs["max_tokens_per_batch"] = args.generator_batch_tokens
    return client_from_spec(spec, **kwargs)


def output_file(text: str) -> str:
    """argparse type of an ``--out FILE``: an existing directory is refused at once (not after the work,
    when the file cannot be opened)."""
    if Path(text).is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a directory; give the file to write (e.g. {Path(text) / 'out.jsonl'})")
    return text


def output_dir(text: str) -> str:
    """argparse type of an ``--out DIR``: an existing file there is refused at once."""
    if Path(text).exists() and not Path(text).is_dir():
        raise argparse.ArgumentTypeError(f"{text} exists and is not a directory; --out names the folder to write into")
    return text


def reward_options(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "max_tokens_per_batch": args.max_tokens_per_batch,
        "batch_size": args.batch_size,
        "max_padding": args.max_padding,
        "packing": args.packing,
        "max_length": args.max_length,
        "truncation_side": args.truncation_side,
        "chat_template": args.chat_template,
        "device": args.device,
        "seed": args.seed,
    }


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "reward"


def quiet_libraries() -> None:
    """Keep transformers' load chatter out of the way; our own warnings still show."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
    except ImportError:
        pass


class JsonlWriter:
    """Writes rows to a JSONL file as they are produced, flushed per batch (so a crash keeps what was
    scored); ``append`` continues an existing file instead of starting it afresh."""

    def __init__(self, path: Path, append: bool = False):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self.fh = path.open("a" if append else "w", encoding="utf-8")

    def __call__(self, rows: list[dict[str, Any]]) -> None:
        for row in rows:
            self.fh.write(json.dumps(row, ensure_ascii=False) + "\n")
        self.fh.flush()

    def close(self) -> None:
        self.fh.close()


def command_line(argv: list[str] | None = None) -> str:
    """The command as a user would type it again (for reports and model cards)."""
    return "rewardkit " + " ".join(_quote(a) for a in (sys.argv[1:] if argv is None else argv))


def _quote(arg: str) -> str:
    return arg if re.fullmatch(r"[\w@%+=:,./-]+", arg) else "'" + arg.replace("'", "'\\''") + "'"
