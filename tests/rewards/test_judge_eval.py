"""Judges through the eval runner, and the same verdicts locally and over HTTP."""
import sys
from pathlib import Path

import pytest

from judge_helpers import ScriptedClient, section

from rewardkit.data.formats import Dataset
from rewardkit.evals.runner import evaluate
from rewardkit.rewards.judge import JudgeReward, PairwiseJudge, VerifierJudge
from rewardkit.types import BestOfNRecord, PairRecord

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "clients"))
from client_helpers import OpenAIServerThread, tiny_client  # noqa: E402


def _longer_wins(p, j, seed, pre):
    return " A" if len(section(p, "Response A")) > len(section(p, "Response B")) else " B"


def test_eval_runner_groups_pairs_by_record_and_summarizes_judge_columns():
    # two records share a prompt: they must be judged as two separate pairs, not a 4-way round robin
    records = [PairRecord("r1", "q", "a long answer", "short"), PairRecord("r2", "q", "longer answer here", "tiny"),
               PairRecord("r3", "z", "x", "a longer wrong one")]
    judge = PairwiseJudge(client=ScriptedClient(_longer_wins), use_logprobs=False)
    result, run = evaluate(judge, Dataset("pairs", records, source="mem"), n_boot=10, progress=False)
    assert result["overall"] == pytest.approx(2 / 3)
    assert [r["chosen_details"]["comparisons"] for r in run.rows] == [1, 1, 1]
    assert result["judge"]["position_consistency"] == 1.0 and result["judge"]["parse_failure_rate"] == 0.0
    assert result["judge"]["first_position_rate"] == 0.5


def test_eval_runner_best_of_n_round_robin():
    records = [BestOfNRecord("b1", "q", ["the best and longest", "mid one", "x"], num_correct=1)]
    judge = PairwiseJudge(client=ScriptedClient(_longer_wins), use_logprobs=False)
    result, run = evaluate(judge, Dataset("best-of-n", records, source="mem"), n_boot=10, progress=False)
    assert run.rows[0]["scores"] == [1.0, 0.5, 0.0] and result["overall"] == 1.0


def test_position_bias_shows_in_eval_summary():
    records = [PairRecord(f"r{i}", f"q{i}", "good", "bad") for i in range(4)]
    judge = PairwiseJudge(client=ScriptedClient(lambda *a: " A"), use_logprobs=False)
    result, _ = evaluate(judge, Dataset("pairs", records, source="mem"), n_boot=10, progress=False)
    assert result["judge"]["position_consistency"] == 0.0 and result["judge"]["first_position_rate"] == 1.0
    assert result["ties"] == 4  # inconsistent verdicts are split decisions, not wins


def test_pointwise_judge_same_seed_same_verdicts_locally_and_over_http():
    """Sampled judgments (k=3) are reproducible, and a server running the same model gives the same ones."""
    local = tiny_client()
    kw = dict(samples=3, temperature=1.0, max_new_tokens=6, seed=5)
    prompts, comps = ["What is 2+3?", "Say hi"], ["5", "hello"]
    a = JudgeReward(client=local, **kw).score(prompts, comps)
    b = JudgeReward(client=local, **kw).score(prompts, comps)
    assert a.extras["judge_raw"] == b.extras["judge_raw"] and a.scores == b.scores
    assert len(set(a.extras["judge_raw"][0])) > 1  # three different draws
    with OpenAIServerThread(local, model_name="tiny") as srv:
        remote = JudgeReward(f"openai:tiny@{srv.url}/v1", **kw).score(prompts, comps)
    assert remote.extras["judge_raw"] == a.extras["judge_raw"] and remote.scores == a.scores
    other = JudgeReward(client=local, **{**kw, "seed": 6}).score(prompts, comps)
    assert other.extras["judge_raw"] != a.extras["judge_raw"]


