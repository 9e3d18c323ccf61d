"""The micro-batching queue on its own: merging, budgets, isolation of a bad request, column sets,
batch-dependent rewards, back-pressure, cancellation, and the single model thread."""
from __future__ import annotations

import asyncio

import pytest
from serve_helpers import RecordingReward

from rewardkit.protocol import MissingColumnError
from rewardkit.rewards.baselines import LengthReward
from rewardkit.rewards.ensemble import EnsembleReward, TransformReward
from rewardkit.serve.batching import MicroBatcher, NotReady, QueueFull, estimate_tokens, merge_safe


def _run(coro):
    return asyncio.run(coro)


async def _with(batcher: MicroBatcher, body):
    await batcher.start()
    try:
        return await body(batcher)
    finally:
        await batcher.stop()


def test_concurrent_requests_merge_and_each_gets_its_own_slice():
    reward = RecordingReward(delay=0.05)

    async def body(b):
        texts = [" ".join(["w"] * (i + 1)) for i in range(8)]
        outs = await asyncio.gather(*[b.submit(["p"], [t], {}) for t in texts])
        return outs

    outs = _run(_with(MicroBatcher(reward, max_wait_ms=50), body))
    assert [o.scores for o in outs] == [[float(i + 1)] for i in range(8)]
    assert [o.extras["chars"] for o in outs] == [[len(" ".join(["w"] * (i + 1)))] for i in range(8)]
    assert sum(reward.calls) == 8 and len(reward.calls) < 8  # merged
    assert len(reward.threads) == 1 and reward.max_active == 1  # one model thread, never concurrent


def test_no_merging_gives_one_call_per_request():
    reward = RecordingReward()

    async def body(b):
        return await asyncio.gather(*[b.submit(["p", "q"], ["a b", "c"], {}) for _ in range(5)])

    outs = _run(_with(MicroBatcher(reward, merge=False), body))
    assert reward.calls == [2] * 5 and all(o.scores == [2.0, 1.0] for o in outs)


def test_sample_budget_caps_a_batch():
    reward = RecordingReward(delay=0.01)

    async def body(b):
        return await asyncio.gather(*[b.submit(["p"] * 3, ["a"] * 3, {}) for _ in range(6)])

    _run(_with(MicroBatcher(reward, max_batch_samples=6, max_wait_ms=50), body))
    assert max(reward.calls) <= 6 and sum(reward.calls) == 18


def test_token_budget_caps_a_batch():
    reward = RecordingReward()
    long = "word " * 400  # ~500 estimated tokens each

    async def body(b):
        return await asyncio.gather(*[b.submit(["p"], [long], {}) for _ in range(6)])

    _run(_with(MicroBatcher(reward, max_batch_tokens=1200, max_wait_ms=50), body))
    assert max(reward.calls) <= 2 and sum(reward.calls) == 6


def test_a_bad_request_fails_alone():
    reward = RecordingReward()

    async def body(b):
        return await asyncio.gather(
            b.submit(["p"], ["fine one"], {}), b.submit(["p", "q"], ["ok", "BOOM here"], {}), b.submit(["p"], ["also fine"], {}),
            return_exceptions=True,
        )

    good, bad, good2 = _run(_with(MicroBatcher(reward, max_wait_ms=50), body))
    assert good.scores == [2.0] and good2.scores == [2.0]
    assert isinstance(bad, ValueError) and "BOOM" in str(bad)


def test_requests_with_different_columns_are_not_merged():
    reward = RecordingReward(needs_answer=True)

    async def body(b):
        return await asyncio.gather(
            b.submit(["p"], ["a"], {"answer": ["1"]}), b.submit(["p"], ["a b"], {}), b.submit(["p"], ["a b c"], {"answer": ["3"]}),
            return_exceptions=True,
        )

    with_answer, without, with_answer2 = _run(_with(MicroBatcher(reward, max_wait_ms=50), body))
    assert with_answer.scores == [1.0] and with_answer2.scores == [3.0]
    assert isinstance(without, MissingColumnError) and without.column == "answer"
    assert sorted(reward.calls) == [1, 2]  # the two requests with `answer` merged; the other alone


