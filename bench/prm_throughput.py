"""PRM throughput: one-pass step scoring vs per-prefix scoring, same model and data, one run.

One pass reads every step's score from a single forward over prompt + all steps; the per-prefix
baseline runs one forward per step prefix (what a PRM costs when each partial solution is scored as
its own sequence). The scores must agree (causal attention: the hidden state at a step's end does not
see later tokens); the speed ratio should grow with the number of steps per solution.

    .venv/bin/python bench/prm_throughput.py                       # prmbench slice (or arith steps)
    .venv/bin/python bench/prm_throughput.py --data arith-steps --n 60

Writes bench/results/prm_throughput.json.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PRMBENCH = ROOT.parent / "shared" / "data" / "process" / "prmbench_prm800k_test_classified.jsonl"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default=str(PRMBENCH) if PRMBENCH.is_file() else "arith-steps", help="step data file or arith-steps[:split]")
    p.add_argument("--n", type=int, default=16, help="solutions to score")
    p.add_argument("--model", default=None, help="PRM model (default: prm:default if packaged, else the embedded model with an untrained head)")
    p.add_argument("--max-length", type=int, default=1024)
    p.add_argument("--max-tokens-per-batch", type=int, default=8192)
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "prm_throughput.json"))
    args = p.parse_args(argv)

    import torch

    from rewardkit.data.benchmarks import resolve_step_data
    from rewardkit.models.loading import embedded_default_path
    from rewardkit.assets import packaged
    from rewardkit.rewards.process import ProcessReward

    data = resolve_step_data(args.data, limit=args.n, skip_invalid=True)
    records = data.records[: args.n]
    model = args.model or (str(packaged("default_prm")) if packaged("default_prm") else str(embedded_default_path()))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prm = ProcessReward(model, max_length=args.max_length, max_tokens_per_batch=args.max_tokens_per_batch)
    prompts = [r.prompt for r in records]
    steps = [list(r.steps) for r in records]
    prm.score(prompts[:2], steps[:2])  # warm-up (allocations, thread pools)

    one_t, per_t = [], []
    for _ in range(args.repeats):
        t = time.perf_counter()
        one = prm.score(prompts, steps)
        one_t.append(time.perf_counter() - t)
        t = time.perf_counter()
        per = prm.score_prefixes(prompts, steps)
        per_t.append(time.perf_counter() - t)
    diffs = [abs(a - b) for x, y in zip(one.steps, per) for a, b in zip(x, y) if b is not None]
    _, encoded = prm.encode_steps(prompts, steps)
    one_tokens = sum(len(e.input_ids) for e in encoded)
    prefix_tokens = sum(end + 1 for e in encoded for end in e.ends)
    n_steps = [len(s) for s in steps]
    result = {
        "data": data.source, "n": len(records), "model": prm.model_label,
        "mean_steps": sum(n_steps) / len(n_steps), "max_steps": max(n_steps),
        "one_pass_seconds": min(one_t), "per_prefix_seconds": min(per_t),
        "speed_ratio": min(per_t) / min(one_t),
        "token_ratio": prefix_tokens / one_tokens, "one_pass_tokens": one_tokens, "per_prefix_tokens": prefix_tokens,
        "max_abs_diff": max(diffs), "agree_1e-4": max(diffs) < 1e-4,
        "torch_threads": torch.get_num_threads(), "machine": platform.machine(), "python": platform.python_version(),
        "command": " ".join([Path(sys.argv[0]).name] + (argv if argv is not None else sys.argv[1:])),
    }
    print(json.dumps(result, indent=2))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    if not result["agree_1e-4"]:
        print("FAIL: one-pass and per-prefix step scores disagree", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
