"""Receiving an upload's body (server/upload_body.py) without sockets: the pace rule on its own,
the server-wide byte budget, and each way a body is refused, with its exact answer; a client
that leaves mid-body is one DEBUG line."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest
from starlette.requests import Request
from starlette.responses import Response

from tests.helpers import MS
from voxlive.server import upload_body
from voxlive.server.upload_body import BodyBudget, due_s, read_body
from voxlive.settings import Settings

Step = tuple[float, dict[str, Any]]  # wait this long (s), then receive this message


def _request(steps: list[Step]) -> Request:
    """A request whose ``receive`` plays ``steps``; after them it waits forever."""
    steps = list(steps)

    async def receive() -> dict[str, Any]:
        if not steps:
            await asyncio.Event().wait()
        delay, message = steps.pop(0)
        await asyncio.sleep(delay)
        return message

    return Request({"type": "http", "method": "POST", "path": "/classify", "headers": []}, receive)


def _part(body: bytes, more: bool = True) -> dict[str, Any]:
    return {"type": "http.request", "body": body, "more_body": more}


def _read(steps: list[Step], budget: BodyBudget | None = None, **changes: Any) -> bytes | Response:
    settings = Settings().replace(**changes)
    return asyncio.run(read_body(_request(steps), settings, budget or BodyBudget(10**9)))


def _error(answer: bytes | Response) -> tuple[int, str, str]:
    assert isinstance(answer, Response)
    if answer.status_code != 400:  # refused before the body's end: the socket is closed after
        assert answer.headers["connection"] == "close"
    error = json.loads(bytes(answer.body))["error"]
    return answer.status_code, error["code"], error["message"]


def test_the_pace_rule_grants_a_grace_then_a_second_per_rate_s_worth_of_bytes() -> None:
    assert due_s(0, min_bytes_per_s=16_384, timeout_s=60, grace_s=2) == 2
    assert due_s(16_384, min_bytes_per_s=16_384, timeout_s=60, grace_s=2) == 3
    assert due_s(10**9, min_bytes_per_s=16_384, timeout_s=60, grace_s=2) == 60  # capped
    assert due_s(0, min_bytes_per_s=0, timeout_s=60, grace_s=2) == 60  # no pace: timeout alone


def test_the_budget_refuses_what_would_pass_it_and_takes_back_what_is_given() -> None:
    budget = BodyBudget(10)
    assert budget.take(6) and not budget.take(5) and budget.take(4)
    assert budget.held == 10
    budget.give(10)
    assert budget.held == 0 and budget.take(10)


def test_a_body_in_pieces_is_read_whole_and_its_bytes_given_back() -> None:
    budget = BodyBudget(100)
    body = _read(
        [(0.0, _part(b"RIFF")), (0.0, _part(b"")), (0.0, _part(b"data", more=False))], budget
    )
    assert body == b"RIFFdata" and budget.held == 0


def test_a_trickling_body_is_408_after_the_grace(monkeypatch: pytest.MonkeyPatch) -> None:
    """4 bytes, then one byte every 150 ms against 1000 bytes/s after a 100 ms grace: due by
    104 ms, it is answered then, whatever the 60 s timeout says."""
    monkeypatch.setattr(upload_body, "GRACE_S", 100 * MS)
    steps = [(0.0, _part(b"RIFF"))] + [(150 * MS, _part(b"x"))] * 10
    budget = BodyBudget(100)
    assert _error(_read(steps, budget, min_upload_bytes_per_s=1000)) == (
        408, "upload_timeout",
        "expected the body at 1000 bytes/s or more after the first 0.1 s, got 4 bytes in 0.1 s",
    )  # fmt: skip
    assert budget.held == 0


def test_a_body_at_the_pace_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(upload_body, "GRACE_S", 50 * MS)
    # 100 bytes every 20 ms is 5000 bytes/s, against 1000 bytes/s
    steps = [(20 * MS, _part(b"x" * 100))] * 9 + [(20 * MS, _part(b"x" * 100, more=False))]
    assert _read(steps, min_upload_bytes_per_s=1000) == b"x" * 1000


def test_a_body_past_the_timeout_is_408_with_the_timeout_s_message() -> None:
    answer = _read([(0.0, _part(b"RIFF"))], upload_timeout_ms=1000, min_upload_bytes_per_s=0)
    assert _error(answer) == (408, "upload_timeout", "expected the body within 1 s")


def test_a_body_past_the_limit_is_413_and_past_the_budget_503() -> None:
    big = [(0.0, _part(b"x" * 1000)), (0.0, _part(b"x" * 25, more=False))]
    assert _error(_read(big, max_upload_bytes=1024)) == (
        413, "too_large", "body exceeds the limit of 1024 bytes"
    )  # fmt: skip
    budget = BodyBudget(1500)
    assert budget.take(1000)  # another body holds 1000 bytes
    answer = _read(big, budget)
    assert _error(answer) == (
        503, "busy", "expected at most 1500 bytes of uploads being received at once; retry shortly"
    )  # fmt: skip
    assert isinstance(answer, Response) and answer.headers["retry-after"] == "1"
    assert budget.held == 1000  # its own bytes given back, not the other's


def test_an_empty_body_is_400() -> None:
    assert _error(_read([(0.0, _part(b"", more=False))])) == (
        400, "empty_body", "expected an audio file in the request body, got 0 bytes"
    )  # fmt: skip


def test_a_client_that_leaves_mid_body_is_one_debug_line(caplog: pytest.LogCaptureFixture) -> None:
    steps = [(0.0, _part(b"RIFF")), (0.0, {"type": "http.disconnect"})]
    budget = BodyBudget(100)
    with caplog.at_level(logging.DEBUG, logger=upload_body.__name__):
        answer = _read(steps, budget)
    assert isinstance(answer, Response) and answer.status_code == 499
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (logging.DEBUG, "upload: the client left after 4 bytes of its body")
    ]
    assert budget.held == 0