@pytest.mark.slow
def test_embedded_pairwise_and_verifier_same_locally_and_over_http(embedded_available):
    from rewardkit.clients import LocalClient

    local = LocalClient("default")
    prompts = ["What is 12 + 30?"] * 2
    comps = ["12 + 30 = 42. The answer is 42.", "12 + 30 = 52. The answer is 52."]
    pw = PairwiseJudge(client=local).score(prompts, comps)
    ver = VerifierJudge(client=local).score(prompts, comps, answer=["42", "42"])
    assert all(s is not None for s in pw.scores) and pw.extras["parse_failures"] == [0, 0]
    assert sum(pw.scores) == pytest.approx(1.0)
    with OpenAIServerThread(local, model_name="smol") as srv:
        url = f"openai:smol@{srv.url}"
        pw_http = PairwiseJudge(url).score(prompts, comps)
        ver_http = VerifierJudge(url).score(prompts, comps, answer=["42", "42"])
    # verdict texts are identical; probabilities agree to fp32 batch noise (the project-wide 1e-5)
    assert pw_http.scores == pytest.approx(pw.scores, abs=1e-5) and pw_http.extras["judge_raw"] == pw.extras["judge_raw"]
    assert ver_http.scores == ver.scores and ver_http.extras["judge_raw"] == ver.extras["judge_raw"]


def test_verifier_eval_reports_attack_probe_false_positives():
    def gullible_but_right(p, j, s, pre):
        resp = section(p, "Response")
        ref = section(p, "Reference answer")
        return " correct" if ref in resp or not any(ch.isdigit() for ch in resp) else " incorrect"

    records = [PairRecord(f"r{i}", f"q{i}", f"so {i}", f"so {i + 1}", columns={"answer": str(i)}) for i in range(3)]
    verifier = VerifierJudge(client=ScriptedClient(gullible_but_right))
    result, _ = evaluate(verifier, Dataset("pairs", records, source="mem"), n_boot=10, progress=False)
    assert result["overall"] == 1.0
    probes = result["attack_probes"]
    assert probes["items"] == 3 and probes["false_positive_rate_unhardened"] == 1.0 and probes["false_positive_rate"] == 0.0
    assert verifier.harden is True  # restored after probing
    unhardened = VerifierJudge(client=ScriptedClient(gullible_but_right), harden=False)
    assert unhardened.attack_probes(records)["false_positive_rate"] == 1.0


def test_verifier_rows_without_gold_are_not_applicable():
    records = [PairRecord("a", "q", "so 1", "so 2", columns={"answer": "1"}), PairRecord("b", "q2", "x", "y")]
    verifier = VerifierJudge(client=ScriptedClient(lambda p, j, s, pre: " correct" if "1" in section(p, "Response") else " incorrect"))
    result, _ = evaluate(verifier, Dataset("pairs", records, source="mem"), n_boot=10, progress=False)
    assert result["n"] == 1 and result["not_applicable"] == 1 and result["overall"] == 1.0


def test_meta_filter_discards_show_in_eval_summary():
    good = "Response A adds the numbers correctly while B gives a wrong total without any working.\nVerdict: A"
    records = [PairRecord(f"r{i}", f"q{i}", "good", "bad") for i in range(2)]
    client = ScriptedClient(lambda p, j, s, pre: good if j == 0 else "Verdict: A")
    judge = PairwiseJudge(client=client, template="pairwise", samples=2, use_logprobs=False, meta_filter="critique-rules",
                          meta_keep=1.0, meta_min=1.0)
    result, _ = evaluate(judge, Dataset("pairs", records, source="mem"), n_boot=10, progress=False)
    assert result["judge"]["meta_discard_rate"] == 0.5


def test_a_judge_inside_a_composition_still_compares_each_record_alone_in_an_eval():
    """Records that share a prompt: the judge inside an ensemble compares a record's own two completions
    (the capability is found through the composition), not all four of that prompt."""
    from rewardkit.data.formats import Dataset
    from rewardkit.evals.runner import evaluate
    from rewardkit.rewards.baselines import LengthReward
    from rewardkit.rewards.ensemble import EnsembleReward
    from rewardkit.rewards.judge import PairwiseJudge
    from rewardkit.types import PairRecord

    client = ScriptedClient(lambda prompt, j, seed, prefix: " A" if len(section(prompt, "Response A")) >= len(section(prompt, "Response B")) else " B")
    judge = PairwiseJudge(client=client, use_logprobs=False)
    records = [PairRecord("r1", "same", "a long good answer", "short"), PairRecord("r2", "same", "also quite long", "tiny")]
    data = Dataset("pairs", records, "inline", "pairwise")
    result, run = evaluate(EnsembleReward([judge, LengthReward()]), data, n_boot=10)
    assert len(client.calls[0]["prompts"]) == 4  # two records x one pair x both orders, not 4 responses round robin (12)
    assert result["overall"] == 1.0
