"""Property-based fuzzing of the running server from its own OpenAPI spec (schemathesis): whatever a
client sends, valid or not, the server answers with a documented, structured response and never a 500.

(schemathesis' ``from_fixture`` parametrization does not work with pytest 9, so the per-operation
strategies are driven by hypothesis directly.)
"""
from __future__ import annotations

from collections import Counter

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance
from serve_helpers import ServerThread

from rewardkit import load_reward
from rewardkit.serve.app import ServeSettings

EXAMPLES = {GenerationMode.POSITIVE: 40, GenerationMode.NEGATIVE: 30}


@pytest.fixture(scope="module")
def fuzzed_server(tiny_dirs):
    # a model reward inside a composition with a rule, so fuzzed text reaches the tokenizer, the chat
    # template and the model; small limits so oversize inputs are exercised too
    spec = f"gate(rule:regex(pattern=^yes), classifier:{tiny_dirs['rm']})"
    with ServerThread(load_reward(spec), ServeSettings(max_samples_per_request=16, max_request_bytes=64 * 1024)) as srv:
        yield srv


@pytest.mark.parametrize("mode", list(EXAMPLES), ids=lambda m: m.value)
def test_api_never_fails_with_a_server_error(fuzzed_server, mode):
    schema = schemathesis.openapi.from_url(f"{fuzzed_server.url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.path for op in operations} >= {"/v1/score", "/v1/score_steps", "/get_reward", "/health", "/ready", "/metrics"}
    statuses: Counter = Counter()
    checks = [not_a_server_error] + ([response_schema_conformance] if mode is GenerationMode.POSITIVE else [])
    for operation in operations:
        if mode is GenerationMode.NEGATIVE and operation.method.upper() != "POST":
            continue  # nothing to break in a GET without parameters
        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(max_examples=EXAMPLES[mode], deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def fuzz(case):
            response = case.call_and_validate(base_url=fuzzed_server.url, checks=checks)
            statuses[(operation.path, response.status_code)] += 1
            body = case.body
            if isinstance(body, dict) and isinstance(body.get("prompts"), list) and isinstance(body.get("completions"), list):
                # the same body cut to a common length, so most cases get past validation to the model
                n = min(len(body["prompts"]), len(body["completions"]))
                repaired = {k: v[:n] if isinstance(v, list) else v for k, v in body.items()}
                r = httpx.post(fuzzed_server.url + operation.path, json=repaired, timeout=60)
                statuses[(operation.path + " (repaired)", r.status_code)] += 1
                assert r.status_code < 500, r.text
                assert "error" in r.json() if r.status_code >= 400 else len(r.json()["scores"]) == n

        fuzz()
    print(sorted(statuses.items()))
    assert any(status == 200 for (path, status) in statuses if path.startswith("/v1/score")) or mode is GenerationMode.NEGATIVE
