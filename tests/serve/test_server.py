"""End to end against a real uvicorn server on loopback (in a thread, on a free port) with tiny random
models: both APIs, remote == local, auth, limits, malformed input, timeouts, back-pressure, graceful
shutdown, metrics, readiness while loading."""
from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from serve_helpers import COMPLETIONS, PROMPTS, RecordingReward, ServerThread

from rewardkit import load_reward
from rewardkit.protocol import MissingColumnError
from rewardkit.rewards.baselines import LengthReward
from rewardkit.rewards.remote import RemoteReward, RemoteRewardError
from rewardkit.serve.app import ServeSettings, check_bind, is_loopback

TOL = 1e-6


def _specs(tiny_dirs):
    rm, multi, lm = tiny_dirs["rm"], tiny_dirs["multi"], tiny_dirs["lm"]
    return [f"classifier:{rm}", f"classifier:{multi}", f"loglik:{lm}", f"ensemble:lcb(classifier:{rm}, loglik:{lm}, length, k=0.5)"]


@pytest.mark.parametrize("which", range(4), ids=["classifier", "multi-objective", "loglik", "ensemble"])
def test_remote_scores_equal_local(tiny_dirs, which):
    spec = _specs(tiny_dirs)[which]
    local = load_reward(spec)
    expected = local.score(PROMPTS, COMPLETIONS)
    # the server loads the spec itself (on its model thread), as `rewardkit serve` does
    with ServerThread(lambda: load_reward(spec)) as srv, RemoteReward(srv.url) as remote:
        got = remote.score(PROMPTS, COMPLETIONS)
        assert max(abs(a - b) for a, b in zip(got.scores, expected.scores)) < TOL
        assert got.dims == expected.dims and got.extras.keys() == expected.extras.keys()
        if expected.vector is not None:
            assert all(abs(a - b) < TOL for ra, rb in zip(got.vector, expected.vector) for a, b in zip(ra, rb))
        # concurrent single-sample requests are merged on the server and still give each caller its own score
        with ThreadPoolExecutor(8) as pool:
            singles = list(pool.map(lambda i: remote.score([PROMPTS[i % 4]], [COMPLETIONS[i % 4]]).scores[0], range(16)))
        assert all(abs(s - expected.scores[i % 4]) < TOL for i, s in enumerate(singles))
        assert remote([PROMPTS[0]], [COMPLETIONS[0]]) == [got.scores[0]]  # TRL-style call
        # the remote reward is a spec like any other
        by_spec = load_reward(f"remote:{srv.url}")
        assert by_spec.score(PROMPTS, COMPLETIONS).scores == got.scores


def test_chunking_large_batches(tiny_dirs):
    reward = load_reward(f"classifier:{tiny_dirs['rm']}")
    with ServerThread(reward, ServeSettings(max_samples_per_request=3, max_queue_samples=64)) as srv:
        remote = RemoteReward(srv.url)
        assert remote.info()["max_samples_per_request"] == 3
        prompts, completions = PROMPTS * 2, COMPLETIONS * 2
        assert remote.score(prompts, completions).scores == pytest.approx(reward.score(prompts, completions).scores, abs=TOL)


