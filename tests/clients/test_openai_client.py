"""The OpenAI-compatible client: against a transport stub (retries, errors, concurrency) and against a
real local server started here (same seed, same text; same text as the local client)."""
import asyncio
import json

import httpx
import pytest

from client_helpers import OpenAIServerThread, tiny_client

from rewardkit.clients import OpenAIClient
from rewardkit.clients.openai import OpenAIClientError


def _chat_answer(body, text="ok"):
    return {"choices": [{"index": i, "message": {"role": "assistant", "content": f"{text}{i}"}, "finish_reason": "stop"}
                        for i in range(body.get("n", 1))], "usage": {"prompt_tokens": 3, "completion_tokens": 2}}


def test_request_body_and_parsing():
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        seen.append((request.url.path, request.headers.get("authorization"), body))
        return httpx.Response(200, json=_chat_answer(body))

    client = OpenAIClient("m", "http://x:1", api_key="k", transport=httpx.MockTransport(handler))
    out = client.generate(["hello", [{"role": "user", "content": "hi"}]], max_new_tokens=7, temperature=0.5, n=2, seed=11, stop=["\n"])
    assert [[g.text for g in gs] for gs in out] == [["ok0", "ok1"], ["ok0", "ok1"]]
    path, auth, body = seen[0]
    assert path == "/v1/chat/completions" and auth == "Bearer k"
    assert body["messages"] == [{"role": "user", "content": "hello"}]
    assert (body["max_tokens"], body["temperature"], body["n"], body["seed"], body["stop"]) == (7, 0.5, 2, 11, ["\n"])


def test_retries_transient_errors_then_succeeds():
    calls = {"n": 0}

    def handler(request):
        calls["n"] += 1
        if calls["n"] == 1:
            raise httpx.ConnectError("refused")
        if calls["n"] == 2:
            return httpx.Response(503, json={"error": {"message": "busy"}}, headers={"Retry-After": "0"})
        return httpx.Response(200, json=_chat_answer(json.loads(request.content)))

    client = OpenAIClient("m", "http://x:1/v1", transport=httpx.MockTransport(handler), backoff=0.0)
    assert client.generate(["a"])[0][0].text == "ok0"
    assert calls["n"] == 3


def test_retries_are_bounded_and_client_errors_fail_at_once():
    calls = {"n": 0}

    def always_busy(request):
        calls["n"] += 1
        return httpx.Response(429, json={"error": {"message": "slow down"}})

    client = OpenAIClient("m", "http://x:1", transport=httpx.MockTransport(always_busy), retries=2, backoff=0.0)
    with pytest.raises(OpenAIClientError, match="after 3 attempts.*slow down"):
        client.generate(["a"])
    assert calls["n"] == 3

    calls["n"] = 0

    def bad_request(request):
        calls["n"] += 1
        return httpx.Response(400, json={"error": {"message": "no such model"}})

    client = OpenAIClient("m", "http://x:1", transport=httpx.MockTransport(bad_request), retries=5, backoff=0.0)
    with pytest.raises(OpenAIClientError, match="HTTP 400: no such model") as info:
        client.generate(["a"])
    assert info.value.status == 400 and calls["n"] == 1


def test_concurrency_limit_is_respected():
    state = {"now": 0, "peak": 0}

    async def handler(request):
        state["now"] += 1
        state["peak"] = max(state["peak"], state["now"])
        await asyncio.sleep(0.02)
        state["now"] -= 1
        return httpx.Response(200, json=_chat_answer(json.loads(request.content)))

    client = OpenAIClient("m", "http://x:1", transport=httpx.MockTransport(handler), concurrency=3)
    out = client.generate([f"p{i}" for i in range(12)])
    assert len(out) == 12 and state["peak"] == 3


def test_wrong_number_of_choices_is_an_error():
    client = OpenAIClient("m", "http://x:1", transport=httpx.MockTransport(lambda r: httpx.Response(200, json=_chat_answer({"n": 1}))))
    with pytest.raises(OpenAIClientError, match="asked for 2 choices"):
        client.generate(["a"], n=2)


def test_generate_works_inside_a_running_event_loop():
    client = OpenAIClient("m", "http://x:1", transport=httpx.MockTransport(lambda r: httpx.Response(200, json=_chat_answer({"n": 1}))))

    async def inside():
        return client.generate(["a"])

    assert asyncio.run(inside())[0][0].text == "ok0"


@pytest.fixture(scope="module")
def served():
    local = tiny_client()
    with OpenAIServerThread(local, model_name="tiny") as srv:
        yield local, srv


