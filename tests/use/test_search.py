"""PRM-guided beam search and equal-budget best-of-N with a stub generator and a stub PRM."""
from __future__ import annotations

from rewardkit.clients.base import Generation
from rewardkit.protocol import reward
from rewardkit.types import RewardOutput
from rewardkit.use.search import SearchConfig, beam_search, best_of_n

EOS = 99


class StepClient:
    """Next step depends on the sample seed: odd samples write a 'bad' step; the 3rd step answers."""

    name = "stub"
    stop_ids = {EOS}

    def generate(self, prompts, *, n=1, seed=0, assistant_prefix=None, stop=None, **kw):
        prefixes = assistant_prefix if assistant_prefix is not None else [""] * len(prompts)
        out = []
        for pre in prefixes:
            depth = pre.count("\n")
            gens = []
            for j in range(n):
                if stop is None:  # a whole solution (best-of-N)
                    bad = (seed + j) % 2 == 1
                    text = "good 0\nbad 1\nThe answer is 7." if bad else "good 0\ngood 1\nThe answer is 5."
                    gens.append(Generation(text, token_ids=[1] * 9 + [EOS], num_tokens=10))
                elif depth >= 2:
                    gens.append(Generation("The answer is 5." if "bad" not in pre else "The answer is 7.", token_ids=[1, 1, EOS], num_tokens=3))
                else:
                    gens.append(Generation(f"{'bad' if j % 2 else 'good'} {depth}", token_ids=[1, 1], num_tokens=2))
            out.append(gens)
        return out


@reward
def stub_prm(prompts, completions):
    steps = [[0.1 if "bad" in s else 0.9 for s in c] for c in completions]
    return RewardOutput(scores=[min(s) for s in steps], steps=steps)


def test_beam_search_prefers_good_steps_and_counts_tokens():
    res = beam_search("q", StepClient(), stub_prm, SearchConfig(beam_width=2, expansions=2, max_steps=5))
    assert res.steps == ["good 0", "good 1", "The answer is 5."] and res.finished
    # depth 0: 1 beam x 2 samples x 2 tokens; depth 1: 2 beams x 2 x 2; depth 2: 2 x 2 x 3
    assert res.generated_tokens == 4 + 8 + 12


def test_best_of_n_spends_the_budget_and_picks_the_prm_favourite():
    res = best_of_n("q", StepClient(), stub_prm, SearchConfig(seed=1), token_budget=24, max_new_tokens=64)
    assert res.generated_tokens == 30 and res.extras["n"] == 3  # drawn 4 at a time; the 4th is past the budget, not counted
    assert res.text.endswith("The answer is 5.")
    # the whole pool travels with the pick, so the CLI can report pass@N / first / random beside it
    assert res.extras["samples"][res.extras["picked"]] == res.text and len(res.extras["samples"]) == 3
    assert res.extras["sample_scores"] == [0.1, 0.9, 0.1] and res.extras["picked"] == 1


class OddClient(StepClient):
    """StepClient whose text holds characters str.splitlines breaks at (U+2028, U+0085)."""

    def generate(self, prompts, **kw):
        return [[Generation(g.text.replace("good", "go\u2028o\x85d"), token_ids=g.token_ids, num_tokens=g.num_tokens) for g in gens]
                for gens in super().generate(prompts, **kw)]


def test_search_log_with_unicode_line_separators_is_read_back_and_resumed(tmp_path):
    from rewardkit.specs import load_reward
    from rewardkit.use.search import search_vs_best_of_n

    cfg = SearchConfig(beam_width=2, expansions=2, max_steps=5, seed=1)
    rows = [("q1", "What is 2+3?", "5"), ("q2", "What is 1+4?", "5")]
    verifier = load_reward("rule:math")
    first = search_vs_best_of_n(rows[:1], OddClient(), stub_prm, verifier, cfg, tmp_path)
    log = (tmp_path / "search.jsonl").read_text(encoding="utf-8")
    assert "\u2028" in log and log.count("\n") == 1  # written raw, one row
    assert first["n"] == 1 and first["search_accuracy"] == 1.0
    both = search_vs_best_of_n(rows, OddClient(), stub_prm, verifier, cfg, tmp_path)
    assert both["n"] == 2 and (tmp_path / "search.jsonl").read_text(encoding="utf-8").count("\n") == 2
