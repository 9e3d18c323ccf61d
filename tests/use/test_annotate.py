"""rewardkit annotate: pair strategies and consistency filters against hand-computed cases, candidate
pools, resume after SIGKILL of a real process (tiny model), a real local OpenAI-compatible server as the
generator, and pairs.jsonl read by `rewardkit train` and by TRL's RewardTrainer."""
from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rewardkit.cli.main import main
from rewardkit.data.formats import load_dataset
from rewardkit.data.pools import load_candidates
from rewardkit.use.pairs import PairConfig, agreement, best_sample, select_pairs

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "clients"))


def pool(**scores):
    """Samples whose scores per reward are given as lists: pool(a=[1, 2], b=[0, None])."""
    n = len(next(iter(scores.values())))
    return [{"completion": f"s{i}", "scores": {k: v[i] for k, v in scores.items()}} for i in range(n)]


def picked(samples, names, **cfg):
    pairs, reason = select_pairs(samples, names, PairConfig(**cfg))
    return [(p["chosen"], p["rejected"], p["margin"]) for p in pairs], reason


# ---------------------------------------------------------------- strategies, by hand

def test_best_worst_takes_the_earliest_of_tied_extremes_and_skips_unscored():
    assert picked(pool(a=[3, 1, 5, 1, None]), ["a"]) == ([(2, 1, 4.0)], None)
    assert picked(pool(a=[5, 1, 5, None, 1]), ["a"]) == ([(0, 1, 4.0)], None)


def test_topk_pairs_the_ith_best_with_the_ith_worst_and_never_a_tie():
    # best first: 2 (5), 5 (4), 0 (3), 3 (2), 1 (1); 4 is unscored; k = min(2, 5 // 2)
    assert picked(pool(a=[3, 1, 5, 2, None, 4]), ["a"], pairs="topk", k=2) == ([(2, 1, 4.0), (5, 3, 2.0)], None)
    assert picked(pool(a=[3, 1, 5, 2, None, 4]), ["a"], pairs="topk", k=9) == ([(2, 1, 4.0), (5, 3, 2.0)], None)
    # best 0, 1, 2 (all 1), worst 3 (0) then 0: the second pairing (1 vs 0) is a tie and is not a pair
    assert picked(pool(a=[1, 1, 1, 0]), ["a"], pairs="topk", k=2) == ([(0, 3, 1.0)], None)


def test_margin_strategy_takes_every_pair_at_least_the_margin_apart():
    assert picked(pool(a=[3, 1, 5, None]), ["a"], pairs="margin", min_margin=2) == ([(2, 1, 4.0), (0, 1, 2.0), (2, 0, 2.0)], None)
    assert picked(pool(a=[3, 1, 5, None]), ["a"], pairs="margin", min_margin=2.5) == ([(2, 1, 4.0)], None)
    assert picked(pool(a=[3, 3, 2]), ["a"], pairs="margin") == ([(0, 2, 1.0), (1, 2, 1.0)], None)


def test_gate_pairs_the_models_favourite_correct_and_incorrect_answers():
    samples = pool(**{"rule:math": [1, 0, 1, 0, None], "m": [2, 5, 3, 1, 9]})
    names = ["m", "rule:math"]
    pairs, reason = select_pairs(samples, names, PairConfig(pairs="gate"))
    assert reason is None and len(pairs) == 1
    p = pairs[0]
    # correct: 0 (m=2), 2 (m=3) -> 2; incorrect: 1 (m=5), 3 (m=1) -> 1, the wrong answer the model likes most
    assert (p["chosen"], p["rejected"], p["margin"], p["decided_by"]) == (2, 1, 1.0, "rule:math")
    assert p["votes"] == {"m": -1, "rule:math": 1} and p["agreement"] == 0.5
    assert select_pairs(samples, names, PairConfig(pairs="gate", consistency="all-agree")) == ([], "filtered by consistency")
    weighted, _ = select_pairs(samples, names, PairConfig(pairs="gate", consistency="weight"))
    assert weighted[0]["pair_weight"] == 0.5
    # every verified sample correct: the model reward decides, best against worst
    fallback, _ = select_pairs(pool(**{"rule:math": [1, 1, None], "m": [2, 5, 9]}), names, PairConfig(pairs="gate"))
    assert [(p["chosen"], p["rejected"], p["decided_by"]) for p in fallback] == [(2, 0, "m")]
    with pytest.raises(ValueError, match="needs a verifier"):
        select_pairs(pool(a=[1, 2]), ["a"], PairConfig(pairs="gate"))
    with pytest.raises(ValueError, match="--primary 'x' is not one of the rewards"):
        select_pairs(pool(a=[1, 2]), ["a"], PairConfig(primary="x"))


