"""Best-of-N overoptimization curves: the exact order-statistics estimator against brute force over
every subset (ties included), seeded bands, and `rewardkit overopt` end to end with rule rewards."""
from __future__ import annotations

import json
import random
import xml.etree.ElementTree as ET
from itertools import combinations

import pytest

from rewardkit.cli.main import main
from rewardkit.use.overopt import curve, expected_pick, kl_bon, pick_probabilities, pools_from_rows


def brute_force(proxy, gold, N):
    """Mean over every N-subset of the gold (and proxy) of its best item; a tie at the top picks
    uniformly among the tied, i.e. their mean gold."""
    golds, proxies = [], []
    for subset in combinations(range(len(proxy)), N):
        top = max(proxy[i] for i in subset)
        tied = [i for i in subset if proxy[i] == top]
        golds.append(sum(gold[i] for i in tied) / len(tied))
        proxies.append(top)
    return sum(golds) / len(golds), sum(proxies) / len(proxies)


def test_pick_probabilities_by_hand():
    assert pick_probabilities(4, 2) == pytest.approx([0, 1 / 6, 2 / 6, 3 / 6])
    assert pick_probabilities(5, 1) == pytest.approx([0.2] * 5)
    assert pick_probabilities(3, 3) == [0.0, 0.0, 1.0]
    for n in range(1, 9):
        for N in range(1, n + 1):
            assert sum(pick_probabilities(n, N)) == pytest.approx(1.0)
    with pytest.raises(ValueError):
        pick_probabilities(3, 4)


def test_estimator_equals_brute_force_over_all_subsets_with_ties():
    rng = random.Random(7)
    checked = 0
    for _ in range(60):
        n = rng.randint(1, 8)
        proxy = [rng.randint(0, 3) for _ in range(n)]  # few values: ties at the top are common
        gold = [rng.choice([0.0, 1.0, 0.5, -2.0]) for _ in range(n)]
        for N in range(1, n + 1):
            assert expected_pick(proxy, gold, N) == pytest.approx(brute_force(proxy, gold, N)), (proxy, gold, N)
            checked += 1
    assert checked > 150
    assert kl_bon(1) == 0 and kl_bon(4) == pytest.approx(1.386294 - 0.75, abs=1e-6)


def test_curve_peak_and_seeded_bands():
    pools = [([1, 2, 3, 4], [0, 0, 1, 0])] * 3 + [([1, 2, 3, 4], [0, 1, 1, 1])]
    result = curve(pools, n_boot=200, seed=5)
    assert result["ns"] == [1, 2, 4] and result["prompts"] == 4
    # per prompt, gold of the pick: the first kind .25, 2/6, 0; the second .75, 1, 1
    gold = [(3 * g1 + g2) / 4 for g1, g2 in ((0.25, 0.75), (2 / 6, 1.0), (0.0, 1.0))]
    assert [p["gold"] for p in result["points"]] == pytest.approx(gold)
    assert result["peak_n"] == 2 and result["gold_n_max_minus_peak"]["value"] == pytest.approx(gold[2] - gold[1])
    assert result == curve(pools, n_boot=200, seed=5)  # seeded: the same bands again
    rng = random.Random(1)
    many = [([rng.random() for _ in range(4)], [rng.random() for _ in range(4)]) for _ in range(30)]
    assert curve(many, n_boot=200, seed=6) == curve(many, n_boot=200, seed=6)
    assert curve(many, n_boot=200, seed=6)["points"][1]["gold_ci95"] != curve(many, n_boot=200, seed=7)["points"][1]["gold_ci95"]
    lo, hi = result["points"][0]["gold_ci95"]
    assert 0.25 <= lo <= gold[0] <= hi <= 0.75
    # a smaller pool is left out of every N, and counted
    short = curve(pools + [([1, 2], [1, 0])], n_boot=50)
    assert short["prompts"] == 4 and short["prompts_left_out"] == 1 and short["points"][0]["gold"] == pytest.approx(gold[0])


def test_pools_count_repeated_samples_and_unscored_gold():
    rows = [{"id": "a", "samples": [{"count": 3, "scores": {"p": 1.0, "g": 1.0}}, {"count": 1, "scores": {"p": 2.0, "g": None}},
                                    {"count": 2, "scores": {"p": None, "g": 0.0}}]}]
    assert pools_from_rows(rows, "p", "g") == ([([1.0] * 3, [1.0] * 3)], {"gold_unscored": 1, "proxy_unscored": 2}, 0)
    pools, dropped, _ = pools_from_rows(rows, "p", "g", gold_none_as=0.0)
    assert pools == [([1.0, 1.0, 1.0, 2.0], [1.0, 1.0, 1.0, 0.0])] and dropped["gold_unscored_counted_as_value"] == 1
    # a prompt the gold reward cannot judge (no gold column) is no pool, even with --gold-none-as: unjudged is not wrong
    na = [{"id": "b", "samples": [{"count": 2, "scores": {"p": 1.0, "g": None}, "not_applicable": ["g"]},
                                  {"count": 1, "scores": {"p": 3.0, "g": None}, "not_applicable": ["g"]}]}]
    assert pools_from_rows(rows + na, "p", "g", gold_none_as=0.0) == (pools, {**dropped, "gold_not_applicable": 3}, 1)
    assert pools_from_rows(na, "p", "g")[2] == 1
    with pytest.raises(ValueError, match="no 'x' score"):
        pools_from_rows(rows, "p", "x")


