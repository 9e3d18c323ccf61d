"""eval --diagnose: every statistic against hand-computed values or a brute-force count, the RM-Bench
hard/normal/easy mapping on rows of the real shared file, --scores mode, and the CLI end to end."""
from __future__ import annotations

import itertools
import json
import math
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from rewardkit.cli.main import main
from rewardkit.evals.diagnose import (
    agreement,
    diagnose,
    disagreement,
    kendall_tau_b,
    members_from_rows,
    pearson,
    spearman,
    write_diagnostics,
    _responses,
)
from rewardkit.types import PairRecord, ScoredBestOfN, ScoredPair

# (chosen, rejected) texts with hand-known lengths in characters
PAIRS = [
    ("a" * 10, "b" * 11),  # p1: matched (11 <= 1.1 * 10), chosen shorter
    ("c" * 20, "d" * 10),  # p2: chosen longer
    ("e" * 5, "f" * 30),  # p3: chosen shorter
    ("g" * 12, "h" * 12),  # p4: matched, same length
    ("i" * 50, "j" * 46),  # p5: matched (50 <= 50.6), chosen longer
    ("", "k" * 3),  # p6: one empty response: never matched; chosen shorter
]


def _records():
    return {f"p{i + 1}": PairRecord(f"p{i + 1}", f"q{i + 1}", c, r) for i, (c, r) in enumerate(PAIRS)}


def _by_chars():
    return [ScoredPair(f"p{i + 1}", float(len(c)), float(len(r))) for i, (c, r) in enumerate(PAIRS)]


def brute_tau_b(x, y):
    conc = disc = tx = ty = 0
    for i, j in itertools.combinations(range(len(x)), 2):
        sx, sy = np.sign(x[i] - x[j]), np.sign(y[i] - y[j])
        if sx == 0 and sy == 0:
            continue
        if sx == 0:
            tx += 1
        elif sy == 0:
            ty += 1
        elif sx == sy:
            conc += 1
        else:
            disc += 1
    return (conc - disc) / math.sqrt((conc + disc + tx) * (conc + disc + ty))