def test_each_reason_for_no_pair():
    assert picked(pool(a=[1]), ["a"]) == ([], "fewer than 2 distinct samples")
    assert picked(pool(a=[None, 2]), ["a"]) == ([], "fewer than 2 scored samples")
    assert picked(pool(a=[2, 2, None]), ["a"]) == ([], "all tied")
    assert picked(pool(a=[2, 1]), ["a"], min_margin=1.5) == ([], "below margin")
    assert picked(pool(a=[2, 1], b=[0, 1]), ["a", "b"], consistency="all-agree") == ([], "filtered by consistency")


def test_consistency_counts_ties_and_unscored_sides_as_no_agreement():
    names = ["a", "b", "c"]
    samples = pool(a=[3, 1], b=[2, 2], c=[None, 1])  # b ties, c cannot score the chosen side
    pairs, _ = select_pairs(samples, names, PairConfig(consistency="weight"))
    assert pairs[0]["votes"] == {"a": 1, "b": 0, "c": None} and pairs[0]["pair_weight"] == 0.5  # 1 of the 2 that voted
    assert select_pairs(samples, names, PairConfig(consistency="all-agree"))[1] == "filtered by consistency"
    agreed = pool(a=[3, 1], b=[5, 2], c=[1, 0])
    assert select_pairs(agreed, names, PairConfig(consistency="all-agree"))[0][0]["agreement"] == 1.0
    # the primary reward decides which pair; another one can be named
    assert picked(pool(a=[3, 1, 2], b=[0, 1, 2]), ["a", "b"], primary="b") == ([(2, 0, 2.0)], None)


def test_best_sample_prefers_verified_answers_and_counts_ties():
    names = ["m", "rule:math"]
    gate = PairConfig(pairs="gate")
    assert best_sample(pool(**{"rule:math": [0, 1, 1], "m": [9, 2, 2]}), names, gate) == (1, "m", 2, None)
    assert best_sample(pool(m=[None, None]), ["m"], PairConfig()) == (None, None, 0, "no sample scored")
    # the model reward scored none of the correct samples: the verifier ranks them, then sample order
    assert best_sample(pool(**{"rule:math": [0, 1, 1, 0], "m": [9, None, None, 3]}), names, gate) == (1, "rule:math", 2, None)
    assert best_sample(pool(**{"rule:math": [0.9, 1, 0], "m": [None, None, 3]}), names, gate) == (1, "rule:math", 1, None)
    # the verifier judged samples and found none correct: no row, a wrong answer is no SFT target
    assert best_sample(pool(**{"rule:math": [0, 0], "m": [1, 3]}), names, gate) == (None, None, 0, "no verified-correct sample")
    assert best_sample(pool(**{"rule:math": [0, None], "m": [1, 3]}), names, gate) == (None, None, 0, "no verified-correct sample")
    # the verifier judged nothing (no final answers, or no gold answer): the model reward's favourite
    assert best_sample(pool(**{"rule:math": [None, None], "m": [1, 3]}), names, gate) == (1, "m", 1, None)


def test_agreement_between_rewards_by_hand():
    pools = [pool(a=[1, 2, 3], b=[1, 3, 2]), pool(a=[1, 1], b=[0, 1]), pool(a=[1, None], b=[1, 2])]
    got = agreement(pools, ["a", "b"])["a vs b"]
    # prompt 1: (0,1) and (0,2) concordant, (1,2) discordant; prompt 2: a tie; prompt 3: unscored, skipped
    assert (got["sample_pairs"], got["concordant"], got["discordant"], got["ties_a"], got["ties_b"]) == (4, 2, 1, 1, 0)
    assert got["order_agreement"] == pytest.approx(2 / 3)
    assert got["kendall_tau_b"] == pytest.approx((2 - 1) / math.sqrt((4 - 1) * (4 - 0)))


# ---------------------------------------------------------------- candidates and the CLI

def _write(path: Path, rows) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


POOLS = [{"id": f"c{i}", "prompt": f"What is {i}+{i}?", "answer": str(2 * i),
          "completions": [f"The answer is {2 * i}.", f"The answer is {2 * i + 1}.", "I am not sure",
                          f"so {i}+{i} = {2 * i}. The answer is {2 * i}", f"The answer is {2 * i}."]} for i in range(6)]


