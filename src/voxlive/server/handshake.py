"""Before a stream is admitted: who is asking, and what asking may cost.

In order, for every WebSocket on ``/audio``:
1. the browser origin is checked *before* the upgrade is accepted: a refused page gets an HTTP
   403 whose JSON body says why, and nothing else is spent on it;
2. with a token set, the token comes in the query (``?token=``) or in the first ``start``
   message, which must arrive within ``auth_timeout_ms``; until then the connection holds no
   stream slot, audio is refused, and a few bad messages close it (1008);
3. only then does :meth:`voxlive.server.registry.Registry.admit` count it against
   ``max_streams``.
Every message, before and after, is charged to the connection's
:class:`~voxlive.server.sources.Allowance` (its own budget, its source's, its share of the
server's).
"""

from __future__ import annotations

import asyncio
import contextlib

from starlette.responses import JSONResponse
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketDisconnected

from voxlive.errors import AuthError, ClientError
from voxlive.protocol import messages
from voxlive.protocol.messages import ReadyMessage
from voxlive.protocol.order import Event, MessageOrder, Started
from voxlive.server.access import origin_ok, token_ok
from voxlive.server.budget import Budget
from voxlive.server.service import Service
from voxlive.server.sources import Allowance
from voxlive.settings import Settings

CLOSE_POLICY = 1008
# What sending raises when the client has gone: expected, not a bug.
CLIENT_GONE = (WebSocketDisconnect, WebSocketDisconnected, OSError)


async def origin_allowed(ws: WebSocket, service: Service) -> bool:
    """Check the Origin before accepting; refuse with a 403 (and say why) when not allowed."""
    origin, host = ws.headers.get("origin"), ws.headers.get("host")
    if origin_ok(origin, host, service.settings.allowed_origins):
        return True
    service.metrics.streams_refused.labels("origin_not_allowed").inc()
    body = messages.error(
        "origin_not_allowed",
        f"origin {origin!r} is not allowed; expected the server's own origin, localhost, "
        "or one listed in VOXLIVE_ALLOWED_ORIGINS",
    )
    await ws.send_denial_response(JSONResponse(body, status_code=403))
    return False


def check_token(settings: Settings, started: Started) -> None:
    if not token_ok(settings.token, started.token):
        given = "no token" if started.token is None else "a wrong token"
        raise AuthError(f"expected the server's token (start 'token' or ?token=), got {given}")


def too_many_errors(budget: Budget) -> ClientError:
    return ClientError(
        f"expected valid messages, got more than {budget.bad_limit} bad ones within "
        f"{budget.bad_window_s:g} s ({budget.bad_before_auth} before authenticating); closing",
        code="too_many_errors",
        close_code=CLOSE_POLICY,
    )


async def pace(allowance: Allowance, size: int) -> None:
    """Charge one received message to the allowance; wait while it is spent (a reader that
    does not read is back-pressure on the flooder alone)."""
    wait_s = allowance.charge(asyncio.get_running_loop().time(), size)
    if wait_s > 0:
        await asyncio.sleep(wait_s)


async def authenticate(
    ws: WebSocket, order: MessageOrder, allowance: Allowance, service: Service
) -> list[Event] | None:
    """With a token set and none in the query: read until a ``start`` carrying the token,
    within ``auth_timeout_ms``. Errors are answered at once; a few bad messages, or any audio,
    end it (a :class:`ClientError` with a close code). Returns the message order's events of that
    ``start``, or ``None`` if the client left."""
    loop, budget = asyncio.get_running_loop(), allowance.budget
    timeout_s = service.settings.auth_timeout_ms / 1000
    try:
        async with asyncio.timeout(timeout_s):
            while True:
                msg = await ws.receive()
                if msg["type"] == "websocket.disconnect":
                    return None
                text = msg.get("text")
                await pace(allowance, len(msg.get("bytes") or b"") + len(text or ""))
                if text is None:
                    raise AuthError(
                        "expected a start message with the server's token before any audio"
                    )
                try:
                    events = order.receive_text(text)
                except ClientError as exc:
                    if exc.close_code is not None:
                        raise
                    if budget.bad(loop.time(), authenticated=False):
                        raise too_many_errors(budget) from None
                    service.metrics.client_errors.labels(exc.code).inc()
                    await ws.send_text(messages.encode(messages.error(exc.code, exc.message)))
                    continue
                for event in events:
                    if isinstance(event, Started):
                        check_token(service.settings, event)
                return events
    except TimeoutError:
        raise AuthError(
            f"expected a start message with the server's token within {timeout_s:g} s"
        ) from None


async def refuse(
    ws: WebSocket, service: Service, code: str, message: str, close: int, retry_ms: int = 0
) -> None:
    """Refuse an accepted WebSocket: an ``error`` (with ``retry_after_ms`` when ``retry_ms``),
    then close with ``close`` (counted)."""
    service.metrics.streams_refused.labels(code).inc()
    with contextlib.suppress(*CLIENT_GONE):
        error = messages.error(code, message, retry_after_ms=retry_ms or None)
        await ws.send_text(messages.encode(error))
        await ws.close(close, code)


def ready_message(
    service: Service, stream_id: str, sample_rate: int, resumed: bool, replay_from: int | None
) -> ReadyMessage:
    """The ``ready`` a stream gets once admitted: the model, its labels and the windowing;
    ``replay_from`` (a token resume): the input frame the stream goes on from."""
    assert service.pipeline is not None
    info, s = service.pipeline.classifier.info, service.settings
    ready = messages.ready(
        stream_id=stream_id, model=info.name, backend=info.backend, labels=info.labels,
        fallback=info.fallback, window_ms=s.window_ms, hop_ms=s.hop_ms, sample_rate=sample_rate,
        resumed=resumed, model_sample_rate=info.sample_rate, smoothing=s.smoothing,
    )  # fmt: skip
    if replay_from is not None:
        ready["replay_from"] = replay_from
    return ready
