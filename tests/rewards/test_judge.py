import pytest

from judge_helpers import ScriptedClient, section

from rewardkit.rewards.judge.text import ATTACK_PROBES, fill, is_substantive, load_template, parse_choice, parse_score
from rewardkit.rewards.judge import JudgeReward, PairwiseJudge, VerifierJudge


# ------------------------------------------------------------------ parsing
@pytest.mark.parametrize("text, expected", [
    ("Score: 4", 4.0), ("The answer is fine.\nScore: 2", 2.0), ("**Score:** 5", 5.0), ("I rate it 3/5", 3.0),
    ("Score: 1 ... on reflection Score: 4", 4.0), ("3", 3.0), ("Score: 9", None), ("no idea", None), ("", None),
])
def test_parse_score(text, expected):
    found = parse_score(text, 1, 5)
    assert (found[0] if found else None) == expected


@pytest.mark.parametrize("text, expected", [
    ("Verdict: A", "A"), ("verdict: [[B]]", "B"), ("[[A]]", "A"), ("Response B is better because", "B"),
    ("B\n\nbecause", "B"), ("Best: Response B", "B"), ("**Best:** [A]", "A"), ("the best a student can do", None), ("Best: Response [B]", "B"), ("Best: Response [A, B", None), ("A: 26\nB: 18", None), ("A.", "A"), ("Both are fine.", None), ("Verdict: incorrect", "incorrect"), ("Verdict: correct", "correct"),
])
def test_parse_choice(text, expected):
    found = parse_choice(text, ("A", "B", "correct", "incorrect"))
    assert (found[0] if found else None) == expected


def test_templates_are_files_and_fill_leaves_user_braces_alone():
    t = load_template("pointwise")
    out = fill(t, prompt="f(x) = {x}", response="{'a': 1}", principles="", min_score=1, max_score=5)
    assert "f(x) = {x}" in out and "{'a': 1}" in out and "{prompt}" not in out
    with pytest.raises(KeyError, match="response"):
        fill(t, prompt="p")
    with pytest.raises(FileNotFoundError, match="pairwise"):
        load_template("nope")


def test_substantive_content():
    assert not any(is_substantive(p) for p in ATTACK_PROBES)
    assert all(is_substantive(a) for a in ["18", "The answer is 42.", "x = 3", "Yes"])


# ------------------------------------------------------------------ pointwise
def test_pointwise_parse_failure_is_none_with_raw_text():
    client = ScriptedClient(lambda p, j, seed, pre: " 4" if "good" in section(p, "Response") else " whatever")
    judge = JudgeReward(client=client)
    out = judge.score(["q", "q"], ["a good answer", "bad"])
    assert out.scores == [4.0, None]
    assert out.extras["judge_raw"][1] == ["Score: whatever"]
    assert out.extras["parse_failures"] == [0, 1] and out.extras["judge_calls"] == [1, 1]
    assert client.calls[0]["prefix"] == "Score:" and client.calls[0]["temperature"] == 0.0


def test_pointwise_expected_score_from_logprobs():
    client = ScriptedClient(lambda p, j, seed, pre: (" 4", {"4": 0.5, "5": 0.25, "2": 0.25}))
    assert JudgeReward(client=client).score(["q"], ["a"]).scores == [pytest.approx(0.5 * 4 + 0.25 * 5 + 0.25 * 2)]
    assert JudgeReward(client=client, use_logprobs=False).score(["q"], ["a"]).scores == [4.0]


def test_k_samples_vote_and_mean():
    votes = [" 5", " 1", " 5", " 2"]
    client = ScriptedClient(lambda p, j, seed, pre: votes[j])
    mean = JudgeReward(client=client, samples=4, use_logprobs=False)
    assert mean.score(["q"], ["a"]).scores == [pytest.approx(13 / 4)]
    assert client.calls[-1]["n"] == 4 and client.calls[-1]["temperature"] == 0.7
    vote = JudgeReward(client=client, samples=4, aggregate="vote", use_logprobs=False)
    assert vote.score(["q"], ["a"]).scores == [5.0]
    with pytest.raises(ValueError, match="temperature"):
        JudgeReward(client=client, samples=2, temperature=0.0)


