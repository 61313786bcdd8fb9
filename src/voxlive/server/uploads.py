"""``POST /classify``: a whole file through the live pipeline, bounded before it is spent.

In order, each check before the work it guards:

- whose page: a browser ``Origin`` must be the server's own, localhost, or one of
  ``allowed_origins`` (403 ``origin_not_allowed``), as on ``/audio``; no ``Origin`` (curl,
  scripts) passes. A foreign page's "simple" cross-origin POST (``text/plain``, no preflight)
  is refused before a byte of its body is read;
- who: the token (``Authorization: Bearer`` or ``?token=``) before anything is read;
- the body, without a slot (:mod:`voxlive.server.upload_body`): up to ``max_upload_bytes``
  (413), within ``upload_timeout_ms`` and at ``min_upload_bytes_per_s`` after a grace (408);
  bodies being received hold at most ``max_uploads × max_upload_bytes`` bytes in all (503);
- how many: only a whole body takes one of the ``max_uploads`` slots, else 503 ``busy`` (with
  ``Retry-After``), so slow senders cannot hold the slots: a slot is CPU, taken for decoding
  and classifying;
- how much work: duration and samples × channels at the file's rate, from the header before
  decoding and again while decoding (:func:`voxlive.audio.decode.decode_file`, 400 ``too_long``,
  413 ``too_much_audio``); decoding runs on a thread in blocks, within ``upload_timeout_ms``
  (503 ``decode_timeout``), and stops at the next block when the client leaves or the server
  cuts it: the slot is given back at once;
- how it shares the model: its windows are background work that live streams go before
  (:attr:`voxlive.pipeline.stream.Stream.background`);
- when the client goes away, the classification is cancelled (one DEBUG line, no traceback);
  on shutdown, running uploads get the drain time to finish, then answer 503
  ``shutting_down``; when a worker fails (see :class:`voxlive.server.service.Service`), running
  uploads answer 503 ``internal_error`` at once instead of waiting for windows that will not
  come back.

The answer carries what the file's stream said, in the wire protocol's own messages: its
``ready``, its window messages (``results``), its ``segments`` and its ``end``
(docs/protocol.md, "Files over HTTP").
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable
from typing import Any, Literal, Protocol

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from voxlive.audio.decode import Control, DecodeStopped, decode_file
from voxlive.errors import ClientError
from voxlive.inference.base import ModelInfo
from voxlive.pipeline.assembly import Pipeline
from voxlive.pipeline.offline import Classified
from voxlive.protocol import messages
from voxlive.server.access import bearer, origin_ok, token_ok
from voxlive.server.upload_body import CLIENT_LEFT, BodyBudget, error, read_body
from voxlive.settings import Settings

log = logging.getLogger(__name__)

Ended = Literal["done", "gone", "cut", "broken"]  # what ended the wait for a piece of work


class Uploads:
    """The uploads in progress: a bounded count, and a shutdown that waits for them."""

    def __init__(self, settings: Settings) -> None:
        self.limit = settings.max_uploads
        self.active = 0
        # bodies being received hold no slot, only bytes: at most as many as the slots' bodies
        self.receiving = BodyBudget(settings.max_uploads * settings.max_upload_bytes)
        self.decoders: set[Control] = set()  # decodes whose thread still runs
        self.blocks_decoded = 0  # by the decodes that returned, all told
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

    def track(self, control: Control, decoding: asyncio.Future[Any]) -> None:
        """Count a decode's thread until it returns (it may outlive its upload by one block)."""
        self.decoders.add(control)

        def finished(f: asyncio.Future[Any]) -> None:
            self.decoders.discard(control)
            self.blocks_decoded += control.blocks
            if not f.cancelled():
                f.exception()  # retrieved: an abandoned decode's error is not "never retrieved"

        decoding.add_done_callback(finished)

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


