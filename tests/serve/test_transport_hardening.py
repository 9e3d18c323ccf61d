"""The server under attack, over raw sockets to a real uvicorn server on a loopback port: slow and
half-open connections are cut at --receive-timeout, connections beyond --max-connections are
refused, a request without the token is refused from its head (its body unread), the API docs need
the token, a token-less server answers only loopback Host names (DNS rebinding), and a reward's
NaN / inf is an unscored sample. Every wait is bounded (socket timeouts and deadlines)."""
from __future__ import annotations

import json
import math
import select
import socket
import time

import httpx
from serve_helpers import ServerThread

from rewardkit.protocol import BaseReward, completion_text
from rewardkit.rewards.baselines import LengthReward
from rewardkit.serve.app import ServeSettings
from rewardkit.types import RewardOutput

SAMPLE = {"prompts": ["p"], "completions": ["a b c"]}
BODY = json.dumps(SAMPLE).encode()


def _connect(port: int, timeout: float = 5.0) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=timeout)


def _read_until_closed(sock: socket.socket, deadline: float) -> tuple[bytes, bool]:
    """(bytes received, whether the server closed the connection before ``deadline``)."""
    data = b""
    while time.monotonic() < deadline:
        if not select.select([sock], [], [], max(0.0, deadline - time.monotonic()))[0]:
            break
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return data, True
        if not chunk:
            return data, True
        data += chunk
    return data, False


def _parse(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    assert raw, "the server sent no answer"
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v for k, _, v in (line.partition(": ") for line in lines[1:])}
    return int(lines[0].split()[1]), headers, body


def _request(port: int, method: str, path: str, headers: dict[str, str], body: bytes = b"") -> tuple[int, dict[str, str], bytes]:
    """One request with exactly these headers (``Connection: close``), the answer parsed."""
    lines = [f"{method} {path} HTTP/1.1", *(f"{k}: {v}" for k, v in headers.items()), "Content-Type: application/json",
             f"Content-Length: {len(body)}", "Connection: close"]
    with _connect(port) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        raw, closed = _read_until_closed(sock, time.monotonic() + 10)
    assert closed, "the server did not finish its answer"
    return _parse(raw)


# ------------------------------------------------------------------------------- slow and half-open clients
def test_a_header_trickle_is_cut_at_the_receive_timeout():
    with ServerThread(LengthReward(), ServeSettings(receive_timeout=1.0)) as srv:
        sock = _connect(srv.port)
        head = b"POST /v1/score HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: " + b"a" * 5000  # one byte every 8 ms: 40 s if let through
        start, cut = time.monotonic(), None
        try:
            for byte in head:
                sock.sendall(bytes([byte]))
                if select.select([sock], [], [], 0.008)[0]:  # the server answered or closed
                    _, closed = _read_until_closed(sock, time.monotonic() + 2)
                    cut = time.monotonic() - start if closed else None
                    break
                if time.monotonic() - start > 5:
                    break
        except (BrokenPipeError, ConnectionResetError):
            cut = time.monotonic() - start
        finally:
            sock.close()
        assert cut is not None, "the trickling client was still connected after 5 s"
        assert 0.9 <= cut < 2.5, cut


def test_half_open_connections_are_closed_and_the_server_still_answers():
    with ServerThread(LengthReward(), ServeSettings(receive_timeout=1.0)) as srv:
        silent = [_connect(srv.port) for _ in range(100)]  # connected, nothing sent
        partial = [_connect(srv.port) for _ in range(100)]  # a head, then a body that never ends
        for sock in partial:
            sock.sendall(b"POST /v1/score HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{")
        try:
            with srv.client() as client:  # answered while they hang
                assert client.post("/v1/score", json=SAMPLE).json()["scores"] == [3.0]
            deadline = time.monotonic() + 4
            answers = [_read_until_closed(sock, deadline) for sock in silent + partial]
            elapsed = time.monotonic() - (deadline - 4)
        finally:
            for sock in silent + partial:
                sock.close()
        assert all(closed for _, closed in answers), f"{sum(not c for _, c in answers)} of 200 connections still open"
        assert elapsed < 3.5
        assert all(raw == b"" for raw, _ in answers[:100]), "a connection that sent nothing is closed without an answer"
        status, headers, body = _parse(answers[-1][0])
        assert all(raw == answers[-1][0] for raw, _ in answers[100:])
        assert status == 408 and headers["connection"] == "close" and json.loads(body)["error"] == "request_timeout"
        with srv.client() as client:
            assert client.post("/v1/score", json=SAMPLE).json()["scores"] == [3.0]


def test_connections_beyond_the_cap_are_refused_with_503():
    with ServerThread(LengthReward(), ServeSettings(max_connections=8)) as srv:
        time.sleep(0.3)  # wait_ready's connections are gone
        held = [_connect(srv.port) for _ in range(8)]
        try:
            time.sleep(0.3)
            assert not select.select(held, [], [], 0)[0], "a connection within the cap was answered"
            with _connect(srv.port) as extra:
                raw, closed = _read_until_closed(extra, time.monotonic() + 3)
            status, headers, body = _parse(raw)
            assert closed and status == 503 and headers["retry-after"] == "1" and json.loads(body)["error"] == "too_many_connections"
        finally:
            for sock in held:
                sock.close()
        time.sleep(0.3)
        with srv.client() as client:
            assert client.post("/v1/score", json=SAMPLE).json()["scores"] == [3.0]
            assert 'rewardkit_rejected_total{reason="connections"} 1.0' in client.get("/metrics").text