def test_candidate_layouts_read_alike(tmp_path):
    pools = load_candidates(_write(tmp_path / "pools.jsonl", POOLS[:2]))
    per_row = [{"id": r["id"], "prompt": r["prompt"], "answer": r["answer"], "completion": c, "model": f"m{j}"}
               for r in POOLS[:2] for j, c in enumerate(r["completions"])]
    grouped = load_candidates(_write(tmp_path / "rows.jsonl", per_row))
    rb2 = load_candidates(_write(tmp_path / "rb2.jsonl", [{"prompt": r["prompt"], "answer": r["answer"], "chosen": r["completions"][:1],
                                                            "rejected": r["completions"][1:]} for r in POOLS[:2]]))
    assert [p.completions for p in pools] == [p.completions for p in grouped] == [p.completions for p in rb2]
    assert pools[0].columns == grouped[0].columns == {"answer": "0"} and rb2[0].id == "line-1"
    assert grouped[0].meta == [{"model": f"m{j}"} for j in range(5)]  # per-response fields stay with their response
    by_prompt = load_candidates(_write(tmp_path / "noid.jsonl", [{k: v for k, v in r.items() if k != "id"} for r in per_row]), limit=1)
    assert len(by_prompt) == 1 and by_prompt[0].completions == POOLS[0]["completions"]
    bad = _write(tmp_path / "bad.jsonl", [{"id": "x", "prompt": "p", "completion": "a"}, {"id": "x", "prompt": "q", "completion": "b"}])
    with pytest.raises(ValueError, match=r"bad.jsonl:line 2: field 'prompt': differs"):
        load_candidates(bad)


