"""Dynamic micro-batching: requests that arrive together share one model call.

Requests wait in a bounded FIFO queue. When the model is free, the next batch takes the oldest request
and every queued request that fits ``max_batch_tokens`` (estimated) and ``max_batch_samples``; with
``max_wait_ms > 0`` it first waits until its oldest request has waited that long or the budget is
full. The default (0) never holds a request back: at low load a request runs alone at once, under load
the requests that arrive during one model call form the next batch. It runs
on a single worker thread, so the event loop stays free and the model is never called concurrently;
each caller gets exactly its own slice of the output. Only requests with the same set of extra
columns are merged (a column one request lacks must stay missing, not become ``None``). If a merged
batch raises, its requests are retried one by one so a bad request fails alone.

Scores do not change by merging because rewardkit rewards score every sample independently of its
batch mates (pinned by tests/invariant). Rewards that declare they compare samples (``group_by``: the
pairwise and listwise judges, ``transform:group``) are never merged across requests, so two requests
for the same prompt are never judged against each other.
"""
from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable

from ..images import ImagePolicy, image_policy as images_read_under
from ..protocol import completion_text, group_by, group_keys, message_text, work_deadline
from ..types import RewardOutput
from .schemas import slice_output

log = logging.getLogger("rewardkit.serve")

#: estimated characters per token, for the batch budget (the reward's own batching is exact)
CHARS_PER_TOKEN = 4


class QueueFull(Exception):
    def __init__(self, retry_after: float):
        self.retry_after = retry_after
        super().__init__(f"the queue is full; retry after {retry_after:g}s")


class NotReady(Exception):
    def __init__(self, reason: str, retry_after: float = 2.0):
        self.reason, self.retry_after = reason, retry_after
        super().__init__(reason)


class BadRewardOutput(RuntimeError):
    """The reward broke the protocol (wrong number of scores): a server-side error."""


def estimate_tokens(prompt: Any, completion: Any) -> int:
    """A cheap token estimate (text length / 4) so batches can be planned without tokenizing on the event loop."""
    if isinstance(prompt, str):
        chars = len(prompt)
    else:
        chars = sum(len(message_text(m.get("content"))) + 8 for m in prompt)
    try:
        chars += len(completion_text(completion))
    except (TypeError, ValueError):
        chars += len(str(completion))
    return max(1, math.ceil(chars / CHARS_PER_TOKEN))


def merge_safe(reward: Any) -> bool:
    """False when the reward (or a reward inside it) scores a sample using its batch mates: its
    declared ``group_by`` (a pairwise or listwise judge, ``transform:group``). Such a reward's
    requests are still merged, but only when they share no group (:func:`~rewardkit.protocol.group_keys`):
    then no group changes and each request is scored as if alone."""
    return group_by(reward) is None


@dataclass
class Job:
    prompts: list[Any]
    completions: list[Any]
    columns: dict[str, list[Any]]
    future: asyncio.Future
    cost: int
    key: tuple[str, ...]
    enqueued: float = field(default_factory=time.monotonic)
    deadline: float | None = None  # time.monotonic() by which the reward should stop (work_deadline)
    groups: frozenset[str] | None = None  # for a reward that compares samples: the groups this request holds

    @property
    def n(self) -> int:
        return len(self.prompts)


