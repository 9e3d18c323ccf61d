"""End-to-end CLI: eval on the embedded model over real shared data, score -> eval --scores round
trip, the lineup layout, ls/suite verbs, and clear errors with non-zero exit codes."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from rewardkit.cli.main import main


def _rows(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_eval_embedded_model_on_real_data(shared_data, tmp_path, capsys, embedded_available):
    out = tmp_path / "hh"
    code = main(["eval", "--reward", "loglik:default", "--data", str(shared_data / "pairwise" / "hh_rlhf_harmless.jsonl"),
                 "--limit", "6", "--out", str(out), "--bootstrap", "200"])
    assert code == 0
    result = json.loads((out / "results.json").read_text())
    assert set(result) >= {"overall", "overall_ci95", "subsets", "n", "ties", "truncated", "reward", "seed"}
    assert result["n"] == 6 and result["reward"] == "loglik:default"
    (name, sub), = result["subsets"].items()
    assert set(sub) >= {"accuracy", "n", "ties"} and sub["n"] == 6
    scores = _rows(out / "scores.jsonl")
    source = (shared_data / "pairwise" / "hh_rlhf_harmless.jsonl").read_text().splitlines()[:6]
    assert [r["id"] for r in scores] == [json.loads(line)["id"] for line in source]  # input order
    assert all(isinstance(r["chosen_score"], float) and r["chosen_score"] < 0 for r in scores)
    acc = sum(r["chosen_score"] > r["rejected_score"] for r in scores) / 6
    assert result["overall"] == pytest.approx(acc)
    assert (out / "report.md").read_text().count("loglik:default") >= 1 and (out / "plot.svg").read_text().startswith("<svg")
    assert "OVERALL" in capsys.readouterr().out
    # the per-item scores evaluate to the same numbers
    again = tmp_path / "again"
    assert main(["eval", "--scores", str(out / "scores.jsonl"), "--out", str(again), "--bootstrap", "200"]) == 0
    assert json.loads((again / "results.json").read_text())["overall"] == result["overall"]


def test_score_then_eval_scores_round_trip_and_lineup(tiny_dirs, tmp_path):
    data = tmp_path / "pairs.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in [
        {"id": "a", "prompt": "Say yes", "chosen": "yes", "rejected": "no no no no", "subset": "s1", "answer": "yes"},
        {"id": "b", "prompt": "Say no", "chosen": "no", "rejected": "yes yes", "subset": "s2"},
        {"id": "c", "prompt": "Count", "chosen": "1 2 3", "rejected": "1 2", "subset": "s2"},
    ]) + "\n")
    scored = tmp_path / "scored.jsonl"
    assert main(["score", "--reward", f"classifier:{tiny_dirs['rm']}", "--data", str(data), "--out", str(scored)]) == 0
    rows = _rows(scored)
    assert [r["id"] for r in rows] == ["a", "b", "c"] and all("chosen_score" in r for r in rows)
    assert rows[0]["chosen_details"]["truncated"] is False

    lineup = tmp_path / "lineup"
    assert main(["eval", "--reward", "length", "--reward", f"classifier:{tiny_dirs['rm']}", "--data", str(data),
                 "--out", str(lineup), "--bootstrap", "50"]) == 0
    board = json.loads((lineup / "lineup.json").read_text())
    assert set(board) == {"length", f"classifier:{tiny_dirs['rm']}"}
    length = json.loads((lineup / "length" / "results.json").read_text())
    assert length["subsets"]["s1"]["accuracy"] == 0.0 and length["subsets"]["s2"]["accuracy"] == 0.5
    classifier_dir = next(p for p in lineup.iterdir() if p.is_dir() and p.name.startswith("classifier"))
    from_scores = tmp_path / "from-scores"
    assert main(["eval", "--scores", str(scored), "--out", str(from_scores), "--bootstrap", "50"]) == 0
    assert json.loads((from_scores / "results.json").read_text())["overall"] == json.loads((classifier_dir / "results.json").read_text())["overall"]


def test_score_packing_flag_reaches_the_reward_and_keeps_the_scores(tiny_dirs, tmp_path, capsys):
    data = tmp_path / "pairs.jsonl"
    data.write_text("\n".join(json.dumps({"id": str(i), "prompt": "Say " + "yes " * i, "chosen": "yes " * (3 * i + 1), "rejected": "no"})
                              for i in range(12)) + "\n")
    scores = {}
    for packing in ("off", "on"):
        out = tmp_path / f"{packing}.jsonl"
        assert main(["score", "--reward", f"loglik:{tiny_dirs['lm']}", "--data", str(data), "--out", str(out), "--packing", packing,
                     "--max-padding", "0.5"]) == 0
        assert json.loads((tmp_path / f"{packing}.jsonl.meta.json").read_text())["options"]["packing"] == packing
        scores[packing] = [(r["chosen_score"], r["rejected_score"]) for r in _rows(out)]
    assert max(abs(a - b) for x, y in zip(scores["off"], scores["on"]) for a, b in zip(x, y)) < 1e-5
    with pytest.raises(SystemExit):
        main(["score", "--reward", "length", "--data", str(data), "--out", str(tmp_path / "x.jsonl"), "--packing", "yes"])
    assert "invalid choice: 'yes'" in capsys.readouterr().err


def test_score_plain_completions(tmp_path):
    data = tmp_path / "c.jsonl"
    data.write_text(json.dumps({"prompt": "p", "completion": "a b c"}) + "\n" + json.dumps({"prompt": "p", "completion": "a"}) + "\n")
    out = tmp_path / "o.jsonl"
    assert main(["score", "--reward", "length", "--data", str(data), "--out", str(out)]) == 0
    assert [r["score"] for r in _rows(out)] == [3, 1]


def test_eval_on_builtin_suite_with_sections(tmp_path):
    out = tmp_path / "suite"
    assert main(["eval", "--reward", "length", "--data", "suite", "--limit", "5", "--out", str(out), "--bootstrap", "50"]) == 0
    result = json.loads((out / "results.json").read_text())
    assert set(result["subsets"]) == {"arith", "constraints", "length-trap", "refusal"}
    assert set(result["sections"]) == {"reasoning", "instruction-following", "robustness", "safety"}
    assert result["subsets"]["arith"]["ties"] == 5  # same word count: ties are counted, and wrong
    assert result["overall"] == pytest.approx(sum(s["accuracy"] for s in result["sections"].values()) / 4)


def test_judgebench_through_the_cli(shared_data, tmp_path, capsys):
    out = tmp_path / "jb"
    assert main(["eval", "--scores", str(shared_data / "pairwise" / "judgebench_reference_rm_scores.jsonl"), "--out", str(out)]) == 0
    board = json.loads((out / "lineup.json").read_text())
    assert round(100 * board["Skywork/Skywork-Reward-Gemma-2-27B"]["overall"], 2) == 64.29
    assert "lineup" in capsys.readouterr().out


def test_malformed_data_gives_clear_error_and_exit_code(tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"prompt": "p", "chosen": "a", "rejected": "b"}) + "\n" + json.dumps({"prompt": "p", "chosen": 3, "rejected": "b"}) + "\n")
    assert main(["eval", "--reward", "length", "--data", str(bad), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert f"{bad}:line 2: field 'chosen'" in err


def test_failed_reward_does_not_lose_the_others(tmp_path, capsys):
    out = tmp_path / "o"
    code = main(["eval", "--reward", "length", "--reward", "loglik:/no/such/model.gguf", "--data", "suite", "--limit", "3", "--out", str(out), "--bootstrap", "20"])
    assert code == 1
    assert (out / "length" / "results.json").is_file()
    assert "GGUF file not found" in capsys.readouterr().err


def test_lineup_folders_never_collide_and_duplicates_are_refused(tmp_path, capsys):
    from rewardkit.cli.eval import _folders

    assert _folders(["classifier:/models/rm", "classifier:models/rm"]) == {
        "classifier:/models/rm": "classifier_models_rm", "classifier:models/rm": "classifier_models_rm_2"}
    assert main(["eval", "--reward", "length", "--reward", "length", "--data", "suite", "--out", str(tmp_path / "o")]) == 2
    assert "more than once: length" in capsys.readouterr().err


def test_eval_scores_with_benchmark_sections_matches_the_original_run(tmp_path):
    bench = tmp_path / "b.yaml"
    data = tmp_path / "d.jsonl"
    rows = [{"prompt": "p", "chosen": "a b", "rejected": "a", "subset": "x"}] * 6 + [{"prompt": "p", "chosen": "a", "rejected": "a b", "subset": "y"}] * 2
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    bench.write_text("name: tiny\nsource: d.jsonl\nsections:\n  s1: {x: 1}\n  s2: {y: 1}\n")
    assert main(["eval", "--reward", "length", "--data", str(bench), "--out", str(tmp_path / "o1"), "--bootstrap", "20"]) == 0
    first = json.loads((tmp_path / "o1" / "results.json").read_text())
    assert first["overall"] == 0.5  # mean of sections (1.0 and 0.0), not 6/8
    assert main(["eval", "--scores", str(tmp_path / "o1" / "scores.jsonl"), "--data", str(bench), "--out", str(tmp_path / "o2"), "--bootstrap", "20"]) == 0
    assert json.loads((tmp_path / "o2" / "results.json").read_text())["overall"] == 0.5


def test_ls_and_suite_verbs(tmp_path, capsys):
    assert main(["ls", "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    assert {r["kind"] for r in listing["rewards"]} >= {"length", "loglik", "classifier"}
    assert [b["name"] for b in listing["benchmarks"]] == ["arith-steps", "gsm8k-errors", "suite"]
    assert listing["default"].endswith("default_rm") and {r["spec"] for r in listing["rules"]} >= {"rule:math", "rule:code"}
    assert main(["suite", "--out", str(tmp_path / "s"), "--train-size", "3", "--test-size", "2"]) == 0
    assert len((tmp_path / "s" / "test.jsonl").read_text().splitlines()) == 8


def test_console_script_help():
    proc = subprocess.run([sys.executable, "-m", "rewardkit.cli.main", "eval", "--help"], capture_output=True, text=True)
    assert proc.returncode == 0 and "--max-tokens-per-batch" in proc.stdout and "examples:" in proc.stdout


def test_truncation_is_counted_per_subset_and_overall(tiny_dirs, tmp_path):
    data = tmp_path / "t.jsonl"
    rows = [{"prompt": "short", "chosen": "a", "rejected": "b", "subset": "short"},
            {"prompt": "long " * 40, "chosen": "a", "rejected": "b", "subset": "long"}]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "o"
    assert main(["eval", "--reward", f"classifier:{tiny_dirs['rm']}", "--data", str(data), "--max-length", "64",
                 "--out", str(out), "--bootstrap", "20"]) == 0
    result = json.loads((out / "results.json").read_text())
    assert result["truncated"] == 2
    assert result["subsets"]["long"]["truncated"] == 2 and result["subsets"]["short"]["truncated"] == 0
    details = _rows(out / "scores.jsonl")[1]["chosen_details"]
    assert details["truncated"] is True and details["num_tokens"] == 64


def test_best_of_n_eval_and_scores_round_trip(tmp_path):
    data = tmp_path / "bon.jsonl"
    rows = [
        {"id": "win", "prompt": "p", "chosen": ["a b c d"], "rejected": ["a", "a b"], "subset": "s"},
        {"id": "tie", "prompt": "p", "chosen": ["a b"], "rejected": ["c d", "e"], "subset": "s"},
        {"id": "lose", "prompt": "p", "chosen": ["a"], "rejected": ["a b", "c"], "subset": "s"},
    ]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "o"
    assert main(["eval", "--reward", "length", "--data", str(data), "--out", str(out), "--bootstrap", "20"]) == 0
    result = json.loads((out / "results.json").read_text())
    assert result["metric"] == "best-of-n"
    assert result["overall"] == pytest.approx((1 + 0.5 + 0) / 3) and result["ties"] == 1
    scores = _rows(out / "scores.jsonl")
    assert scores[0] == {"id": "win", "subset": "s", "scores": [4, 1, 2], "num_correct": 1}
    again = tmp_path / "again"
    assert main(["eval", "--scores", str(out / "scores.jsonl"), "--out", str(again), "--bootstrap", "20"]) == 0
    assert json.loads((again / "results.json").read_text())["overall"] == result["overall"]