def test_annotate_candidates_end_to_end(tmp_path, capsys):
    data = _write(tmp_path / "pools.jsonl", POOLS)
    out = tmp_path / "out"
    assert main(["annotate", "--candidates", str(data), "--reward", "length", "--reward", "rule:math", "--pairs", "gate", "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    # each pool: 5 responses, one repeated; the verifier splits every pool
    assert (summary["prompts"], summary["samples_drawn"], summary["duplicates"], summary["pairs"], summary["pair_share"]) == (6, 30, 6, 6, 1.0)
    assert summary["unscored"] == {"length": 0, "rule:math": 6}  # "I am not sure" has no final answer
    rows = [json.loads(line) for line in (out / "pairs.jsonl").read_text().splitlines()]
    assert rows[1]["chosen"] == "so 1+1 = 2. The answer is 2" and rows[1]["rejected"] == "The answer is 3."
    assert rows[1]["chosen_scores"] == {"length": 8.0, "rule:math": 1.0} and rows[1]["margin"] == 1.0 and rows[1]["answer"] == "2"
    assert rows[1]["rewards"] == ["length", "rule:math"] and rows[1]["generator"] == f"candidates:{data}" and rows[1]["seed"] == 0
    pairs = load_dataset(out / "pairs.jsonl")  # the pairwise layout rewardkit train and eval read
    assert pairs.kind == "pairs" and len(pairs) == 6 and pairs.records[1].columns["answer"] == "2"
    best = load_dataset(out / "best_of_n.jsonl")
    assert best.kind == "samples" and best.records[0].completion == "so 0+0 = 0. The answer is 0"
    assert "## Agreement between rewards" in (out / "report.md").read_text()

    # other pair options re-derive the pairs from the samples; nothing is scored again
    before = (out / "samples.jsonl").read_text()
    assert main(["annotate", "--candidates", str(data), "--reward", "length", "--reward", "rule:math", "--pairs", "margin",
                 "--min-margin", "4", "--out", str(out)]) == 0
    assert (out / "samples.jsonl").read_text() == before
    summary = json.loads((out / "summary.json").read_text())
    # distinct lengths per prompt: 4, 4, 4 and 8 words: the 8-word answer against each of the other three
    assert summary["prompts_this_run"] == 0 and summary["pairs"] == 18 and summary["no_pair"] == {}
    assert main(["annotate", "--candidates", str(data), "--reward", "length", "--reward", "rule:math", "--pairs", "margin",
                 "--min-margin", "4.5", "--out", str(out)]) == 0
    assert json.loads((out / "summary.json").read_text())["no_pair"] == {"below margin": 6} and (out / "pairs.jsonl").read_text() == ""
    # other rewards are refused unless --overwrite
    capsys.readouterr()
    assert main(["annotate", "--candidates", str(data), "--reward", "length", "--out", str(out)]) == 2
    assert "other settings" in capsys.readouterr().err


def test_gate_writes_no_best_of_n_row_for_a_prompt_with_only_wrong_answers(tmp_path):
    wrong = {"id": "w", "prompt": "What is 5+5?", "answer": "10", "completions": ["The answer is 11.", "I think the answer is 9 because 5+5 is 9."]}
    free = {"id": "f", "prompt": "Write a haiku.", "completions": ["short one", "a longer haiku here"]}  # no gold answer: the rule cannot judge
    data = _write(tmp_path / "pools.jsonl", [POOLS[0], wrong, free])
    out = tmp_path / "out"
    assert main(["annotate", "--candidates", str(data), "--reward", "length", "--reward", "rule:math", "--pairs", "gate", "--out", str(out)]) == 0
    best = {r["id"]: r for r in map(json.loads, (out / "best_of_n.jsonl").read_text().splitlines())}
    # c0: the longest correct answer; w: none (both judged wrong); f: the verifier judged nothing, the primary reward picks
    assert set(best) == {"c0", "f"} and best["f"]["completion"] == "a longer haiku here" and best["f"]["picked_by"] == "length"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["best_of_n_rows"] == 2 and summary["no_best_of_n"] == {"no verified-correct sample": 1}
    # f's None from the rule means "cannot judge" (no answer column), not "no final answer" ("I am not sure" in c0)
    assert summary["unscored"] == {"length": 0, "rule:math": 1} and summary["not_applicable"] == {"length": 0, "rule:math": 2}
    rows = {r["id"]: r for r in map(json.loads, (out / "samples.jsonl").read_text().splitlines())}
    assert [s.get("not_applicable") for s in rows["f"]["samples"]] == [["rule:math"]] * 2
    assert not any("not_applicable" in s for s in rows["c0"]["samples"] + rows["w"]["samples"])
    pair = json.loads((out / "pairs.jsonl").read_text().splitlines()[-1])  # the verifier cannot judge f: the primary reward decides
    assert (pair["prompt_id"], pair["chosen"], pair["decided_by"]) == ("f", "a longer haiku here", "length")
    assert "none for 1 prompts: no verified-correct sample" in (out / "report.md").read_text()


def test_a_rerun_on_fewer_prompts_counts_only_them_and_keeps_the_others(tmp_path, capsys):
    data = _write(tmp_path / "pools.jsonl", POOLS[:4])
    out = tmp_path / "out"
    args = ["annotate", "--candidates", str(data), "--reward", "length", "--reward", "rule:math", "--out", str(out)]
    assert main(args) == 0
    whole = (out / "samples.jsonl").read_text()
    capsys.readouterr()
    assert main([*args, "--limit", "2"]) == 0
    assert "kept 2 rows" in capsys.readouterr().err
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["prompts"], summary["prompts_resumed"], summary["samples_drawn"]) == (2, 2, 10) and summary["rows_not_in_this_input"] == 2
    assert [r["prompt_id"] for r in map(json.loads, (out / "pairs.jsonl").read_text().splitlines())] == ["c0", "c1"]
    assert [r["id"] for r in map(json.loads, (out / "best_of_n.jsonl").read_text().splitlines())] == ["c0", "c1"]
    assert "rows of other prompts in samples.jsonl | 2" in (out / "report.md").read_text()
    assert (out / "samples.jsonl").read_text() == whole  # the other prompts' rows stay for a larger --limit
    assert main(args) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["prompts"], summary["prompts_this_run"], summary["rows_not_in_this_input"]) == (4, 0, 0)
    # overopt's curve, from the same collect: the prompts of this input only
    ov = tmp_path / "ov"
    assert main(["overopt", "--proxy", "length", "--gold", "rule:math", "--candidates", str(data), "--limit", "3", "--out", str(ov)]) == 0
    assert main(["overopt", "--proxy", "length", "--gold", "rule:math", "--candidates", str(data), "--limit", "1", "--out", str(ov)]) == 0
    curve = json.loads((ov / "curve.json").read_text())
    assert (curve["prompts"], curve["rows_not_in_this_input"]) == (1, 2)
    assert "also holds 2 rows of prompts not in this input" in (ov / "report.md").read_text()


