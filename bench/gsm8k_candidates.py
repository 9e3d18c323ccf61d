"""Best-of-N candidate pools from the shared GSM8K model solutions, for `rewardkit overopt --candidates`
(and `rewardkit annotate --candidates`, `rewardkit eval`).

The shared file holds pairs (chosen = a solution with the right final answer, rejected = a wrong one)
over the solutions four OpenAI models wrote for each GSM8K test question. This groups them back by
question: each model's solution once (two models may have written the same text: both are kept, as
two draws), the correct ones first, as a best-of-N row that also carries
the gold ``answer`` (joined from gsm8k_test.jsonl by question id, else by question text) so that
``rule:math`` can be the gold reward:

    {"id": "gsm8k-test-0", "prompt": ..., "answer": "18", "completions": [..], "num_correct": k,
     "generators": [..]}

A model whose solution differs between two pairs of one question, or is chosen in one and rejected in
another, is an error. Run:
    python bench/gsm8k_candidates.py --out runs/gsm8k_test_pools.jsonl
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path

# the shared data beside the checkout (../shared/data), as tests/conftest.py finds it
SHARED = next((Path(p) for p in (os.environ.get("REWARDKIT_SHARED_DATA"), Path(__file__).resolve().parents[2] / "shared" / "data",
                                 "/work/shared/data") if p and Path(p).is_dir()), Path("../shared/data"))


def _rows(path: Path):
    with path.open(encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if line.strip():
                yield n, json.loads(line)


def build(pairs: Path, test: Path) -> list[dict]:
    answers = {}
    for _, row in _rows(test):
        answers[row["id"]] = answers[row["question"]] = str(row["answer"])
    pools: dict[str, dict] = {}
    for n, row in _rows(pairs):
        qid = re.sub(r"-[^-]+-vs-[^-]+$", "", row["id"])  # gsm8k-test-0-175b_verification-vs-6b_finetuning -> gsm8k-test-0
        pool = pools.setdefault(row["prompt"], {"id": qid, "prompt": row["prompt"], "answer": answers.get(qid, answers.get(row["prompt"])),
                                                "solutions": {}})
        for side, correct in (("chosen", True), ("rejected", False)):
            text, who = row[side], row.get(f"{side}_generator")
            before = pool["solutions"].setdefault(who or text, (text, correct))  # one solution per model: two models may write the same text
            if before != (text, correct):
                raise ValueError(f"{pairs}:line {n}: the solution of {who or 'this text'} differs from, or is labelled otherwise than, "
                                 f"in an earlier pair of {qid}")
    out = []
    for pool in pools.values():
        if pool["answer"] is None:
            raise ValueError(f"no gold answer in {test} for {pool['id']}")
        items = sorted(pool["solutions"].items(), key=lambda kv: not kv[1][1])  # correct first, order otherwise kept
        out.append({"id": pool["id"], "prompt": pool["prompt"], "answer": pool["answer"], "completions": [t for _, (t, _) in items],
                    "num_correct": sum(1 for _, (_, ok) in items if ok), "generators": [w for w, _ in items]})
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--pairs", type=Path, default=SHARED / "pairwise" / "gsm8k_model_solution_pairs.jsonl")
    p.add_argument("--test", type=Path, default=SHARED / "math" / "gsm8k_test.jsonl", help="GSM8K test questions with their answers")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args()
    pools = build(args.pairs, args.test)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in pools), encoding="utf-8")
    sizes = sorted({len(r["completions"]) for r in pools})
    print(f"wrote {len(pools)} pools to {args.out} (sizes {sizes}; {sum(r['num_correct'] for r in pools)} correct of "
          f"{sum(len(r['completions']) for r in pools)} solutions)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