def test_meta_filter_keeps_the_best_critiques():
    from rewardkit.protocol import reward

    critiques = [" 1 lazy", " 5 careful detailed check", " 2 meh", " 4 careful check"]
    client = ScriptedClient(lambda p, j, seed, pre: critiques[j])
    meta = reward(lambda prompts, completions: [float(len(c)) for c in completions], name="longest")
    judge = JudgeReward(client=client, samples=4, meta_filter=meta, meta_keep=0.5, use_logprobs=False)
    assert judge.score(["q"], ["a"]).scores == [pytest.approx(4.5)]  # keeps the two longest: 5 and 4


def test_principles_from_column_global_and_generated():
    seen = []
    client = ScriptedClient(lambda p, j, seed, pre: (seen.append(p), "- be exact" if "List three" in p else " 3")[1])
    JudgeReward(client=client, principles=["Be concise."]).score(["q1", "q2"], ["a", "b"], principles=["Cite sources.", None])
    judged = [p for p in seen if "[Response]" in p]
    assert "Cite sources." in judged[0] and "Be concise." in judged[1]
    seen.clear()
    JudgeReward(client=client).score(["q1"], ["a"], rubric=[["correct", "polite"]])
    assert "[Rubric]\n- correct\n- polite" in seen[0]
    seen.clear()
    judge = JudgeReward(client=client, generate_principles=True)
    judge.score(["q1", "q1", "q2"], ["a", "b", "c"])
    judge.score(["q1"], ["d"])
    assert sum("List three" in p for p in seen) == 2  # once per distinct prompt, cached
    assert all("- be exact" in p for p in seen if "[Response]" in p)


# ------------------------------------------------------------------ pairwise
def _longer_wins(p, j, seed, pre):
    a, b = section(p, "Response A"), section(p, "Response B")
    return " A" if len(a) > len(b) else " B"


def test_pairwise_both_orders_consistent_judge():
    judge = PairwiseJudge(client=ScriptedClient(_longer_wins), use_logprobs=False)
    out = judge.score(["q", "q", "r", "r"], ["long answer", "short", "x", "longer"])
    assert out.scores == [1.0, 0.0, 0.0, 1.0]
    assert out.extras["order_inconsistent"] == [0, 0, 0, 0]
    assert out.extras["judge_calls"] == [2, 2, 2, 2] and out.extras["comparisons"] == [1, 1, 1, 1]
    assert out.extras["first_position_wins"] == [1, 1, 1, 1]


def test_pairwise_position_biased_judge_is_reported_not_hidden():
    judge = PairwiseJudge(client=ScriptedClient(lambda p, j, s, pre: " A"), use_logprobs=False)
    out = judge.score(["q", "q"], ["one", "two"])
    assert out.scores == [0.5, 0.5]
    assert out.extras["order_inconsistent"] == [1, 1] and out.extras["first_position_wins"] == [2, 2]


def test_pairwise_soft_verdicts_cancel_position_bias():
    # always prefers position A, but a bit less when the better (longer) answer is in B
    def biased(p, j, s, pre):
        better_first = len(section(p, "Response A")) > len(section(p, "Response B"))
        return (" A", {"A": 0.9, "B": 0.1}) if better_first else (" A", {"A": 0.7, "B": 0.3})

    out = PairwiseJudge(client=ScriptedClient(biased)).score(["q", "q"], ["long answer", "short"])
    assert out.scores[0] == pytest.approx((0.9 + 0.3) / 2) and out.scores[0] > out.scores[1]


def test_pairwise_round_robin_groups_and_singletons():
    judge = PairwiseJudge(client=ScriptedClient(_longer_wins), use_logprobs=False)
    out = judge.score(["q"] * 3 + ["alone"], ["aaa", "a", "aa", "x"])
    assert out.scores[:3] == [1.0, 0.0, 0.5] and out.scores[3] is None
    assert out.extras["reason"][3] == "no other response to compare with"
    # group_id (the eval runner passes record ids) beats the prompt as the group key
    out = judge.score(["q"] * 4, ["aaa", "a", "aa", "aaaa"], group_id=[1, 1, 2, 2])
    assert out.scores == [1.0, 0.0, 0.0, 1.0]