def test_real_server_same_seed_same_text_and_matches_local(served):
    local, srv = served
    client = OpenAIClient("tiny", srv.url, concurrency=2)
    prompts = ["What is 2+3?", "Name a colour."]
    kw = dict(max_new_tokens=12, temperature=1.0, n=2, seed=4)
    a = client.generate(prompts, **kw)
    b = client.generate(prompts, **kw)
    texts = lambda out: [[g.text for g in gs] for gs in out]  # noqa: E731
    assert texts(a) == texts(b)
    assert texts(a) == texts(local.generate(prompts, **kw))
    assert texts(client.generate(prompts, **{**kw, "seed": 5})) != texts(a)
    assert all(g.num_tokens and g.num_tokens <= 12 for gs in a for g in gs)


def test_real_server_logprobs_and_completions_endpoint(served):
    local, srv = served
    chat = OpenAIClient("tiny", srv.url + "/v1")
    g = chat.generate(["Hi"], max_new_tokens=5, logprobs=True, top_logprobs=2)[0][0]
    ref = local.generate(["Hi"], max_new_tokens=5, logprobs=True, top_logprobs=2)[0][0]
    assert g.logprobs == pytest.approx(ref.logprobs) and g.tokens == ref.tokens
    assert g.top_logprobs == [pytest.approx(d) for d in ref.top_logprobs]
    comp = OpenAIClient("tiny", srv.url, endpoint="completions")
    c = comp.generate(["abc"], max_new_tokens=5, logprobs=True, top_logprobs=2)[0][0]
    from rewardkit.clients import RawText

    assert c.text == local.generate([RawText("abc")], max_new_tokens=5)[0][0].text
    assert len(c.logprobs) == c.num_tokens == len(c.top_logprobs)


def test_real_server_rejects_unknown_model(served):
    _, srv = served
    with pytest.raises(OpenAIClientError, match="HTTP 404"):
        OpenAIClient("other", srv.url).generate(["Hi"], max_new_tokens=2)


def test_generation_options_are_one_definition_and_a_misspelt_one_is_an_error():
    from rewardkit.clients.base import Sampling

    client = OpenAIClient("m", "http://127.0.0.1:9")  # never contacted: the options fail first
    with pytest.raises(TypeError, match="temprature"):
        client.generate(["p"], temprature=0.5)
    with pytest.raises(ValueError, match="top_p"):
        client.generate(["p"], top_p=0.0)
    assert Sampling().max_new_tokens == 256 and Sampling(logprobs=False, top_logprobs=3).wants_logprobs


def test_retry_policy_takes_a_null_json_body_as_an_answer_and_keeps_the_server_message():
    from rewardkit.clients.retry import Retrying

    calls = []

    def send():
        calls.append(1)
        return httpx.Response(200, content=b"null", headers={"content-type": "application/json"})

    policy = Retrying(name="t", retries=3, backoff=0, max_backoff=0, retry_status=(503,), fail=lambda m, r: RuntimeError(m),
                      describe=lambda r: r.text[:20], describe_transient=lambda r: r.reason_phrase)
    assert policy.call("/x", send) is None and len(calls) == 1  # answered once; not retried as a failure
    busy = lambda: httpx.Response(503, text="<html>proxy page</html>")  # noqa: E731
    with pytest.raises(RuntimeError, match="after 4 attempts; last error: HTTP 503: Service Unavailable"):
        policy.call("/x", busy)
    with pytest.raises(RuntimeError, match="HTTP 400: bad field"):
        policy.call("/x", lambda: httpx.Response(400, text="bad field"))


def test_vendor_fields_fall_back_only_when_the_server_refuses_just_them():
    import json as _json

    def strict(request):  # like transformers serve: unknown fields are a 422; and it has a context limit
        body = _json.loads(request.content)
        if "continue_final_message" in body:
            return httpx.Response(422, json={"detail": "Unexpected fields in the request: {'continue_final_message'}"})
        if "too long" in body["messages"][0]["content"]:
            return httpx.Response(400, json={"error": {"message": "maximum context length exceeded"}})
        return httpx.Response(200, json={"choices": [{"index": 0, "message": {"content": " A"}, "finish_reason": "stop"}]})

    client = OpenAIClient("m", "http://x:1", transport=httpx.MockTransport(strict), retries=0)
    with pytest.raises(OpenAIClientError, match="Unexpected fields"):  # the plain retry failed too: not about the fields
        client.generate(["too long"], assistant_prefix="Verdict:")
    assert not client.plain_chat
    (gen,), = client.generate(["short"], assistant_prefix="Verdict:")
    assert client.plain_chat and gen.text == " A" and gen.extras["prefix_applied"] is False
    vllm_like = OpenAIClient("m", "http://x:1", transport=httpx.MockTransport(lambda r: httpx.Response(
        200, json={"choices": [{"index": 0, "message": {"content": " B"}, "finish_reason": "stop"}]})), retries=0)
    (gen,), = vllm_like.generate(["q"], assistant_prefix="Verdict:")
    assert not vllm_like.plain_chat and "prefix_applied" not in gen.extras
