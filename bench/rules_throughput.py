"""Rule-reward throughput: checks per second in one process vs. a process pool, in the same run.

Sections (each a function returning a dict for the JSON report; ``main`` runs the ones asked for):

  math   ``load_rule("math")`` (rule:math, final-answer equivalence) on --n real completions:
         GSM8K example model solutions (chosen and rejected of
         ../shared/data/pairwise/gsm8k_model_solution_pairs.jsonl, gold answers joined from
         math/gsm8k_test.jsonl on question text) and MATH-500 reference solutions, each scored once
         against its own gold answer and once against the next problem's answer (a realistic wrong
         answer, which cannot be settled by the string fast path and so exercises the sympy helper).
         The list is cycled to --n. Timed cold, end to end: ``reward.score(...)`` with workers=0 (this
         process plus its one sympy helper) and with workers=--workers (a process pool; each worker
         starts its own helper), helpers stopped before each run; best of --repeats. No result caching
         exists, so the cycling does not flatter either side. The two modes must give identical scores
         (else exit 1). The share of the CPU used by other processes during each timed run is printed:
         on a shared machine the ratio means little.

  ifeval ``load_rule("ifeval")`` on --n responses cycled from a fixed set of IFEval-format rows (a
         spread of instruction types, including a language check), strict and loose mode, one process.

  code   the sandbox's cost per call (see section_code).

Why: rule rewards sit in the RL loop; this shows what one process sustains and what a pool buys.

Run: .venv/bin/python bench/rules_throughput.py  (under a minute on an idle 2-core CPU)
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import time
from pathlib import Path

from rewardkit.rewards.rules import load_rule
from rewardkit.rewards.rules.math import shutdown_helpers

REPO = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("REWARDKIT_SHARED_DATA", REPO.parent / "shared" / "data"))


# --------------------------------------------------------------------------------------------- data
def read_jsonl(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def math_items(data: Path, n: int) -> tuple[list[str], list[str], dict[str, int]]:
    """(completions, gold answers, composition) with ``n`` rows, real completions cycled."""
    gold = {row["question"]: row["answer"] for row in read_jsonl(data / "math" / "gsm8k_test.jsonl")}
    completions, answers = [], []
    for pair in read_jsonl(data / "pairwise" / "gsm8k_model_solution_pairs.jsonl"):
        for side in ("chosen", "rejected"):
            completions.append(pair[side])
            answers.append(gold[pair["prompt"]])
    n_gsm8k = len(completions)
    math500 = read_jsonl(data / "math" / "math500_test.jsonl")
    for i, row in enumerate(math500):
        completions += [row["solution"], row["solution"]]
        answers += [row["answer"], math500[(i + 1) % len(math500)]["answer"]]
    distinct = len(completions)
    reps = -(-n // distinct)
    composition = {"gsm8k_completions": n_gsm8k, "math500_solutions_x2": distinct - n_gsm8k, "distinct": distinct, "rows": n}
    return (completions * reps)[:n], (answers * reps)[:n], composition


# ------------------------------------------------------------------------------------------ timing
def _machine_busy_seconds() -> float | None:
    """CPU seconds all processes on this machine have spent busy so far (Linux /proc/stat)."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    except OSError:
        return None
    ticks = [int(x) for x in fields]
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)
    return (sum(ticks[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _own_cpu_seconds() -> float:
    """CPU of this process plus its finished children (pool workers and sympy helpers are waited for)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _become_subreaper() -> bool:
    """Pool workers exit without waiting for their sympy helpers; as a child subreaper (Linux) this
    process adopts those helpers when they exit, so their CPU can be reaped into RUSAGE_CHILDREN."""
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0) == 0  # PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):
        return False


def _reap_adopted(seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return  # no children left
        if pid == 0:
            time.sleep(0.01)


def timed_score(workers: int, completions: list[str], answers: list[str]) -> tuple[float, list, float | None]:
    """Cold run: no helper processes alive at the start. Returns (seconds, scores, share of the
    machine's CPU used by other processes meanwhile, or None where that cannot be read)."""
    shutdown_helpers()
    reward = load_rule("math", workers=workers)
    prompts = [""] * len(completions)
    busy0, own0 = _machine_busy_seconds(), _own_cpu_seconds()
    start = time.perf_counter()
    out = reward.score(prompts, completions, answer=answers)
    shutdown_helpers()
    seconds = time.perf_counter() - start
    _reap_adopted()  # the pool workers' helpers, after the timing
    window = time.perf_counter() - start
    busy1, own1 = _machine_busy_seconds(), _own_cpu_seconds()
    other = None
    if busy0 is not None and busy1 is not None and SUBREAPER:
        other = max(0.0, (busy1 - busy0) - (own1 - own0)) / (window * (os.cpu_count() or 1))
    return seconds, out.scores, other


def best_of(repeats: int, workers: int, completions: list[str], answers: list[str]) -> tuple[float, list, float | None]:
    runs = [timed_score(workers, completions, answers) for _ in range(repeats)]
    for _, scores, _ in runs[1:]:
        if scores != runs[0][1]:
            raise RuntimeError(f"workers={workers}: scores changed between repeats")
    return min(runs, key=lambda r: r[0])


def section_math(args: argparse.Namespace) -> dict:
    completions, answers, composition = math_items(args.data, args.n)
    single_s, single, single_other = best_of(args.repeats, 0, completions, answers)
    pool_s, pooled, pool_other = best_of(args.repeats, args.workers, completions, answers)
    mismatches = sum(a != b for a, b in zip(single, pooled))
    undecided = sum(s is None for s in single)
    rows = [
        {"mode": "single process", "workers": 0, "seconds": single_s, "checks_per_s": args.n / single_s, "other_cpu_share": single_other},
        {"mode": "process pool", "workers": args.workers, "seconds": pool_s, "checks_per_s": args.n / pool_s, "other_cpu_share": pool_other},
    ]
    print(f"rule:math on {args.n} real completions ({composition['distinct']} distinct: "
          f"{composition['gsm8k_completions']} GSM8K + {composition['math500_solutions_x2']} MATH-500 rows, cycled); "
          f"cold starts included, best of {args.repeats}")
    header = f"{'mode':<16}{'workers':>8}{'seconds':>10}{'checks/s':>11}{'other CPU':>11}"
    print(header)
    print("-" * len(header))
    for row in rows:
        share = "n/a" if row["other_cpu_share"] is None else f"{row['other_cpu_share']:.0%}"
        print(f"{row['mode']:<16}{row['workers']:>8}{row['seconds']:>10.2f}{row['checks_per_s']:>11.0f}{share:>11}")
    ratio = single_s / pool_s
    print(f"pool / single    {ratio:.2f}x checks/s   (scores identical: {'yes' if not mismatches else f'NO, {mismatches} differ'}; "
          f"undecided: {undecided}; mean score {sum(s for s in single if s is not None) / max(1, args.n - undecided):.3f})")
    if any((r["other_cpu_share"] or 0) > 0.2 for r in rows):
        print("WARNING: other processes used more than 20% of the CPU during a timed run; the ratio is not reliable")
    return {
        "rows": rows, "ratio_pool_over_single": ratio, "score_mismatches": mismatches,
        "undecided": undecided, "composition": composition,
    }


def section_code(args: argparse.Namespace) -> dict:
    """Sandbox overhead per call: a trivial program through the full sandbox vs a bare interpreter
    start, and a 5-test check_code call; medians of --code-calls runs each."""
    import statistics
    import subprocess

    from rewardkit.rewards.rules.code import check_code, run_sandboxed, sandbox_info

    def median_seconds(fn) -> float:
        fn()  # warm-up (the sandbox probes the machine once per process)
        times = []
        for _ in range(args.code_calls):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return statistics.median(times)

    solution = "```python\ndef add(a, b):\n    return a + b\n```"
    tests = [f"assert add({i}, 1) == {i + 1}" for i in range(5)]
    rows = {
        "bare interpreter (python -I -S -c pass)": median_seconds(lambda: subprocess.run([sys.executable, "-I", "-S", "-c", "pass"], check=True)),
        "run_sandboxed('pass')": median_seconds(lambda: run_sandboxed("pass", timeout=5.0)),
        "check_code (5 tests)": median_seconds(lambda: check_code(solution, tests=tests)),
    }
    base = rows["bare interpreter (python -I -S -c pass)"]
    print(f"sandbox tier: {sandbox_info().get('tier')}")
    print(f"{'call':42s} {'median ms':>10s} {'vs bare':>8s}")
    for name, seconds in rows.items():
        print(f"{name:42s} {1000 * seconds:10.1f} {seconds / base:7.1f}x")
    return {"median_seconds": rows, "overhead_seconds": rows["run_sandboxed('pass')"] - base, "tier": sandbox_info().get("tier")}


_IFEVAL_ROWS = [
    ("Write a short poem about the sea. Do not use any commas.", "The sea is wide and blue\nIt sings all night to you\n\nP.S. I love the waves.",
     ["punctuation:no_comma", "detectable_content:postscript"], [{}, {"postscript_marker": "P.S."}]),
    ("Answer in at most 30 words, all lowercase.", "the answer is simple: water boils at one hundred degrees celsius at sea level.",
     ["length_constraints:number_words", "change_case:english_lowercase"], [{"relation": "less than", "num_words": 30}, {}]),
    ("Give three bullet points and a title.", "<<My Title>>\n* first point\n* second point\n* third point",
     ["detectable_format:number_bullet_lists", "detectable_format:title"], [{"num_bullets": 3}, {}]),
    ("Respond in JSON.", '```json\n{"name": "rewardkit", "ok": true}\n```', ["detectable_format:json_format"], [{}]),
    ("Reply in German with two paragraphs.", "Das ist der erste Absatz.\n\n***\n\nDas ist der zweite Absatz mit mehr Worten.",
     ["language:response_language", "length_constraints:number_paragraphs"], [{"language": "de"}, {"num_paragraphs": 2}]),
    ("Mention 'reward' at least twice and end with 'Done.'", "A reward model ranks samples. The reward is a number. Done.",
     ["keywords:frequency", "startend:end_checker"], [{"keyword": "reward", "frequency": 2, "relation": "at least"}, {"end_phrase": "Done."}]),
]


def section_ifeval(args: argparse.Namespace) -> dict:
    """rule:ifeval checks/s in one process, strict and loose, on a cycled set of IFEval-format rows."""
    rows = [_IFEVAL_ROWS[i % len(_IFEVAL_ROWS)] for i in range(args.n)]
    prompts, completions = [r[0] for r in rows], [r[1] for r in rows]
    out = {}
    for mode in ("strict", "loose"):
        reward = load_rule("ifeval", mode=mode)
        reward.score(prompts[:10], completions[:10], instruction_id_list=[r[2] for r in rows[:10]], kwargs=[r[3] for r in rows[:10]])  # warm-up
        best = float("inf")
        for _ in range(args.repeats):
            start = time.perf_counter()
            scored = reward.score(prompts, completions, instruction_id_list=[r[2] for r in rows], kwargs=[r[3] for r in rows])
            best = min(best, time.perf_counter() - start)
        undecided = sum(s is None for s in scored.scores)
        out[mode] = {"seconds": best, "checks_per_s": args.n / best, "undecided": undecided,
                     "mean_score": sum(s for s in scored.scores if s is not None) / max(1, args.n - undecided)}
        print(f"rule:ifeval ({mode}) on {args.n} rows: {args.n / best:,.0f} checks/s (best of {args.repeats}; undecided {undecided}; "
              f"mean score {out[mode]['mean_score']:.3f})")
    return out


SECTIONS = {"code": section_code, "ifeval": section_ifeval, "math": section_math}


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description="Rule-reward throughput (checks/s), single process vs. a process pool, in one run.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    ap.add_argument("--sections", nargs="+", choices=sorted(SECTIONS), default=sorted(SECTIONS), help="sections to run")
    ap.add_argument("--n", type=int, default=10_000, help="completions per timed run (real ones, cycled)")
    ap.add_argument("--repeats", type=int, default=3, help="timed runs per mode; the fastest is reported")
    ap.add_argument("--code-calls", type=int, default=20, help="sandbox calls per measurement (median reported)")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 2, help="process-pool size")
    ap.add_argument("--data", type=Path, default=DATA, help="the shared data folder")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "rules_throughput.json", help="JSON result file")
    return ap.parse_args(argv)


SUBREAPER = False


def main(argv=None) -> int:
    global SUBREAPER
    args = parse_args(argv)
    SUBREAPER = _become_subreaper()
    if not (args.data / "math" / "gsm8k_test.jsonl").is_file():
        print(f"shared data not found at {args.data} (set REWARDKIT_SHARED_DATA or --data)", file=sys.stderr)
        return 2
    result = {
        "machine": platform.machine(), "cpus": os.cpu_count(), "python": platform.python_version(),
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
    }
    failed = False
    for name in args.sections:
        print(f"== {name}")
        result[name] = SECTIONS[name](args)
        failed |= bool(result[name].get("score_mismatches"))
        print()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
