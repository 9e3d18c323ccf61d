"""Build the training mix of the packaged ``default`` RM (v5) from the held-out-safe train splits.

Takes the train side of every real source (as written by ``bench/default_sources.py`` into
``SPLITS/<source>/train.jsonl``) and the built-in suite's train split, draws a fixed number of pairs from
each with ``random.Random(seed)``, and writes one shuffled JSONL that ``rewardkit train --data`` reads.
Nothing from a test split enters the mix, so ``bench/default_sources.py`` measures held-out accuracy.

    .venv/bin/python bench/default_sources.py --out runs/sources          # writes runs/sources/splits
    .venv/bin/rewardkit suite --out runs/suite                             # the suite's train/test files
    .venv/bin/python bench/default_mix.py --splits runs/sources/splits --suite runs/suite/train.jsonl --out runs/mix_v5.jsonl
"""
from __future__ import annotations

import argparse
import json
import random
from collections import Counter
from pathlib import Path

PER_SOURCE = {"hh_rlhf_harmless": 450, "gsm8k_model_solution_pairs": 300, "rm_bench_chat": 300, "rm_bench_code": 300, "suite": 400}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--splits", required=True, help="folder with <source>/train.jsonl per source")
    p.add_argument("--suite", required=True, help="the suite's train.jsonl (rewardkit suite --out DIR)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    rng = random.Random(args.seed)
    mix: list[dict] = []
    for name, count in PER_SOURCE.items():
        path = Path(args.suite) if name == "suite" else Path(args.splits) / name / "train.jsonl"
        rows = [json.loads(line) for line in path.open(encoding="utf-8") if line.strip()]
        if name == "suite":  # the same number of pairs from each suite subset
            by_subset: dict[str, list[dict]] = {}
            for row in rows:
                by_subset.setdefault(row["subset"], []).append(row)
            per = count // len(by_subset)
            picked = [r for key in sorted(by_subset) for r in rng.sample(by_subset[key], min(per, len(by_subset[key])))]
        else:
            picked = rng.sample(rows, min(count, len(rows)))
        for row in picked:
            keep = {k: row[k] for k in ("id", "prompt", "chosen", "rejected") if k in row}
            keep["subset"] = f"{name}/{row.get('subset', '')}".rstrip("/")
            for k in ("answer", "constraint"):
                if k in row:
                    keep[k] = row[k]
            mix.append(keep)
    rng.shuffle(mix)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in mix), encoding="utf-8")
    print(f"wrote {len(mix)} pairs to {out}: {dict(Counter(r['subset'].split('/')[0] for r in mix))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
