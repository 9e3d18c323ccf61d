"""The packaged models' scores do not move when the code around them is restructured.

``packaged_scores.json`` holds the scores of the packaged ``default`` RM, both packaged PRMs, the demo
lineup and the likelihood-based rewards on fixed suite samples, written once by running this file
(``python tests/invariant/test_packaged_scores.py``) on a known-good tree. A refactor that changes
how text is encoded, truncated or read out moves these numbers and fails here. Regenerate the file
only for an intended change of behaviour, and say so in the commit.
"""
from __future__ import annotations

import json
import math
import sys
import warnings
from pathlib import Path

import pytest

GOLDEN = Path(__file__).with_name("packaged_scores.json")
ROOT = Path(__file__).resolve().parents[2]
TOL = 1e-5  # float32 forward passes; identical code gives identical numbers, a moved boundary gives > 1e-3

#: spec -> which samples it scores ("pairs": suite pairs, "steps": arith solutions with steps)
SPECS = {
    "default": "pairs",
    "loglik:default": "pairs",
    "length": "pairs",
    "rule:math": "pairs",
    "rule:constraints": "pairs",
    "flr:default": "pairs",
    "prm:default": "steps",
    "prm:default-value": "steps",
    str(ROOT / "examples" / "rewards" / "implicit_prm_mean.yaml"): "steps",
}


def _samples():
    from rewardkit.data.synth import generate

    pairs = generate("test", 3, subsets=("arith", "constraints", "refusal", "length-trap"))
    prompts = [p.prompt for p in pairs for _ in (0, 1)]
    completions = [c for p in pairs for c in (p.chosen, p.rejected)]
    columns = {k: [p.columns.get(k) for p in pairs for _ in (0, 1)] for k in sorted({k for p in pairs for k in p.columns})}
    arith = [p for p in pairs if p.subset == "arith"]
    steps_prompts = [p.prompt for p in arith for _ in (0, 1)]
    steps_completions = [c.split("\n") if isinstance(c, str) else c for p in arith for c in (p.chosen, p.rejected)]
    return {"pairs": (prompts, completions, columns), "steps": (steps_prompts, steps_completions, {})}


def compute() -> dict[str, dict[str, list]]:
    from rewardkit import load_reward

    samples = _samples()
    out = {}
    for spec, which in SPECS.items():
        prompts, completions, columns = samples[which]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            reward = load_reward(spec)
        got = reward.score(prompts, completions, **columns)
        key = Path(spec).name if spec.endswith(".yaml") else spec
        out[key] = {"scores": got.scores, "steps": got.steps}
    return out


def _close(a, b) -> bool:
    if a is None or b is None:
        return a is b
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b))
    return math.isclose(float(a), float(b), abs_tol=TOL, rel_tol=0)


@pytest.mark.slow
def test_packaged_and_demo_scores_are_unchanged(embedded_available):
    golden = json.loads(GOLDEN.read_text())
    got = compute()
    assert set(got) == set(golden)
    moved = {k: (golden[k], got[k]) for k in golden if not _close(golden[k]["scores"], got[k]["scores"]) or not _close(golden[k]["steps"], got[k]["steps"])}
    assert not moved, json.dumps(moved, indent=1)[:4000]


if __name__ == "__main__":
    GOLDEN.write_text(json.dumps(compute(), indent=1) + "\n")
    print(f"wrote {GOLDEN}", file=sys.stderr)
