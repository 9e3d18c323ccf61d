"""Judge throughput with k=4 votes: one prefill shared by the k sampled continuations vs. k independent
generations, same model, same judge prompts, same run.

  shared       PairwiseJudge(samples=4): each judge prompt is encoded once; its KV cache is copied to
               the 4 sampled continuations, which decode as one batch (LocalClient n=4).
  independent  the usual way to get k votes: 4 separate judge calls (samples=1, seeds 0..3), each
               encoding the prompt again.

Both arms judge the same GSM8K pairs in both orders, at temperature 0.7, and alternate (shared,
independent, shared, ...) so load from other processes hits both alike. Two judge styles: "direct" (the
verdict only, a few tokens: prefill dominates) and "critique" (a short written comparison first,
--critique-tokens tokens: decoding matters more). Reported: judgments/s per arm and their ratio, plus
generated tokens (the arms must generate comparable amounts for the ratio to be fair).

Run: .venv/bin/python bench/judge_throughput.py   (about 5 minutes on a 2-core CPU)
"""
from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pairs", type=int, default=6, help="GSM8K pairs (each judged in both orders)")
    ap.add_argument("--k", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--critique-tokens", type=int, default=48)
    ap.add_argument("--out", default="bench/results/judge_throughput.json")
    args = ap.parse_args()

    import torch

    from rewardkit.clients import LocalClient
    from rewardkit.rewards.judge import PairwiseJudge

    rows = [json.loads(line) for line in open(SHARED / "pairwise" / "gsm8k_model_solution_pairs.jsonl")][: args.pairs]
    prompts = [r["prompt"] for r in rows for _ in (0, 1)]
    comps = [c for r in rows for c in (r["chosen"], r["rejected"])]
    gid = [r["id"] for r in rows for _ in (0, 1)]
    client = LocalClient("default")
    client.generate(["warm up"], max_new_tokens=2)
    results: dict = {"pairs": args.pairs, "judgments": args.pairs, "k": args.k, "torch_threads": torch.get_num_threads(),
                     "machine": platform.processor() or platform.machine(), "styles": {}}
    for style, template, tokens in (("direct", None, 8), ("critique", "pairwise", args.critique_tokens)):
        common = dict(client=client, template=template, max_new_tokens=tokens, temperature=0.7, use_logprobs=False)
        shared = PairwiseJudge(samples=args.k, seed=0, **common)
        singles = [PairwiseJudge(samples=1, seed=s, **common) for s in range(args.k)]
        times = {"shared": [], "independent": []}
        toks = {"shared": 0.0, "independent": 0.0}
        for _ in range(args.repeats):
            t = time.perf_counter()
            out = shared.score(prompts, comps, group_id=gid)
            times["shared"].append(time.perf_counter() - t)
            toks["shared"] = sum(out.extras["generated_tokens"])
            t = time.perf_counter()
            total = 0.0
            for judge in singles:
                total += sum(judge.score(prompts, comps, group_id=gid).extras["generated_tokens"])
            times["independent"].append(time.perf_counter() - t)
            toks["independent"] = total
        best = {arm: min(v) for arm, v in times.items()}
        entry = {
            "max_new_tokens": tokens,
            "seconds": {arm: [round(x, 2) for x in v] for arm, v in times.items()},
            "judgments_per_second": {arm: round(args.pairs / best[arm], 4) for arm in best},
            "generated_tokens": {arm: int(v) for arm, v in toks.items()},
            "speedup": round(best["independent"] / best["shared"], 2),
        }
        results["styles"][style] = entry
        print(f"{style:9s} k={args.k}: shared {entry['judgments_per_second']['shared']:.3f} judgments/s, "
              f"independent {entry['judgments_per_second']['independent']:.3f} judgments/s -> ratio {entry['speedup']:.2f}x "
              f"(generated tokens {entry['generated_tokens']['shared']} vs {entry['generated_tokens']['independent']})", flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
