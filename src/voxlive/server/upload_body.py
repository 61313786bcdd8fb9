"""Receiving a ``POST /classify`` body: bounded in bytes, in time and in pace, before any upload
slot is held (:mod:`voxlive.server.uploads` takes the slot once the body is in).

- how big: at most ``max_upload_bytes`` per body (413 ``too_large``), and at most
  ``max_uploads × max_upload_bytes`` bytes of bodies being received at once, server-wide
  (:class:`BodyBudget`; past it 503 ``busy``), so memory is bounded however many clients send;
- how fast: the whole body within ``upload_timeout_ms`` (408 ``upload_timeout``), and at a
  pace of at least ``min_upload_bytes_per_s`` after a grace of :data:`GRACE_S` (408
  ``upload_timeout``): by ``t`` seconds after the head, ``(t - GRACE_S) × min_upload_bytes_per_s``
  bytes must have arrived (:func:`due_s`; Apache's ``mod_reqtimeout`` ``MinRate`` rule). A
  client trickling a byte every few seconds is answered 408 about ``GRACE_S`` after its head,
  and frees everything it held;
- a body refused before its end is answered with ``Connection: close``, so the socket closes
  at once (uvicorn would otherwise go on reading, and discarding, the rest: a trickler answered
  408 kept its socket for as long as it trickled);
- a client that leaves mid-body is one line at DEBUG (no traceback: it is what clients do).
"""

from __future__ import annotations

import asyncio
import logging

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from voxlive.settings import Settings

log = logging.getLogger(__name__)

GRACE_S = 2.0  # a body's first seconds are not held to the minimum pace (TCP slow start, TLS)
CLIENT_LEFT = 499  # nginx's "client closed request": logged, never sent (nobody reads it)
CLOSE = {"Connection": "close"}  # on an answer sent before the body's end: no more reading it


def error(status: int, code: str, message: str, **headers: str) -> JSONResponse:
    """An HTTP error answer: ``{"error": {"code", "message"}}``."""
    return JSONResponse(
        {"error": {"code": code, "message": message}}, status_code=status, headers=headers
    )


def due_s(
    received: int, *, min_bytes_per_s: int, timeout_s: float, grace_s: float = GRACE_S
) -> float:
    """Seconds after the request's head by which more of the body must have arrived, once
    ``received`` bytes have: ``grace_s`` plus ``received / min_bytes_per_s``, and never later than
    ``timeout_s`` (``min_bytes_per_s`` 0: ``timeout_s`` alone)."""
    if min_bytes_per_s <= 0:
        return timeout_s
    return min(timeout_s, grace_s + received / min_bytes_per_s)


class BodyBudget:
    """Bytes of bodies being received, server-wide, at most ``limit``: a body that would pass it
    is refused (503 ``busy``) rather than held. Not thread-safe: the event loop's alone."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.held = 0

    def take(self, size: int) -> bool:
        if self.held + size > self.limit:
            return False
        self.held += size
        return True

    def give(self, size: int) -> None:
        self.held -= size


def _too_slow(received: int, elapsed_s: float, settings: Settings) -> JSONResponse:
    timeout_s = settings.upload_timeout_ms / 1000
    if elapsed_s >= timeout_s - 1e-3:
        return error(408, "upload_timeout", f"expected the body within {timeout_s:g} s", **CLOSE)
    return error(
        408, "upload_timeout",
        f"expected the body at {settings.min_upload_bytes_per_s} bytes/s or more after the "
        f"first {GRACE_S:g} s, got {received} bytes in {elapsed_s:.1f} s", **CLOSE,
    )  # fmt: skip


async def read_body(request: Request, settings: Settings, budget: BodyBudget) -> bytes | Response:
    """The request's whole body, or the answer that refuses it (408, 413, 400 ``empty_body``,
    503 ``busy``; :data:`CLIENT_LEFT` when the client left). Safe to cancel: what it held of
    ``budget`` is given back whatever happens."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    limit = settings.max_upload_bytes
    timeout_s = settings.upload_timeout_ms / 1000
    body = bytearray()
    try:
        while True:
            due = start + due_s(
                len(body), min_bytes_per_s=settings.min_upload_bytes_per_s, timeout_s=timeout_s,
                grace_s=GRACE_S,
            )  # fmt: skip
            try:
                async with asyncio.timeout_at(due):
                    message = await request.receive()
            except TimeoutError:
                return _too_slow(len(body), loop.time() - start, settings)
            if message["type"] == "http.disconnect":
                log.debug("upload: the client left after %d bytes of its body", len(body))
                return Response(status_code=CLIENT_LEFT)
            chunk: bytes = message.get("body", b"")
            if len(body) + len(chunk) > limit:
                return error(413, "too_large", f"body exceeds the limit of {limit} bytes", **CLOSE)
            if not budget.take(len(chunk)):
                return error(
                    503, "busy",
                    f"expected at most {budget.limit} bytes of uploads being received at once; "
                    "retry shortly", **{"Retry-After": "1"}, **CLOSE,
                )  # fmt: skip
            body.extend(chunk)
            if not message.get("more_body", False):
                break
    finally:
        budget.give(len(body))
    if not body:
        return error(400, "empty_body", "expected an audio file in the request body, got 0 bytes")
    return bytes(body)
