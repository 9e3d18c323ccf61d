"""Adversarial-input timing of the rule checks that run regular expressions in the caller's process.

Classes of input (not one example each), at each size of --sizes characters:

  math   ``check_math`` on comma-separated number lists (``100,101,...,1000``), thousands groups spoiled
         by a final digit (``1,234,...,2345``), digit runs, dots, slashes, "the answer is" repeated,
         ``answer`` + stars / spaces, unclosed ``\\boxed{{{...``, ``$x$`` spans, spaces, unclosed
         ``<<`` calculator notes, ``####``, a final ``A:`` line, and boxed power towers (``1^1^...``,
         ``{1^{1^...}}``, at most 1,000 characters: the symbolic length limit). The symbolic helper is
         replaced by a stub, so only this process's work is timed (extraction, normalization, guards).
  json   ``check_json`` with the schema ``pattern`` ``^(a+)+$`` (exponential in `re`) on 26 characters.

Each cell is the fastest of --repeats runs, in seconds; a class stops growing once a cell passes
--give-up seconds. Time that grows ~2x per doubled size is linear; ~8x is cubic.

Run: PYTHONPATH=src .venv/bin/python bench/regex_bounds.py [--sizes 1024,2048,4096,8192]
     (PYTHONPATH pointing at another tree's src times that tree's code)
"""
from __future__ import annotations

import argparse
import time

import rewardkit.rewards.rules.math as math_rule
from rewardkit.rewards.rules.text import check_json


class _NoSymbolic:
    """Stands in for the symbolic helper pool: every comparison is undecided at once."""

    def compare(self, gold: str, pred: str, timeout: float) -> tuple[None, str]:
        return None, "not compared (bench stub)"


def _fill(unit: str, n: int) -> str:
    return (unit * (n // len(unit) + 1))[:n]


MATH_CLASSES = {
    "number-list": lambda n: ",".join(str(i) for i in range(100, 100 + n // 4)),
    "list-then-1000": lambda n: _fill(",".join(str(i) for i in range(100, 1000)), n - 5) + ",1000",
    "groups-then-digit": lambda n: "1" + ",234" * ((n - 2) // 4) + "5",
    "digit-run": lambda n: "1" * n,
    "digits-dots": lambda n: _fill("1.", n),
    "digits-slashes": lambda n: _fill("1/", n),
    "minus-digits": lambda n: _fill("-1", n),
    "answer-is": lambda n: _fill("the answer is ", n),
    "answer-stars": lambda n: "answer" + "*" * n,
    "answer-spaces": lambda n: "answer" + " " * n,
    "open-braces": lambda n: "\\boxed{" + "{" * n,
    "dollar-spans": lambda n: "the answer is " + _fill("$x$ ", n),
    "spaces": lambda n: " " * n,
    "calculator-open": lambda n: _fill("<<1+", n),
    "hashes": lambda n: _fill("#### ", n),
    "A-line": lambda n: "A: " + _fill("1,234", n),
    "boxed-tower": lambda n: "\\boxed{" + "1^" * min(n // 2, 499) + "1}",
    "boxed-braced-tower": lambda n: "\\boxed{" + "{1^" * min(n // 4, 249) + "1" + "}" * min(n // 4, 249) + "}",
}


def _best(call, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - start)
    return best


def _row(name: str, make, sizes: list[int], check, repeats: int, give_up: float) -> str:
    cells = []
    for n in sizes:
        text = make(n)
        seconds = _best(lambda: check(text), repeats)
        cells.append(f"{seconds:10.4f}")
        if seconds > give_up:
            break
    return f"{name:24s}" + "".join(cells)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--sizes", default="1024,2048,4096,8192,16384", help="comma-separated sizes in characters")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--give-up", type=float, default=5.0, help="stop a class once one size takes longer")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    math_rule._pool = _NoSymbolic  # the helper pool is looked up per call; the class stands in for it
    print(f"{'class':24s}" + "".join(f"{n:>10d}" for n in sizes))
    for name, make in MATH_CLASSES.items():
        print(_row(f"math {name}", make, sizes, lambda t: math_rule.check_math(t, answer="7"), args.repeats, args.give_up), flush=True)
    schema = {"type": "string", "pattern": "^(a+)+$"}  # exponential: 26 characters are enough
    seconds = _best(lambda: check_json('"' + "a" * 26 + '!"', schema=schema), 1)
    print(f"{'json ^(a+)+$ on 26':24s}{seconds:10.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
