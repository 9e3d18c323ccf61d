"""The server's HTTP/1.1 connections: uvicorn's h11 protocol with a deadline for receiving each
request and a cap on open connections (slowloris and half-open connections).

Why a protocol class and not ASGI middleware: the app first sees a request once its head is
complete, so a client that sends one header byte every few milliseconds, or connects and sends
nothing, never reaches it; uvicorn's ``timeout_keep_alive`` only runs between requests (it is
cancelled by the first byte of the next one and never armed on a new connection), and its
``limit_concurrency`` answers 503 only once a request head has arrived. So the deadline lives in
the protocol, where bytes arrive:

* a timer starts when the connection is ready for a request (connected, or the previous response
  sent) and stops when h11 has the whole request, head and body (``their_state`` DONE). When it
  fires first, the connection is closed, after a 408 if a request had begun and no response. One
  deadline covers the head and the body, so a slow body is cut as surely as a slow head, and the
  app (which reads the body before anything else) gets ``http.disconnect``;
* a connection beyond ``max_connections`` gets 503 and is closed as soon as it is accepted.

uvicorn bounds the rest: request heads at h11's 16 KiB, idle keep-alive at ``timeout_keep_alive``.
"""
from __future__ import annotations

import asyncio
import json
import logging
from typing import Any, Callable

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger("rewardkit.serve")


def raw_response(status: int, reason: str, error: str, message: str, headers: tuple[tuple[str, str], ...] = ()) -> bytes:
    """A complete ``Connection: close`` response with the server's JSON error body, written to the
    socket directly: h11 cannot send a response for a request it has not fully received."""
    body = json.dumps({"error": error, "message": message, "field": None, "errors": []}).encode()
    head = [f"HTTP/1.1 {status} {reason}", "content-type: application/json", f"content-length: {len(body)}", "connection: close"]
    head += [f"{k}: {v}" for k, v in headers]
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a receive deadline per request and a connection cap (class
    attributes, set by :func:`guarded_protocol`)."""

    receive_timeout: float = 30.0
    max_connections: int = 1024
    on_refused: Callable[[str], None] = staticmethod(lambda reason: None)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.receive_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.max_connections:
            self.on_refused("connections")
            log.info("refused a connection from %s: %d connections are open (--max-connections)", self.peer(), self.max_connections)
            transport.write(raw_response(503, "Service Unavailable", "too_many_connections",
                                         f"the server has {self.max_connections} open connections (--max-connections); retry later",
                                         (("retry-after", "1"),)))
            transport.close()
            return
        self.arm_receive_timer()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.conn.their_state is h11.DONE:
            self.cancel_receive_timer()

    def on_response_complete(self) -> None:
        super().on_response_complete()  # may already have parsed a pipelined request
        if self.transport.is_closing() or self.conn.their_state is h11.DONE:
            self.cancel_receive_timer()
        else:
            self.arm_receive_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self.cancel_receive_timer()
        super().connection_lost(exc)

    def peer(self) -> str:
        return "%s:%d" % self.client if self.client else "a client"

    def arm_receive_timer(self) -> None:
        self.cancel_receive_timer()
        self.receive_timer = self.loop.call_later(self.receive_timeout, self.receive_timed_out)

    def cancel_receive_timer(self) -> None:
        if self.receive_timer is not None:
            self.receive_timer.cancel()
            self.receive_timer = None

    def receive_timed_out(self) -> None:
        self.receive_timer = None
        if self.transport.is_closing():
            return
        self.on_refused("receive_timeout")
        log.info("closed the connection from %s: no complete request within %gs (--receive-timeout)", self.peer(), self.receive_timeout)
        # 408 for a request begun and not finished, and no response started; a connection that sent nothing (new, or idle
        # between requests) is closed silently, as uvicorn closes an idle keep-alive one: a 408 there could be read as the
        # answer to a request the client sends at the same moment
        started = self.conn.their_state is not h11.IDLE or bool(self.conn.trailing_data[0])
        if started and self.conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
            self.transport.write(raw_response(408, "Request Timeout", "request_timeout",
                                              f"the request was not received within {self.receive_timeout:g}s (--receive-timeout)"))
        if self.cycle is not None and not self.cycle.response_complete:
            self.cycle.disconnected = True  # as connection_lost would: the app reads http.disconnect, writes nothing more
            self.cycle.message_event.set()
        self.transport.close()


def guarded_protocol(receive_timeout: float, max_connections: int, on_refused: Callable[[str], None] | None = None) -> type[GuardedH11Protocol]:
    """The protocol class for ``uvicorn.Config(http=...)`` with these limits."""
    attrs: dict[str, Any] = {"receive_timeout": receive_timeout, "max_connections": max_connections}
    if on_refused is not None:
        attrs["on_refused"] = staticmethod(on_refused)
    return type("GuardedH11Protocol", (GuardedH11Protocol,), attrs)
