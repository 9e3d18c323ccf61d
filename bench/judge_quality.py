"""Quality of the embedded model (SmolLM2-135M-Instruct) as a judge, measured on real and built-in data.

Sections (each writes its numbers as soon as it finishes, so a partial run keeps what it measured):
  pairwise   PairwiseJudge, both orders, on a GSM8K pairs slice (one pair per question, first --n
             questions; chosen = correct final answer) and on the built-in suite (--suite-limit per subset):
             soft accuracy (win probability from verdict log-probabilities, the score `rewardkit eval`
             reports), hard accuracy (both orders agree and pick the chosen answer), position consistency,
             first-position rate.
  verify     VerifierJudge against the gold answer (GSM8K test set joined by question; the suite's arith
             `answer`): per-answer accuracy, true-positive and true-negative rates.
  probes     "One Token to Fool LLM-as-a-Judge" attack answers (":", "Thought process:", ...) against
             --probe-items questions: false-positive rate of the verifier unhardened vs hardened.
  votes      accuracy vs k on --k-n GSM8K pairs: k hard verdicts per order sampled at T=0.7 (k=1 greedy),
             averaged (both orders).
  ksweep     inference-time scaling on --k-n GSM8K pairs with a critique template (--ksweep-template):
             k_max = max(--ks) critiques per judge prompt are sampled once (T=0.7, seeded) through a
             PrefixCache, and every k is scored from the first k of the same samples, with and without
             the meta-filters (--ksweep-filters: none, rules = discard critiques failing CritiqueRules,
             judge = the same model rates each critique and the best half is kept), voting and averaging.
             Prints a table; greedy k=1 is the reference row.

Run: .venv/bin/python bench/judge_quality.py --out bench/results/judge_quality.json   (~30-40 min on 2 busy cores)
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def gsm8k_slice(n: int) -> list[dict]:
    gold = {r["id"]: r["answer"] for r in map(json.loads, open(SHARED / "math" / "gsm8k_test.jsonl"))}
    seen, out = set(), []
    for row in map(json.loads, open(SHARED / "pairwise" / "gsm8k_model_solution_pairs.jsonl")):
        q = "-".join(row["id"].split("-")[:3])
        if q in seen:
            continue
        seen.add(q)
        out.append({**row, "answer": gold[q]})
        if len(out) == n:
            break
    return out


def write_gsm8k_best_of_n(path: str) -> int:
    """Best-of-N rows (RewardBench 2 layout) from the GSM8K pairs: per question the first correct solution
    and up to 3 distinct wrong ones, with the gold answer; for `rewardkit eval` of judges on best-of-N data."""
    gold = {r["id"]: r["answer"] for r in map(json.loads, open(SHARED / "math" / "gsm8k_test.jsonl"))}
    by: dict[str, dict] = {}
    for row in map(json.loads, open(SHARED / "pairwise" / "gsm8k_model_solution_pairs.jsonl")):
        q = "-".join(row["id"].split("-")[:3])
        item = by.setdefault(q, {"id": q, "prompt": row["prompt"], "chosen": [], "rejected": [], "answer": gold[q], "subset": "gsm8k-bon"})
        for key in ("chosen", "rejected"):
            if row[key] not in item[key]:
                item[key].append(row[key])
    rows = [{**r, "chosen": r["chosen"][:1], "rejected": r["rejected"][:3]} for r in by.values() if r["chosen"] and r["rejected"]]
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text("".join(json.dumps(r) + "\n" for r in rows))
    return len(rows)


def suite_rows(limit: int, subsets=None) -> list[dict]:
    from rewardkit.data.benchmarks import resolve_data

    data = resolve_data("suite", limit=limit)
    return [{"id": r.id, "prompt": r.prompt, "chosen": r.chosen, "rejected": r.rejected, "subset": r.subset, **r.columns}
            for r in data.records if subsets is None or r.subset in subsets]


def pairwise_stats(judge, rows) -> dict:
    prompts, comps, gid = [], [], []
    for r in rows:
        prompts += [r["prompt"]] * 2
        comps += [r["chosen"], r["rejected"]]
        gid += [r["id"]] * 2
    t = time.perf_counter()
    out = judge.score(prompts, comps, group_id=gid)
    secs = time.perf_counter() - t
    soft = hard = consistent = first = calls = 0
    for k in range(len(rows)):
        c, w = out.scores[2 * k], out.scores[2 * k + 1]
        soft += c is not None and w is not None and c > w
        raws = out.extras["judge_raw"][2 * k]  # order (chosen first), then (rejected first)
        v = [_label(x) for x in raws]
        consistent += v[0] is not None and v[1] is not None and v[0] != v[1]
        hard += v[0] == "A" and v[1] == "B"
        first += sum(x == "A" for x in v)
        calls += sum(x is not None for x in v)
    n = len(rows)
    return {"n_pairs": n, "soft_accuracy": soft / n, "hard_accuracy": hard / n, "position_consistency": consistent / n,
            "first_position_rate": first / calls if calls else None,
            "parse_failures": sum(out.extras["parse_failures"]) // 2, "seconds": round(secs, 1)}


def _label(text: str):
    from rewardkit.rewards.judge.text import parse_choice

    found = parse_choice(text, ("A", "B"))
    return found[0] if found else None


def verify_stats(judge, rows) -> dict:
    prompts, comps, answers = [], [], []
    for r in rows:
        prompts += [r["prompt"]] * 2
        comps += [r["chosen"], r["rejected"]]
        answers += [str(r["answer"])] * 2
    t = time.perf_counter()
    s = judge.score(prompts, comps, answer=answers).scores
    tp = sum(s[2 * k] == 1.0 for k in range(len(rows)))
    tn = sum(s[2 * k + 1] == 0.0 for k in range(len(rows)))
    n = len(rows)
    return {"n_pairs": n, "answers": 2 * n, "accuracy": (tp + tn) / (2 * n), "true_positive_rate": tp / n,
            "true_negative_rate": tn / n, "pair_accuracy": sum(s[2 * k] == 1.0 and s[2 * k + 1] == 0.0 for k in range(n)) / n,
            "unparsed": sum(x is None for x in s), "seconds": round(time.perf_counter() - t, 1)}


def probe_stats(client, rows) -> dict:
    from rewardkit.rewards.judge.text import ATTACK_PROBES
    from rewardkit.rewards.judge import VerifierJudge

    prompts = [r["prompt"] for r in rows for _ in ATTACK_PROBES]
    comps = [p for _ in rows for p in ATTACK_PROBES]
    answers = [str(r["answer"]) for r in rows for _ in ATTACK_PROBES]
    out = {"items": len(rows), "probes": list(ATTACK_PROBES)}
    for harden in (False, True):
        s = VerifierJudge(client=client, harden=harden).score(prompts, comps, answer=answers).scores
        per = {p: sum(s[k] == 1.0 for k in range(len(s)) if comps[k] == p) / len(rows) for p in ATTACK_PROBES}
        out["hardened" if harden else "unhardened"] = {"false_positive_rate": sum(x == 1.0 for x in s) / len(s), "per_probe": per}
    return out


def vote_stats(client, rows, ks) -> dict:
    from rewardkit.rewards.judge import PairwiseJudge

    out = {}
    for k in ks:
        judge = PairwiseJudge(client=client, samples=k, use_logprobs=False, temperature=0.0 if k == 1 else 0.7, seed=0)
        prompts, comps, gid = [], [], []
        for r in rows:
            prompts += [r["prompt"]] * 2
            comps += [r["chosen"], r["rejected"]]
            gid += [r["id"]] * 2
        t = time.perf_counter()
        s = judge.score(prompts, comps, group_id=gid).scores
        out[str(k)] = {"accuracy": sum(s[2 * i] is not None and s[2 * i] > s[2 * i + 1] for i in range(len(rows))) / len(rows),
                       "ties": sum(s[2 * i] == s[2 * i + 1] for i in range(len(rows))), "seconds": round(time.perf_counter() - t, 1)}
    return out


def ksweep_stats(client, rows, ks, *, template="pairwise", max_new_tokens=96, temperature=0.7,
                 filters=("none", "rules"), save=None, key="ksweep_gsm8k") -> dict:
    """Accuracy vs k from prefixes of one k_max run (see the module docstring). A ``pointwise*`` template
    rates each answer on its own (JudgeReward, 1-5); the pair is right when the chosen answer rates higher."""
    from rewardkit.clients import PrefixCache
    from rewardkit.rewards.judge import JudgeReward, PairwiseJudge

    Judge = JudgeReward if template.startswith("pointwise") else PairwiseJudge
    pairwise = Judge is PairwiseJudge

    cache = PrefixCache(client)
    prompts, comps, gid = [], [], []
    for r in rows:
        prompts += [r["prompt"]] * 2
        comps += [r["chosen"], r["rejected"]]
        gid += [r["id"]] * 2
    base = dict(template=template, max_new_tokens=max_new_tokens, seed=0)
    meta = {"none": {}, "rules": dict(meta_filter="critique-rules", meta_keep=1.0, meta_min=1.0),
            "judge": dict(meta_filter="critique-judge", meta_keep=0.5)}

    def measure(judge) -> dict:
        t = time.perf_counter()
        out = judge.score(prompts, comps, group_id=gid)
        sc, ex, n = out.scores, out.extras, len(rows)
        # a pairwise call is reported on both of its samples: count it once (on the chosen one)
        per_pair = (lambda key: sum(ex[key][2 * i] for i in range(n))) if pairwise else (lambda key: sum(ex[key]))
        calls = per_pair("judge_calls")
        row = {"accuracy": sum(sc[2 * i] is not None and sc[2 * i + 1] is not None and sc[2 * i] > sc[2 * i + 1] for i in range(n)) / n,
               "ties": sum(sc[2 * i] is not None and sc[2 * i] == sc[2 * i + 1] for i in range(n)),
               "unscored": sum(sc[2 * i] is None or sc[2 * i + 1] is None for i in range(n)),
               "parse_failure_rate": round(per_pair("parse_failures") / calls, 4),
               "generated_tokens": int(sum(ex["generated_tokens"])), "seconds": round(time.perf_counter() - t, 1)}
        if pairwise:
            checked = per_pair("order_checked")  # pairs where both orders gave a verdict
            row["position_consistency"] = (1 - per_pair("order_inconsistent") / checked) if checked else None
        if "meta_discarded" in ex:
            row["meta_discard_rate"] = round(per_pair("meta_discarded") / calls, 4)
        return row

    out = {"n_pairs": len(rows), "template": template, "max_new_tokens": max_new_tokens, "temperature": temperature,
           "k_max": max(ks), "ks": list(ks), "rows": []}
    out["greedy_k1"] = measure(Judge(client=client, **base))
    t = time.perf_counter()
    Judge(client=cache, samples=max(ks), temperature=temperature, **base).score(prompts, comps, group_id=gid)
    out["k_max_generation_seconds"] = round(time.perf_counter() - t, 1)
    for name in filters:
        for aggregate in ("vote", "mean"):
            for k in ks:
                row = measure(Judge(client=cache, samples=k, temperature=temperature, aggregate=aggregate, **base, **meta[name]))
                out["rows"].append({"filter": name, "aggregate": aggregate, "k": k, **row})
        if save:
            save(key, out)
    out["cache"] = {"hits": cache.hits, "misses": cache.misses}
    return out


def print_ksweep(res: dict) -> None:
    g = res["greedy_k1"]
    print(f"\naccuracy vs k: {res['n_pairs']} GSM8K pairs, template {res['template']}, T={res['temperature']}, "
          f"k from prefixes of one k={res['k_max']} run (greedy k=1: {g['accuracy']:.1%}, position consistency {g.get('position_consistency')})")
    print(f"{'filter':<7}{'aggregate':<10}" + "".join(f"{'k=' + str(k):>9}" for k in res["ks"]) + "   (ties at k_max, discarded at k_max)")
    for name in dict.fromkeys(r["filter"] for r in res["rows"]):
        for aggregate in ("vote", "mean"):
            rows = [r for r in res["rows"] if r["filter"] == name and r["aggregate"] == aggregate]
            last = rows[-1]
            print(f"{name:<7}{aggregate:<10}" + "".join(f"{r['accuracy']:>9.1%}" for r in rows)
                  + f"   ({last['ties']} ties, {last.get('meta_discard_rate', 0):.0%} discarded)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=60)
    ap.add_argument("--suite-limit", type=int, default=5)
    ap.add_argument("--probe-items", type=int, default=5)
    ap.add_argument("--k-n", type=int, default=15)
    ap.add_argument("--ks", default="1,4")
    ap.add_argument("--sections", default="pairwise,probes,verify,votes")
    ap.add_argument("--write-bon", metavar="PATH", help="only write the GSM8K best-of-N file (see write_gsm8k_best_of_n) and exit")
    ap.add_argument("--ksweep-template", default="pairwise")
    ap.add_argument("--ksweep-filters", default="none,rules")
    ap.add_argument("--ksweep-max-new-tokens", type=int, default=96)
    ap.add_argument("--out", default="bench/results/judge_quality.json")
    args = ap.parse_args()
    if args.write_bon:
        print(f"wrote {write_gsm8k_best_of_n(args.write_bon)} best-of-N rows to {args.write_bon}")
        return

    from rewardkit.clients import LocalClient
    from rewardkit.rewards.judge import PairwiseJudge, VerifierJudge

    client = LocalClient("default")
    out_path = Path(args.out)
    results = json.loads(out_path.read_text()) if out_path.is_file() else {}
    results["config"] = vars(args) | {"model": client.name}

    def save(key, value):
        results[key] = value
        out_path.parent.mkdir(parents=True, exist_ok=True)
        out_path.write_text(json.dumps(results, indent=2))
        print(key, json.dumps(value, indent=1), flush=True)

    gsm = gsm8k_slice(args.n)
    sections = args.sections.split(",")
    if "pairwise" in sections:
        judge = PairwiseJudge(client=client)
        save("pairwise_gsm8k", pairwise_stats(judge, gsm))
        save("pairwise_suite", {s: pairwise_stats(judge, suite_rows(args.suite_limit, {s}))
                                for s in ("arith", "constraints", "length-trap", "refusal")})
    if "probes" in sections:
        save("attack_probes", probe_stats(client, gsm[: args.probe_items]))
    if "verify" in sections:
        judge = VerifierJudge(client=client)
        save("verify_gsm8k", verify_stats(judge, gsm))
        save("verify_suite_arith", verify_stats(judge, suite_rows(args.suite_limit, {"arith"})))
    if "votes" in sections:
        save("votes_gsm8k", vote_stats(client, gsm[: args.k_n], [int(k) for k in args.ks.split(",")]))
    if "ksweep" in sections:
        key = "ksweep_gsm8k" if args.ksweep_template == "pairwise" else f"ksweep_gsm8k_{args.ksweep_template}"
        res = ksweep_stats(client, gsm[: args.k_n], [int(k) for k in args.ks.split(",")], template=args.ksweep_template,
                           max_new_tokens=args.ksweep_max_new_tokens, filters=args.ksweep_filters.split(","), save=save, key=key)
        save(key, res)
        print_ksweep(res)


if __name__ == "__main__":
    main()
