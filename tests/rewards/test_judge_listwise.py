"""Listwise judge: one prompt ranks a group, shown in seeded rotated orders, Borda-aggregated, with
position bias reported; tested with scripted clients."""
import re

import pytest

from judge_helpers import ScriptedClient, section

from rewardkit.data.formats import Dataset
from rewardkit.evals.runner import evaluate
from rewardkit.rewards.judge.text import parse_ranking
from rewardkit.rewards.judge.listwise import ListwiseJudge, shown_orders
from rewardkit.types import BestOfNRecord, PairRecord


def _labels(prompt):
    return re.findall(r"\[Response ([A-Z])\]", prompt)


def _longest_first(p, j, seed, pre):
    labels = _labels(p)
    return " " + " > ".join(sorted(labels, key=lambda x: -len(section(p, f"Response {x}"))))


def test_parse_ranking():
    assert parse_ranking("Ranking: B > A > C", "ABC") == ["B", "A", "C"]
    assert parse_ranking("Ranking: C > A", "ABC") == ["C", "A", "B"]  # one missing label goes last
    assert parse_ranking("Ranking: C", "ABC") is None
    assert parse_ranking("A is best\nB, C, A", "ABC") == ["B", "C", "A"]
    assert parse_ranking("Ranking: A > B > C\nOn reflection, Ranking: C > B > A", "ABC") == ["C", "B", "A"]
    assert parse_ranking("I like a and b", "ABC") is None
    assert parse_ranking("Ranking: [Response B] > [Response C] > [Response A]", "ABC") == ["B", "C", "A"]


def test_rotations_put_every_response_in_every_position():
    orders = shown_orders([3, 5, 7], 3, "k")
    assert {tuple(sorted(o)) for o in orders} == {(3, 5, 7)}
    for pos in range(3):
        assert sorted(o[pos] for o in orders) == [3, 5, 7]
    assert shown_orders([3, 5, 7], 3, "k") == orders  # seeded
    assert len(shown_orders([1, 2], 5, "k")) == 5


def test_consistent_judge_borda_scores_and_records_orders():
    client = ScriptedClient(_longest_first)
    judge = ListwiseJudge(client=client)
    out = judge.score(["q"] * 3 + ["r"] * 2, ["mid one", "the longest answer", "x", "aa", "b"])
    assert out.scores == [0.5, 1.0, 0.0, 1.0, 0.0]
    assert len(client.calls[0]["prompts"]) == 3 + 2  # one call per shown order, one order per response
    assert client.calls[0]["prefix"] == "Ranking: [Response" and client.calls[0]["logprobs"] is False
    assert out.extras["orders"][0] == out.extras["orders"][1] and len(out.extras["orders"][0]) == 3
    assert out.extras["rankings"][0] == [[1, 0, 2]] * 3
    assert out.extras["order_inconsistent"] == [0] * 5 and out.extras["comparisons"] == [2, 2, 2, 1, 1]
    assert out.extras["judge_calls"] == [3, 3, 3, 2, 2]


def test_position_biased_judge_cancels_and_is_reported():
    judge = ListwiseJudge(client=ScriptedClient(lambda p, j, s, pre: " " + " > ".join(_labels(p))))
    out = judge.score(["q"] * 3, ["mid one", "the longest answer", "x"])
    assert out.scores == [pytest.approx(0.5)] * 3  # shown first once, second once, last once
    assert out.extras["order_inconsistent"] == [2, 2, 2]  # every pair flips across orders
    assert out.extras["first_position_wins"] == out.extras["judge_calls"] == [3, 3, 3]


def test_parse_failures_singletons_and_limits():
    out = ListwiseJudge(client=ScriptedClient(lambda *a: " they are all fine")).score(["q", "q", "solo"], ["a", "b", "c"])
    assert out.scores == [None, None, None] and out.extras["parse_failures"] == [2, 2, 0]
    assert out.extras["reason"] == ["no ranking could be parsed"] * 2 + ["no other response to compare with"]
    judge = ListwiseJudge(client=ScriptedClient(_longest_first), permutations=1)
    out = judge.score(["q"] * 3, ["bb", "ccc", "a"])
    assert out.scores == [0.5, 1.0, 0.0] and out.extras["judge_calls"] == [1, 1, 1]
    with pytest.raises(ValueError, match="at most 26"):
        judge.score(["q"] * 27, [str(i) for i in range(27)])
    with pytest.raises(ValueError, match="responses"):
        ListwiseJudge(client=ScriptedClient(_longest_first), template="pairwise")


def test_principles_reach_the_listwise_prompt():
    client = ScriptedClient(_longest_first)
    ListwiseJudge(client=client).score(["q", "q"], ["a", "bb"], rubric=[["cite sources"], ["cite sources"]])
    assert all("[Rubric]\n- cite sources" in p for p in client.calls[0]["prompts"])


def test_eval_best_of_n_and_pairs_with_listwise_columns():
    judge = ListwiseJudge(client=ScriptedClient(_longest_first))
    records = [BestOfNRecord("b1", "q", ["the best and longest", "mid one", "x"], num_correct=1),
               BestOfNRecord("b2", "q", ["also the longest one", "tiny", "mid sized"], num_correct=1)]
    result, run = evaluate(judge, Dataset("best-of-n", records, source="mem"), n_boot=10, progress=False)
    assert result["overall"] == 1.0 and run.rows[0]["scores"] == [1.0, 0.5, 0.0]
    assert result["judge"]["position_consistency"] == 1.0 and result["judge"]["parse_failure_rate"] == 0.0
    biased = ListwiseJudge(client=ScriptedClient(lambda p, j, s, pre: " " + " > ".join(_labels(p))))
    pairs = [PairRecord(f"r{i}", "q", "good", "bad") for i in range(3)]
    result, _ = evaluate(biased, Dataset("pairs", pairs, source="mem"), n_boot=10, progress=False)
    assert result["judge"]["position_consistency"] == 0.0 and result["judge"]["first_position_rate"] == 1.0


def test_best_mode_reads_label_probabilities_and_cancels_position_bias():
    def shown_first_bias(p, j, s, pre):
        # names the first shown response, but its probabilities still favour the longest one a little
        labels = _labels(p)
        longest = max(labels, key=lambda x: len(section(p, f"Response {x}")))
        dist = {x: (0.5 if x == labels[0] else 0.0) + (0.3 if x == longest else 0.1) for x in labels}
        total = sum(dist.values())
        return " " + labels[0], {x: v / total for x, v in dist.items()}

    client = ScriptedClient(shown_first_bias)
    judge = ListwiseJudge(client=client, ask="best")
    out = judge.score(["q"] * 3, ["mid one", "the longest answer", "x"])
    assert client.calls[0]["prefix"] == "Best: Response" and client.calls[0]["logprobs"] is True
    assert "Best: Response <label>" in client.calls[0]["prompts"][0]
    assert out.scores[1] > out.scores[0] == pytest.approx(out.scores[2])  # bias cancels over the rotations
    assert sum(out.scores) == pytest.approx(1.0)
    assert out.extras["first_position_wins"] == [3, 3, 3]
    # the named best flips with the order: pairs involving a winner are checked and inconsistent
    assert out.extras["order_checked"] == [2, 2, 2] and out.extras["order_inconsistent"] == [2, 2, 2]
    hard = ListwiseJudge(client=ScriptedClient(shown_first_bias), ask="best", use_logprobs=False)
    assert hard.score(["q"] * 3, ["mid one", "the longest answer", "x"]).scores == [pytest.approx(1 / 3)] * 3
