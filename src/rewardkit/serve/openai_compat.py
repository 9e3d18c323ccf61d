"""A minimal OpenAI-compatible server over a rewardkit generation client, so the embedded model (or any
local model) can sit behind ``judge:openai:MODEL@URL`` like a vLLM server would, and so the HTTP judge
path is tested against a real server.

Endpoints: ``/v1/chat/completions``, ``/v1/completions``, ``/v1/models``, ``/health``, ``/ready``.
Supported fields: ``model``, ``messages``/``prompt``, ``max_tokens``, ``temperature``, ``top_p``, ``n``,
``seed``, ``stop``, ``logprobs``/``top_logprobs``, and vLLM's ``continue_final_message`` (the answer
continues a final assistant message). Not supported: streaming, tools, image parts (rejected with 400).
Requests are served one at a time by the model (no continuous batching): for throughput, use vLLM.
"""
from __future__ import annotations

import time
import uuid
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from ..clients.base import RawText
from ..images import count_images
from ..protocol import message_text


class _Common(BaseModel):
    model_config = ConfigDict(extra="allow")
    model: str = ""
    max_tokens: int | None = Field(default=None, ge=1, le=8192)
    max_completion_tokens: int | None = Field(default=None, ge=1, le=8192)
    temperature: float = Field(default=1.0, ge=0.0, le=5.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    n: int = Field(default=1, ge=1, le=64)
    seed: int | None = None
    stop: str | list[str] | None = None
    stream: bool = False


class ChatRequest(_Common):
    messages: list[dict[str, Any]]
    logprobs: bool = False
    top_logprobs: int | None = Field(default=None, ge=0, le=20)


class CompletionRequest(_Common):
    prompt: str
    logprobs: int | None = Field(default=None, ge=0, le=20)


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": "invalid_request_error"}}, status_code=status)


def create_openai_app(client: Any, model_name: str = "rewardkit-local", *, default_max_tokens: int = 256) -> FastAPI:
    """An app serving ``client`` (a :class:`rewardkit.clients.LocalClient`) under ``model_name``.
    A request without ``seed`` is sampled with seed 0, so answers are always reproducible."""
    app = FastAPI(title="rewardkit OpenAI-compatible generation server")

    def run(prompt: Any, req: _Common, want_lp: bool, top: int, prefix: str | None = None) -> tuple[list, int]:
        stop = [req.stop] if isinstance(req.stop, str) else req.stop
        max_new = req.max_completion_tokens or req.max_tokens or default_max_tokens
        extra = {"assistant_prefix": prefix} if prefix else {}
        gens = client.generate([prompt], max_new_tokens=max_new, temperature=req.temperature, top_p=req.top_p, n=req.n,
                               seed=0 if req.seed is None else req.seed, stop=stop, logprobs=want_lp, top_logprobs=top, **extra)[0]
        return gens, gens[0].prompt_tokens or 0

    def usage(gens: list, prompt_tokens: int) -> dict[str, int]:
        done = sum(g.num_tokens or 0 for g in gens)
        return {"prompt_tokens": prompt_tokens, "completion_tokens": done, "total_tokens": prompt_tokens + done}

    def check(req: _Common) -> JSONResponse | None:
        if req.stream:
            return _error(400, "streaming is not supported by this server")
        if req.model and req.model != model_name:
            return _error(404, f"model {req.model!r} is not served here (this server serves {model_name!r})")
        return None

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/ready")
    def ready() -> dict[str, str]:
        return {"status": "ready"}

    @app.get("/v1/models")
    def models() -> dict[str, Any]:
        return {"object": "list", "data": [{"id": model_name, "object": "model", "owned_by": "rewardkit"}]}

    @app.post("/v1/chat/completions")
    def chat(req: ChatRequest) -> Any:
        bad = check(req)
        if bad is not None:
            return bad
        try:
            if any(isinstance(m["content"], list) and count_images(m["content"]) for m in req.messages):
                # the served client reads text: an image would otherwise vanish from the question
                return _error(400, "image inputs are not supported: this endpoint serves a text-only model")
            messages = [{"role": str(m["role"]), "content": message_text(m["content"])} for m in req.messages]
        except KeyError as err:
            return _error(400, f"every message needs 'role' and 'content' (missing {err})")
        top = req.top_logprobs or 0
        prefix = None
        if (req.model_extra or {}).get("continue_final_message") and messages and messages[-1]["role"] == "assistant":
            prefix = messages.pop()["content"]  # vLLM's way to start the answer with given text
        gens, n_prompt = run(messages, req, req.logprobs or top > 0, top, prefix)
        choices = []
        for i, g in enumerate(gens):
            choice: dict[str, Any] = {"index": i, "message": {"role": "assistant", "content": g.text},
                                      "finish_reason": g.finish_reason, "token_ids": g.token_ids}
            if g.logprobs is not None:
                choice["logprobs"] = {"content": [
                    {"token": t, "logprob": lp, "top_logprobs": [{"token": k, "logprob": v} for k, v in (g.top_logprobs[j] if g.top_logprobs else {}).items()]}
                    for j, (t, lp) in enumerate(zip(g.tokens or [], g.logprobs))]}
            choices.append(choice)
        return {"id": f"chatcmpl-{uuid.uuid4().hex[:12]}", "object": "chat.completion", "created": int(time.time()),
                "model": model_name, "choices": choices, "usage": usage(gens, n_prompt)}

    @app.post("/v1/completions")
    def completions(req: CompletionRequest) -> Any:
        bad = check(req)
        if bad is not None:
            return bad
        top = req.logprobs or 0
        gens, n_prompt = run(RawText(req.prompt), req, top > 0, top)  # continued verbatim, as OpenAI does
        choices = []
        for i, g in enumerate(gens):
            choice: dict[str, Any] = {"index": i, "text": g.text, "finish_reason": g.finish_reason, "token_ids": g.token_ids}
            if g.logprobs is not None:
                choice["logprobs"] = {"tokens": g.tokens, "token_logprobs": g.logprobs, "top_logprobs": g.top_logprobs}
            choices.append(choice)
        return {"id": f"cmpl-{uuid.uuid4().hex[:12]}", "object": "text_completion", "created": int(time.time()),
                "model": model_name, "choices": choices, "usage": usage(gens, n_prompt)}

    return app
