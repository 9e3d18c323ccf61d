"""The embedded default model (``loglik:default``) behind a real server: remote == local on a handful
of samples, through both APIs."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from serve_helpers import COMPLETIONS, PROMPTS, ServerThread

from rewardkit.rewards.remote import RemoteReward


@pytest.mark.slow
def test_embedded_loglik_remote_equals_local(embedded_loglik):
    expected = embedded_loglik.score(PROMPTS, COMPLETIONS)
    with ServerThread(embedded_loglik) as srv, RemoteReward(srv.url) as remote:
        got = remote.score(PROMPTS, COMPLETIONS)
        assert max(abs(a - b) for a, b in zip(got.scores, expected.scores)) < 1e-6
        assert got.extras["completion_tokens"] == expected.extras["completion_tokens"]
        # concurrent one-sample requests, merged into shared batches on the server
        with ThreadPoolExecutor(4) as pool:
            singles = list(pool.map(lambda i: remote.score([PROMPTS[i]], [COMPLETIONS[i]]).scores[0], range(4)))
        # merged with other requests, a sample's score may move in the last fp32 bits (the batch
        # invariance tolerance of tests/invariant)
        assert max(abs(a - b) for a, b in zip(singles, expected.scores)) < 1e-5

        # OpenRLHF: the query is the chat-templated prompt followed by the response
        tok = embedded_loglik.tokenizer
        prompt = tok.apply_chat_template([{"role": "user", "content": "What is 2+2?"}], tokenize=False, add_generation_prompt=True)
        with srv.client() as client:
            r = client.post("/get_reward", json={"query": [prompt + "4"], "prompts": [prompt], "labels": ["4"]})
        assert r.status_code == 200, r.text
        assert r.json()["rewards"][0] == pytest.approx(embedded_loglik.score([[{"role": "user", "content": "What is 2+2?"}]], ["4"]).scores[0], abs=1e-5)


def test_get_reward_scores_the_text_v1_score_scores(embedded_classifier):
    """OpenRLHF decodes with special tokens: the query is the rendered prompt, the response and its
    end-of-turn token. /get_reward must score what /v1/score scores for the same conversation, for the
    packaged classifier (its template's end of turn) and for a rule (the bare response)."""
    from rewardkit.rewards.rules import load_rule

    tok = embedded_classifier.tokenizer
    conversation = [{"role": "user", "content": "Reply with a JSON object holding the answer to 2+3."}]
    prompt = tok.apply_chat_template(conversation, tokenize=False, add_generation_prompt=True)
    response = '{"answer": 5}'
    for reward in (embedded_classifier, load_rule("json")):
        with ServerThread(reward) as srv, srv.client() as client:
            direct = client.post("/v1/score", json={"prompts": [conversation], "completions": [response]}).json()["scores"][0]
            for query in (prompt + response + tok.eos_token, prompt + response + tok.eos_token + "<|endoftext|>"):
                r = client.post("/get_reward", json={"query": [query], "prompts": [prompt], "labels": [None]})
                assert r.status_code == 200, r.text
                assert r.json()["rewards"][0] == pytest.approx(direct, abs=1e-5), (reward, query)
    assert load_rule("json").score(["p"], [response]).scores == [1.0]
