"""Admission at exactly max_streams, detach and resume, expiry after the grace period, and the
drain at shutdown: the stream registry (server/registry.py) without a socket."""

from __future__ import annotations

import asyncio
import logging

import numpy as np
import pytest

from tests.fakes import FakeClassifier
from tests.helpers import MS
from voxlive.metrics import Metrics
from voxlive.pipeline.batcher import Batcher
from voxlive.pipeline.config import StreamConfig
from voxlive.pipeline.hooks import StreamHooks
from voxlive.pipeline.stream import Stream
from voxlive.protocol.frames import DEFAULT_FORMAT
from voxlive.protocol.order import Started
from voxlive.server.registry import Registry
from voxlive.settings import Settings

CFG = StreamConfig(sample_rate=1000, window_ms=100, hop_ms=100, buffer_ms=1000, labels=("a", "b"))


class Conn:
    def __init__(self) -> None:
        self.drains: list[float] = []
        self.failures: list[str] = []

    def shutdown(self, drain_s: float) -> None:
        self.drains.append(drain_s)

    def fail(self, message: str) -> None:
        self.failures.append(message)


def _registry(**changes: object) -> Registry:
    settings = Settings(model="pitch", web_dir="/nonexistent").replace(**changes)
    return Registry(settings, Metrics())


def _open(m: Metrics) -> float:
    return m.streams_open._value.get()  # type: ignore[no-any-return]


def test_admission_up_to_exactly_max_streams() -> None:
    registry = _registry(max_streams=2, max_connections=2)
    assert registry.admit("loading") == (
        "not_ready", "expected a ready server, got status 'loading'; retry in 1000 ms", 1000
    )  # fmt: skip
    assert registry.admit("stopping") == (  # another front takes it: come back soon
        "not_ready", "expected a ready server, got status 'stopping'; retry in 250 ms", 250
    )  # fmt: skip
    conns = [Conn(), Conn()]
    assert registry.admit("ready") is None
    registry.opened(conns[0])
    assert registry.admit("ready") is None  # one below the limit
    registry.opened(conns[1])
    assert registry.admit("ready") == (
        "too_many_streams", "server is at its limit of 2 streams; retry in 1000 ms", 1000
    )  # fmt: skip
    assert _open(registry.metrics) == 2
    registry.closed(conns[0])
    registry.closed(conns[0])  # idempotent: counted once
    assert _open(registry.metrics) == 1
    assert registry.admit("ready") is None


async def test_a_detached_stream_is_resumed_once_and_then_unknown() -> None:
    registry = _registry(resume_grace_ms=5_000)
    stream = Stream("s1", CFG)
    hooks = StreamHooks(
        Batcher(FakeClassifier(), max_batch=1, max_wait_ms=0), on_results=lambda: None
    )
    registry.detach(stream, hooks)
    assert hooks.on_results is None  # nobody reads while detached
    assert registry.resume("other") is None
    assert registry.resume("s1") == (stream, hooks)
    assert registry.resume("s1") is None
    await asyncio.sleep(0)
    assert not stream.closed


async def test_a_detached_stream_is_released_after_the_grace_period() -> None:
    registry = _registry(resume_grace_ms=20)
    stream = Stream("s1", CFG)
    registry.detach(stream, StreamHooks(Batcher(FakeClassifier(), max_batch=1, max_wait_ms=0)))
    await asyncio.sleep(5 * MS)
    assert not stream.closed and "s1" in registry.detached
    for _ in range(100):
        if stream.closed:
            break
        await asyncio.sleep(10 * MS)
    assert stream.closed and registry.resume("s1") is None


async def test_drain_releases_detached_streams_and_asks_every_connection_to_finish() -> None:
    registry = _registry(resume_grace_ms=60_000)
    stream = Stream("s1", CFG)
    registry.detach(stream, StreamHooks(Batcher(FakeClassifier(), max_batch=1, max_wait_ms=0)))
    a, b = Conn(), Conn()
    registry.opened(a)
    registry.opened(b)
    drained = asyncio.create_task(registry.drain(5.0))
    await asyncio.sleep(10 * MS)
    assert stream.closed and not registry.detached
    assert a.drains == [5.0] and b.drains == [5.0]
    assert not drained.done()  # waits for the connections to close
    registry.closed(a)
    await asyncio.sleep(10 * MS)
    assert not drained.done()
    registry.closed(b)
    await asyncio.wait_for(drained, 1_000 * MS)


