"""Monte-Carlo step labels with a stub generator: hard/soft labels, progress, and resume."""
from __future__ import annotations

import json

from rewardkit.clients.base import Generation
from rewardkit.data.steps import StepRecord
from rewardkit.protocol import reward
from rewardkit.use.label_steps import RolloutConfig, label_all, label_solution


class StubClient:
    """Rollouts reach the right answer unless the prefix holds 'bad'; after 'half' only every other one does."""

    name = "stub"

    def __init__(self):
        self.calls = 0

    def generate(self, prompts, *, n=1, assistant_prefix=None, **kw):
        self.calls += 1
        out = []
        for pre in assistant_prefix:
            if "bad" in pre:
                texts = ["The answer is 7."] * n
            elif "half" in pre:
                texts = ["The answer is 5." if j % 2 == 0 else "The answer is 6." for j in range(n)]
            else:
                texts = ["The answer is 5."] * n
            out.append([Generation(t) for t in texts])
        return out


@reward
def exact(prompts, completions, *, answer):
    return [1.0 if c.rstrip(".").endswith(a) else 0.0 for c, a in zip(completions, answer)]


def test_values_labels_and_progress():
    rec = StepRecord("a", "q", ["ok", "half", "bad", "then"], [None] * 4)
    row = label_solution(rec, "5", StubClient(), exact, RolloutConfig(rollouts=4))
    assert row["soft_labels"] == [1.0, 0.5, 0.0, 0.0]
    assert row["hard_labels"] == [1.0, 1.0, 0.0, 0.0] and row["labels"] == row["hard_labels"]
    assert row["first_error_step"] == 2 and row["value_before"] == 1.0
    assert row["progress"] == [0.0, -0.5, -0.5, 0.0]
    soft = label_solution(rec, "5", StubClient(), exact, RolloutConfig(rollouts=4, label="soft"))
    assert soft["labels"] == [1.0, 0.5, 0.0, 0.0]


def test_output_grows_and_resumes(tmp_path):
    out = tmp_path / "labels.jsonl"
    items = [(StepRecord(f"s{i}", "q", ["ok", "bad" if i % 2 else "ok"], [None, None]), "5") for i in range(4)]
    client = StubClient()
    label_all(items[:2], out, client, exact, RolloutConfig(rollouts=2), progress=False)
    with out.open("a") as fh:
        fh.write('{"id": "s2", "que')  # a kill mid-write
    counts = label_all(items, out, client, exact, RolloutConfig(rollouts=2), progress=False)
    assert counts == {"labelled": 2, "skipped_done": 2, "steps": 4}
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in rows] == ["s0", "s1", "s2", "s3"]
    assert [r["first_error_step"] for r in rows] == [-1, 1, -1, 1]
    # the file reads back as step-labelled data for training
    from rewardkit.data.steps import load_steps

    assert len(load_steps(out)) == 4
