"""rule:math vs. math-verify on rewardkit's hand-written verdict corpus, per class.

Each case of tests/rewards/rules/math_corpus.py (completion, gold, expected verdict 1 / 0 / None, the
class it belongs to) is scored by

  rewardkit    ``check_math(completion, answer=gold)`` in this process (its sympy helper included);
  math-verify  ``verify(parse("$gold$"), parse(completion))`` with math-verify's default extraction
               (LaTeX and plain expressions, its own timeouts), run by another interpreter: math-verify
               is not imported here, a subprocess of --mathverify-python (default ../mvenv/bin/python,
               or $MATHVERIFY_PYTHON) reads the cases as JSON lines. When that interpreter or its
               math_verify is missing, the math-verify column is skipped, not failed.

Printed per class: cases, agreement with the expected verdict for each grader, and false positives
(a 1 where the corpus expects 0 or None: a reward the policy could farm). math-verify never answers
None (an answer it cannot read is 0), so on cases expected None it can only disagree; the
"safe" columns count a verdict as acceptable when it is the expected one or, for an expected None, a 0.

Why: the corpus pins what rule:math does; this shows where another widely used grader differs.

Run: PYTHONPATH=src .venv/bin/python bench/math_vs_mathverify.py  (about a minute on 2 cores)
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests" / "rewards" / "rules"))

from math_corpus import FALSE_POSITIVE_CLASSES, as_records  # noqa: E402

from rewardkit.rewards.rules.math import check_math, shutdown_helpers  # noqa: E402

DEFAULT_MV_PYTHON = Path(os.environ.get("MATHVERIFY_PYTHON", REPO.parent / "mvenv" / "bin" / "python"))

#: runs inside the math-verify interpreter: one JSON case per stdin line -> one verdict per stdout line
MATHVERIFY_RUNNER = r"""
import json, logging, sys
logging.disable(logging.WARNING)
from math_verify import parse, verify
out = sys.stdout
for line in sys.stdin:
    case = json.loads(line)
    try:
        gold = parse("$" + case["gold"] + "$")
        if not gold:
            verdict, note = None, "gold not parsed"
        else:
            pred = parse(case["completion"])
            verdict, note = float(bool(verify(gold, pred))), None
    except Exception as err:  # a crash is an undecided case, reported
        verdict, note = None, type(err).__name__
    out.write(json.dumps({"score": verdict, "note": note}) + "\n")
    out.flush()
"""


def rewardkit_scores(records: list[dict]) -> list[float | None]:
    return [check_math(r["completion"], answer=r["gold"]).score for r in records]


def mathverify_scores(records: list[dict], python: Path, timeout: float) -> tuple[list[float | None] | None, str]:
    """math-verify's verdicts, or (None, why it was skipped)."""
    if not python.exists():
        return None, f"{python} not found (python3 -m venv {python.parent.parent} && {python.parent}/pip install math-verify)"
    probe = subprocess.run([str(python), "-c", "import math_verify; print(math_verify.__version__ if hasattr(math_verify, '__version__') else '?')"],
                           capture_output=True, text=True)
    if probe.returncode != 0:
        return None, f"math_verify not importable by {python}"
    feed = "".join(json.dumps({"gold": r["gold"], "completion": r["completion"]}) + "\n" for r in records)
    try:
        run = subprocess.run([str(python), "-c", MATHVERIFY_RUNNER], input=feed, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, f"math-verify run exceeded {timeout:g}s"
    lines = run.stdout.splitlines()
    if run.returncode != 0 or len(lines) != len(records):
        return None, f"math-verify run failed (exit {run.returncode}): {run.stderr.strip()[-300:]}"
    pip = subprocess.run([str(python), "-m", "pip", "show", "math-verify"], capture_output=True, text=True).stdout
    version = next((line.split(":", 1)[1].strip() for line in pip.splitlines() if line.startswith("Version:")), "?")
    return [json.loads(line)["score"] for line in lines], f"math-verify {version}"


def table(records: list[dict], columns: dict[str, list[float | None]]) -> tuple[str, dict]:
    by_class: dict[str, list[int]] = defaultdict(list)
    for i, r in enumerate(records):
        by_class[r["class"]].append(i)
    names = list(columns)
    head = f"{'class':<20}{'cases':>6}" + "".join(f"{n + ' agree':>19}{'safe':>7}{'FP':>5}" for n in names)
    lines = [head, "-" * len(head)]
    summary: dict = {}

    def row(label: str, idx: list[int]) -> str:
        cells = f"{label:<20}{len(idx):>6}"
        for n in names:
            got = columns[n]
            agree = sum(got[i] == records[i]["expected"] for i in idx)
            safe = sum(got[i] == records[i]["expected"] or (records[i]["expected"] is None and got[i] == 0.0) for i in idx)
            fp = sum(got[i] == 1.0 and records[i]["expected"] != 1.0 for i in idx)
            summary.setdefault(label, {})[n] = {"cases": len(idx), "agree": agree, "safe": safe, "false_positives": fp}
            cells += f"{agree:>9}/{len(idx):<3} {agree / len(idx):>5.0%}{safe / len(idx):>7.0%}{fp:>5}"
        return cells

    for cls, idx in by_class.items():
        lines.append(row(cls + (" *" if cls in FALSE_POSITIVE_CLASSES else ""), idx))
    lines.append("-" * len(head))
    lines.append(row("all", list(range(len(records)))))
    return "\n".join(lines), summary


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description="rule:math vs math-verify on the verdict corpus, per class.",
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--mathverify-python", type=Path, default=DEFAULT_MV_PYTHON, help="interpreter with math-verify installed")
    ap.add_argument("--timeout", type=float, default=600.0, help="wall-clock bound of the whole math-verify run (s)")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "math_vs_mathverify.json", help="JSON result file")
    ap.add_argument("--show", type=int, default=0, help="print up to this many disagreements per grader")
    return ap.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    records = as_records()
    t0 = time.perf_counter()
    columns = {"rewardkit": rewardkit_scores(records)}
    rk_seconds = time.perf_counter() - t0
    shutdown_helpers()
    t0 = time.perf_counter()
    mv, mv_note = mathverify_scores(records, args.mathverify_python, args.timeout)
    mv_seconds = time.perf_counter() - t0
    if mv is not None:
        columns["math-verify"] = mv
    print(f"{len(records)} corpus cases; rewardkit {rk_seconds:.1f}s; "
          + (f"{mv_note} {mv_seconds:.1f}s" if mv is not None else f"math-verify skipped: {mv_note}"))
    print("agree: the expected verdict exactly; safe: that, or 0 where None is expected; FP: 1 where 0/None is expected; * false-positive class")
    text, summary = table(records, columns)
    print(text)
    for name, got in columns.items():
        wrong = [(r["class"], r["completion"], r["gold"], r["expected"], got[i]) for i, r in enumerate(records) if got[i] != r["expected"]]
        for case in wrong[: args.show]:
            print(f"  {name}: {case}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"summary": summary, "math_verify": mv_note}, indent=1) + "\n")
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
