"""`rewardkit serve` as a user runs it: a subprocess on a free loopback port, stopped with SIGTERM
while requests are in flight; the refusal to serve unauthenticated beyond loopback."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
from serve_helpers import HERE, free_port, wait_ready

from rewardkit.cli.main import main


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), env.get("PYTHONPATH", "")])
    env.pop("REWARDKIT_API_TOKEN", None)
    env.update(extra)
    return env


def test_refuses_non_loopback_without_a_token(capsys, monkeypatch):
    monkeypatch.delenv("REWARDKIT_API_TOKEN", raising=False)
    assert main(["serve", "--reward", "length", "--host", "0.0.0.0"]) == 2
    err = capsys.readouterr().err
    assert "refusing to serve on 0.0.0.0 without authentication" in err and "REWARDKIT_API_TOKEN" in err


def test_serve_with_token_and_graceful_sigterm(tmp_path):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    token = tmp_path / "token"
    token.write_text("t0ken\n")
    proc = subprocess.Popen(
        [sys.executable, "-m", "rewardkit.cli.main", "serve", "--reward", "py:serve_helpers:slow_length", "--port", str(port),
         "--token-file", str(token), "--no-batching", "--log-level", "warning"],
        env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        wait_ready(url, timeout=60)
        headers = {"Authorization": "Bearer t0ken"}
        assert httpx.post(f"{url}/v1/score", json={"prompts": ["p"], "completions": ["a"]}).status_code == 401
        body = {"prompts": ["p"], "completions": ["a b c"]}
        with ThreadPoolExecutor(2) as pool:
            in_flight = [pool.submit(httpx.post, f"{url}/v1/score", json=body, headers=headers, timeout=30) for _ in range(2)]
            time.sleep(0.3)  # both requests reached the server; each takes a second on the model
            proc.send_signal(signal.SIGTERM)
            results = [f.result() for f in in_flight]
        assert [r.status_code for r in results] == [200, 200] and all(r.json()["scores"] == [3.0] for r in results)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "bearer token required" in proc.stderr.read()


def test_a_reward_that_fails_to_load_stops_the_server():
    proc = subprocess.run(
        [sys.executable, "-m", "rewardkit.cli.main", "serve", "--reward", "classifier:/no/such/model", "--port", str(free_port()),
         "--log-level", "critical"],
        env=_env(), capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2 and "the reward failed to load" in proc.stderr and "/no/such/model" in proc.stderr