def test_get_reward_openrlhf(tiny_dirs):
    reward = load_reward(f"loglik:{tiny_dirs['lm']}")
    tok = reward.tokenizer
    prompts = [tok.apply_chat_template([{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True)
               for p in ["What is 2+2?", "Name a colour."]]
    responses = ["4</s>", "Blue.</s>"]
    queries = ["<pad>" + prompts[0] + responses[0] + "<pad><pad>", prompts[1] + responses[1]]
    with ServerThread(reward) as srv, srv.client() as client:
        r = client.post("/get_reward", json={"query": queries, "prompts": prompts, "labels": ["4", "blue"]})
        assert r.status_code == 200, r.text
        body = r.json()
        # the reward scores the conversation as /v1/score would: its own assistant turn after the
        # rendered prompt, the end-of-turn text OpenRLHF decoded removed from the response
        conversations = [[{"role": "user", "content": p}] for p in ["What is 2+2?", "Name a colour."]]
        expected = reward.score(conversations, ["4", "Blue."], answer=["4", "blue"]).scores
        assert body["rewards"] == pytest.approx(expected, abs=TOL) and body["scores"] == body["rewards"]
        assert body["extra_logs"]["unscored"] == [0.0, 0.0]
        # a query that does not contain its prompt fails with the field named
        bad = client.post("/get_reward", json={"query": ["unrelated"], "prompts": ["prompt"]})
        assert bad.status_code == 422 and bad.json()["field"] == "query[0]"
        missing = client.post("/get_reward", json={"query": ["q"]})
        assert missing.status_code == 422 and missing.json()["field"] == "prompts"


def test_get_reward_labels_reach_the_labels_column():
    reward = RecordingReward(needs_answer=True)
    with ServerThread(reward, ServeSettings(unscored_reward=-1.0)) as srv, srv.client() as client:
        ok = client.post("/get_reward", json={"query": ["P: a b c"], "prompts": ["P:"], "labels": ["x"]})
        assert ok.json()["rewards"] == [3.0]
        no_labels = client.post("/get_reward", json={"query": ["P: a b c"], "prompts": ["P:"], "labels": None})
        assert no_labels.status_code == 422 and no_labels.json()["error"] == "missing_column" and no_labels.json()["field"] == "answer"


def test_auth():
    with ServerThread(RecordingReward(), ServeSettings(token="s3cret")) as srv, srv.client() as client:
        body = {"prompts": ["p"], "completions": ["a b"]}
        none = client.post("/v1/score", json=body)
        assert none.status_code == 401 and none.headers["www-authenticate"] == "Bearer" and none.json()["field"] == "Authorization"
        assert client.post("/v1/score", json=body, headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert client.post("/get_reward", json={"query": ["pa"], "prompts": ["p"]}).status_code == 401
        assert client.get("/metrics").status_code == 401
        good = client.post("/v1/score", json=body, headers={"Authorization": "Bearer s3cret"})
        assert good.status_code == 200 and good.json()["scores"] == [2.0]
        assert client.get("/health").status_code == 200 and client.get("/ready").status_code == 200  # probes stay open
        assert RemoteReward(srv.url, token="s3cret").score(["p"], ["a b c"]).scores == [3.0]
        with pytest.raises(RemoteRewardError) as err:
            RemoteReward(srv.url, token="nope", retries=0).score(["p"], ["a"])
        assert err.value.status == 401
        spec = client.get("/openapi.json", headers={"Authorization": "Bearer s3cret"}).json()  # the spec needs the token too
        assert "HTTPBearer" in spec["components"]["securitySchemes"]


def test_auth_off_on_loopback_and_refusal_elsewhere():
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost") and is_loopback("127.0.0.5")
    assert not is_loopback("0.0.0.0") and not is_loopback("10.1.2.3") and not is_loopback("example.org")
    check_bind("127.0.0.1", None)
    check_bind("0.0.0.0", "token")
    with pytest.raises(ValueError, match="refusing to serve on 0.0.0.0 without authentication"):
        check_bind("0.0.0.0", None)


def test_limits_and_malformed_requests():
    settings = ServeSettings(max_request_bytes=2000, max_samples_per_request=4, max_queue_samples=64)
    with ServerThread(RecordingReward(needs_answer=True), settings) as srv, srv.client() as client:
        def post(body=None, **kwargs):
            r = client.post("/v1/score", json=body, **kwargs) if body is not None else client.post("/v1/score", **kwargs)
            return r.status_code, r.json()

        status, body = post({"prompts": ["p"], "completions": ["x" * 3000], "answer": ["1"]})
        assert status == 413 and body["error"] == "request_too_large"

        def chunks():  # no Content-Length: the limit applies while reading
            for _ in range(10):
                yield b" " * 500
            yield b'{"prompts": ["p"], "completions": ["a"], "answer": ["1"]}'
        status, body = post(content=chunks(), headers={"Content-Type": "application/json"})
        assert status == 413 and body["error"] == "request_too_large"
        status, body = post({"prompts": ["p"] * 5, "completions": ["a"] * 5, "answer": ["1"] * 5})
        assert status == 413 and body["field"] == "prompts"
        status, body = post(content=b'{"prompts": ["p"], "completions": [', headers={"Content-Type": "application/json"})
        assert status == 422 and body["error"] == "validation_error" and body["field"] == "body"
        status, body = post({"prompts": ["p", "q"], "completions": ["a", 7], "answer": ["1", "2"]})
        assert status == 422 and body["field"] == "completions[1]"
        status, body = post({"prompts": ["p", [{"role": "user"}]], "completions": ["a", "b"], "answer": ["1", "2"]})
        assert status == 422 and body["field"].startswith("prompts[1]")
        status, body = post({"prompts": ["p", "q"], "completions": ["a"], "answer": ["1"]})
        assert status == 422 and body["field"] == "completions"
        status, body = post({"prompts": ["p", "q"], "completions": ["a", "b"], "answer": ["1"]})
        assert status == 422 and body["field"] == "answer" and "1 values for 2 samples" in body["message"]
        status, body = post({"prompts": ["p"], "completions": [[{"role": "user", "content": "x"}]], "answer": ["1"]})
        assert status == 422 and body["field"] == "completions[0]"
        status, body = post({"prompts": ["p"], "completions": ["a"]})
        assert status == 422 and body["error"] == "missing_column" and body["field"] == "answer"
        status, body = post({"prompts": ["p"], "completions": ["BOOM"], "answer": ["1"]})
        assert status == 422 and body["error"] == "unprocessable" and "BOOM" in body["message"]
        status, body = post({"prompts": [], "completions": []})
        assert status == 200 and body["scores"] == []
        assert client.get("/nope").json()["error"] == "not_found"
        assert client.get("/v1/score").status_code == 405
        with pytest.raises(MissingColumnError) as err:  # the client raises the same error as a local reward
            RemoteReward(srv.url).score(["p"], ["a"])
        assert err.value.column == "answer"
        assert RemoteReward(srv.url).score(["p"], ["a b"], answer=["1"]).scores == [2.0]


def test_a_bad_request_fails_alone_over_http():
    reward = RecordingReward(delay=0.05)
    with ServerThread(reward, ServeSettings(max_wait_ms=100)) as srv, srv.client() as client:
        bodies = [{"prompts": ["p"], "completions": ["BOOM" if i == 3 else "a " * i]} for i in range(8)]
        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(lambda b: client.post("/v1/score", json=b), bodies))
        assert [r.status_code for r in results] == [200] * 3 + [422] + [200] * 4
        assert [r.json()["scores"] for i, r in enumerate(results) if i != 3] == [[float(i)] for i in range(8) if i != 3]


def test_timeout_gives_504():
    with ServerThread(RecordingReward(delay=1.0), ServeSettings(request_timeout=0.2)) as srv, srv.client() as client:
        start = time.monotonic()
        r = client.post("/v1/score", json={"prompts": ["p"], "completions": ["a"]})
        assert r.status_code == 504 and r.json()["error"] == "timeout" and time.monotonic() - start < 1.0


def test_queue_full_gives_503_with_retry_after_and_the_client_retries():
    settings = ServeSettings(micro_batching=False, max_queue_samples=2, max_samples_per_request=2)
    with ServerThread(RecordingReward(delay=0.3), settings) as srv, srv.client() as client:
        with ThreadPoolExecutor(6) as pool:
            results = list(pool.map(lambda i: client.post("/v1/score", json={"prompts": ["p"], "completions": ["a"]}), range(6)))
        codes = [r.status_code for r in results]
        assert codes.count(200) >= 2 and codes.count(503) >= 1
        full = next(r for r in results if r.status_code == 503)
        assert full.json()["error"] == "queue_full" and int(full.headers["retry-after"]) >= 1
        # RemoteReward backs off (respecting Retry-After) and gets through
        remote = RemoteReward(srv.url, backoff=0.05, max_backoff=0.5, retries=20)
        with ThreadPoolExecutor(6) as pool:
            scores = list(pool.map(lambda i: remote.score(["p"], ["a b"]).scores, range(6)))
        assert scores == [[2.0]] * 6
        metrics = client.get("/metrics").text
        assert 'rewardkit_rejected_total{reason="queue_full"}' in metrics


def test_graceful_shutdown_finishes_requests_in_flight():
    reward = RecordingReward(delay=0.6)
    srv = ServerThread(reward, ServeSettings(micro_batching=False)).__enter__()
    try:
        with ThreadPoolExecutor(3) as pool:
            futures = [pool.submit(httpx.post, f"{srv.url}/v1/score", json={"prompts": ["p"], "completions": ["a " * (i + 1)]}, timeout=30)
                       for i in range(3)]
            time.sleep(0.2)  # one request on the model, two queued
            srv.server.should_exit = True
            results = [f.result() for f in futures]
        assert [r.status_code for r in results] == [200, 200, 200]
        assert sorted(r.json()["scores"][0] for r in results) == [1.0, 2.0, 3.0]
        srv.thread.join(timeout=30)
        assert not srv.thread.is_alive()
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{srv.url}/health", timeout=2)
    finally:
        srv.stop()


def test_metrics_health_ready_info():
    reward = RecordingReward(delay=0.02)
    with ServerThread(reward, ServeSettings(max_wait_ms=50)) as srv, srv.client() as client:
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda i: client.post("/v1/score", json={"prompts": ["p"], "completions": ["a b"]}), range(8)))
        text = client.get("/metrics").text
        for name in ("rewardkit_requests_total", "rewardkit_request_latency_seconds_bucket", "rewardkit_batch_size_samples_bucket",
                     "rewardkit_batch_size_requests_bucket", "rewardkit_queue_depth_samples", "rewardkit_queue_wait_seconds_bucket",
                     "rewardkit_batch_latency_seconds_bucket", "rewardkit_ready 1.0"):
            assert name in text, name
        assert 'rewardkit_requests_total{endpoint="/v1/score",status="200"} 8.0' in text
        assert "rewardkit_samples_total 8.0" in text
        assert client.get("/health").json() == {"status": "ok"}
        assert client.get("/ready").json()["ready"] is True
        info = client.get("/v1/info").json()
        assert info["reward"] == "recording" and info["micro_batching"] is True
        spec = client.get("/openapi.json").json()
        assert {"/v1/score", "/v1/score_steps", "/get_reward", "/health", "/ready", "/metrics"} <= set(spec["paths"])
    assert len(reward.calls) < 8  # merged


