"""One retry policy for rewardkit's HTTP clients (the remote reward and the OpenAI-compatible client):
transient failures (connection errors, timeouts, the retryable statuses) are retried with exponential
backoff and jitter, a server's ``Retry-After`` is respected, both capped by ``max_backoff``; anything
else fails at once with the server's own message. Jitter has its own seeded generator, so it never
touches an output."""
from __future__ import annotations

import asyncio
import random
import time
from typing import Any, Awaitable, Callable

import httpx


class Retrying:
    """retries: extra attempts; backoff: first wait (doubles per attempt); max_backoff: cap of any wait.
    ``fail(message, response_or_None) -> Exception`` builds the caller's own error type."""

    def __init__(self, *, name: str, retries: int, backoff: float, max_backoff: float, retry_status: tuple[int, ...],
                 fail: Callable[[str, httpx.Response | None], Exception], describe: Callable[[httpx.Response], str],
                 describe_transient: Callable[[httpx.Response], str] | None = None):
        if retries < 0 or backoff < 0 or max_backoff < 0:
            raise ValueError("retries, backoff and max_backoff must be >= 0")
        self.name, self.retries, self.backoff, self.max_backoff = name, int(retries), float(backoff), float(max_backoff)
        self.retry_status, self.fail, self.describe = tuple(retry_status), fail, describe
        self.describe_transient = describe_transient or describe  # for the "last error" once retries run out
        self._jitter = random.Random(0)

    def wait(self, attempt: int, retry_after: str | None) -> float:
        delay = min(self.max_backoff, self.backoff * (2 ** attempt)) * (0.5 + self._jitter.random() / 2)
        if retry_after:
            try:
                delay = max(delay, min(self.max_backoff, float(retry_after)))
            except ValueError:  # an HTTP date: fall back to our own backoff
                pass
        return delay

    def _outcome(self, path: str, response: httpx.Response | None, error: BaseException | None) -> tuple[bool, Any, str, str | None]:
        """(done, parsed JSON, what went wrong, Retry-After); raises what must not be retried."""
        if isinstance(error, httpx.LocalProtocolError):  # a request we cannot even send (e.g. a bad header)
            raise self.fail(f"{self.name}: could not send the request: {error}", None) from error
        if error is not None:  # connection refused / reset, timeouts
            return False, None, f"{type(error).__name__}: {error}", None
        assert response is not None
        if response.status_code < 400:
            try:
                return True, response.json(), "", None
            except ValueError as err:
                raise self.fail(f"{self.name}: {path} answered with invalid JSON", response) from err
        if response.status_code not in self.retry_status:
            raise self.fail(f"{self.name}: {path} failed with HTTP {response.status_code}: {self.describe(response)}", response)
        return False, None, f"HTTP {response.status_code}: {self.describe_transient(response)}", response.headers.get("Retry-After")

    def _given_up(self, path: str, last: str) -> Exception:
        return self.fail(f"{self.name}: {path} failed after {self.retries + 1} attempts; last error: {last}", None)

    def call(self, path: str, send: Callable[[], httpx.Response]) -> Any:
        last = ""
        for attempt in range(self.retries + 1):
            try:
                done, found, last, retry_after = self._outcome(path, send(), None)
            except (httpx.TransportError, httpx.TimeoutException) as err:
                done, found, last, retry_after = self._outcome(path, None, err)
            if done:
                return found
            if attempt < self.retries:
                time.sleep(self.wait(attempt, retry_after))
        raise self._given_up(path, last)

    async def acall(self, path: str, send: Callable[[], Awaitable[httpx.Response]]) -> Any:
        last = ""
        for attempt in range(self.retries + 1):
            try:
                done, found, last, retry_after = self._outcome(path, await send(), None)
            except (httpx.TransportError, httpx.TimeoutException) as err:
                done, found, last, retry_after = self._outcome(path, None, err)
            if done:
                return found
            if attempt < self.retries:
                await asyncio.sleep(self.wait(attempt, retry_after))
        raise self._given_up(path, last)