def _origin_refused(request: Request, settings: Settings) -> JSONResponse | None:
    origin = request.headers.get("origin")
    if origin_ok(origin, request.headers.get("host"), settings.allowed_origins):
        return None
    return error(
        403, "origin_not_allowed",
        f"origin {(origin or '')[:200]!r} is not allowed; expected the server's own origin, "
        "localhost, or one listed in VOXLIVE_ALLOWED_ORIGINS",
    )  # fmt: skip


def _not_serving(service: Host) -> JSONResponse | None:
    if service.status == "stopping":
        return error(503, "shutting_down", "the server is shutting down; retry elsewhere")
    if not service.ready or service.pipeline is None:
        return error(503, "not_ready", f"expected a ready server, got status {service.status!r}")
    return None


async def _first(work: Awaitable[object], gone: asyncio.Task[None], uploads: Uploads) -> Ended:
    """Wait for ``work``, or for the client to leave, the shutdown to cut, a worker to fail."""
    cut = asyncio.create_task(uploads.cut.wait())
    broken = asyncio.create_task(uploads.broken.wait())
    work = asyncio.ensure_future(work)
    try:
        await asyncio.wait({work, gone, cut, broken}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        cut.cancel()
        broken.cancel()
    if work.done():
        return "done"
    return "gone" if gone.done() else "broken" if broken.done() else "cut"


def _interrupted(ended: Ended, when: str) -> Response:
    if ended == "gone":  # nobody is left to read the answer
        log.debug("upload: the client left while %s", when)
        return Response(status_code=CLIENT_LEFT)
    if ended == "broken":
        return error(503, "internal_error", "the server's model worker failed; retry shortly")
    return error(503, "shutting_down", "the server shut down before the file was classified")


async def classify_upload(request: Request, service: Host) -> Response:
    settings = service.settings
    if (refused := _origin_refused(request, settings)) is not None:
        return refused
    given = bearer(request.headers) or request.query_params.get("token")
    if not token_ok(settings.token, given):
        return error(401, "unauthorized", "expected 'Authorization: Bearer <token>' or ?token=")
    if (refused := _not_serving(service)) is not None:
        return refused
    uploads = service.uploads
    body = await read_body(request, settings, uploads.receiving)
    if isinstance(body, Response):
        return body
    if (refused := _not_serving(service)) is not None:  # it may have stopped meanwhile
        return refused
    if not uploads.enter():
        return error(
            503, "busy", f"expected at most {uploads.limit} uploads at once; retry shortly",
            **{"Retry-After": "1"},
        )  # fmt: skip
    gone = asyncio.create_task(_client_gone(request))
    try:
        return await _classify(body, service, gone)
    finally:
        gone.cancel()
        uploads.leave()


async def _classify(body: bytes, service: Host, gone: asyncio.Task[None]) -> Response:
    """Decode and classify ``body`` while holding a slot; give up as soon as nobody needs it."""
    settings, uploads, pipeline = service.settings, service.uploads, service.pipeline
    assert pipeline is not None  # checked by the caller
    info = pipeline.classifier.info
    timeout_s = settings.upload_timeout_ms / 1000
    control = Control(deadline=time.monotonic() + timeout_s)
    decoding = asyncio.get_running_loop().run_in_executor(
        None, decode_file, body, info.sample_rate, settings.max_upload_ms, control
    )
    uploads.track(control, decoding)
    try:
        if (ended := await _first(decoding, gone, uploads)) != "done":
            return _interrupted(ended, "its file was decoded")
    finally:
        control.stop()  # at the next block; a no-op once it returned
    try:
        samples = decoding.result()
    except DecodeStopped:
        return error(503, "decode_timeout", f"expected the file decoded within {timeout_s:g} s; "
                     "the server is busy, retry later", **{"Retry-After": "1"})  # fmt: skip
    except ClientError as exc:
        return error(413 if exc.code == "too_much_audio" else 400, exc.code, exc.message)
    work = asyncio.create_task(pipeline.classify(samples))
    try:
        if (ended := await _first(work, gone, uploads)) != "done":
            return _interrupted(ended, "its file was classified")
    finally:
        work.cancel()  # a no-op once it finished
    return _answer(settings, info, len(samples), work.result())
