import pytest
import torch

from rewardkit.rewards.implicit import DensityRatioReward, DPOReward, FollowUpReward
from rewardkit.specs import load_reward

PROMPTS = ["What is 2+3?", [{"role": "user", "content": "Say hi"}]]
COMPLETIONS = ["It is 5.", "Hi there!"]


@pytest.fixture(scope="module")
def two_lms(tiny_dirs, tmp_path_factory):
    """The fixture LM and a second random LM with the same tokenizer, saved to a directory."""
    from conftest import build_tiny_tokenizer, tiny_config
    from transformers import LlamaForCausalLM

    tok = build_tiny_tokenizer()
    torch.manual_seed(123)
    other = LlamaForCausalLM(tiny_config(tok))
    path = tmp_path_factory.mktemp("ref") / "lm2"
    other.save_pretrained(path)
    tok.save_pretrained(path)
    return str(tiny_dirs["lm"]), str(path)


def _sum_logprob(path, prompt, completion):
    from rewardkit.rewards.likelihood import LogLikelihoodReward

    r = LogLikelihoodReward(path, reduction="sum")
    enc = r.encode([prompt], [completion])[0]
    with torch.no_grad():
        logp = torch.log_softmax(r.model(torch.tensor([enc.input_ids])).logits[0].float(), -1)
    ids = enc.input_ids
    return sum(float(logp[t - 1, ids[t]]) for t in range(enc.completion_start, len(ids)))


def test_dpo_reward_is_beta_times_log_ratio(two_lms):
    policy, ref = two_lms
    reward = DPOReward(f"{policy},{ref}", beta=0.5)
    out = reward.score(PROMPTS, COMPLETIONS)
    for k in range(2):
        expected = 0.5 * (_sum_logprob(policy, PROMPTS[k], COMPLETIONS[k]) - _sum_logprob(ref, PROMPTS[k], COMPLETIONS[k]))
        assert out.scores[k] == pytest.approx(expected, abs=1e-4)
    assert out.extras["completion_tokens"][0] > 0 and out.extras["truncated"] == [False, False]
    same = DPOReward(policy, reference=policy).score(PROMPTS, COMPLETIONS).scores
    assert same == [pytest.approx(0.0, abs=1e-6)] * 2
    normalized = DPOReward(f"{policy},{ref}", beta=0.5, length_normalize=True).score(PROMPTS, COMPLETIONS).scores
    assert normalized[0] == pytest.approx(out.scores[0] / out.extras["completion_tokens"][0])


def test_specs_build_implicit_rewards(two_lms):
    policy, ref = two_lms
    dpo = load_reward(f"dpo:{policy},{ref}", max_length=64, seed=0)
    assert isinstance(dpo, DPOReward) and dpo.beta == 0.1 and dpo.policy.max_length == 64
    ratio = load_reward(f"ratio:{policy},{ref}")
    assert isinstance(ratio, DensityRatioReward) and ratio.beta == 1.0
    assert ratio.score(PROMPTS, COMPLETIONS).scores == pytest.approx([s * 10 for s in dpo.score(PROMPTS, COMPLETIONS).scores], abs=1e-4)
    with pytest.raises(ValueError, match="two models"):
        DPOReward(policy)


def test_empty_completion_scores_none(two_lms):
    policy, ref = two_lms
    out = DPOReward(f"{policy},{ref}", chat_template="off").score(["abc"], [""])
    assert out.scores == [None]


def test_follow_up_likelihood(two_lms):
    path = two_lms[0]
    flr = FollowUpReward(path, positive=["Thanks!"], negative=["Wrong."])
    head, turn = flr.encoder.render_follow_up("Q?", "A.", "Thanks!")
    assert turn.startswith("<|user|>") and "Thanks!" in turn and "A." in head and "Thanks!" not in head
    out = flr.score(PROMPTS, COMPLETIONS)
    # by hand: the follow-up turn's summed log-probability after the conversation
    for k in range(2):
        vals = []
        for f in ("Thanks!", "Wrong."):
            enc = flr.encoder.encode_follow_ups([PROMPTS[k]], [COMPLETIONS[k]], f)[0]
            with torch.no_grad():
                logp = torch.log_softmax(flr.model(torch.tensor([enc.input_ids])).logits[0].float(), -1)
            vals.append(sum(float(logp[t - 1, enc.input_ids[t]]) for t in range(enc.completion_start, len(enc))))
        assert out.scores[k] == pytest.approx(vals[0] - vals[1], abs=1e-4)
        assert out.extras["positive_logprob"][k] == pytest.approx(vals[0], abs=1e-4)
    only_pos = FollowUpReward(path, positive=["Thanks!"], negative=()).score(PROMPTS, COMPLETIONS)
    assert only_pos.scores == pytest.approx(out.extras["positive_logprob"], abs=1e-4)
    # the response matters: a different response gives a different follow-up likelihood
    assert flr.score([PROMPTS[0]], ["Something else entirely"]).scores[0] != pytest.approx(out.scores[0])
    assert isinstance(load_reward(f"flr:{path}"), FollowUpReward)
