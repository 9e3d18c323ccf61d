"""Helpers for the server tests: a real uvicorn server on a free loopback port in a thread, and small
rewards with controllable behaviour (slow, failing on a marker, recording batch sizes).

Not a conftest (tests/conftest.py owns that name); test modules import it, and subprocess servers
load its rewards as ``py:serve_helpers:NAME`` with this folder on PYTHONPATH.
"""
from __future__ import annotations

import socket
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from rewardkit.protocol import BaseReward, MissingColumnError, completion_text
from rewardkit.types import RewardOutput

HERE = Path(__file__).resolve().parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerThread:
    """``with ServerThread(reward, settings) as srv:`` -> a running server at ``srv.url``."""

    def __init__(self, reward: Any, settings: Any = None, *, wait_ready: bool = True, graceful_timeout: float = 10.0):
        from rewardkit.serve.app import ServeSettings, create_app, make_server

        self.app = create_app(reward, settings or ServeSettings())
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = make_server(self.app, "127.0.0.1", self.port, graceful_timeout=graceful_timeout, log_level="error")
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.wait_ready = wait_ready

    def __enter__(self) -> "ServerThread":
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the test server did not start")
            time.sleep(0.02)
        if self.wait_ready:
            wait_ready(self.url)
        return self

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30, **kwargs)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def wait_ready(url: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/ready", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{url} did not become ready within {timeout}s")


class RecordingReward(BaseReward):
    """Word count, after an optional ``delay``; records the size of every call (to see merging), and
    raises on any completion containing ``BOOM`` (to see a bad request fail alone). Needs the column
    ``answer`` when ``needs_answer``."""

    def __init__(self, delay: float = 0.0, needs_answer: bool = False, name: str = "recording"):
        self.delay, self.needs_answer, self.name = delay, needs_answer, name
        self.calls: list[int] = []
        self.threads: set[str] = set()
        self.active = 0
        self.max_active = 0
        self._lock = threading.Lock()

    def score(self, prompts, completions, **columns) -> RewardOutput:
        with self._lock:
            self.active += 1
            self.max_active = max(self.max_active, self.active)
        try:
            self.calls.append(len(prompts))
            self.threads.add(threading.current_thread().name)
            if self.needs_answer and "answer" not in columns:
                raise MissingColumnError(self.name, "answer", list(columns))
            texts = [completion_text(c) for c in completions]
            if any("BOOM" in t for t in texts):
                raise ValueError("this reward cannot score BOOM")
            if self.delay:
                time.sleep(self.delay)
            scores = [float(len(t.split())) for t in texts]
            return RewardOutput(scores=scores, extras={"chars": [len(t) for t in texts]})
        finally:
            with self._lock:
                self.active -= 1


def slow_length(prompts, completions):
    """``py:serve_helpers:slow_length`` for subprocess servers: word counts after one second."""
    time.sleep(1.0)
    return [float(len(completion_text(c).split())) for c in completions]


PROMPTS = [
    "What is 2+2?",
    [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "Capital of Peru?"}],
    "Tell me a joke about cats.",
    "x",
]
COMPLETIONS = ["4", "Lima.", "Why did the cat sit on the computer? To keep an eye on the mouse!", ["Step one.", "Step two: y."]]


def image_pixels(prompts, completions, images=None):
    """``py:serve_helpers:image_pixels``, a reward that reads images (declared below): the score is the
    pixel count of the sample's first image; ``extras["pixels"]`` holds ``mode WxH sha256(pixels)`` of
    every image, prompt images (its ``images`` column included) first, so a test sees exactly what arrived."""
    import hashlib

    from rewardkit.images import completion_images, prompt_images

    scores, seen = [], []
    for i, (p, c) in enumerate(zip(prompts, completions)):
        loaded = [ref.load() for ref in prompt_images(p, images[i] if images is not None else None) + completion_images(c)]
        seen.append([f"{im.mode} {im.width}x{im.height} {hashlib.sha256(im.tobytes()).hexdigest()}" for im in loaded])
        scores.append(float(loaded[0].width * loaded[0].height) if loaded else None)
    return RewardOutput(scores=scores, extras={"pixels": seen})


image_pixels.reads_images = True