def test_ready_only_after_the_reward_loaded():
    gate = threading.Event()

    def load():
        gate.wait(10)
        return RecordingReward()

    with ServerThread(load, wait_ready=False) as srv, srv.client() as client:
        r = client.get("/ready")
        assert r.status_code == 503 and r.json()["reason"] == "loading the reward"
        assert client.get("/health").status_code == 200
        busy = client.post("/v1/score", json={"prompts": ["p"], "completions": ["a"]})
        assert busy.status_code == 503 and busy.json()["error"] == "not_ready" and "retry-after" in busy.headers
        gate.set()
        for _ in range(100):
            if client.get("/ready").status_code == 200:
                break
            time.sleep(0.02)
        assert client.post("/v1/score", json={"prompts": ["p"], "completions": ["a"]}).json()["scores"] == [1.0]


def test_score_steps():
    from rewardkit.types import RewardOutput

    class StepReward(RecordingReward):
        def score(self, prompts, completions, **columns):
            steps = [[float(len(s)) for s in c] for c in completions]
            return RewardOutput(scores=[min(s) for s in steps], steps=steps)

    with ServerThread(StepReward()) as srv, srv.client() as client:
        r = client.post("/v1/score_steps", json={"prompts": ["p"], "completions": [["ab", "abcd"]]})
        assert r.json()["steps"] == [[2.0, 4.0]] and r.json()["scores"] == [2.0]
        assert client.post("/v1/score_steps", json={"prompts": ["p"], "completions": ["not steps"]}).json()["field"] == "completions[0]"
    with ServerThread(RecordingReward()) as srv, srv.client() as client:
        r = client.post("/v1/score_steps", json={"prompts": ["p"], "completions": [["a"]]})
        assert r.status_code == 400 and r.json()["error"] == "no_step_scores"


