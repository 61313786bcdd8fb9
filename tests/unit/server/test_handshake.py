"""Before a stream is admitted (server/handshake.py), without a socket: the origin refusal's
403, waiting for the token within ``auth_timeout_ms``, what a client may spend before it has
authenticated, and the reader's pacing."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from tests.fakes import FakeClassifier, FakeWebSocket
from tests.helpers import MS
from voxlive.errors import AuthError, ClientError
from voxlive.protocol.frames import DEFAULT_FORMAT
from voxlive.protocol.order import MessageOrder, Started
from voxlive.server.budget import Budget
from voxlive.server.handshake import authenticate, origin_allowed, pace, too_many_errors
from voxlive.server.service import Service
from voxlive.server.sources import Allowance, Sources
from voxlive.settings import Settings


class CountingBudget(Budget):
    """A budget that remembers the size of every message charged to it."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.sizes: list[int] = []

    def charge(self, now: float, size_bytes: int, *limits: float | None) -> float:
        self.sizes.append(size_bytes)
        return super().charge(now, size_bytes, *limits)


def text(obj: Any) -> dict[str, Any]:
    return {"type": "websocket.receive", "text": obj if isinstance(obj, str) else json.dumps(obj)}


def _service(**changes: Any) -> Service:
    settings = Settings(model="pitch", web_dir="/nonexistent", token="s3cret").replace(**changes)
    return Service(settings, classifier=FakeClassifier())


def _auth(ws: FakeWebSocket, svc: Service, budget: Budget | None = None) -> Any:
    order = MessageOrder(DEFAULT_FORMAT)

    async def go() -> Any:
        allowance = Sources().open("127.0.0.1")
        allowance.budget = budget or Budget()
        return await asyncio.wait_for(authenticate(ws, order, allowance, svc), 5_000 * MS)  # type: ignore[arg-type]

    return asyncio.run(go())


def _errors(svc: Service, code: str) -> float:
    return svc.metrics.client_errors.labels(code)._value.get()


def test_a_start_with_the_token_authenticates_and_returns_its_events() -> None:
    ws = FakeWebSocket(text({"type": "start", "token": "s3cret"}))
    events = _auth(ws, _service())
    assert any(isinstance(e, Started) and e.token == "s3cret" for e in events)
    assert ws.sent == []


def test_a_client_that_leaves_before_authenticating_is_none() -> None:
    assert _auth(FakeWebSocket({"type": "websocket.disconnect", "code": 1001}), _service()) is None


def test_audio_before_the_token_is_refused_with_1008() -> None:
    with pytest.raises(AuthError) as caught:
        _auth(FakeWebSocket({"type": "websocket.receive", "bytes": b"\x00\x00"}), _service())
    assert caught.value.message == (
        "expected a start message with the server's token before any audio"
    )
    assert caught.value.close_code == 1008


def test_a_wrong_token_is_refused() -> None:
    with pytest.raises(AuthError, match="got a wrong token"):
        _auth(FakeWebSocket(text({"type": "start", "token": "guess"})), _service())


def test_bad_messages_are_answered_until_the_token_comes() -> None:
    svc = _service()
    ws = FakeWebSocket(
        text("{not json"), text({"type": "hello"}), text({"type": "start", "token": "s3cret"})
    )
    events = _auth(ws, svc)
    assert any(isinstance(e, Started) for e in events)
    assert [m["type"] for m in ws.sent] == ["error", "error"]
    first = ws.sent[0]
    assert first["code"] == "bad_json" and first["message"].startswith("expected")
    assert _errors(svc, "bad_json") == 1
    assert sum(_errors(svc, m["code"]) for m in ws.sent) == 2


def test_past_three_bad_messages_before_auth_the_connection_is_closed_1008() -> None:
    svc = _service()
    ws = FakeWebSocket(*[text("{not json")] * 5)
    with pytest.raises(ClientError) as caught:
        _auth(ws, svc, Budget(bad_before_auth=3, bad_limit=20))
    assert len(ws.sent) == 3  # three answered, the fourth closes
    assert caught.value.code == "too_many_errors" and caught.value.close_code == 1008
    assert _errors(svc, "bad_json") == 3


def test_a_fatal_error_before_auth_is_raised_at_once() -> None:
    ws = FakeWebSocket(text({"type": "start", "token": "s3cret", "colour": "red"}))  # unknown key
    with pytest.raises(ClientError) as caught:
        _auth(ws, _service())
    assert caught.value.close_code == 1003
    assert ws.sent == []


def test_no_token_within_auth_timeout_ms_is_refused_and_says_how_long() -> None:
    with pytest.raises(AuthError) as caught:
        _auth(FakeWebSocket(), _service(auth_timeout_ms=150))
    assert caught.value.message == "expected a start message with the server's token within 0.15 s"


def test_every_message_before_auth_is_charged_by_its_size() -> None:
    budget = CountingBudget()
    ws = FakeWebSocket(text("{not json}"), text({"type": "start", "token": "s3cret"}))
    _auth(ws, _service(), budget)
    assert budget.sizes == [
        len("{not json}"),
        len(json.dumps({"type": "start", "token": "s3cret"})),
    ]
    budget = CountingBudget()
    with pytest.raises(AuthError):
        _auth(
            FakeWebSocket({"type": "websocket.receive", "bytes": b"\x01" * 640}), _service(), budget
        )
    assert budget.sizes == [640]


def test_the_reader_waits_what_the_budget_says(monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    def asking(wait_s: float) -> Allowance:
        class Fixed(Budget):
            def charge(self, now: float, size_bytes: int, *_: float | None) -> float:
                return wait_s

        allowance = Sources().open("127.0.0.1")
        allowance.budget = Fixed()
        return allowance

    monkeypatch.setattr(asyncio, "sleep", sleep)  # handshake sleeps through asyncio.sleep
    asyncio.run(pace(asking(0.2), 10))
    asyncio.run(pace(asking(0.0), 10))
    assert slept == [0.2]  # within the allowance the reader does not sleep at all


def test_too_many_errors_says_the_limits() -> None:
    exc = too_many_errors(Budget(bad_limit=20, bad_window_s=10.0, bad_before_auth=3))
    assert (exc.code, exc.close_code) == ("too_many_errors", 1008)
    assert exc.message == (
        "expected valid messages, got more than 20 bad ones within 10 s (3 before "
        "authenticating); closing"
    )


def _origin(origin: str, host: str, **changes: Any) -> tuple[bool, FakeWebSocket, Service]:
    svc = _service(**changes)
    ws = FakeWebSocket(headers={"origin": origin, "host": host})
    ok = asyncio.run(origin_allowed(ws, svc))  # type: ignore[arg-type]
    return ok, ws, svc


def test_the_server_s_own_origin_is_allowed_by_its_host_header() -> None:
    ok, ws, _ = _origin("https://voxlive.example", "voxlive.example")
    assert ok and ws.denied is None


def test_a_listed_origin_is_allowed_on_any_host() -> None:
    ok, _, _ = _origin(
        "https://app.example", "voxlive.example", allowed_origins=("https://app.example",)
    )
    assert ok


def test_a_foreign_origin_gets_a_403_saying_why() -> None:
    ok, ws, svc = _origin("https://evil.example", "voxlive.example")
    assert not ok
    assert ws.denied == (403, {
        "type": "error", "code": "origin_not_allowed",
        "message": "origin 'https://evil.example' is not allowed; expected the server's own "
                   "origin, localhost, or one listed in VOXLIVE_ALLOWED_ORIGINS",
    })  # fmt: skip
    assert svc.metrics.streams_refused.labels("origin_not_allowed")._value.get() == 1
