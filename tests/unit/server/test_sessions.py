"""Admission at exactly max_streams, detach and resume, expiry after the grace period, and the
drain at shutdown: the sessions registry without a socket."""

from __future__ import annotations

import asyncio
import logging

import pytest

from tests.fakes import FakeClassifier
from voxlive.metrics import Metrics
from voxlive.pipeline.batcher import Batcher, Wiring
from voxlive.pipeline.stream import Stream, StreamConfig
from voxlive.server.sessions import Sessions
from voxlive.settings import Settings

CFG = StreamConfig(sample_rate=1000, window_ms=100, hop_ms=100, buffer_ms=1000, labels=("a", "b"))


class Conn:
    def __init__(self) -> None:
        self.drains: list[float] = []

    def shutdown(self, drain_s: float) -> None:
        self.drains.append(drain_s)


def _sessions(**changes: object) -> Sessions:
    settings = Settings(model="pitch", web_dir="/nonexistent").replace(**changes)
    return Sessions(settings, Metrics())


def _open(m: Metrics) -> float:
    return m.streams_open._value.get()  # type: ignore[no-any-return]


def test_admission_up_to_exactly_max_streams() -> None:
    sessions = _sessions(max_streams=2, max_connections=2)
    assert sessions.admit("loading") == (
        "not_ready", "expected a ready server, got status 'loading'; retry later"
    )  # fmt: skip
    conns = [Conn(), Conn()]
    assert sessions.admit("ready") is None
    sessions.opened(conns[0])
    assert sessions.admit("ready") is None  # one below the limit
    sessions.opened(conns[1])
    assert sessions.admit("ready") == (
        "too_many_streams", "server is at its limit of 2 streams; retry later"
    )  # fmt: skip
    assert _open(sessions.metrics) == 2
    sessions.closed(conns[0])
    sessions.closed(conns[0])  # idempotent: counted once
    assert _open(sessions.metrics) == 1
    assert sessions.admit("ready") is None


async def test_a_detached_stream_is_resumed_once_and_then_unknown() -> None:
    sessions = _sessions(resume_grace_ms=5_000)
    stream = Stream("s1", CFG)
    wiring = Wiring(Batcher(FakeClassifier(), max_batch=1, max_wait_ms=0), on_results=lambda: None)
    sessions.detach(stream, wiring)
    assert wiring.on_results is None  # nobody reads while detached
    assert sessions.resume("other") is None
    assert sessions.resume("s1") == (stream, wiring)
    assert sessions.resume("s1") is None
    await asyncio.sleep(0)
    assert not stream.closed


async def test_a_detached_stream_is_released_after_the_grace_period() -> None:
    sessions = _sessions(resume_grace_ms=20)
    stream = Stream("s1", CFG)
    sessions.detach(stream, Wiring(Batcher(FakeClassifier(), max_batch=1, max_wait_ms=0)))
    await asyncio.sleep(0.005)
    assert not stream.closed and "s1" in sessions.detached
    for _ in range(100):
        if stream.closed:
            break
        await asyncio.sleep(0.01)
    assert stream.closed and sessions.resume("s1") is None


async def test_drain_releases_detached_streams_and_asks_every_connection_to_finish() -> None:
    sessions = _sessions(resume_grace_ms=60_000)
    stream = Stream("s1", CFG)
    sessions.detach(stream, Wiring(Batcher(FakeClassifier(), max_batch=1, max_wait_ms=0)))
    a, b = Conn(), Conn()
    sessions.opened(a)
    sessions.opened(b)
    drained = asyncio.create_task(sessions.drain(5.0))
    await asyncio.sleep(0.01)
    assert stream.closed and not sessions.detached
    assert a.drains == [5.0] and b.drains == [5.0]
    assert not drained.done()  # waits for the connections to close
    sessions.closed(a)
    await asyncio.sleep(0.01)
    assert not drained.done()
    sessions.closed(b)
    await asyncio.wait_for(drained, 1)


async def test_drain_gives_up_after_its_timeout() -> None:
    sessions = _sessions()
    sessions.opened(Conn())
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    await asyncio.wait_for(sessions.drain(0.05), 5)  # returns although a connection stays open
    assert loop.time() - t0 >= 0.05


def _detach(sessions: Sessions, stream_id: str) -> Stream:
    stream = Stream(stream_id, CFG)
    sessions.detach(stream, Wiring(Batcher(FakeClassifier(), max_batch=1, max_wait_ms=0)))
    return stream


async def test_a_live_client_evicts_the_oldest_detached_stream_only_when_full() -> None:
    sessions = _sessions(max_streams=3, max_connections=3, resume_grace_ms=60_000)
    sessions.opened(Conn())
    old, new = _detach(sessions, "old"), _detach(sessions, "new")
    assert sessions.admit("ready") is None  # 1 open + 2 detached = 3: room is made
    assert old.closed and not new.closed
    assert list(sessions.detached) == ["new"]
    assert sessions.admit("ready") is None  # 1 + 1 = 2 < 3: nothing more to evict
    assert list(sessions.detached) == ["new"]


async def test_a_detached_stream_waits_exactly_the_grace_period() -> None:
    sessions = _sessions(resume_grace_ms=60_000)
    _detach(sessions, "s1")
    due = sessions.detached["s1"].expiry.when() - asyncio.get_running_loop().time()
    assert 59.99 < due <= 60.0


async def test_drain_logs_how_many_streams_and_how_long(caplog: pytest.LogCaptureFixture) -> None:
    sessions = _sessions()
    with caplog.at_level(logging.INFO, logger="voxlive.server.sessions"):
        await sessions.drain(0.01)  # no streams: nothing to say
        sessions.opened(Conn())
        sessions.opened(Conn())
        await sessions.drain(0.05)
    assert caplog.messages == ["draining 2 stream(s), at most 0.1 s"]
