"""Client of any OpenAI-compatible completion server (vLLM, SGLang, llama.cpp, TGI, hosted APIs).

Async ``httpx`` under the hood: requests for many prompts run concurrently up to ``concurrency``.
Transient trouble (429, 500, 502, 503, 504, connection errors, timeouts) is retried with exponential
backoff (``Retry-After`` respected, both capped by ``max_backoff``); other errors fail at once with the
server's message. ``seed`` is sent with every request: servers that honour it (vLLM, SGLang, the
rewardkit one in :mod:`rewardkit.serve.openai_compat`) give the same text for the same input.

Images (``images=True``): image parts of a chat prompt go out as OpenAI content parts
``{"type": "image_url", "image_url": {"url": "data:image/png;base64,..."}}`` where they stood in their
message, the form vLLM, SGLang and llama.cpp take for vision-language models. Whether a server's
model reads images cannot be asked, so it is the caller's word; a server that refuses them is an
error that says so, and without ``images=True`` a prompt with images is refused before any request.
"""
from __future__ import annotations

import asyncio
import contextvars
import os
import threading
from typing import Any, Literal, Sequence

import httpx

from ..images import ImageRef, count_images, is_image_part
from ..models.encoding import to_messages
from ..protocol import message_text
from ..types import Prompt
from .base import Generation, Sampling, per_prompt
from .retry import Retrying

RETRY_STATUS = (429, 500, 502, 503, 504)
KEY_ENV = "OPENAI_API_KEY"


class OpenAIClientError(RuntimeError):
    def __init__(self, message: str, *, status: int | None = None):
        self.status = status
        super().__init__(message)


