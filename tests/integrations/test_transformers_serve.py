"""An OpenAI-compatible server rewardkit did not write: transformers' own ``transformers serve``
(the embedded model, loopback). It refuses vLLM's ``continue_final_message`` / ``add_generation_prompt``
with 422 and returns no log-probabilities; a judge must still run, and say that its verdicts were hard."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

pytest.importorskip("openai", reason="transformers serve needs its serving extra (openai, rich): in rewardkit's test extra")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def served(embedded_available):
    exe = Path(sys.executable).with_name("transformers")
    if not exe.exists():
        exe = shutil.which("transformers")
    if not exe:
        pytest.skip("the transformers CLI is not installed")
    from rewardkit.models.loading import local_model_path

    # the embedded SmolLM2-135M-Instruct (a real BPE tokenizer: transformers' stop-string handling needs one)
    model, port = local_model_path("default"), _free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.Popen([str(exe), "serve", model, "--host", "127.0.0.1", "--port", str(port), "--log-level", "error"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(url + "/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                out = proc.stdout.read().decode(errors="replace")[-2000:] if proc.stdout else ""
                pytest.fail(f"transformers serve did not start: {out}")
            time.sleep(0.5)
        yield model, url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.mark.slow
def test_judges_run_against_transformers_serve_and_report_hard_verdicts(served):
    from rewardkit.clients import OpenAIClient
    from rewardkit.clients.openai import OpenAIClientError
    from rewardkit.data.formats import Dataset
    from rewardkit.evals.runner import evaluate
    from rewardkit.rewards.judge import JudgeReward, PairwiseJudge
    from rewardkit.types import PairRecord

    model, url = served
    strict = OpenAIClient(model, url, vendor_fields="vllm", retries=0)
    with pytest.raises(OpenAIClientError) as refused:  # what every request did before: 422 at once
        strict.generate(["q"], max_new_tokens=2, assistant_prefix="Verdict:")
    assert refused.value.status == 422 and "continue_final_message" in str(refused.value)

    client = OpenAIClient(model, url, retries=0)  # vendor_fields="auto"
    judge = PairwiseJudge(client=client, max_new_tokens=4)
    out = judge.score(["Which is better?"] * 2, ["a short answer", "a much longer and better answer"])
    assert client.plain_chat  # detected once: this server takes plain OpenAI requests
    assert out.extras["hard_verdicts"] == [2, 2]  # both orders, no probabilities from this server
    assert all(not text.startswith("Verdict:") for raw in out.extras["judge_raw"] for text in raw)  # no prefix was continued

    records = [PairRecord("r1", "Say hi.", "hi", "no"), PairRecord("r2", "Say yes.", "yes", "maybe")]
    result, _ = evaluate(JudgeReward(client=client, max_new_tokens=3), Dataset("pairs", records, "inline", "pairwise"), n_boot=10)
    assert result["judge"]["hard_verdict_rate"] == 1.0  # the eval says the verdicts were hard
