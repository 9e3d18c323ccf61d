"""The other RL stacks' protocols against a real server on loopback, each posting exactly the payload
the client's own code builds (restated from it; file and version at each test), with cheap rewards
(``length``, ``rule:math``): the number each client reads, an unscored sample (422 naming it, or
``--unscored-reward``), a bad payload (422 naming the field) and the token."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from serve_helpers import RecordingReward, ServerThread

from rewardkit import load_reward
from rewardkit.protocol import BaseReward, completion_text
from rewardkit.serve.app import ServeSettings
from rewardkit.types import RewardOutput

TOKEN = "s3cret-token"


@pytest.fixture(scope="module")
def math_server():
    with ServerThread(load_reward("rule:math")) as srv:
        yield srv


@pytest.fixture(scope="module")
def lenient_server():
    with ServerThread(load_reward("rule:math"), ServeSettings(unscored_reward=-1.0)) as srv:
        yield srv


# ------------------------------------------------------------------------------------------- slime
def slime_payload(prompt, response, label):
    # slime 0.3.1 (commit 624b824a), slime/rollout/rm_hub/__init__.py, remote_rm:
    #   payload = {"prompt": sample.prompt, "response": sample.response, "label": sample.label}
    #   async with session.post(args.rm_url, json=payload) as resp: resp.raise_for_status(); return await resp.json()
    # and the returned JSON becomes sample.reward (a bare number when --reward-key is not set)
    return {"prompt": prompt, "response": response, "label": label}


TEMPLATED = "<|im_start|>user\nWhat is 2+2? Put the answer in \\boxed{}.<|im_end|>\n<|im_start|>assistant\n"


def test_slime_returns_a_bare_number(math_server):
    with math_server.client() as client:
        r = client.post("/slime", json=slime_payload(TEMPLATED, "So \\boxed{4}.", "4"))
        assert r.status_code == 200, r.text
        assert r.json() == 1.0  # what slime keeps as sample.reward
        wrong = client.post("/slime", json=slime_payload(TEMPLATED, "\\boxed{5}", "4"))
        assert wrong.json() == 0.0
        # sample.prompt is a message list when slime does not apply the chat template (multimodal data)
        chat = [{"role": "user", "content": [{"type": "text", "text": "What is 2+2?"}]}]
        assert client.post("/slime", json=slime_payload(chat, "\\boxed{4}", "4")).json() == 1.0


def test_slime_unscored_sample(math_server, lenient_server):
    payload = slime_payload(TEMPLATED, "I do not know.", "4")
    with math_server.client() as client:
        r = client.post("/slime", json=payload)
        assert r.status_code == 422 and r.json()["error"] == "unscored_sample" and r.json()["field"] == "response"
        assert "no final answer" in r.json()["message"] and "--unscored-reward" in r.json()["message"]
        # label None (a dataset without --label-key): no answer column, and rule:math says it needs one
        r = client.post("/slime", json=slime_payload(TEMPLATED, "\\boxed{4}", None))
        assert r.status_code == 422 and r.json()["error"] == "missing_column" and r.json()["field"] == "answer"
    with lenient_server.client() as client:
        assert client.post("/slime", json=payload).json() == -1.0


def test_slime_bad_payload(math_server):
    with math_server.client() as client:
        r = client.post("/slime", json={"prompt": TEMPLATED, "label": "4"})
        assert r.status_code == 422 and r.json()["field"] == "response"
        r = client.post("/slime", json={"prompt": [{"content": "no role"}], "response": "4", "label": "4"})
        assert r.status_code == 422 and r.json()["field"] == "prompt[0]"


def test_slime_concurrent_samples_share_model_calls():
    reward = RecordingReward(delay=0.2)
    with ServerThread(reward) as srv, srv.client() as client:
        with ThreadPoolExecutor(8) as pool:  # slime sends every sample of a rollout as its own request, concurrently
            got = list(pool.map(lambda i: client.post("/slime", json=slime_payload("p", "w " * (i + 1), None)).json(), range(8)))
        assert got == [float(i + 1) for i in range(8)]
        assert len(reward.calls) < 8  # micro-batched


# ---------------------------------------------------------------------------------------- NeMo Gym
def nemo_verify_payload(text: str, expected_answer: str) -> dict:
    # NeMo Gym 0.5.1 (commit 07d6b0d0), responses_api_agents/simple_agent/app.py, SimpleAgent.run:
    #   verify_request = SimpleAgentVerifyRequest.model_validate(body.model_dump() | {"response": model_response_json})
    #   await self.server_client.post(server_name=..., url_path="/verify", json=verify_request.model_dump(), ...)
    # body is the task row (resources_servers/math_with_judge/data/example.jsonl: responses_create_params,
    # question, expected_answer) and the response a Responses API object; restated from
    # resources_servers/math_with_judge/data/example_rollouts.jsonl (fields as dumped there)
    question = "What is 2+2?"
    return {
        "responses_create_params": {
            "background": None, "include": None,
            "input": [{"content": f"Solve the following math problem. Make sure to put the answer (and only answer) inside "
                                  f"\\boxed{{}}.\n\n{question}", "role": "user", "type": "message"}],
            "instructions": None, "max_output_tokens": None, "max_tool_calls": None, "metadata": None, "model": None,
            "parallel_tool_calls": True, "previous_response_id": None, "prompt": None, "reasoning": None, "service_tier": None,
            "store": None, "temperature": None, "text": None, "tool_choice": "auto", "tools": [], "top_logprobs": None,
            "top_p": None, "truncation": None, "user": None, "stream": None,
        },
        "response": {
            "id": "resp_08fb", "created_at": 1761955953.0, "error": None, "incomplete_details": None, "instructions": None,
            "metadata": {}, "model": "policy", "object": "response",
            "output": [
                {"id": "rs_08fb", "summary": [], "type": "reasoning", "encrypted_content": None},
                {"id": "msg_08fb", "content": [{"annotations": [], "text": text, "type": "output_text", "logprobs": []}],
                 "role": "assistant", "status": "completed", "type": "message"},
            ],
            "parallel_tool_calls": True, "temperature": 1.0, "tool_choice": "auto", "tools": [], "top_p": 1.0,
            "status": "completed", "usage": {"input_tokens": 84, "input_tokens_details": {"cached_tokens": 0}, "output_tokens": 4,
                                              "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 88},
        },
        "question": question,
        "expected_answer": expected_answer,
    }


def test_nemo_gym_verify(math_server):
    payload = nemo_verify_payload("\\boxed{4}", "4")
    with math_server.client() as client:
        # SimpleAgent.run first posts the task row to /seed_session and raises on an error status
        seed = client.post("/seed_session", json={k: v for k, v in payload.items() if k != "response"})
        assert seed.status_code == 200 and seed.json() == {}
        assert client.post("/ng-rollout/r-17/seed_session", json={}).json() == {}
        r = client.post("/verify", json=payload)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["reward"] == 1.0 and body["unscored"] is False and body["unscored_reason"] is None
        # BaseVerifyResponse extends BaseVerifyRequest: the agent validates the echoed row and response
        for key in ("responses_create_params", "response", "question", "expected_answer"):
            assert body[key] == payload[key]
        assert body["reward_extras"]["extracted"] == "4"
        assert client.post("/verify", json=nemo_verify_payload("\\boxed{5}", "4")).json()["reward"] == 0.0
        # with NeMo Gym's observability on, the server client prefixes the path with /ng-rollout/<rollout id>
        traced = client.post("/ng-rollout/r-17/verify", json=payload)
        assert traced.status_code == 200 and traced.json()["reward"] == 1.0
        metrics = client.get("/metrics").text  # counted under their own endpoint labels, the traced path as /verify
        assert 'endpoint="/verify",status="200"} 3.0' in metrics and 'endpoint="/seed_session",status="200"} 2.0' in metrics


def test_nemo_gym_prompt_and_components():
    reward = load_reward("ensemble:mean(length, rule:math)")
    with ServerThread(reward) as srv, srv.client() as client:
        payload = nemo_verify_payload("\\boxed{4}", "4")
        r = client.post("/verify", json=payload)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["reward_components"] == {"length": 1.0, "rule:math": 1.0}  # BaseMultiRewardVerifyResponse
        assert body["reward"] == 1.0


def test_nemo_gym_unscored_and_bad_payload(math_server, lenient_server):
    payload = nemo_verify_payload("I cannot solve it.", "4")
    with math_server.client() as client:
        r = client.post("/verify", json=payload)
        assert r.status_code == 422 and r.json()["error"] == "unscored_sample" and "NeMo Gym" in r.json()["message"]
        assert r.json()["field"] == "response"
        bad = nemo_verify_payload("\\boxed{4}", "4")
        del bad["response"]["output"]
        r = client.post("/verify", json=bad)
        assert r.status_code == 422 and r.json()["field"] == "response.output"
        bad = nemo_verify_payload("\\boxed{4}", "4")
        bad["responses_create_params"]["input"] = [{"content": "no role", "type": "message"}]
        r = client.post("/verify", json=bad)
        assert r.status_code == 422 and r.json()["field"] == "responses_create_params.input[0]"
    with lenient_server.client() as client:
        body = client.post("/verify", json=payload).json()
        assert body["reward"] == -1.0 and body["unscored"] is True and "no final answer" in body["unscored_reason"]


# ------------------------------------------------------------------------------------ vLLM /classify
def verl_classify_payload(model_name: str, disrm_prompt: str) -> dict:
    # verl 0.8.0.dev (commit b178a3cd), verl/experimental/reward_loop/reward_loop.py, compute_score_disrm (vllm engine):
    #   payloads = {"model": model_name, "input": disrm_prompt, "activation": False}
    #   output = await self._post_request(payloads, "classify"); rm_score = output["data"][-1]["probs"][-1]
    # disrm_prompt is the reward model's chat template applied to the raw prompt + the decoded response
    return {"model": model_name, "input": disrm_prompt, "activation": False}


def test_classify_as_verl_reads_it():
    with ServerThread(load_reward("length")) as srv, srv.client() as client:
        r = client.post("/classify", json=verl_classify_payload("my-rm", "<|user|> What is 2+2? <|assistant|> four"))
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["data"][-1]["probs"][-1] == 6.0  # what verl uses as the score: the whole text is the sample
        assert body["object"] == "list" and body["model"] == "my-rm" and body["id"].startswith("classify-")
        assert isinstance(body["created"], int) and body["usage"]["prompt_tokens"] == 0
        assert body["data"] == [{"index": 0, "label": None, "probs": [6.0], "num_classes": 1}]
        # vLLM's other request shapes: a list of texts (one sample each), and a chat (split at the final assistant message)
        many = client.post("/classify", json={"model": "my-rm", "input": ["a", "a b"]}).json()
        assert [d["probs"] for d in many["data"]] == [[1.0], [2.0]] and [d["index"] for d in many["data"]] == [0, 1]
        chat = client.post("/classify", json={"messages": [{"role": "user", "content": "Hi there"},
                                                            {"role": "assistant", "content": "hello you all"}]}).json()
        assert chat["data"][0]["probs"] == [3.0] and chat["model"] == "length"


def test_classify_multi_objective_puts_the_score_last():
    with ServerThread(load_reward("ensemble:mean(length, length)")) as srv, srv.client() as client:
        body = client.post("/classify", json=verl_classify_payload("rm", "one two")).json()
        assert body["data"][0]["probs"] == [2.0, 2.0, 2.0] and body["data"][0]["num_classes"] == 3


def test_classify_bad_payload(math_server):
    with math_server.client() as client:
        r = client.post("/classify", json=verl_classify_payload("rm", "\\boxed{4}"))  # rule:math needs a gold answer
        assert r.status_code == 422 and r.json()["error"] == "missing_column"
        r = client.post("/classify", json={"model": "rm", "input": [[1, 2, 3]]})
        assert r.status_code == 422 and r.json()["field"] == "input[0]" and "token ids" in r.json()["message"]
        r = client.post("/classify", json={"model": "rm"})
        assert r.status_code == 422 and r.json()["field"] == "input"
        r = client.post("/classify", json={"messages": [{"role": "user", "content": "no response"}]})
        assert r.status_code == 422 and r.json()["field"] == "messages"


class Abstains(BaseReward):
    """Word count, but no score (with a reason) for a text holding ``??``, and NaN for one saying ``nan``."""

    name = "abstains"

    def score(self, prompts, completions, **columns) -> RewardOutput:
        texts = [completion_text(c) for c in completions]
        scores = [None if "??" in t else float("nan") if t == "nan" else float(len(t.split())) for t in texts]
        return RewardOutput(scores=scores, extras={"reason": ["unsure" if s is None else None for s in scores]})


def test_classify_unscored_sample():
    with ServerThread(Abstains()) as srv, srv.client() as client:
        r = client.post("/classify", json={"model": "rm", "input": ["fine", "what ??"]})
        assert r.status_code == 422 and r.json()["error"] == "unscored_sample" and r.json()["field"] == "input[1]"
        assert "unsure" in r.json()["message"] and "--unscored-reward" in r.json()["message"]
        r = client.post("/classify", json=verl_classify_payload("rm", "nan"))  # a NaN is unscored too (finite_scores)
        assert r.status_code == 422 and "non-finite" in r.json()["message"]
    with ServerThread(Abstains(), ServeSettings(unscored_reward=-1.0)) as srv, srv.client() as client:
        body = client.post("/classify", json={"model": "rm", "input": ["fine", "what ??"]}).json()
        assert [d["probs"] for d in body["data"]] == [[1.0], [-1.0]]


# -------------------------------------------------------------------------------------------- auth
@pytest.mark.parametrize("path, payload", [
    ("/slime", slime_payload("p", "a b", None)),
    ("/verify", nemo_verify_payload("a b", "4")),
    ("/ng-rollout/r-1/verify", nemo_verify_payload("a b", "4")),
    ("/seed_session", {}),
    ("/classify", verl_classify_payload("rm", "a b")),
], ids=["slime", "nemo-gym", "nemo-gym-traced", "nemo-gym-seed", "classify"])
def test_adapters_need_the_token(path, payload):
    with ServerThread(load_reward("length"), ServeSettings(token=TOKEN)) as srv, srv.client() as client:
        r = client.post(path, json=payload)
        assert r.status_code == 401 and r.json()["field"] == "Authorization"
        ok = client.post(path, json=payload, headers={"Authorization": f"Bearer {TOKEN}"})
        assert ok.status_code == 200, ok.text