class OpenAIClient:
    """Generate through ``/v1/chat/completions`` (endpoint="chat", default) or ``/v1/completions``.

    model: the model name the server expects.
    base_url: e.g. ``http://127.0.0.1:8000/v1`` (a trailing ``/v1`` is added when missing).
    api_key: bearer key; default: ``$OPENAI_API_KEY`` (none sent when empty).
    timeout / connect_timeout: seconds per request / for connecting.
    retries, backoff, max_backoff: extra attempts on transient errors, first wait and its cap (seconds).
    concurrency: requests in flight at once.
    vendor_fields: how an ``assistant_prefix`` is sent on the chat endpoint. "vllm": as vLLM's (and SGLang's)
        ``continue_final_message`` / ``add_generation_prompt``; "none": a plain OpenAI chat request, without the
        prefix (servers such as ``transformers serve`` refuse unknown fields, and plain chat cannot continue a
        turn: such generations carry ``extras["prefix_applied"] = False``, and judges then parse the answer as
        written); "auto" (default): vLLM's fields until a server refuses them with 400/422, then plain for the
        rest of this client's life.
    transport: an ``httpx.AsyncBaseTransport`` (``httpx.MockTransport`` in tests, custom networking).
    images: the server's model reads images (a vision-language model): image parts of chat prompts
        are sent as ``image_url`` parts with ``data:`` URLs (read locally under the image policy in
        force, never passed on as paths or URLs for the server to fetch). Off by default: a judge on
        this client then refuses image samples instead of judging their text alone.
    """

    def __init__(
        self,
        model: str,
        base_url: str = "http://127.0.0.1:8000/v1",
        *,
        api_key: str | None = None,
        endpoint: Literal["chat", "completions"] = "chat",
        timeout: float = 120.0,
        connect_timeout: float = 10.0,
        retries: int = 4,
        backoff: float = 0.5,
        max_backoff: float = 20.0,
        concurrency: int = 8,
        transport: httpx.AsyncBaseTransport | None = None,
        extra_body: dict[str, Any] | None = None,
        vendor_fields: Literal["auto", "vllm", "none"] = "auto",
        images: bool = False,
        name: str | None = None,
    ):
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must start with http:// or https://, got {base_url!r}")
        if endpoint not in ("chat", "completions"):
            raise ValueError(f"endpoint must be 'chat' or 'completions', got {endpoint!r}")
        if concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {concurrency}")
        if vendor_fields not in ("auto", "vllm", "none"):
            raise ValueError(f"vendor_fields must be 'auto', 'vllm' or 'none', got {vendor_fields!r}")
        self.vendor_fields = vendor_fields
        self.plain_chat = vendor_fields == "none"  # auto: becomes True once a server refuses vLLM's fields
        base = base_url.rstrip("/")
        self.base_url = base if base.endswith("/v1") else base + "/v1"
        self.model, self.endpoint = model, endpoint
        self.name = name or f"openai:{model}@{self.base_url}"
        self.api_key = (api_key if api_key is not None else os.environ.get(KEY_ENV, "")).strip()
        self.timeout = httpx.Timeout(timeout, connect=connect_timeout)
        self.retrying = Retrying(name=self.name, retries=retries, backoff=backoff, max_backoff=max_backoff, retry_status=RETRY_STATUS,
                                 fail=lambda m, r: OpenAIClientError(m, status=r.status_code if r is not None else None),
                                 describe=_error_message)
        self.concurrency = int(concurrency)
        self.transport = transport
        self.extra_body = dict(extra_body or {})
        self.reads_images = bool(images)
        self.image_hint = None if images else (
            f"add images=true (judge:openai:{model}@{self.base_url}(images=true)) if the server's model is a vision-language model")

    # ----------------------------------------------------------------- public API
    def generate(self, prompts: Sequence[Prompt], **kwargs: Any) -> list[list[Generation]]:
        """Blocking form of :meth:`agenerate` (safe to call from inside a running event loop)."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(self.agenerate(prompts, **kwargs))
        box: dict[str, Any] = {}

        def work() -> None:
            try:
                box["out"] = asyncio.run(self.agenerate(prompts, **kwargs))
            except BaseException as err:  # noqa: BLE001 - re-raised in the caller's thread
                box["err"] = err

        context = contextvars.copy_context()  # the image policy in force goes with the work
        thread = threading.Thread(target=context.run, args=(work,))
        thread.start()
        thread.join()
        if "err" in box:
            raise box["err"]
        return box["out"]

    async def agenerate(self, prompts: Sequence[Prompt], *, assistant_prefix: Sequence[str] | str | None = None,
                        **options: Any) -> list[list[Generation]]:
        """``n`` generations per prompt, one list per prompt in input order; ``options`` are the fields of
        :class:`~rewardkit.clients.base.Sampling`.

        assistant_prefix: text the answer starts with; sent as a final assistant message with vLLM's
        ``continue_final_message`` (chat) or appended to the prompt (completions). The returned text is
        the continuation only, as with :class:`LocalClient`.
        """
        o = Sampling.of(self.name, options)
        prefixes = per_prompt(assistant_prefix, len(prompts))
        # chat messages built (and images read) once, before any request: a bad image fails fast
        wire = [self.messages(p) for p in prompts] if self.endpoint == "chat" else [None] * len(prompts)
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        limit = asyncio.Semaphore(self.concurrency)
        async with httpx.AsyncClient(base_url=self.base_url, headers=headers, timeout=self.timeout, transport=self.transport) as client:
            async def one(prompt: Prompt, prefix: str, messages: list[dict[str, Any]] | None) -> list[Generation]:
                async with limit:
                    body = self._body(prompt, o, prefix, messages=messages)  # built once a slot is free: it sees a fallback decided meanwhile
                    try:
                        data = await self._post(client, body)
                    except OpenAIClientError as err:
                        if not (self.vendor_fields == "auto" and err.status in (400, 422) and "continue_final_message" in body):
                            raise self._image_refusal(err, messages) from None
                        plain = self._body(prompt, o, prefix, plain=True, messages=messages)
                        try:
                            data = await self._post(client, plain)
                        except OpenAIClientError:
                            # not about vLLM's fields (e.g. a prompt too long): the server's own answer
                            raise self._image_refusal(err, messages) from None
                        self.plain_chat, body = True, plain  # the server refused only the fields: plain requests from now on
                gens = self._parse(data, o.n, o.seed)
                if prefix and self.endpoint == "chat" and "continue_final_message" not in body:
                    for g in gens:
                        g.extras["prefix_applied"] = False
                return gens

            return list(await asyncio.gather(*(one(p, pre, m) for p, pre, m in zip(prompts, prefixes, wire))))

    # ----------------------------------------------------------------- wire format
    def messages(self, prompt: Prompt) -> list[dict[str, Any]]:
        """The chat messages sent for ``prompt``: text content as a string; content with images as
        OpenAI content parts, text and ``image_url`` (a ``data:`` URL) in their order."""
        messages = to_messages(prompt)
        if isinstance(prompt, str) or not count_images(prompt):
            return messages
        if not self.reads_images:
            raise ValueError(f"{self.name}: the prompt carries {count_images(prompt)} image(s) but this client was not told that the "
                             "server's model reads images; pass images=True (spec: judge:openai:MODEL@URL(images=true)) for a "
                             "vision-language model")
        for m, original in zip(messages, prompt):
            content = original.get("content")
            if isinstance(content, (list, tuple)) and any(is_image_part(p) for p in content):
                parts = [{"type": "image_url", "image_url": {"url": ImageRef.parse(p).data_url()}} if is_image_part(p)
                         else {"type": "text", "text": message_text(p)} for p in content]
                m["content"] = [p for p in parts if p["type"] != "text" or p["text"]]
        return messages

    def _image_refusal(self, err: OpenAIClientError, messages: list[dict[str, Any]] | None) -> OpenAIClientError:
        """``err``, and when the refused request carried images, what that likely means."""
        images = sum(1 for m in messages or () if isinstance(m["content"], list) for p in m["content"] if p["type"] == "image_url")
        if not images or err.status not in (400, 413, 422):
            return err
        return OpenAIClientError(f"{err} [the request carried {images} image(s): is {self.model!r} a vision-language model, served with "
                                 "its image support (llama.cpp: --mmproj), and are the images within its limits? Without images=True "
                                 "the judge refuses image samples instead]", status=err.status)

    def _body(self, prompt: Prompt, o: Sampling, prefix: str = "", plain: bool = False,
              messages: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.model, "max_tokens": o.max_new_tokens, "temperature": o.temperature,
                                "top_p": o.top_p, "n": o.n}
        if o.seed is not None:
            body["seed"] = int(o.seed)
        if o.stop:
            body["stop"] = list(o.stop)
        want = o.wants_logprobs
        top_logprobs = o.top_logprobs
        if self.endpoint == "chat":
            body["messages"] = list(messages if messages is not None else self.messages(prompt))
            if prefix and not (plain or self.plain_chat):
                body["messages"].append({"role": "assistant", "content": prefix})
                body["continue_final_message"], body["add_generation_prompt"] = True, False
            if want:
                body["logprobs"] = True
                body["top_logprobs"] = top_logprobs
        else:
            if not isinstance(prompt, str):
                raise TypeError("endpoint='completions' takes text prompts; use endpoint='chat' for messages")
            body["prompt"] = prompt + prefix
            if want:
                body["logprobs"] = max(1, top_logprobs)
        body.update(self.extra_body)
        return body

    def _parse(self, data: dict[str, Any], n: int, seed: int | None) -> list[Generation]:
        choices = sorted(data.get("choices") or [], key=lambda c: c.get("index", 0))
        if len(choices) != n:
            raise OpenAIClientError(f"{self.name}: asked for {n} choices, the server returned {len(choices)} (does it support n?)")
        usage = data.get("usage") or {}
        out = []
        for choice in choices:
            if self.endpoint == "chat":
                text = (choice.get("message") or {}).get("content") or ""
                tokens, lps, tops = _chat_logprobs(choice.get("logprobs"))
            else:
                text = choice.get("text") or ""
                tokens, lps, tops = _completion_logprobs(choice.get("logprobs"))
            ids = choice.get("token_ids")  # vLLM and the rewardkit server return them
            count = len(tokens) if tokens is not None else (len(ids) if isinstance(ids, list) else None)
            if count is None and usage.get("completion_tokens") is not None and n == 1:
                count = int(usage["completion_tokens"])
            out.append(Generation(
                text=text,
                token_ids=ids if isinstance(ids, list) else None,
                finish_reason="length" if choice.get("finish_reason") == "length" else "stop",
                num_tokens=count,
                prompt_tokens=usage.get("prompt_tokens"),
                tokens=tokens, logprobs=lps, top_logprobs=tops,
                seed=seed,
            ))
        return out

    # ----------------------------------------------------------------- HTTP
    async def _post(self, client: httpx.AsyncClient, body: dict[str, Any]) -> dict[str, Any]:
        path = "/chat/completions" if self.endpoint == "chat" else "/completions"
        return await self.retrying.acall(path, lambda: client.post(self.base_url + path, json=body))


def _chat_logprobs(block: Any) -> tuple[list[str] | None, list[float] | None, list[dict[str, float]] | None]:
    content = (block or {}).get("content") if isinstance(block, dict) else None
    if not content:
        return None, None, None
    tokens = [str(c.get("token", "")) for c in content]
    lps = [float(c.get("logprob", float("-inf"))) for c in content]
    tops = [{str(t.get("token", "")): float(t.get("logprob")) for t in (c.get("top_logprobs") or [])} for c in content]
    return tokens, lps, tops


def _completion_logprobs(block: Any) -> tuple[list[str] | None, list[float] | None, list[dict[str, float]] | None]:
    if not isinstance(block, dict) or not block.get("tokens"):
        return None, None, None
    tokens = [str(t) for t in block["tokens"]]
    lps = [float(x) if x is not None else float("-inf") for x in block.get("token_logprobs") or []]
    tops = [{str(k): float(v) for k, v in (d or {}).items()} for d in block.get("top_logprobs") or []]
    return tokens, lps, tops


def _error_message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:500]
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict):
            return str(err.get("message") or err)
        return str(err or body.get("detail") or body)[:500]
    return str(body)[:500]
