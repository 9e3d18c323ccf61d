"""Entry point: `rewardkit VERB ...`."""
from __future__ import annotations

import argparse
import sys

from . import eval as eval_verb
from . import ls, score, serve, split, suite, train
from . import annotate, label_steps, overopt, search
from .. import __version__

DESCRIPTION = """rewardkit: score with any reward, train and evaluate reward models honestly, serve them.

Rewards are named by short specs: length, loglik:default (the embedded SmolLM2-135M-Instruct),
classifier:PATH_OR_HUB_ID, rule:math, rule:code, rule:constraints, compositions such as
'ensemble:lcb(a, b, k=1)' or 'gate(rule:math, loglik:default)', remote:http://HOST:PORT,
py:module:function. Run `rewardkit ls` for the list."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rewardkit", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"rewardkit {__version__}")
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    for module in (eval_verb, score, train, ls, suite, split, serve, label_steps, search, annotate, overopt):
        module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)
    args.argv = argv
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    from ..data.formats import DataFormatError
    from ..models.loading import ModelNotFoundError
    from ..protocol import MissingColumnError
    from ..specs import RewardSpecError

    try:
        return int(args.func(args) or 0)
    except (DataFormatError, ModelNotFoundError, RewardSpecError, MissingColumnError, FileNotFoundError, FileExistsError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head` and the like
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
