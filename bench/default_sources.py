"""Held-out accuracy of rewards on every real preference source, each split by its own unit.

The packaged ``default`` RM must beat the trivial baselines (``loglik:default``, ``length``) on data it
never saw. This script writes the train/test split of each shared source the way the training mix uses
it, then runs ``rewardkit eval`` on each test split and prints one table (accuracy, 95% bootstrap interval):

- HH-RLHF harmless: split by prompt (``rewardkit split``, seed 0, 20% test);
- GSM8K model-solution pairs: split by question with the hash the packaged v2/v4 adapters were trained
  with (``int(sha256(prompt)[:8], 16) % 5 == 0`` is held out), so no packaged model saw a test question;
- RM-Bench chat and code: split by prompt (each item's 3x3 style pairs share one prompt, so an item is
  never on both sides).

    .venv/bin/python bench/default_sources.py --limit 200 --out runs/sources
    .venv/bin/python bench/default_sources.py --reward classifier:runs/rm-v5/model --reward length --out runs/sources-v5

Writes ``OUT/splits/<source>/{train,test}.jsonl`` (train files for ``rewardkit train --data``), one eval
folder per source and ``OUT/sources.json`` + ``OUT/sources.md``.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
from pathlib import Path

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "pairwise"
SOURCES = ("hh_rlhf_harmless", "gsm8k_model_solution_pairs", "rm_bench_chat", "rm_bench_code")
DEFAULT_REWARDS = ("default", "loglik:default", "length")


def gsm8k_split(source: Path, out: Path) -> None:
    """The packaged adapters' GSM8K split: bucket 0 of sha256(prompt)[:8] mod 5 is held out."""
    out.mkdir(parents=True, exist_ok=True)
    sides: dict[str, list[str]] = {"train": [], "test": []}
    for line in source.open(encoding="utf-8"):
        if line.strip():
            row = json.loads(line)
            held_out = int(hashlib.sha256(row["prompt"].encode()).hexdigest()[:8], 16) % 5 == 0
            sides["test" if held_out else "train"].append(line if line.endswith("\n") else line + "\n")
    for side, lines in sides.items():
        (out / f"{side}.jsonl").write_text("".join(lines), encoding="utf-8")


def write_splits(shared: Path, out: Path) -> dict[str, Path]:
    tests = {}
    for name in SOURCES:
        target = out / "splits" / name
        if not (target / "test.jsonl").exists():
            if name.startswith("gsm8k"):
                gsm8k_split(shared / f"{name}.jsonl", target)
            else:
                subprocess.run([sys.executable, "-m", "rewardkit.cli.main", "split", str(shared / f"{name}.jsonl"),
                                "--out", str(target), "--test-fraction", "0.2", "--seed", "0"], check=True, stdout=subprocess.DEVNULL)
        tests[name] = target / "test.jsonl"
    return tests


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--reward", action="append", help=f"reward specs (default: {', '.join(DEFAULT_REWARDS)})")
    p.add_argument("--shared", default=str(SHARED), help="folder of the shared pairwise files")
    p.add_argument("--limit", type=int, default=200, help="first N test pairs of each source (default 200)")
    p.add_argument("--max-length", type=int, default=512)
    p.add_argument("--sources", default=",".join(SOURCES), help="comma-separated subset of the sources")
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    out = Path(args.out)
    rewards = args.reward or list(DEFAULT_REWARDS)
    tests = write_splits(Path(args.shared), out)
    table: dict[str, dict[str, dict]] = {}
    for name in args.sources.split(","):
        folder = out / name
        cmd = [sys.executable, "-m", "rewardkit.cli.main", "eval", "--data", str(tests[name]), "--limit", str(args.limit),
               "--max-length", str(args.max_length), "--out", str(folder)]
        for spec in rewards:
            cmd += ["--reward", spec]
        subprocess.run(cmd, check=True)
        for spec in rewards:
            sub = folder if len(rewards) == 1 else next(d for d in folder.iterdir() if (d / "results.json").exists()
                                                        and json.loads((d / "results.json").read_text())["spec"] == spec)
            result = json.loads((sub / "results.json").read_text())
            table.setdefault(name, {})[spec] = {"accuracy": result["overall"], "ci": result.get("overall_ci95"), "n": result.get("n")}
    (out / "sources.json").write_text(json.dumps({"limit": args.limit, "max_length": args.max_length, "results": table}, indent=2))
    lines = ["| source | " + " | ".join(f"`{s}`" for s in rewards) + " |", "|---|" + "---|" * len(rewards)]
    for name, per in table.items():
        cells = []
        for spec in rewards:
            r = per[spec]
            ci = r["ci"]
            cells.append(f"{100 * r['accuracy']:.1f}" + (f" [{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]" if ci else ""))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    text = "\n".join(lines) + "\n"
    (out / "sources.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