def test_pairwise_random_order_is_seeded_and_recorded():
    client = ScriptedClient(_longer_wins)
    a = PairwiseJudge(client=client, order="random", seed=1, use_logprobs=False)
    data = (["q"] * 2 + ["r"] * 2 + ["s"] * 2, ["long one", "x", "yy", "longer", "z", "zzzz"])
    o1, o2 = a.score(*data), a.score(*data)
    assert o1.extras["orders"] == o2.extras["orders"] and o1.scores == o2.scores == [1.0, 0.0, 0.0, 1.0, 0.0, 1.0]
    assert o1.extras["judge_calls"] == [1] * 6
    firsts = {tuple(o[0]) for o in o1.extras["orders"]}
    assert len({pair[0] % 2 for pair in firsts}) == 2  # not always the same position first


def test_pairwise_unparsable_pair_is_none():
    out = PairwiseJudge(client=ScriptedClient(lambda *a: " both are fine")).score(["q", "q"], ["a", "b"])
    assert out.scores == [None, None] and out.extras["parse_failures"] == [2, 2]
    assert out.extras["reason"] == ["no verdict could be parsed"] * 2


# ------------------------------------------------------------------ verifier
def _gullible(p, j, s, pre):
    return " correct"


def test_verifier_hardening_against_one_token_attacks():
    probes = list(ATTACK_PROBES)
    n = len(probes)
    soft = VerifierJudge(client=ScriptedClient(_gullible), harden=False)
    assert soft.score(["q"] * n, probes, answer=["5"] * n).scores == [1.0] * n  # fooled every time
    hard = VerifierJudge(client=ScriptedClient(_gullible))
    out = hard.score(["q"] * n, probes, answer=["5"] * n)
    assert out.scores == [0.0] * n and all(out.extras["rejected_empty"]) and out.extras["judge_calls"] == [0] * n


def test_verifier_reference_and_columns():
    def check(p, j, s, pre):
        return " correct" if section(p, "Reference answer") in section(p, "Response") else " incorrect"

    v = VerifierJudge(client=ScriptedClient(check))
    assert v.score(["q", "q"], ["so 18", "so 17"], answer=["18", "18"]).scores == [1.0, 0.0]
    assert v.score(["q"], ["so 18"], reference=["18"]).scores == [1.0]
    from rewardkit.protocol import MissingColumnError

    with pytest.raises(MissingColumnError, match="answer"):
        v.score(["q"], ["so 18"])


# ------------------------------------------------------------------ meta-filter
def test_critique_checks_each_can_fail():
    from rewardkit.rewards.judge.text import critique_checks

    task = "[Request]\nWhat is 2+3?\n\n[Response A]\nTwo plus three is five, so the answer is 5 for sure.\n\n[Response B]\n6"
    good = "Response A adds the numbers correctly while B gives a wrong total without any working.\nVerdict: A"
    assert all(critique_checks(task, good).values())
    assert not critique_checks(task, "Verdict: A")["reasons"]
    assert not critique_checks(task, "Two plus three is five, so the answer is 5 for sure. Verdict: A")["not_copied"]
    assert not critique_checks(task, "the answer is the answer is " * 8 + "Verdict: B")["not_repetitive"]
    assert not critique_checks(task, good + "\nOn reflection, Verdict: B")["single_verdict"]


GOOD_A = "Response A adds the numbers correctly while B gives a wrong total without any working.\nVerdict: A"
GOOD_B = "Response B adds the numbers correctly while A gives a wrong total without any working.\nVerdict: B"


def _noisy_critic(p, j, seed, pre):
    """k=4 critiques per prompt: one careful (picks the longer response), three lazy bare verdicts for the other."""
    better_first = len(section(p, "Response A")) > len(section(p, "Response B"))
    if j == 0:
        return GOOD_A if better_first else GOOD_B
    return "Verdict: B" if better_first else "Verdict: A"


