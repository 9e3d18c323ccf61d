"""rewardkit search: PRM-guided step-level beam search vs best-of-N at the same generator token
budget, on math questions checked by a verifier (accuracy of both in one run)."""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from .common import quiet_libraries

HELP = "PRM-guided step-level beam search, compared with best-of-N at equal generator tokens"
EPILOG = """examples:
  rewardkit search --data gsm8k_test.jsonl --limit 20 --prm prm:default --out runs/search
  rewardkit search --data gsm8k_test.jsonl --beam-width 4 --expansions 4 --max-steps 10 --out runs/search4

--data: math rows {"question","answer"}. For each question the search runs first; best-of-N then
samples whole solutions until it has spent the same number of generated tokens and keeps the one
the PRM prefers. Both answers are checked by --verifier (rule:math), and so is every best-of-N
sample: results.json puts the PRM's pick next to pass@N (any sample right), the first sample alone
and a random pick from the same pool, so the PRM's reranking gain is visible. Writes OUT/search.jsonl (one
row per question, appended as it goes; a rerun resumes) and OUT/results.json."""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("search", help=HELP, description=HELP, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True)
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument("--prm", default="prm:default", help="process reward spec that ranks the beams")
    p.add_argument("--generator", default="default")
    p.add_argument("--verifier", default="rule:math")
    p.add_argument("--beam-width", type=int, default=2)
    p.add_argument("--expansions", type=int, default=2)
    p.add_argument("--max-steps", type=int, default=8)
    p.add_argument("--max-step-tokens", type=int, default=64)
    p.add_argument("--temperature", type=float, default=0.7)
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..clients.local import LocalClient
    from ..data.formats import DataFormatError, iter_rows
    from ..evals.report import write_json
    from ..specs import load_reward
    from ..use.label_steps import done_ids
    from ..use.search import SearchConfig, beam_search, best_of_n

    quiet_libraries()
    cfg = SearchConfig(beam_width=args.beam_width, expansions=args.expansions, max_steps=args.max_steps,
                       max_step_tokens=args.max_step_tokens, temperature=args.temperature, seed=args.seed)
    rows = []
    for k, (where, row) in enumerate(iter_rows(args.data)):
        if args.limit is not None and k >= args.limit:
            break
        for key in ("question", "answer"):
            if row.get(key) is None:
                raise DataFormatError(args.data, where, key, "missing (search needs a question and a gold answer)")
        rows.append((str(row.get("id", where.replace(" ", "-"))), row["question"], str(row["answer"])))
    client = LocalClient(args.generator)
    prm = load_reward(args.prm)
    if getattr(prm, "score", None) is None:
        print(f"error: {args.prm} is not a reward", file=sys.stderr)
        return 2
    verifier = load_reward(args.verifier)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    log = out / "search.jsonl"
    done = done_ids(log)
    start = time.perf_counter()
    with log.open("a", encoding="utf-8") as fh:
        for i, (rid, question, answer) in enumerate(rows):
            if rid in done:
                continue
            s = beam_search(question, client, prm, cfg)
            b = best_of_n(question, client, prm, cfg, s.generated_tokens, cfg.max_step_tokens * cfg.max_steps)
            pool = b.extras.get("samples") or []
            texts = [s.text, b.text, *pool]
            verdicts = [bool(v and v > 0.5) for v in verifier.score([question] * len(texts), texts, answer=[answer] * len(texts)).scores]
            rec = {"id": rid, "answer": answer, "search": s.text, "search_correct": verdicts[0], "search_tokens": s.generated_tokens,
                   "search_prm": s.score, "bon": b.text, "bon_correct": verdicts[1], "bon_tokens": b.generated_tokens,
                   "bon_n": b.extras.get("n"), "bon_prm": b.score,
                   # the best-of-N pool itself: how often any / the first / a random sample is right
                   "bon_any_correct": any(verdicts[2:]), "bon_first_correct": bool(pool) and verdicts[2],
                   "bon_mean_correct": sum(verdicts[2:]) / len(pool) if pool else 0.0,
                   "bon_samples": pool, "bon_sample_scores": b.extras.get("sample_scores"), "bon_sample_correct": verdicts[2:]}
            fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
            fh.flush()
            print(f"[{i + 1}/{len(rows)}] search {'ok' if verdicts[0] else 'x'} ({s.generated_tokens} tok)  "
                  f"best-of-{b.extras.get('n')} {'ok' if verdicts[1] else 'x'} ({b.generated_tokens} tok)", file=sys.stderr)
    done_rows = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    n = len(done_rows)
    acc = lambda key: sum(1 for r in done_rows if r.get(key)) / n if n else None  # noqa: E731
    result = {
        "data": args.data, "n": n, "prm": args.prm, "generator": args.generator, "config": vars(cfg),
        "search_accuracy": acc("search_correct"), "best_of_n_accuracy": acc("bon_correct"),
        # references for the best-of-N pick from the same pool: pass@N (oracle), the first sample
        # alone (no reranking), and the expected accuracy of a random pick
        "best_of_n_oracle": acc("bon_any_correct"), "first_sample_accuracy": acc("bon_first_correct"),
        "random_pick_accuracy": sum(r.get("bon_mean_correct", 0.0) for r in done_rows) / n if n else None,
        "search_tokens": sum(r["search_tokens"] for r in done_rows), "best_of_n_tokens": sum(r["bon_tokens"] for r in done_rows),
        "seconds_this_run": round(time.perf_counter() - start, 1),
    }
    write_json(out / "results.json", result)
    print(json.dumps(result, indent=2))
    return 0