async def test_drain_gives_up_after_its_timeout() -> None:
    registry = _registry()
    registry.opened(Conn())
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    await asyncio.wait_for(
        registry.drain(0.05), 5_000 * MS
    )  # returns although a connection stays open
    assert loop.time() - t0 >= 0.05


def _detach(registry: Registry, stream_id: str) -> Stream:
    stream = Stream(stream_id, CFG)
    registry.detach(stream, StreamHooks(Batcher(FakeClassifier(), max_batch=1, max_wait_ms=0)))
    return stream


async def test_a_live_client_evicts_the_oldest_detached_stream_only_when_full() -> None:
    registry = _registry(max_streams=3, max_connections=3, resume_grace_ms=60_000)
    registry.opened(Conn())
    old, new = _detach(registry, "old"), _detach(registry, "new")
    assert registry.admit("ready") is None  # 1 open + 2 detached = 3: room is made
    assert old.closed and not new.closed
    assert list(registry.detached) == ["new"]
    assert registry.admit("ready") is None  # 1 + 1 = 2 < 3: nothing more to evict
    assert list(registry.detached) == ["new"]


async def test_a_detached_stream_waits_exactly_the_grace_period() -> None:
    registry = _registry(resume_grace_ms=60_000)
    _detach(registry, "s1")
    due = registry.detached["s1"].expiry.when() - asyncio.get_running_loop().time()
    assert 59.99 < due <= 60.0


async def test_drain_logs_how_many_streams_and_how_long(caplog: pytest.LogCaptureFixture) -> None:
    registry = _registry()
    with caplog.at_level(logging.INFO, logger="voxlive.server.registry"):
        await registry.drain(0.01)  # no streams: nothing to say
        registry.opened(Conn())
        registry.opened(Conn())
        await registry.drain(0.05)
    assert caplog.messages == ["draining 2 stream(s), at most 0.1 s"]


async def test_fail_all_releases_detached_streams_and_fails_every_connection() -> None:
    """A failed worker: nothing detached is kept for a resume, every open connection is told."""
    registry = _registry(resume_grace_ms=60_000)
    stream = _detach(registry, "s1")
    a, b = Conn(), Conn()
    registry.opened(a)
    registry.opened(b)
    registry.fail_all("the worker failed")
    assert stream.closed and not registry.detached and registry.resume("s1") is None
    assert a.failures == ["the worker failed"] and b.failures == ["the worker failed"]
    assert a.drains == [] and b.drains == []  # failed at once, not drained


async def test_leave_keeps_a_vanished_stream_that_carried_audio_and_releases_the_rest() -> None:
    registry = _registry(resume_grace_ms=60_000)
    hooks = StreamHooks(Batcher(FakeClassifier(), max_batch=1, max_wait_ms=0))
    silent, spoke, stopped = Stream("s0", CFG), Stream("s1", CFG), Stream("s2", CFG)
    for stream in (spoke, stopped):
        stream.push(np.zeros(50, np.float32))
    for stream, vanished in ((silent, True), (spoke, True), (stopped, False)):
        conn = Conn()
        registry.opened(conn)
        registry.leave(conn, stream, hooks, vanished=vanished)
    assert list(registry.detached) == ["s1"] and silent.closed and stopped.closed
    assert not registry.connections and _open(registry.metrics) == 0
    registry._release_detached()


async def test_take_back_by_id_replays_after_last_seq_and_names_an_unknown_one() -> None:
    registry = _registry(resume_grace_ms=60_000)
    hooks = StreamHooks(Batcher(FakeClassifier(), max_batch=1, max_wait_ms=0))
    stream = Stream("s1", CFG)
    stream.push(np.zeros(300, np.float32))  # three quiet windows, settled by the gate
    assert [m["seq"] for m in stream.pop_messages()] == [0, 1, 2]
    registry.detach(stream, hooks)
    got = registry.take_back(Started(DEFAULT_FORMAT, stream_id="s1", last_seq=0), 1.0, 0)
    assert got.stream == (stream, hooks) and [m["seq"] for m in got.replay] == [1, 2]
    assert not got.errors and got.rejoin is None  # no token: nothing to skip or pace
    gone = registry.take_back(Started(DEFAULT_FORMAT, stream_id="s1"), 1.0, 0)
    assert gone.stream is None and gone.errors[0]["reason"] == "unknown"
    registry.release(stream)