def test_overopt_cli_end_to_end_with_rule_rewards(tmp_path):
    rows = [{"id": f"c{i}", "prompt": f"What is {i}+{i}?", "answer": str(2 * i),
             "completions": [f"The answer is {2 * i}.", f"The answer is {2 * i + 1}.", "I am not sure",
                             f"so {i}+{i} = {2 * i}. The answer is {2 * i}", f"The answer is {2 * i}."]} for i in range(4)]
    data = tmp_path / "pools.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "ov"
    assert main(["overopt", "--proxy", "length", "--gold", "rule:math", "--gold-none-as", "0", "--candidates", str(data), "--out", str(out)]) == 0
    result = json.loads((out / "curve.json").read_text())
    # per pool (words, gold): (4, 1) twice, (4, 0), (4, no answer = 0), (8, 1); the four 4-word answers tie at gold 0.5
    # N=2: the 8-word answer is in the subset with probability C(4,1)/C(5,2) = 0.4 -> 0.4 + 0.6 * 0.5
    assert [p["n"] for p in result["points"]] == [1, 2, 4, 5]
    assert [p["gold"] for p in result["points"]] == pytest.approx([0.6, 0.7, 0.9, 1.0])
    assert [p["proxy"] for p in result["points"]] == pytest.approx([4.8, 5.6, 7.2, 8.0])
    assert result["peak_n"] == 5 and result["dropped"] == {"gold_unscored_counted_as_value": 4} and result["seed"] == 0
    ET.parse(out / "curve.svg")  # well-formed SVG
    assert "| 2 | 0.193 | 0.7000 |" in (out / "report.md").read_text()

    # the same samples without --gold-none-as: the answerless response leaves the pools (n = 4, ties at gold 2/3)
    again = tmp_path / "ov2"
    assert main(["overopt", "--proxy", "length", "--gold", "rule:math", "--samples", str(out / "samples.jsonl"), "--out", str(again)]) == 0
    result = json.loads((again / "curve.json").read_text())
    assert [p["gold"] for p in result["points"]] == pytest.approx([0.75, 0.5 + 0.5 * 2 / 3, 1.0])
    assert result["dropped"] == {"gold_unscored": 4}


def test_overopt_leaves_out_prompts_the_gold_cannot_judge_even_with_gold_none_as(tmp_path, capsys):
    rows = [{"id": f"c{i}", "prompt": f"What is {i}+{i}?", "answer": str(2 * i),
             "completions": [f"The answer is {2 * i}.", f"The answer is {2 * i + 1}.", "I am not sure",
                             f"so {i}+{i} = {2 * i}. The answer is {2 * i}", f"The answer is {2 * i}."]} for i in range(4)]
    free = [{"id": f"f{i}", "prompt": f"Write line {i}.", "completions": ["a", "b c", "d e f", "g h i j", "k"]} for i in range(2)]
    data = tmp_path / "pools.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows + free))
    out = tmp_path / "ov"
    assert main(["overopt", "--proxy", "length", "--gold", "rule:math", "--gold-none-as", "0", "--candidates", str(data), "--out", str(out)]) == 0
    result = json.loads((out / "curve.json").read_text())
    # the curve of the four prompts with an answer alone (as in the end-to-end test above); the two without are not zeros
    assert result["prompts"] == 4 and result["prompts_left_out"] == 0 and result["prompts_gold_not_applicable"] == 2
    assert [p["gold"] for p in result["points"]] == pytest.approx([0.6, 0.7, 0.9, 1.0])
    assert result["dropped"] == {"gold_unscored_counted_as_value": 4, "gold_not_applicable": 10}
    assert "Gold not applicable: 2 more prompts" in (out / "report.md").read_text()
    samples = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert [s.get("not_applicable") for r in samples for s in r["samples"]] == [None] * 16 + [["rule:math"]] * 10
    only_free = tmp_path / "free.jsonl"
    only_free.write_text("".join(json.dumps({**r, "answer": None}) + "\n" for r in free))  # an answer column, empty in every row
    assert main(["overopt", "--proxy", "length", "--gold", "rule:math", "--gold-none-as", "0", "--candidates", str(only_free),
                 "--out", str(tmp_path / "none")]) == 2
    assert "--gold rule:math does not apply to any of the 2 prompts" in capsys.readouterr().err


def test_overopt_png_when_pillow_is_installed(tmp_path):
    pytest.importorskip("PIL", reason="curve.png needs Pillow (the plot extra)")
    from PIL import Image

    from rewardkit.use.overopt import plot

    result = curve([([1, 2, 3, 4], [0, 0, 1, 0]), ([1, 2, 3, 4], [0, 1, 1, 1])], n_boot=50)
    drawing = plot(result, "proxy-rm", "gold-rule")
    assert drawing.png(tmp_path / "c.png")
    with Image.open(tmp_path / "c.png") as img:
        assert img.size == (drawing.width, drawing.height)
        colors = {c for _, c in img.getcolors(maxcolors=1 << 20)}
    assert (0x3B, 0x6E, 0xA8) in colors  # the series colour was drawn, not a blank canvas
