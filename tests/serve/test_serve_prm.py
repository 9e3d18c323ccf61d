"""A process reward served over HTTP: /v1/score_steps returns the same step scores as in-process."""
from __future__ import annotations

import warnings

from serve_helpers import ServerThread


def test_score_steps_with_a_process_reward(tiny_dirs):
    from rewardkit.rewards.process import ProcessReward

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prm = ProcessReward(str(tiny_dirs["rm"]))
    prompts, completions = ["What is 2+3?", "q"], [["2+3 = 5.", "The answer is 5."], ["one", "two", "three"]]
    local = prm.score(prompts, completions)
    with ServerThread(prm) as srv, srv.client() as client:
        r = client.post("/v1/score_steps", json={"prompts": prompts, "completions": completions}).json()
    assert [len(s) for s in r["steps"]] == [2, 3]
    assert max(abs(a - b) for x, y in zip(r["steps"], local.steps) for a, b in zip(x, y)) < 1e-6
    assert r["scores"] == [min(s) for s in r["steps"]]
