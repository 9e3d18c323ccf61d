"""A reward served by ``rewardkit serve`` elsewhere, used like a local one (``remote:http://host:port``).

Same protocol, same errors (a missing column raises :class:`MissingColumnError`), same scores (JSON
floats round-trip exactly). Transient trouble (503 with ``Retry-After``, 502, 429, connection errors,
timeouts) is retried with exponential backoff; anything else fails at once with the server's message.
"""
from __future__ import annotations

import os
from typing import Any, Sequence

import httpx

from ..clients.retry import Retrying
from ..images import batch_has_images, count_images, inline_images, is_image_part, is_parts
from ..protocol import BaseReward, MissingColumnError, completion_text, message_text, sample_columns
from ..serve.schemas import TOKEN_ENV, concat_outputs, output_from_json
from ..types import Completion, Prompt, RewardOutput

RETRY_STATUS = (429, 502, 503)


class RemoteRewardError(RuntimeError):
    """The server refused or failed a request; ``status``, ``error`` and ``field`` come from its answer."""

    def __init__(self, message: str, *, status: int | None = None, error: str | None = None, field: str | None = None):
        self.status, self.error, self.field = status, error, field
        super().__init__(message)


class RemoteReward(BaseReward):
    """Client of a rewardkit reward server.

    url: the server's base URL (``http://127.0.0.1:8000``).
    token: bearer token; default: the ``REWARDKIT_API_TOKEN`` environment variable.
    timeout: seconds for one HTTP request (the server has its own ``--request-timeout``).
    retries: extra attempts on transient errors; the wait doubles from ``backoff`` up to
        ``max_backoff`` (a server's ``Retry-After`` is respected, also capped by ``max_backoff``).
    max_samples_per_request: larger batches are sent in chunks (default: the server's limit, read
        from ``/v1/info`` on first use). Rewards that compare samples within a batch
        (``transform:group``) belong on the client side: ``transform:group(remote:URL)``.
    transport: an ``httpx.BaseTransport`` (e.g. ``httpx.MockTransport``) for tests or custom networking.
    """

    kind = "remote"
    reads_images = True  # images travel to the server inline; the served reward decides whether it reads them

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        timeout: float = 120.0,
        connect_timeout: float = 10.0,
        retries: int = 5,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        max_samples_per_request: int | None = None,
        transport: httpx.BaseTransport | None = None,
        name: str | None = None,
    ):
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"remote reward url must start with http:// or https://, got {url!r}")
        self.url = url.rstrip("/")
        self.name = name or f"remote:{self.url}"
        self._named = name is not None
        self.retrying = Retrying(name=self.name, retries=retries, backoff=backoff, max_backoff=max_backoff, retry_status=RETRY_STATUS,
                                 fail=_failure, describe=lambda r: _error_body(r).get("message") or r.text[:500],
                                 describe_transient=lambda r: _error_body(r).get("message") or r.reason_phrase)
        self.max_samples_per_request = max_samples_per_request
        token = (token if token is not None else os.environ.get(TOKEN_ENV) or "").strip()
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.client = httpx.Client(
            base_url=self.url,
            headers=headers,
            timeout=httpx.Timeout(timeout, connect=connect_timeout),
            transport=transport,
        )
        self._info: dict[str, Any] | None = None

    # ----------------------------------------------------------------- protocol
    def score(self, prompts: Sequence[Prompt], completions: Sequence[Completion], **columns: Any) -> RewardOutput:
        self._check_lengths(prompts, completions)
        n = len(prompts)
        try:  # data columns only: a trainer's call context (TRL's trainer_state, callbacks) and the policy's
            cols = sample_columns(columns, n)  # token ids (completion_ids) mean nothing to the server
        except ValueError as err:
            raise ValueError(f"{self.name}: {err}") from None
        cols.pop("completion_ids", None)
        if n == 0:
            return RewardOutput(scores=[])
        chunk = self._chunk_size()
        parts = []
        for start in range(0, n, chunk):
            stop = min(n, start + chunk)
            wire_prompts = [_wire_prompt(p) for p in prompts[start:stop]]
            wire_completions = [_wire_completion(c) for c in completions[start:stop]]
            chunk_cols = {k: v[start:stop] for k, v in cols.items()}
            if batch_has_images(wire_prompts, wire_completions, chunk_cols):  # read here (paths, PIL images), sent as base64
                wire_prompts, wire_completions, chunk_cols = inline_images(wire_prompts, wire_completions, chunk_cols)
            body = {"prompts": wire_prompts, "completions": wire_completions, **chunk_cols}
            parts.append(output_from_json(self._post("/v1/score", body, columns=list(cols))))
        return concat_outputs(parts)

    @property
    def __name__(self) -> str:  # type: ignore[override]
        """What TRL logs the reward as, decided once at the first read (TRL reads it when the trainer is
        built): ``remote:<served reward>@<host:port>`` when the server says what it serves, else the URL
        name; a ``name`` given by the user wins. The address keeps two servers of one reward apart."""
        if not self._named:
            self._named = True
            try:  # one quick ask, no retries: naming must never stall or fail a training run
                served = self.client.get("/v1/info", timeout=5.0).json().get("reward")
            except Exception:  # noqa: BLE001
                served = None
            if isinstance(served, str) and served:
                self.name = f"remote:{served}@{httpx.URL(self.url).netloc.decode()}"
        return self.name

    def info(self) -> dict[str, Any]:
        """The server's ``/v1/info``: reward name and limits."""
        if self._info is None:
            self._info = self._request("GET", "/v1/info")
        return self._info

    def ready(self) -> bool:
        try:
            return self.client.get("/ready").status_code == 200
        except httpx.HTTPError:
            return False

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> "RemoteReward":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def eval_summary(self, records: Sequence[Any], rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
        """A served judge's cost and reliability statistics, read from the extras it sent back."""
        from .judge import judge_summary

        found = judge_summary(rows)
        return {"judge": found} if found else {}

    # ----------------------------------------------------------------- HTTP
    def _chunk_size(self) -> int:
        if self.max_samples_per_request is None:
            self.max_samples_per_request = int(self.info().get("max_samples_per_request") or 256)
        return max(1, int(self.max_samples_per_request))

    def _post(self, path: str, body: dict[str, Any], columns: list[str]) -> dict[str, Any]:
        try:
            return self._request("POST", path, json=body)
        except RemoteRewardError as err:
            if err.error == "missing_column" and err.field:
                raise MissingColumnError(self.name, err.field, columns) from err
            raise

    def _request(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        return self.retrying.call(path, lambda: self.client.request(method, path, **kwargs))


def _wire_prompt(prompt: Any) -> Any:
    """A chat prompt as the server's schema takes it: role and text content only (a tool call's
    ``content: None`` becomes "", content parts their text), the same text a local reward reads; a
    message with images keeps its text and image parts, in order."""
    if isinstance(prompt, (list, tuple)) and all(isinstance(m, dict) for m in prompt):
        return [{"role": str(m.get("role", "")), "content": _wire_content(m.get("content"))} for m in prompt]
    return prompt


def _wire_content(content: Any) -> Any:
    if isinstance(content, (list, tuple)) and any(is_image_part(p) for p in content):
        return [p if is_image_part(p) else {"type": "text", "text": message_text(p)} for p in content if is_image_part(p) or message_text(p)]
    return message_text(content)


def _wire_completion(completion: Any) -> Any:
    """A conversational completion as one assistant message holding what the assistant wrote (tool
    calls and results left out, as :func:`~rewardkit.protocol.completion_text` reads it locally); a
    completion with images as its text and image parts."""
    if is_parts(completion) or (isinstance(completion, (list, tuple)) and count_images(completion)):
        parts = completion if is_parts(completion) else [p for m in completion if m.get("role", "assistant") == "assistant"
                                                         for p in (m.get("content") if isinstance(m.get("content"), (list, tuple)) else [m.get("content")])]
        return _wire_content(list(parts))
    if isinstance(completion, (list, tuple)) and completion and all(isinstance(m, dict) for m in completion):
        return [{"role": "assistant", "content": completion_text(completion)}]
    return completion


def _error_body(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _failure(message: str, response: httpx.Response | None) -> RemoteRewardError:
    """The server's own ``error`` and ``field`` travel with the message (a missing column becomes a
    :class:`MissingColumnError` for the caller)."""
    body = _error_body(response) if response is not None and response.status_code >= 400 else {}
    return RemoteRewardError(message, status=response.status_code if response is not None else None,
                             error=body.get("error"), field=body.get("field"))