def test_batch_dependent_rewards_are_never_merged():
    group = TransformReward(LengthReward(), "group")
    assert not merge_safe(group)
    assert not merge_safe(EnsembleReward([LengthReward(), group]))
    assert merge_safe(EnsembleReward([LengthReward(), TransformReward(LengthReward(), "clip", max=3)]))
    batcher = MicroBatcher(group, merge=True)
    assert batcher.grouped is True

    async def body(b):
        return await asyncio.gather(b.submit(["same"] * 2, ["a", "a b c"], {}), b.submit(["same"] * 2, ["a b", "a b c d e"], {}))

    first, second = _run(_with(batcher, body))
    # each request normalised within itself, as if scored alone
    assert first.scores == pytest.approx(group.score(["same"] * 2, ["a", "a b c"]).scores)
    assert second.scores == pytest.approx(group.score(["same"] * 2, ["a b", "a b c d e"]).scores)


def test_queue_full_and_cancelled_requests_leave_the_queue():
    reward = RecordingReward(delay=0.3)

    async def body(b):
        running = asyncio.create_task(b.submit(["p"], ["a"], {}))
        await asyncio.sleep(0.05)  # now on the model thread
        waiting = asyncio.create_task(b.submit(["p"] * 3, ["a"] * 3, {}))
        await asyncio.sleep(0.01)
        assert b.queued_samples == 3
        with pytest.raises(QueueFull) as full:
            await b.submit(["p"] * 2, ["a"] * 2, {})
        assert full.value.retry_after >= 1
        waiting.cancel()
        await asyncio.sleep(0.01)
        assert b.queued_samples == 0 and not b.pending
        await b.submit(["p"] * 2, ["a"] * 2, {})  # fits again
        await running

    _run(_with(MicroBatcher(reward, max_queue_samples=4, merge=False), body))
    assert reward.calls == [1, 2]  # the cancelled request never reached the model


def test_loading_in_the_background_and_load_failures():
    async def body(b):
        with pytest.raises(NotReady):
            await b.submit(["p"], ["a"], {})
        for _ in range(100):
            if b.ready:
                break
            await asyncio.sleep(0.01)
        return await b.submit(["p"], ["a b"], {})

    import time

    def slow_load():
        time.sleep(0.1)
        return LengthReward()

    assert _run(_with(MicroBatcher(slow_load), body)).scores == [2.0]
    errors = []

    def broken():
        raise ValueError("no such model")

    async def body2(b):
        for _ in range(100):
            if b.load_error is not None:
                break
            await asyncio.sleep(0.01)
        with pytest.raises(NotReady, match="no such model"):
            await b.submit(["p"], ["a"], {})

    _run(_with(MicroBatcher(broken, on_load_error=errors.append), body2))
    assert len(errors) == 1


def test_stop_drains_the_queue():
    reward = RecordingReward(delay=0.05)

    async def main():
        b = MicroBatcher(reward, merge=False)
        await b.start()
        tasks = [asyncio.create_task(b.submit(["p"], ["a b"], {})) for _ in range(4)]
        await asyncio.sleep(0.01)
        await b.stop()
        return [t.result().scores for t in tasks]

    assert _run(main()) == [[2.0]] * 4


def test_token_estimate_counts_prompt_and_completion():
    assert estimate_tokens("abcd" * 10, "abcd" * 5) == 15
    assert estimate_tokens([{"role": "user", "content": "abcd" * 10}], ["ab", "cd"]) > 10


