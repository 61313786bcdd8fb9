"""``POST /classify``: a whole file through the live pipeline, bounded before it is spent.

- who: the token (``Authorization: Bearer`` or ``?token=``) before anything is read;
- how many: at most ``max_uploads`` at once, else 503 ``busy`` (with ``Retry-After``);
- how big: the body up to ``max_upload_bytes`` (413), read within ``upload_timeout_ms`` (408);
  the audio up to ``max_upload_ms`` and a sane sample rate, checked from the header before
  decoding (:func:`voxlive.audio.decode.decode_file`);
- how it shares the model: its windows are background work that live streams go before
  (:attr:`voxlive.pipeline.stream.Stream.background`);
- when the client goes away, the classification is cancelled; on shutdown, running uploads get
  the drain time to finish, then answer 503 ``shutting_down``; when a worker fails (see
  :class:`voxlive.server.service.Service`), running uploads answer 503 ``internal_error`` at
  once instead of waiting for windows that will not come back.

The answer carries what the file's stream said, in the wire protocol's own messages: its
``ready``, its window messages (``results``), its ``segments`` and its ``end``
(docs/protocol.md, "Files over HTTP").
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from voxlive.audio.decode import decode_file
from voxlive.errors import ClientError
from voxlive.inference.base import ModelInfo
from voxlive.pipeline.assembly import Pipeline
from voxlive.pipeline.offline import Classified
from voxlive.protocol import messages
from voxlive.server.access import bearer, token_ok
from voxlive.settings import Settings


class Uploads:
    """The uploads in progress: a bounded count, and a shutdown that waits for them."""

    def __init__(self, settings: Settings) -> None:
        self.limit = settings.max_uploads
        self.active = 0
        self.cut = asyncio.Event()  # set when shutdown stops waiting: the rest answer 503
        self.broken = asyncio.Event()  # set when a worker failed: the running ones answer 503
        self._idle = asyncio.Event()
        self._idle.set()

    def enter(self) -> bool:
        if self.active >= self.limit:
            return False
        self.active += 1
        self._idle.clear()
        return True

    def leave(self) -> None:
        self.active -= 1
        if self.active == 0:
            self._idle.set()

    def fail_all(self) -> None:
        """A worker failed: every upload in progress answers 503 now; later ones wait anew."""
        self.broken.set()
        self.broken = asyncio.Event()

    async def drain(self, timeout_s: float) -> None:
        """Give running uploads ``timeout_s`` to finish; then cut them (they answer 503)."""
        try:
            async with asyncio.timeout(timeout_s):
                await self._idle.wait()
        except TimeoutError:
            self.cut.set()


class Host(Protocol):
    """What an upload needs of the running server (:class:`voxlive.server.service.Service`)."""

    settings: Settings
    pipeline: Pipeline | None
    uploads: Uploads

    @property
    def status(self) -> str: ...

    @property
    def ready(self) -> bool: ...


def error(status: int, code: str, message: str, **headers: str) -> JSONResponse:
    return JSONResponse(
        {"error": {"code": code, "message": message}}, status_code=status, headers=headers
    )


async def _read_body(request: Request, limit: int) -> bytes | JSONResponse:
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > limit:
            return error(413, "too_large", f"body exceeds the limit of {limit} bytes")
    if not body:
        return error(400, "empty_body", "expected an audio file in the request body, got 0 bytes")
    return bytes(body)


async def _client_gone(request: Request) -> None:
    """Returns when the client disconnects (call once the body has been read)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


def _answer(settings: Settings, info: ModelInfo, samples: int, done: Classified) -> JSONResponse:
    """The 200 answer: the model it ran on, then the file's stream in its own messages."""
    ready = messages.ready(
        stream_id=done.end["stream_id"], model=info.name, backend=info.backend,
        labels=info.labels, fallback=info.fallback, window_ms=settings.window_ms,
        hop_ms=settings.hop_ms, sample_rate=info.sample_rate, model_sample_rate=info.sample_rate,
        smoothing=settings.smoothing,
    )  # fmt: skip
    return JSONResponse(
        {
            "model": info.name, "backend": info.backend, "fallback": info.fallback,
            "labels": list(info.labels),
            "duration_ms": round(samples * 1000 / info.sample_rate, 3),
            "window_ms": settings.window_ms, "hop_ms": settings.hop_ms,
            "ready": ready,
            "results": [m for m in done.messages if m["type"] != "segment"],
            "segments": [m for m in done.messages if m["type"] == "segment"],
            "end": done.end,
        }
    )  # fmt: skip


async def classify_upload(request: Request, service: Host) -> Response:
    settings = service.settings
    given = bearer(request.headers) or request.query_params.get("token")
    if not token_ok(settings.token, given):
        return error(401, "unauthorized", "expected 'Authorization: Bearer <token>' or ?token=")
    pipeline = service.pipeline
    if service.status == "stopping":
        return error(503, "shutting_down", "the server is shutting down; retry elsewhere")
    if not service.ready or pipeline is None:
        return error(503, "not_ready", f"expected a ready server, got status {service.status!r}")
    uploads = service.uploads
    if not uploads.enter():
        return error(
            503, "busy", f"expected at most {uploads.limit} uploads at once; retry shortly",
            **{"Retry-After": "1"},
        )  # fmt: skip
    try:
        timeout_s = settings.upload_timeout_ms / 1000
        try:
            async with asyncio.timeout(timeout_s):
                body = await _read_body(request, settings.max_upload_bytes)
        except TimeoutError:
            return error(408, "upload_timeout", f"expected the body within {timeout_s:g} s")
        if isinstance(body, JSONResponse):
            return body
        info = pipeline.classifier.info
        try:
            samples = await asyncio.to_thread(
                decode_file, body, info.sample_rate, settings.max_upload_ms
            )
        except ClientError as exc:
            return error(400, exc.code, exc.message)
        work = asyncio.create_task(pipeline.classify(samples))
        gone = asyncio.create_task(_client_gone(request))
        cut = asyncio.create_task(uploads.cut.wait())
        broken = asyncio.create_task(uploads.broken.wait())
        await asyncio.wait({work, gone, cut, broken}, return_when=asyncio.FIRST_COMPLETED)
        for task in (gone, cut, broken, work):
            task.cancel()  # no-op for the one that finished
        if not work.cancelled() and work.done() and work.exception() is None:
            return _answer(settings, info, len(samples), work.result())
        if work.done() and not work.cancelled() and work.exception() is not None:
            raise work.exception()  # type: ignore[misc]
        if gone.done():  # nobody is left to read the answer: the work was cancelled
            return Response(status_code=499)
        if broken.done():
            return error(503, "internal_error", "the server's model worker failed; retry shortly")
        return error(503, "shutting_down", "the server shut down before the file was classified")
    finally:
        uploads.leave()