# ------------------------------------------------------------------------------- the token, from the head
def test_a_large_body_with_a_wrong_token_gets_401_without_being_read():
    with ServerThread(LengthReward(), ServeSettings(token="s3cret")) as srv:
        for auth, length in (("Bearer wrong", 7_000_000), (None, 7_000_000), ("Bearer wrong", 500_000_000)):
            sock = _connect(srv.port)
            head = f"POST /v1/score HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {length}\r\n"
            head += f"Authorization: {auth}\r\n" if auth else ""
            start = time.monotonic()
            try:
                sock.sendall(head.encode() + b"\r\n" + b'{"prompts": ["' + b"x" * 65536)  # the rest never comes
                raw, closed = _read_until_closed(sock, start + 3)
            finally:
                sock.close()
            status, headers, body = _parse(raw)
            assert status == 401 and json.loads(body)["error"] == "unauthorized" and headers["www-authenticate"] == "Bearer", (auth, length)
            assert closed and time.monotonic() - start < 2, "the server waited for the body instead of closing"
        status, _, body = _request(srv.port, "POST", "/v1/score", {"Host": "127.0.0.1", "Authorization": "Bearer s3cret"}, BODY)
        assert status == 200 and json.loads(body)["scores"] == [3.0]


def test_the_api_docs_need_the_token():
    with ServerThread(LengthReward(), ServeSettings(token="s3cret")) as srv:
        with srv.client() as client:
            for path in ("/docs", "/redoc", "/openapi.json"):
                assert client.get(path).status_code == 401, path
                assert client.get(path, headers={"Authorization": "Bearer nope"}).status_code == 401, path
                assert client.get(path, headers={"Authorization": "Bearer s3cret"}).status_code == 200, path
            assert client.get("/health").status_code == 200 and client.get("/ready").status_code == 200  # probes stay open
            spec = client.get("/openapi.json", headers={"Authorization": "Bearer s3cret"}).json()
            assert "HTTPBearer" in spec["components"]["securitySchemes"]


# ------------------------------------------------------------------------------- DNS rebinding
def test_a_server_without_a_token_answers_only_loopback_host_names():
    with ServerThread(LengthReward(), ServeSettings(allowed_hosts=("rm.internal",))) as srv:
        port = srv.port
        for host in ("evil.example", f"evil.example:{port}", "localhost.evil.example", f"127.0.0.1.nip.io:{port}", "rm.internal.evil.example"):
            status, headers, body = _request(port, "POST", "/v1/score", {"Host": host}, BODY)
            error = json.loads(body)
            assert status == 421 and error["error"] == "host_not_allowed" and error["field"] == "Host", host
            assert "--allowed-hosts" in error["message"] and headers["connection"] == "close"
        for host in ("localhost", f"localhost:{port}", f"127.0.0.1:{port}", f"[::1]:{port}", "[::1]", f"LocalHost:{port}", f"rm.internal:{port}"):
            status, _, body = _request(port, "POST", "/v1/score", {"Host": host}, BODY)
            assert status == 200 and json.loads(body)["scores"] == [3.0], host
        status, _, _ = _request(port, "GET", "/v1/info", {"Host": "evil.example"})
        assert status == 421
    with ServerThread(LengthReward(), ServeSettings(token="s3cret")) as srv:  # with a token the token decides
        status, _, _ = _request(srv.port, "POST", "/v1/score", {"Host": "rm.example.org", "Authorization": "Bearer s3cret"}, BODY)
        assert status == 200


# ------------------------------------------------------------------------------- non-finite scores
class NonFinite(BaseReward):
    """``nan``, ``inf``, ``-inf`` or ``huge`` (an int too large for a float) as the score of a completion saying so; else 1."""

    name = "non-finite"
    VALUES = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf, "huge": 10**400}

    def score(self, prompts, completions, **columns) -> RewardOutput:
        return RewardOutput(scores=[self.VALUES.get(completion_text(c), 1.0) for c in completions])


def test_a_non_finite_score_is_an_unscored_sample():
    completions = ["nan", "ok", "inf", "-inf", "huge"]
    with ServerThread(NonFinite()) as srv, srv.client() as client:
        r = client.post("/v1/score", json={"prompts": ["p"] * 5, "completions": completions})
        assert r.status_code == 200 and "NaN" not in r.text and "Infinity" not in r.text
        data = r.json()
        assert data["scores"] == [None, 1.0, None, None, None]
        assert [("non-finite" in (why or "")) for why in data["extras"]["reason"]] == [True, False, True, True, True]
        r = client.post("/get_reward", json={"query": [f"p{c}" for c in completions], "prompts": ["p"] * 5})
        assert r.status_code == 422 and r.json()["error"] == "unscored_sample"
        assert "4 of 5 samples" in r.json()["message"] and "non-finite score (nan)" in r.json()["message"]
    with ServerThread(NonFinite(), ServeSettings(unscored_reward=-1.0)) as srv, srv.client() as client:
        r = client.post("/get_reward", json={"query": [f"p{c}" for c in completions], "prompts": ["p"] * 5})
        assert r.status_code == 200, r.text
        assert r.json()["rewards"] == [-1.0, 1.0, -1.0, -1.0, -1.0] and r.json()["extra_logs"]["unscored"] == [1.0, 0.0, 1.0, 1.0, 1.0]