def test_default_never_waits_and_batches_what_arrives_meanwhile():
    reward = RecordingReward(delay=0.1)

    async def body(b):
        first = asyncio.create_task(b.submit(["p"], ["a"], {}))
        await asyncio.sleep(0.02)  # the first request is already on the model, alone
        rest = [asyncio.create_task(b.submit(["p"], ["a b"], {})) for _ in range(5)]
        return await asyncio.gather(first, *rest)

    outs = _run(_with(MicroBatcher(reward), body))
    assert reward.calls == [1, 5] and [o.scores for o in outs] == [[1.0]] + [[2.0]] * 5


class _LongerWinsClient:
    """A judge client that prefers the longer response (no model): verdicts depend only on the two
    responses shown, so any change of a request's score can only come from who it was compared with."""

    name = "longer-wins"

    def generate(self, prompts, *, n=1, **_):
        import re

        from rewardkit.clients import Generation

        out = []
        for p in prompts:
            if "[Response A]" in p and "[Response B]" in p and "[Response C]" not in p:
                a = re.search(r"\[Response A\]\n(.*?)\n\n\[Response B\]", p, re.S).group(1)
                b = re.search(r"\[Response B\]\n(.*?)\n\n", p + "\n\n", re.S).group(1)
                text = " A" if len(a) >= len(b) else " B"
            else:  # listwise: name the labels in the order shown (a position-biased judge)
                labels = re.findall(r"\[Response ([A-Z])\]\n", p)
                text = " " + "] > [Response ".join(labels) + "]"
            out.append([Generation(text=text, num_tokens=1) for _ in range(n)])
        return out


@pytest.mark.parametrize("kind", ["pairwise", "listwise"])
def test_a_judge_behind_the_micro_batcher_scores_each_request_as_alone(kind):
    from rewardkit.protocol import group_by
    from rewardkit.rewards.judge import PairwiseJudge
    from rewardkit.rewards.judge.listwise import ListwiseJudge

    cls = PairwiseJudge if kind == "pairwise" else ListwiseJudge
    judge = cls(client=_LongerWinsClient(), use_logprobs=False)
    assert group_by(judge) == "record" and group_by(TransformReward(judge, "clip", max=1)) == "record"
    requests = [(["same prompt"] * 2, ["short", "a much longer answer"]), (["same prompt"] * 2, ["mid length", "longest answer of them all here"])]
    alone = [judge.score(p, c).scores for p, c in requests]
    batcher = MicroBatcher(judge, merge=True, max_wait_ms=100)
    assert batcher.grouped is True

    async def body(b):
        return await asyncio.gather(*[b.submit(p, c, {}) for p, c in requests])

    served = _run(_with(batcher, body))
    assert [o.scores for o in served] == alone
    # merged, the four responses to one prompt would be judged against each other: scores change
    merged = judge.score(requests[0][0] + requests[1][0], requests[0][1] + requests[1][1]).scores
    assert merged[:2] != alone[0]


@pytest.mark.parametrize("kind", ["pairwise", "listwise"])
def test_a_judge_merges_requests_of_disjoint_groups_and_scores_them_as_alone(kind):
    from rewardkit.rewards.judge import PairwiseJudge
    from rewardkit.rewards.judge.listwise import ListwiseJudge

    cls = PairwiseJudge if kind == "pairwise" else ListwiseJudge

    class Counting(cls):
        calls: list[int] = []

        def score(self, prompts, completions, **columns):
            Counting.calls.append(len(prompts))
            return super().score(prompts, completions, **columns)

    judge = Counting(client=_LongerWinsClient(), use_logprobs=False)
    requests = [([f"prompt {k}"] * 2, ["short", "a much longer answer"][:: 1 if k % 2 else -1]) for k in range(4)]
    alone = [judge.score(p, c).scores for p, c in requests]
    Counting.calls.clear()

    async def body(b):
        return await asyncio.gather(*[b.submit(p, c, {}) for p, c in requests])

    served = _run(_with(MicroBatcher(judge, merge=True, max_wait_ms=100), body))
    assert [o.scores for o in served] == alone
    assert len(Counting.calls) < len(requests) and sum(Counting.calls) == 8  # merged: fewer judge calls, same scores