def test_remote_client_retries_with_a_stub_transport():
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(json.loads(request.content) if request.content else None)
        if len(calls) == 1:
            return httpx.Response(503, headers={"Retry-After": "0"}, json={"error": "queue_full", "message": "full"})
        if len(calls) == 2:
            raise httpx.ConnectError("refused", request=request)
        return httpx.Response(200, json={"scores": [0.5], "steps": None, "vector": None, "dims": [], "extras": {}})

    remote = RemoteReward("http://stub", transport=httpx.MockTransport(handler), backoff=0, max_samples_per_request=8)
    assert remote.score(["p"], ["c"], answer=["1"]).scores == [0.5]
    assert len(calls) == 3 and calls[-1] == {"prompts": ["p"], "completions": ["c"], "answer": ["1"]}

    def always_down(request: httpx.Request) -> httpx.Response:
        return httpx.Response(503, json={"error": "not_ready", "message": "loading"})

    with pytest.raises(RemoteRewardError, match="after 3 attempts"):
        RemoteReward("http://stub", transport=httpx.MockTransport(always_down), retries=2, backoff=0,
                     max_samples_per_request=8).score(["p"], ["c"])

    def invalid(request: httpx.Request) -> httpx.Response:
        return httpx.Response(422, json={"error": "validation_error", "message": "completions[0]: bad", "field": "completions[0]"})

    seen = []
    with pytest.raises(RemoteRewardError) as err:
        RemoteReward("http://stub", transport=httpx.MockTransport(lambda r: seen.append(1) or invalid(r)), backoff=0,
                     max_samples_per_request=8).score(["p"], ["c"])
    assert err.value.field == "completions[0]" and len(seen) == 1  # a client error is not retried