def test_correlations_by_hand():
    assert pearson([1, 2, 3, 4], [2, 4, 6, 8]) == pytest.approx(1.0)
    assert pearson([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(0.8)  # sum dx*dy = 4, sum dx^2 = sum dy^2 = 5
    assert spearman([1, 2, 3, 4], [10, 1000, 100, 10000]) == pytest.approx(0.8)  # ranks 1 3 2 4
    # ties share their mean rank: x ranks 1, 2.5, 2.5, 4 -> 4.5 / sqrt(4.5 * 5)
    assert spearman([1, 2, 2, 3], [1, 2, 3, 4]) == pytest.approx(4.5 / math.sqrt(22.5))
    assert math.isnan(pearson([1, 1, 1], [1, 2, 3]))  # a constant side has no correlation


def test_kendall_tau_b_by_hand_brute_force_and_scipy():
    assert kendall_tau_b([1, 2, 3], [1, 3, 2]) == pytest.approx(1 / 3)  # 2 concordant, 1 discordant
    rng = np.random.default_rng(0)
    for n in (2, 5, 40, 200):
        x, y = rng.integers(0, 6, n).astype(float), rng.integers(0, 4, n).astype(float)  # many ties
        if len(set(x)) > 1 and len(set(y)) > 1:
            assert kendall_tau_b(x, y) == pytest.approx(brute_tau_b(x, y))
    try:
        from scipy.stats import kendalltau
    except ImportError:
        return
    for seed in range(3):
        r = np.random.default_rng(seed)
        x = r.normal(size=300).round(1)
        y = x + r.normal(size=300)
        assert kendall_tau_b(x, y) == pytest.approx(kendalltau(x, y).statistic)  # tau-b is scipy's default


def test_a_reward_that_is_length_correlates_exactly_and_its_length_controlled_accuracy_is_hand_computed():
    diag = diagnose({"chars": _by_chars()}, _records(), n_boot=200, seed=1)
    r = diag.result["rewards"]["chars"]
    assert r["length_correlation"]["pearson"] == pytest.approx(1.0)
    assert r["length_correlation"]["spearman"] == pytest.approx(1.0)
    assert r["length_correlation"]["responses"] == 12
    lc = r["length_controlled"]
    assert lc["length_matched"]["n"] == 3 and lc["length_matched"]["accuracy"] == pytest.approx(1 / 3)  # p1 wrong, p4 tie, p5 right
    assert lc["length_matched"]["ties"] == 1
    assert (lc["chosen_longer"]["n"], lc["chosen_longer"]["accuracy"]) == (2, 1.0)  # p2, p5
    assert (lc["chosen_shorter"]["n"], lc["chosen_shorter"]["accuracy"]) == (3, 0.0)  # p1, p3, p6
    assert lc["longer_minus_shorter"]["value"] == 1.0 and lc["longer_minus_shorter"]["ci95"] == [1.0, 1.0]
    lo, hi = lc["length_matched"]["ci95"]
    assert 0.0 <= lo <= 1 / 3 <= hi <= 1.0
    stats = diag.result["data_stats"]
    assert stats["chosen_longer_share"] == pytest.approx(2 / 6) and stats["length_matched_share"] == pytest.approx(3 / 6)
    # a tighter ratio: 11/10 and 50/46 no longer match, only p4 (a tie) does
    tight = diagnose({"chars": _by_chars()}, _records(), length_ratio=1.05, n_boot=50)
    assert tight.result["rewards"]["chars"]["length_controlled"]["length_matched"]["n"] == 1
    assert tight.result["rewards"]["chars"]["length_controlled"]["length_matched"]["accuracy"] == 0.0


def test_a_response_shared_by_pairs_counts_once_and_seeds_reproduce():
    records = {"x": PairRecord("x", "q", "aa", "b"), "y": PairRecord("y", "q", "aa", "cccc")}  # "aa" in both pairs
    scored = [ScoredPair("x", 2.0, 1.0), ScoredPair("y", 2.0, 4.0)]
    table = _responses(scored, records)
    assert len(table) == 3
    one = json.dumps(diagnose({"r": scored}, records, n_boot=100, seed=3).result)  # as text: NaN == NaN there
    assert one == json.dumps(diagnose({"r": scored}, records, n_boot=100, seed=3).result)
    assert one != json.dumps(diagnose({"r": scored}, records, n_boot=100, seed=4).result)  # the seed is used


def test_agreement_pair_order_and_kendall_over_responses():
    a = _by_chars()
    b = [ScoredPair(s.id, -s.chosen_score, -s.rejected_score) for s in a]  # the opposite reward
    b[3] = ScoredPair("p4", 0.0, 0.0)  # a tie against a's tie: same order
    out = agreement(a, b, _responses(a, _records()), _responses(b, _records()), n_boot=50, seed=0)
    # a's orders: p1 <, p2 >, p3 <, p4 =, p5 >, p6 <; b reverses all but p4 (= in both)
    assert out["preference_agreement"]["rate"] == pytest.approx(1 / 6) and out["preference_agreement"]["n"] == 6
    xs = [len(t) for pair in PAIRS for t in pair]
    ys = [-x for x in xs]
    ys[6], ys[7] = 0.0, 0.0
    assert out["kendall_tau_b"] == pytest.approx(brute_tau_b(xs, ys))
    assert "top1_agreement" not in out


def test_top1_agreement_on_best_of_n_breaks_ties_uniformly():
    a = [ScoredBestOfN("i1", [3.0, 1.0, 2.0], 1), ScoredBestOfN("i2", [1.0, 5.0, 5.0], 1), ScoredBestOfN("i3", [9.0, 1.0, 1.0], 1)]
    b = [ScoredBestOfN("i1", [3.0, 2.0, 1.0], 1), ScoredBestOfN("i2", [0.0, 5.0, 0.0], 1), ScoredBestOfN("i3", [1.0, 9.0, 1.0], 1)]
    out = agreement(a, b, _responses(a, {}), _responses(b, {}), n_boot=50, seed=0)
    # i1: both pick 0; i2: a picks 1 or 2 (1/2 each), b picks 1 -> 1/2; i3: 0 and 1 -> 0
    assert out["top1_agreement"]["rate"] == pytest.approx(0.5) and out["top1_agreement"]["n"] == 3
    assert "preference_agreement" not in out


def _members():
    # A: responses six 1s and six 0s (std 0.5): margins +-2 after z-scoring; B: six 2s and six 0s (std 1): +-2
    a = [ScoredPair(f"p{i}", c, r) for i, (c, r) in enumerate([(1, 0), (1, 0), (1, 0), (0, 1), (0, 1), (0, 1)], 1)]
    b = [ScoredPair(f"p{i}", c, r) for i, (c, r) in enumerate([(2, 0), (2, 0), (0, 2), (0, 2), (2, 0), (0, 2)], 1)]
    return {"A": a, "B": b}


def test_disagreement_terciles_by_hand():
    members = _members()
    out = disagreement(members, {n: _responses(v, {}) for n, v in members.items()}, None, n_boot=50, seed=0)
    # z-margins (A, B): p1 (2, 2), p2 (2, 2), p3 (2, -2), p4 (-2, -2), p5 (-2, 2), p6 (-2, -2)
    # std: 0 0 2 0 2 0 -> stable order p1 p2 p4 p6 | p3 p5; the mean margin is 0 on p3 and p5 (a tie: wrong)
    low, middle, high = out["terciles"]
    assert (low["n"], low["accuracy"], low["disagreement"]) == (2, 1.0, [0.0, 0.0])
    assert (middle["n"], middle["accuracy"]) == (2, 0.0)
    assert (high["n"], high["accuracy"], high["disagreement"], high["ties"]) == (2, 0.0, [2.0, 2.0], 2)
    assert low["members"] == {"A": 1.0, "B": 1.0} and high["members"] == {"A": 0.5, "B": 0.5}
    assert out["low_minus_high"]["value"] == 1.0
    # an ensemble's own score decides instead of the mean margin: say it got p3 and p5 right
    own = [ScoredPair(s.id, 1.0, 0.0 if s.id in ("p3", "p5") else 2.0) for s in members["A"]]
    mine = disagreement(members, {n: _responses(v, {}) for n, v in members.items()}, own, n_boot=50, seed=0)
    assert [t["accuracy"] for t in mine["terciles"]] == [0.0, 0.0, 1.0]


def test_members_from_rows_reads_the_ensemble_vector():
    rows = [{"id": "p1", "subset": "s", "chosen_score": 1.5, "rejected_score": 0.5,
             "chosen_details": {"vector": {"a": 1.0, "b": 2.0}}, "rejected_details": {"vector": {"a": 0.0, "b": 1.0}}},
            {"id": "p2", "subset": "s", "chosen_score": 1.0, "rejected_score": 2.0}]
    members = members_from_rows(rows)
    assert set(members) == {"a", "b"}
    assert [(s.id, s.chosen_score, s.rejected_score) for s in members["b"]] == [("p1", 2.0, 1.0)]


def test_rm_bench_hard_normal_easy_on_the_real_file(shared_data):
    """Two items (18 rows) of the real RM-Bench chat file scored by length in characters, checked against
    RM-Bench's mapping written out here: rows = chosen style, columns = rejected style, plainest first."""
    from rewardkit.data.formats import load_dataset
    from rewardkit.evals.runner import evaluate
    from rewardkit.rewards.baselines import LengthReward

    data = load_dataset(shared_data / "pairwise" / "rm_bench_chat.jsonl", limit=18)
    first = data.records[0].columns
    assert {"item_id", "chosen_style", "rejected_style"} <= set(first)  # the reader carries them through
    level = {
        ("concise", "concise"): "normal", ("concise", "detailed_plain"): "hard", ("concise", "detailed_markdown"): "hard",
        ("detailed_plain", "concise"): "easy", ("detailed_plain", "detailed_plain"): "normal", ("detailed_plain", "detailed_markdown"): "hard",
        ("detailed_markdown", "concise"): "easy", ("detailed_markdown", "detailed_plain"): "easy", ("detailed_markdown", "detailed_markdown"): "normal",
    }
    _, run = evaluate(LengthReward("chars"), data, n_boot=20, progress=False)
    diag = diagnose({"length:chars": run.scored}, {r.id: r for r in data.records}, n_boot=100, seed=0)
    style = diag.result["rewards"]["length:chars"]["style"]
    per_item: dict = {}
    for r in data.records:
        right = float(len(r.chosen) > len(r.rejected))
        per_item.setdefault(r.columns["item_id"], {}).setdefault(level[r.columns["chosen_style"], r.columns["rejected_style"]], []).append(right)
        row, col = ("concise", "detailed_plain", "detailed_markdown").index(r.columns["chosen_style"]), \
            ("concise", "detailed_plain", "detailed_markdown").index(r.columns["rejected_style"])
        assert style["matrix"][row][col]["n"] == 2
    assert len(per_item) == 2 and style["items_incomplete"] == 0
    for name in ("hard", "normal", "easy"):
        expected = np.mean([np.mean(v[name]) for v in per_item.values()])
        assert style[name]["accuracy"] == pytest.approx(expected) and style[name]["items"] == 2
    # a length reward is fooled by style: detailed responses are longer, so "hard" is where it fails
    assert style["hard"]["accuracy"] < style["easy"]["accuracy"]


def test_rm_bench_items_of_two_domains_sharing_an_item_id_stay_apart(shared_data, tmp_path):
    """RM-Bench numbers items per domain: chat and code both have an item 8. Each item's 9 pairs share
    one subset, so (subset, item_id) names an item; the two items must not merge into one of 18 pairs."""
    from rewardkit.data.formats import load_dataset
    from rewardkit.evals.runner import evaluate
    from rewardkit.rewards.baselines import LengthReward

    rows = []
    for domain in ("chat", "code"):
        with (shared_data / "pairwise" / f"rm_bench_{domain}.jsonl").open(encoding="utf-8") as fh:
            rows += [r for r in map(json.loads, fh) if r["item_id"] == 8]
    assert len(rows) == 18 and len({r["subset"] for r in rows}) == 2
    path = tmp_path / "both.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    data = load_dataset(path)
    _, run = evaluate(LengthReward("chars"), data, n_boot=20, progress=False)
    style = diagnose({"length:chars": run.scored}, {r.id: r for r in data.records}, n_boot=50, seed=0).result["rewards"]["length:chars"]["style"]
    assert style["items_incomplete"] == 0
    level = lambda r: ("hard" if STYLES.index(r["rejected_style"]) > STYLES.index(r["chosen_style"])  # noqa: E731
                       else "normal" if r["rejected_style"] == r["chosen_style"] else "easy")
    for name in ("hard", "normal", "easy"):
        per_domain = [np.mean([float(len(r["chosen"]) > len(r["rejected"])) for r in rows if r["subset"] == s and level(r) == name])
                      for s in sorted({r["subset"] for r in rows})]
        assert style[name]["items"] == 2 and style[name]["accuracy"] == pytest.approx(np.mean(per_domain))


STYLES = ("concise", "detailed_plain", "detailed_markdown")


def _write_pairs(path, pairs=PAIRS):
    path.write_text("".join(json.dumps({"id": f"p{i + 1}", "prompt": f"question {i + 1}", "chosen": c, "rejected": r}) + "\n"
                            for i, (c, r) in enumerate(pairs)), encoding="utf-8")
    return path


# words differ from characters, so the two length rewards disagree on some pairs
WORDY = [("a b c", "dddddddddd"), ("eeee", "f g"), ("h i j k", "l m"), ("nnnnnnnn", "o p q r s t"), ("u v", "w x"), ("yy z", "abcdefg")]


def test_cli_end_to_end_with_two_length_rewards_and_their_ensemble(tmp_path):
    data = _write_pairs(tmp_path / "pairs.jsonl", WORDY)
    out = tmp_path / "run"
    code = main(["eval", "--reward", "length", "--reward", "length:chars", "--reward", "ensemble:mean(length, length:chars)",
                 "--data", str(data), "--diagnose", "--out", str(out), "--bootstrap", "50"])
    assert code == 0
    result = json.loads((out / "diagnostics.json").read_text())
    words = [(len(c.split()), len(r.split())) for c, r in WORDY]
    chars = [(len(c), len(r)) for c, r in WORDY]
    assert result["rewards"]["length:chars"]["length_correlation"]["pearson"] == pytest.approx(1.0)
    expected_words = pearson([len(t) for p in WORDY for t in p], [len(t.split()) for p in WORDY for t in p])
    assert result["rewards"]["length"]["length_correlation"]["pearson"] == pytest.approx(expected_words)
    pair = next(a for a in result["agreement"] if (a["a"], a["b"]) == ("length", "length:chars"))
    same = np.mean([np.sign(w[0] - w[1]) == np.sign(c[0] - c[1]) for w, c in zip(words, chars)])
    assert pair["preference_agreement"]["rate"] == pytest.approx(same)
    assert pair["kendall_tau_b"] == pytest.approx(brute_tau_b([x for p in words for x in p], [x for p in chars for x in p]))
    assert set(result["disagreement"]) == {"lineup", "ensemble:mean(length, length:chars)"}
    assert result["disagreement"]["ensemble:mean(length, length:chars)"]["members"] == ["length", "length:chars"]
    assert result["disagreement"]["ensemble:mean(length, length:chars)"]["pairs"] == 6
    assert "style" not in result["rewards"]["length"]  # no style columns in this data
    # the plots: one point per response, colour per side; the report links the diagnostics
    svg = ET.parse(out / "length_length_chars.svg").getroot()
    assert len(svg.findall(".//{http://www.w3.org/2000/svg}circle")) == 12 + 2  # 12 responses + 2 legend dots
    md = (out / "diagnostics.md").read_text()
    assert "## Length" in md and "length_length_chars.svg" in md and "## Agreement between rewards" in md
    assert "diagnostics.md" in (out / "report.md").read_text()


def test_scores_mode_gives_the_same_diagnostics_and_needs_the_texts(shared_data, tmp_path):
    data = shared_data / "pairwise" / "rm_bench_chat.jsonl"
    first = tmp_path / "first"
    assert main(["eval", "--reward", "length:chars", "--data", str(data), "--limit", "27", "--diagnose", "--out", str(first), "--bootstrap", "50"]) == 0
    again = tmp_path / "again"
    assert main(["eval", "--scores", str(first / "scores.jsonl"), "--data", str(data), "--diagnose", "--out", str(again), "--bootstrap", "50"]) == 0
    one = json.loads((first / "diagnostics.json").read_text())
    two = json.loads((again / "diagnostics.json").read_text())
    assert two["rewards"]["scores"] == one["rewards"]["length:chars"]
    assert two["rewards"]["scores"]["style"]["hard"]["items"] == 3
    assert (again / "style_matrix.svg").exists()
    bare = tmp_path / "bare"
    assert main(["eval", "--scores", str(first / "scores.jsonl"), "--diagnose", "--out", str(bare), "--bootstrap", "50"]) == 0
    result = json.loads((bare / "diagnostics.json").read_text())
    assert "length_controlled" not in result["rewards"]["scores"] and any("--data" in n for n in result["notes"])


def test_scores_mode_matches_models_on_pair_id(tmp_path):
    """Rows of several models with their own ids for one pair (JudgeBench's layout) are matched on pair_id."""
    rows = []
    for model, pairs in {"m1": [(2, 1), (1, 2), (3, 0)], "m2": [(5, 1), (2, 1), (0, 4)]}.items():
        rows += [{"id": f"q{i}::{model}", "pair_id": f"q{i}", "judge_model": model, "label": "A>B", "score_A": a, "score_B": b}
                 for i, (a, b) in enumerate(pairs)]
    path = tmp_path / "scores.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert main(["eval", "--scores", str(path), "--diagnose", "--out", str(tmp_path / "o"), "--bootstrap", "20"]) == 0
    result = json.loads((tmp_path / "o" / "diagnostics.json").read_text())
    (pair,) = result["agreement"]
    assert pair["preference_agreement"]["rate"] == pytest.approx(1 / 3) and pair["preference_agreement"]["n"] == 3  # only q0 agrees


def test_diagnose_refuses_step_data(tmp_path, capsys):
    assert main(["eval", "--reward", "length", "--data", "arith-steps", "--limit", "2", "--diagnose", "--out", str(tmp_path / "o")]) == 2
    assert "--diagnose needs pairwise or best-of-N data" in capsys.readouterr().err


def test_style_heatmap_svg(tmp_path, shared_data):
    from rewardkit.data.formats import load_dataset
    from rewardkit.evals.runner import evaluate
    from rewardkit.rewards.baselines import LengthReward

    data = load_dataset(shared_data / "pairwise" / "rm_bench_code.jsonl", limit=9)
    _, run = evaluate(LengthReward("chars"), data, n_boot=20, progress=False)
    diag = diagnose({"length:chars": run.scored}, {r.id: r for r in data.records}, n_boot=20)
    write_diagnostics(tmp_path, diag)
    svg = ET.parse(tmp_path / "style_matrix.svg").getroot()
    cells = [t.text for t in svg.iter("{http://www.w3.org/2000/svg}text") if t.text and t.text.endswith("%")]
    matrix = diag.result["rewards"]["length:chars"]["style"]["matrix"]
    assert cells == [f"{100 * c['accuracy']:.1f}%" for row in matrix for c in row]


def test_members_in_vector_is_declared_by_ensembles_and_passes_through_transforms():
    from rewardkit.rewards.baselines import LengthReward
    from rewardkit.rewards.ensemble import EnsembleReward, TransformReward

    ensemble = EnsembleReward([LengthReward(), LengthReward("chars")])
    assert ensemble.members_in_vector and TransformReward(ensemble, "clip", max=3).members_in_vector
    assert not LengthReward().members_in_vector and not TransformReward(LengthReward(), "clip", max=3).members_in_vector


def test_best_of_n_rows_get_correlation_and_top1_in_the_report(tmp_path):
    rows = [{"prompt": "p", "completions": ["aaa", "b", "cc"], "num_correct": 1},
            {"prompt": "q", "completions": ["a a", "bbbbb", "c"], "num_correct": 1},
            {"prompt": "r", "completions": ["x", "yy y", "zzz z z"], "num_correct": 2}]
    data = tmp_path / "bon.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "o"
    assert main(["eval", "--reward", "length", "--reward", "length:chars", "--data", str(data), "--diagnose", "--out", str(out), "--bootstrap", "20"]) == 0
    result = json.loads((out / "diagnostics.json").read_text())
    (pair,) = result["agreement"]
    # words [1,1,1] vs chars [3,1,2]: 1/3; [2,1,1] vs [3,5,1]: 0; [1,2,3] vs [1,4,7]: 1
    assert pair["top1_agreement"]["rate"] == pytest.approx((1 / 3 + 0 + 1) / 3)
    assert result["disagreement"] == {} and any("pairwise data only" in n for n in result["notes"])
    assert "## Length" in (out / "diagnostics.md").read_text()