class MicroBatcher:
    """The queue and the model thread of one server.

    load: a Reward, or a function that builds one (run on the model thread at start, so a server can
        answer ``/health`` while a large model loads).
    merge: False gives one model call per request (the "batching off" baseline of the benchmark).
    """

    def __init__(
        self,
        load: Any,
        *,
        max_batch_tokens: int = 8192,
        max_batch_samples: int = 128,
        max_wait_ms: float = 0.0,
        max_queue_samples: int = 4096,
        merge: bool = True,
        metrics: Any = None,
        on_load_error: Callable[[BaseException], None] | None = None,
        image_policy: ImagePolicy | None = None,
    ):
        if max_batch_tokens <= 0 or max_batch_samples <= 0 or max_queue_samples <= 0 or max_wait_ms < 0:
            raise ValueError("max_batch_tokens, max_batch_samples and max_queue_samples must be positive, max_wait_ms >= 0")
        self._load = load
        self.image_policy = image_policy or ImagePolicy(allow_paths=False)
        self.reward: Any = None if callable(load) and not hasattr(load, "score") else load
        self.max_batch_tokens = int(max_batch_tokens)
        self.max_batch_samples = int(max_batch_samples)
        self.max_wait = max_wait_ms / 1000.0
        self.max_queue_samples = int(max_queue_samples)
        self.merge_requested = bool(merge)
        self.merge = bool(merge)
        self.metrics = metrics
        self.on_load_error = on_load_error
        self.load_error: BaseException | None = None
        self.pending: deque[Job] = deque()
        self.queued_samples = 0
        self.closing = False
        self.rate = 0.0  # samples per second of recent model calls (for Retry-After)
        self._executor: ThreadPoolExecutor | None = None
        self._loop_task: asyncio.Task | None = None
        self._load_task: asyncio.Task | None = None
        self._arrived: asyncio.Event | None = None
        self.grouped = False  # the reward compares the samples of a group: merge only requests of disjoint groups
        if self.reward is not None:
            self.merge, self.grouped = self.merge_requested, not merge_safe(self.reward)

    # ------------------------------------------------------------------ lifecycle
    @property
    def ready(self) -> bool:
        return self.reward is not None and not self.closing

    @property
    def name(self) -> str | None:
        return getattr(self.reward, "name", None)

    async def start(self) -> None:
        self._arrived = asyncio.Event()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rewardkit-model")
        self._loop_task = asyncio.create_task(self._run(), name="rewardkit-batcher")
        if self.reward is None:
            self._load_task = asyncio.create_task(self._load_reward(), name="rewardkit-load")
        elif self.metrics is not None:
            self.metrics.ready.set(1)

    async def _load_reward(self) -> None:
        loop = asyncio.get_running_loop()
        start = time.monotonic()
        try:
            reward = await loop.run_in_executor(self._executor, self._load)
        except Exception as err:  # reported by /ready and to the CLI, which exits
            log.error("the reward failed to load: %s", err)
            self.load_error = err
            if self.on_load_error is not None:
                self.on_load_error(err)
            return
        self.merge, self.grouped = self.merge_requested, not merge_safe(reward)
        self.reward = reward
        log.info("reward %s loaded in %.1fs; ready (micro-batching %s)", self.name, time.monotonic() - start,
                 "off" if not self.merge else "on, for requests of disjoint groups (the reward compares samples within a group)"
                 if self.grouped else "on")
        if self.metrics is not None:
            self.metrics.ready.set(1)

    async def stop(self) -> None:
        """Serve what is queued, then stop the loop and the model thread (a running call finishes)."""
        self.closing = True
        if self.metrics is not None:
            self.metrics.ready.set(0)
        if self._arrived is not None:
            self._arrived.set()
        if self._load_task is not None and not self._load_task.done():
            await asyncio.wait([self._load_task])
        if self._loop_task is not None:
            await asyncio.wait([self._loop_task])
        if self._executor is not None:
            await asyncio.get_running_loop().run_in_executor(None, lambda: self._executor.shutdown(wait=True))

    # ------------------------------------------------------------------ submitting
    def retry_after(self) -> float:
        """Seconds until the queue has likely drained (at least 1)."""
        if self.rate <= 0:
            return 1.0
        return float(min(60, max(1, math.ceil(self.queued_samples / self.rate))))

    async def submit(self, prompts: list[Any], completions: list[Any], columns: dict[str, list[Any]], *, deadline: float | None = None) -> RewardOutput:
        """Score one request. ``deadline`` (a ``time.monotonic()`` instant) goes into the reward as a
        :func:`~rewardkit.protocol.work_deadline`: samples a rule or the code sandbox cannot finish
        by then come back unscored with the reason, and the model thread is free again."""
        if self.load_error is not None:
            raise NotReady(f"the reward failed to load: {self.load_error}", retry_after=30.0)
        if self.closing:
            raise NotReady("the server is shutting down")
        if self.reward is None:
            raise NotReady("the reward is still loading")
        n = len(prompts)
        if self.queued_samples and self.queued_samples + n > self.max_queue_samples:
            if self.metrics is not None:
                self.metrics.rejected.labels("queue_full").inc()
            raise QueueFull(self.retry_after())
        loop = asyncio.get_running_loop()
        job = Job(prompts, completions, columns, loop.create_future(),
                  cost=sum(estimate_tokens(p, c) for p, c in zip(prompts, completions)),
                  key=tuple(sorted(columns)), deadline=deadline,
                  groups=frozenset(group_keys(prompts, columns.get("group_id"))) if self.grouped else None)
        self.pending.append(job)
        self._queued(n)
        assert self._arrived is not None
        self._arrived.set()
        try:
            return await job.future
        except asyncio.CancelledError:  # timed out or the caller went away: leave the queue
            if job in self.pending:
                self.pending.remove(job)
                self._queued(-n)
            raise

    def _queued(self, delta: int) -> None:
        self.queued_samples += delta
        if self.metrics is not None:
            self.metrics.queue_samples.set(self.queued_samples)
            self.metrics.queue_requests.set(len(self.pending))

    # ------------------------------------------------------------------ the loop
    def _same_key_load(self, key: tuple[str, ...]) -> tuple[int, int]:
        tokens = samples = 0
        for job in self.pending:
            if job.key == key:
                tokens += job.cost
                samples += job.n
        return tokens, samples

    async def _run(self) -> None:
        assert self._arrived is not None
        while True:
            while not self.pending:
                if self.closing:
                    return
                self._arrived.clear()
                await self._arrived.wait()
            first = self.pending[0]
            if self.merge and self.max_wait > 0:
                deadline = first.enqueued + self.max_wait
                while not self.closing:
                    tokens, samples = self._same_key_load(first.key)
                    remaining = deadline - time.monotonic()
                    if tokens >= self.max_batch_tokens or samples >= self.max_batch_samples or remaining <= 0:
                        break
                    self._arrived.clear()
                    try:
                        await asyncio.wait_for(self._arrived.wait(), remaining)
                    except TimeoutError:
                        break
                    if not self.pending or self.pending[0] is not first:  # the first request left (timeout)
                        break
            batch = self._take()
            if batch:
                await self._execute(batch)

    def _take(self) -> list[Job]:
        while self.pending and self.pending[0].future.done():
            self.pending.popleft()  # cancelled while waiting (already uncounted)
        if not self.pending:
            return []
        first = self.pending.popleft()
        batch, tokens, samples = [first], first.cost, first.n
        taken = set(first.groups or ())
        if self.merge:
            for job in list(self.pending):
                if job.key != first.key or job.future.done():
                    continue
                if job.groups is not None and not taken.isdisjoint(job.groups):
                    continue  # a group split over two requests stays apart: each judged as if alone
                if samples + job.n > self.max_batch_samples or tokens + job.cost > self.max_batch_tokens:
                    break
                self.pending.remove(job)
                batch.append(job)
                taken |= job.groups or set()
                tokens += job.cost
                samples += job.n
        self._queued(-samples)
        return batch

    async def _execute(self, batch: list[Job]) -> None:
        loop = asyncio.get_running_loop()
        start = time.monotonic()
        if self.metrics is not None:
            for job in batch:
                self.metrics.queue_wait.observe(start - job.enqueued)
        assert self._executor is not None
        results = await loop.run_in_executor(self._executor, self._score_batch, batch)
        elapsed = time.monotonic() - start
        n = sum(job.n for job in batch)
        if elapsed > 0 and n:
            self.rate = n / elapsed if self.rate <= 0 else 0.8 * self.rate + 0.2 * n / elapsed
        if self.metrics is not None:
            self.metrics.batch_samples.observe(n)
            self.metrics.batch_requests.observe(len(batch))
            self.metrics.batch_seconds.observe(elapsed)
        for job, result in zip(batch, results):
            if job.future.done():
                continue
            if isinstance(result, BaseException):
                job.future.set_exception(result)
            else:
                job.future.set_result(result)

    # ------------------------------------------------------------------ on the model thread
    def _score(self, prompts: list[Any], completions: list[Any], columns: dict[str, list[Any]]) -> RewardOutput:
        out = self.reward.score(prompts, completions, **columns)
        if not isinstance(out, RewardOutput) or len(out.scores) != len(prompts):
            got = len(out.scores) if isinstance(out, RewardOutput) else type(out).__name__
            raise BadRewardOutput(f"reward {self.name!r} returned {got} scores for {len(prompts)} samples")
        return out

    def _score_one(self, job: Job) -> RewardOutput | BaseException:
        try:
            return self._score(job.prompts, job.completions, job.columns)
        except Exception as err:
            return err

    def _score_batch(self, batch: list[Job]) -> list[RewardOutput | BaseException]:
        # A merged batch works until the latest of its deadlines: an earlier request may have
        # answered 504 by then, the later ones still get every sample that could be finished.
        deadlines = [job.deadline for job in batch]
        # the reward reads images under the server's policy: no local path, however a request got one in
        with work_deadline(None if None in deadlines else max(deadlines)), images_read_under(self.image_policy):
            return self._score_batch_now(batch)

    def _score_batch_now(self, batch: list[Job]) -> list[RewardOutput | BaseException]:
        if len(batch) == 1:
            out = self._score_one(batch[0])
            if self.metrics is not None and not isinstance(out, BaseException):
                self.metrics.samples.inc(batch[0].n)
            return [out]
        prompts = [p for job in batch for p in job.prompts]
        completions = [c for job in batch for c in job.completions]
        columns = {k: [v for job in batch for v in job.columns[k]] for k in batch[0].key}
        try:
            merged = self._score(prompts, completions, columns)
        except Exception:
            if self.metrics is not None:
                self.metrics.isolations.inc()
            results = [self._score_one(job) for job in batch]
        else:
            results, start = [], 0
            for job in batch:
                results.append(slice_output(merged, start, start + job.n))
                start += job.n
        if self.metrics is not None:
            self.metrics.samples.inc(sum(job.n for job, r in zip(batch, results) if not isinstance(r, BaseException)))
        return results