def test_meta_filter_rules_discard_bare_verdicts_before_voting():
    kw = dict(template="pairwise", samples=4, aggregate="vote", use_logprobs=False)
    data = (["q", "q"], ["a long careful answer", "short"])
    plain = PairwiseJudge(client=ScriptedClient(_noisy_critic), **kw).score(*data)
    assert plain.scores == [0.0, 1.0]  # the lazy majority wins
    judge = PairwiseJudge(client=ScriptedClient(_noisy_critic), meta_filter="critique-rules", meta_keep=1.0, meta_min=1.0, **kw)
    out = judge.score(*data)
    assert out.scores == [1.0, 0.0]  # only the careful critique votes
    assert out.extras["meta_discarded"] == [6, 6]  # 3 per order, counted for both samples


def test_meta_min_keeps_the_best_when_none_passes_and_reports_scores():
    client = ScriptedClient(lambda p, j, s, pre: [" 2", " 4"][j])
    judge = JudgeReward(client=client, template="pointwise", answer_prefix="Score:", samples=2, meta_filter="critique-rules",
                        meta_keep=1.0, meta_min=1.0, use_logprobs=False)
    out = judge.score(["q"], ["a"])
    assert out.scores == [2.0]  # all critiques fail "reasons"; the first of the tied best stays
    assert out.extras["meta_discarded"] == [1] and out.extras["meta_scores"] == [[0.75, 0.75]]


def test_meta_filter_critique_judge_asks_the_same_client_to_rate_critiques():
    def answer(p, j, s, pre):
        if "[Critique]" in p:  # the meta-judge: rates critiques that give reasons higher
            return " 5" if "correctly" in section(p, "Critique") else " 1"
        return _noisy_critic(p, j, s, pre)

    client = ScriptedClient(answer)
    judge = PairwiseJudge(client=client, template="pairwise", samples=4, aggregate="vote", use_logprobs=False,
                          meta_filter="critique-judge", meta_keep=0.25)
    assert judge.score(["q", "q"], ["a long careful answer", "short"]).scores == [1.0, 0.0]
    assert any("[Critique]" in p for c in client.calls for p in c["prompts"])


def test_verifier_and_pairwise_take_principles_and_templates_must_use_them(tmp_path):
    seen = []
    client = ScriptedClient(lambda p, j, s, pre: (seen.append(p), "- check units" if "List three" in p else " correct")[1])
    VerifierJudge(client=client).score(["q", "q"], ["so 18", "so 17"], answer=["18", "18"], rubric=[["units must match"], None])
    assert "[Rubric]\n- units must match" in seen[0] and "[Rubric]" not in seen[1]
    seen.clear()
    pw = PairwiseJudge(client=ScriptedClient(lambda p, j, s, pre: (seen.append(p), "- be exact" if "List three" in p else " A")[1]),
                       generate_principles=True, use_logprobs=False)
    pw.score(["q", "q"], ["a", "b"])
    assert "List three" in seen[0] and all("- be exact" in p for p in seen[1:]) and len(seen) == 3  # principles first, then both orders
    bare = tmp_path / "bare.txt"
    bare.write_text("Is {response} right for {prompt}? Score:")
    with pytest.raises(ValueError, match="no \\{principles\\}"):
        JudgeReward(client=client, template=str(bare)).score(["q"], ["a"], principles=["be kind"])
    assert JudgeReward(client=ScriptedClient(lambda *a: " 3"), template=str(bare)).score(["q"], ["a"]).scores == [3.0]


def test_judge_statistics_reach_a_trainers_log_metric_callback():
    client = ScriptedClient(lambda prompt, j, seed, prefix: " A")  # always the first shown: fully position-biased
    judge = PairwiseJudge(client=client, use_logprobs=False)
    logged = {}
    scores = judge(prompts=["q", "q"], completions=["one", "two"], log_metric=lambda name, value: logged.__setitem__(name, value),
                   trainer_state=object())
    assert scores == [0.5, 0.5]
    assert logged[f"{judge.name}/unscored"] == 0.0
    assert logged[f"{judge.name}/position_consistency"] == 0.0 and logged[f"{judge.name}/first_position_rate"] == 1.0