def test_chat_prompts_give_conversational_pairs(tmp_path):
    chat = [{"id": "m", "prompt": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hi."}],
             "completions": ["hi", "hello there", "hi"]}]
    out = tmp_path / "chat"
    assert main(["annotate", "--candidates", str(_write(tmp_path / "chat.jsonl", chat)), "--reward", "length:chars", "--out", str(out)]) == 0
    row = json.loads((out / "pairs.jsonl").read_text())
    assert row["prompt"] == chat[0]["prompt"]  # TRL's conversational preference format: the responses are assistant turns
    assert row["chosen"] == [{"role": "assistant", "content": "hello there"}] and row["rejected"] == [{"role": "assistant", "content": "hi"}]
    pair = load_dataset(out / "pairs.jsonl").records[0]
    assert (pair.chosen, pair.rejected) == ("hello there", "hi")
    assert json.loads((out / "best_of_n.jsonl").read_text())["completion"] == [{"role": "assistant", "content": "hello there"}]


def test_a_column_named_like_a_pair_field_is_refused(tmp_path, capsys):
    data = _write(tmp_path / "p.jsonl", [{"prompt": "p", "margin": 3, "completions": ["a", "b c"]}])
    assert main(["annotate", "--candidates", str(data), "--reward", "length", "--out", str(tmp_path / "o")]) == 2
    assert "column 'margin'" in capsys.readouterr().err


def test_resume_keeps_samples_holding_unicode_line_separators(tmp_path, capsys):
    odd = [{**r, "completions": [*r["completions"], "x\u2028y\x85z The answer is 1."]} for r in POOLS[:3]]
    data = _write(tmp_path / "odd.jsonl", odd)
    out = tmp_path / "out"
    args = ["annotate", "--candidates", str(data), "--reward", "length", "--reward", "rule:math", "--out", str(out)]
    assert main(args) == 0
    samples = out / "samples.jsonl"
    whole = samples.read_bytes()
    assert "\u2028".encode() in whole and whole.count(b"\n") == 3  # written raw, one row per prompt
    samples.write_bytes(whole[: whole.index(b"\n") + 1])  # as if killed after the first prompt
    capsys.readouterr()
    assert main(args) == 0
    assert "resuming: 1 prompts already in" in capsys.readouterr().err
    assert samples.read_bytes() == whole


# ---------------------------------------------------------------- generation: resume, server, training

def slow_length(prompts, completions):
    """``py:test_annotate:slow_length``: character counts; logs the prompts of each call to $RK_ANNOTATE_LOG
    and sleeps $RK_ANNOTATE_DELAY seconds."""
    if os.environ.get("RK_ANNOTATE_LOG"):
        with open(os.environ["RK_ANNOTATE_LOG"], "a") as fh:
            fh.writelines(p + "\n" for p in dict.fromkeys(prompts))
    time.sleep(float(os.environ.get("RK_ANNOTATE_DELAY", "0")))
    return [float(len(c)) for c in completions]


PROMPTS = [{"id": f"q{i}", "question": f"What is {i} plus {i}?", "answer": str(2 * i)} for i in range(8)]


def _generate_args(lm, data, out, *extra):
    return ["annotate", "--generator", str(lm), "--reward", "py:test_annotate:slow_length", "--reward", "rule:math", "--data", str(data),
            "--n", "4", "--max-new-tokens", "6", "--temperature", "1.0", "--batch-prompts", "1", "--seed", "3", "--out", str(out), *extra]


def _samples(path: Path):
    return [(r["id"], [(s["completion"], s["count"], s["scores"]) for s in r["samples"]]) for r in map(json.loads, path.read_text().splitlines())]


