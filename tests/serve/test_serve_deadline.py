"""The request deadline goes into the reward: a request of sleeping solutions cannot hold the model
thread past its --request-timeout, other clients are answered, and the unfinished samples come back
unscored with the reason (never 0, never a stall)."""
from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

from serve_helpers import ServerThread

from rewardkit.protocol import time_left, work_deadline
from rewardkit.rewards.rules import load_rule
from rewardkit.serve.app import ServeSettings

SLEEPER = "```python\nimport time\ntime.sleep(60)\ndef f():\n    return 1\n```"
GOOD = "```python\ndef f():\n    return 1\n```"


def test_sleeping_solutions_do_not_block_other_clients():
    reward = load_rule("code", timeout=30)
    with ServerThread(reward, ServeSettings(request_timeout=3.0)) as srv, srv.client() as client:
        body = {"prompts": ["p"] * 4, "completions": [SLEEPER] * 4, "tests": [["assert f() == 1"]] * 4}
        other = {"prompts": ["p"], "completions": [GOOD], "tests": [["assert f() == 1"]]}
        with ThreadPoolExecutor(2) as pool:
            start = time.monotonic()
            slow = pool.submit(client.post, "/v1/score", json=body)
            time.sleep(0.3)
            fast = pool.submit(client.post, "/v1/score", json=other)
            slow_resp = slow.result()
            slow_done = time.monotonic() - start
            fast_resp = fast.result()
            fast_done = time.monotonic() - start
        assert slow_resp.status_code == 200, slow_resp.text
        out = slow_resp.json()
        assert out["scores"] == [None] * 4 and all("deadline" in r for r in out["extras"]["reason"])
        assert slow_done < 3.0 + 1.5, slow_done  # not 4 x 30 s: the samples ran side by side under one budget
        assert fast_resp.status_code == 200 and fast_resp.json()["scores"] == [1.0]
        assert fast_done < 3.0 + 4.0, fast_done
        start = time.monotonic()  # the model thread is free again
        assert client.post("/v1/score", json=other).json()["scores"] == [1.0]
        assert time.monotonic() - start < 2.0


def test_work_deadline_nests_and_rules_skip_samples_past_it():
    assert time_left() is None
    with work_deadline(time.monotonic() + 100):
        with work_deadline(time.monotonic() + 5):
            assert 0 < time_left() <= 5
        with work_deadline(None):
            assert 90 < time_left() <= 100
    assert time_left() is None
    with work_deadline(time.monotonic() - 1):
        out = load_rule("length").score(["p", "p"], ["a", "b"])
    assert out.scores == [None, None] and "deadline" in out.extras["reason"][0]