def test_remote_reward_takes_what_trl_passes_and_tool_calling_turns():
    """TRL's call context (a TrainerState, callbacks, the policy's completion_ids) is not sent as data;
    a tool-calling completion reaches the server as the assistant's text, so it scores as it does locally."""
    from transformers import TrainerState

    local = LengthReward("chars")
    turn = [{"role": "assistant", "content": None, "tool_calls": [{"type": "function", "function": {"name": "f", "arguments": "{}"}}]},
            {"role": "tool", "content": "42"}, {"role": "assistant", "content": "It is 42."}]
    prompts = [[{"role": "user", "content": "q"}, {"role": "assistant", "content": None}], "plain"]
    with ServerThread(local) as srv:
        remote = RemoteReward(srv.url)
        got = remote(prompts=prompts, completions=[turn, "abc"], completion_ids=[[1, 2], [3]], trainer_state=TrainerState(),
                     log_extra=lambda *a: None, log_metric=lambda *a: None, answer=["1", "2"])
        assert remote.__name__ == f"remote:length:chars@127.0.0.1:{srv.port}"
    assert got == local(prompts=prompts, completions=[turn, "abc"]) == [9.0, 3.0]


def test_get_reward_survives_left_truncated_prompts_and_never_sends_a_missing_reward():
    """OpenRLHF cuts over-long prompts from the left and cannot train on a null reward: a truncated prompt is
    still found (by its end), an unfindable one is one unscored sample, and unscored samples either get
    --unscored-reward or the batch is refused with the reason (never a null in `rewards`)."""
    long_prompt = "user: " + "context " * 30 + "What is 2+2?\nassistant: "
    queries = [long_prompt[100:] + "four", "unrelated text", long_prompt + "4"]
    prompts = [long_prompt, "a prompt that is not there", long_prompt]
    with ServerThread(LengthReward("chars")) as srv, srv.client() as client:
        refused = client.post("/get_reward", json={"query": queries, "prompts": prompts})
        assert refused.status_code == 422 and refused.json()["error"] == "unscored_sample" and refused.json()["field"] == "query[1]"
        assert "--unscored-reward" in refused.json()["message"] and "left-truncated" in refused.json()["message"]
    with ServerThread(LengthReward("chars"), ServeSettings(unscored_reward=-5.0)) as srv, srv.client() as client:
        body = client.post("/get_reward", json={"query": queries, "prompts": prompts}).json()
    assert body["rewards"] == [4.0, -5.0, 1.0] and body["scores"] == body["rewards"]
    assert body["extra_logs"]["unscored"] == [0.0, 1.0, 0.0] and body["extra_logs"]["prompt_truncated"] == [1.0, 0.0, 0.0]