def test_resume_after_sigkill_generates_no_prompt_twice(tiny_dirs, tmp_path, monkeypatch, capsys):
    data = _write(tmp_path / "prompts.jsonl", PROMPTS)
    monkeypatch.syspath_prepend(str(HERE))
    clean = tmp_path / "clean"
    assert main(_generate_args(tiny_dirs["lm"], data, clean)) == 0

    out = tmp_path / "killed"
    path = os.pathsep.join(p for p in (os.environ.get("PYTHONPATH"), str(HERE)) if p)
    env = {**os.environ, "PYTHONPATH": path, "TQDM_DISABLE": "1", "RK_ANNOTATE_DELAY": "0.4", "OMP_NUM_THREADS": "1"}  # 2 shared cores
    proc = subprocess.Popen([sys.executable, "-m", "rewardkit.cli.main", *_generate_args(tiny_dirs["lm"], data, out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    samples = out / "samples.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if samples.exists() and samples.read_text().count("\n") >= 2:
            break
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    written = samples.read_text().count("\n")
    assert 2 <= written < len(PROMPTS), f"the kill must land mid-run ({written} rows; {proc.stderr.read()[-500:]!r})"
    with samples.open("a") as fh:
        fh.write('{"id": "q7", "input_sha": "')  # and a torn last line, as a kill mid-write leaves

    log = tmp_path / "calls.log"
    monkeypatch.setenv("RK_ANNOTATE_LOG", str(log))
    capsys.readouterr()
    assert main(_generate_args(tiny_dirs["lm"], data, out)) == 0
    assert f"resuming: {written} prompts already in" in capsys.readouterr().err
    assert log.read_text().splitlines() == [r["question"] for r in PROMPTS[written:]]  # the rest, each once
    assert [i for i, _ in _samples(samples)] == [r["id"] for r in PROMPTS]
    assert _samples(samples) == _samples(clean / "samples.jsonl")  # the samples of an uninterrupted run
    assert (out / "pairs.jsonl").read_text() == (clean / "pairs.jsonl").read_text()
    assert (out / "best_of_n.jsonl").read_text() == (clean / "best_of_n.jsonl").read_text()
    # another sampling setting is refused: the file would mix two runs
    assert main(_generate_args(tiny_dirs["lm"], data, out, "--temperature", "0.5")) == 2


def test_annotate_through_a_real_openai_compatible_server(tiny_dirs, tmp_path, monkeypatch):
    from client_helpers import OpenAIServerThread

    from rewardkit.clients import LocalClient

    data = _write(tmp_path / "prompts.jsonl", PROMPTS[:3])
    monkeypatch.syspath_prepend(str(HERE))
    local = tmp_path / "local"
    assert main(_generate_args(tiny_dirs["lm"], data, local)) == 0
    with OpenAIServerThread(LocalClient(str(tiny_dirs["lm"])), model_name="tiny") as srv:
        served = tmp_path / "served"
        args = _generate_args(tiny_dirs["lm"], data, served)
        args[args.index("--generator") + 1] = f"openai:tiny@{srv.url}/v1"
        assert main(args) == 0
    # the server samples with the same per-sample seeds: the same texts, scores and pairs
    assert _samples(served / "samples.jsonl") == _samples(local / "samples.jsonl")
    summary = json.loads((served / "summary.json").read_text())
    assert summary["generator"] == f"openai:tiny@{srv.url}/v1" and summary["samples_drawn"] == 12 and summary["samples_per_second"] > 0


def test_pairs_train_a_reward_model_with_rewardkit_and_trl(tiny_dirs, tmp_path):
    data = _write(tmp_path / "pools.jsonl", POOLS)
    out = tmp_path / "ann"
    assert main(["annotate", "--candidates", str(data), "--reward", "rule:math", "--reward", "length", "--consistency", "weight",
                 "--out", str(out)]) == 0
    pairs = out / "pairs.jsonl"
    rows = [json.loads(line) for line in pairs.read_text().splitlines()]
    assert len(rows) == 6 and all("pair_weight" in r for r in rows)
    run = tmp_path / "rm"
    assert main(["train", "--data", str(pairs), "--model", str(tiny_dirs["lm"]), "--mode", "full", "--max-steps", "2",
                 "--pairs-per-step", "2", "--max-length", "64", "--out", str(run)]) == 0
    assert json.loads((run / "train_results.json").read_text())["steps"] == 2

    trl = pytest.importorskip("trl")
    from datasets import load_dataset as hf_load
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    train = hf_load("json", data_files=str(pairs), split="train")  # every column as written, "margin" included
    tok = AutoTokenizer.from_pretrained(str(tiny_dirs["rm"]))
    model = AutoModelForSequenceClassification.from_pretrained(str(tiny_dirs["rm"]))
    cfg = trl.RewardConfig(output_dir=str(tmp_path / "trl"), per_device_train_batch_size=2, max_steps=1, report_to="none",
                           save_strategy="no", use_cpu=True, bf16=False, max_length=64, dataloader_num_workers=0)
    trainer = trl.RewardTrainer(model=model, args=cfg, train_dataset=train, processing_class=tok)
    trainer.train()
    assert trainer.state.global_step == 1
