"""Helpers for client and judge tests: a tiny random causal LM as a LocalClient, and a real uvicorn
OpenAI-compatible server in a thread. Imported by test modules (tests/conftest.py owns the fixtures name)."""
from __future__ import annotations

import socket
import threading
import time
from typing import Any

import httpx


def tiny_lm(seed: int = 0):
    """(model, tokenizer): a 2-layer random Llama over the character tokenizer of tests/conftest.py."""
    import torch
    from conftest import build_tiny_tokenizer, tiny_config
    from transformers import LlamaForCausalLM

    tok = build_tiny_tokenizer()
    torch.manual_seed(seed)
    model = LlamaForCausalLM(tiny_config(tok))
    model.eval()
    return model, tok


def tiny_client(**kwargs: Any):
    from rewardkit.clients import LocalClient

    model, tok = tiny_lm()
    return LocalClient(model, tokenizer=tok, **kwargs)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class AppServerThread:
    """``with AppServerThread(app) as srv:`` -> the ASGI ``app`` served on a free loopback port at ``srv.url``;
    entering waits for its ``GET /ready``."""

    what = "test server"

    def __init__(self, app: Any):
        import uvicorn

        self.app = app
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="error"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self):
        self.thread.start()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "/ready", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"the {self.what} did not start")

    def __exit__(self, *exc: Any) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


class OpenAIServerThread(AppServerThread):
    """``with OpenAIServerThread(client) as srv:`` -> a real server at ``srv.url`` (base URL ``srv.url + '/v1'``)."""

    what = "OpenAI-compatible test server"

    def __init__(self, client: Any, model_name: str = "tiny"):
        from rewardkit.serve.openai_compat import create_openai_app

        super().__init__(create_openai_app(client, model_name))
