"""Write the PRMBench slice the README's process-reward figures are measured on.

Full PRMBench (3,205 solutions, up to ~1,000 tokens each) takes hours per reward on a 2-core CPU, and an
outcome RM scored on every step prefix costs ~9x the tokens of a one-pass PRM. The slice keeps every
variant (the original solution and its injected-error copies) of N problems, drawn with
``random.Random(seed).shuffle`` over the sorted question texts, so it is the same on any machine.

    .venv/bin/python bench/prmbench_slice.py --problems 40 --out runs/prmbench_slice40.jsonl
    rewardkit eval --reward prm:default --data runs/prmbench_slice40.jsonl --skip-invalid --max-length 1024 --out runs/pb40-prm
"""
from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

PRMBENCH = Path(__file__).resolve().parents[2] / "shared" / "data" / "process" / "prmbench_prm800k_test_classified.jsonl"


def write_slice(source: Path, out: Path, problems: int, seed: int) -> tuple[int, int]:
    rows = [json.loads(line) for line in source.open(encoding="utf-8") if line.strip()]
    questions = sorted({r["question"] for r in rows})
    random.Random(seed).shuffle(questions)
    chosen = set(questions[:problems])
    kept = [r for r in rows if r["question"] in chosen]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in kept), encoding="utf-8")
    return len(chosen), len(kept)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default=str(PRMBENCH), help="PRMBench jsonl (default: the shared data copy)")
    p.add_argument("--problems", type=int, default=40, help="problems to keep (all their variants)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    n_problems, n_rows = write_slice(Path(args.data), Path(args.out), args.problems, args.seed)
    print(f"wrote {n_rows} solutions of {n_problems} problems to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
