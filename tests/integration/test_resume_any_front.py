"""Resume on any front (#24): two fronts share a secret; a stream begun on one goes on on the
other from the newest ``ack``'s token and the client's replay, every window answered once.

``ResumingClient`` (tests/cluster_client.py) is the reference for a client's resume state: it keeps
the audio sent since the last ack (bounded), the newest token and the results by ``seq``; after a
drop it reconnects with the token, ``last_seq`` and ``replay_from`` and sends the audio it kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from typing import Any

import numpy as np
import websockets

from tests.cluster_client import ResumingClient
from tests.helpers import MS, StreamRun, collect, eventually, load, pcm16, running_server
from voxlive.protocol.frames import AudioFormat
from voxlive.protocol.resume_token import Checkpoint, ResumeToken, sign

SECRET = "a-secret-both-fronts-share"
RATE = 16_000


async def resume(
    client: ResumingClient, url: str, rest: np.ndarray, chunk: int = RATE // 4
) -> StreamRun:
    """Reconnect to ``url`` with the newest token, replay what was kept, send ``rest``, stop;
    everything received goes through :meth:`ResumingClient.received` too."""
    run = StreamRun()
    async with websockets.connect(url) as ws:
        await ws.send(json.dumps(client.start()))
        replay, client.kept = client.kept, np.zeros(0, np.float32)  # kept again as it is sent
        reader = asyncio.create_task(collect(ws, run))
        audio = np.concatenate([replay, rest])
        for at in range(0, len(audio), chunk):
            client.sent(audio[at : at + chunk])
            await ws.send(pcm16(audio[at : at + chunk]))
        await ws.send(json.dumps({"type": "stop"}))
        await asyncio.wait_for(reader, 20_000 * MS)
    for msg in run.messages:
        client.received(msg)
    return run


async def stream_until_acked(url: str, client: ResumingClient, audio: np.ndarray) -> None:
    """Stream ``audio`` to ``url`` and drop the connection (no stop, no close frame) once an ack
    covers at least two results."""
    ws = await websockets.connect(url)
    await ws.send(json.dumps(client.start()))
    for at in range(0, len(audio), RATE // 4):
        client.sent(audio[at : at + RATE // 4])
        await ws.send(pcm16(audio[at : at + RATE // 4]))
    while not (acks := client.of("ack")) or acks[-1]["seq"] < 1:
        client.received(json.loads(await asyncio.wait_for(ws.recv(), 10_000 * MS)))
    ws.transport.abort()  # the front's side: a dead peer


async def test_a_stream_goes_on_on_another_front_each_window_once() -> None:
    female, rate = load("female_speech.wav")
    assert rate == RATE
    audio = female[: 4 * RATE]
    client = ResumingClient()
    async with (
        running_server(cluster_secret=SECRET) as a,
        running_server(cluster_secret=SECRET) as b,
    ):
        await stream_until_acked(a.ws_url, client, audio[: 2 * RATE])
        ack = client.of("ack")[-1]
        assert client.kept_from == ack["samples"] and ack["samples"] % (RATE // 2) == 0
        first_id = client.stream_id
        run = await resume(client, b.ws_url, audio[2 * RATE :])
        await eventually(lambda: not b.service.connections, "front B closed the stream")
    [ready] = run.of("ready")
    assert ready["stream_id"] == first_id and ready["resumed"] is True, run.of("error")
    assert ready["replay_from"] == ack["samples"]
    assert not run.of("error"), run.of("error")
    assert client.repeats == 0  # no seq twice
    seqs = sorted(client.windows)
    assert seqs == list(range(len(seqs)))  # dense
    starts = [client.windows[s]["start_ms"] for s in seqs]
    assert starts == [500.0 * i for i in range(len(seqs))]  # stream time goes on, no window twice
    assert client.windows[seqs[-1]]["end_ms"] == 4000.0
    [end] = run.of("end")
    assert end["stream_id"] == first_id and end["duration_ms"] == 4000.0
    assert end["windows"] == len(seqs) == 7
    assert end["windows"] == (
        end["results"] + end["gated"] + end["failed"] + end["dropped_windows"]
        + end["dropped_results"]
    )  # fmt: skip
    assert run.close_code == 1000
    # Segments tile the stream across the fronts: each starts where the previous one ended.
    segments = client.of("segment")
    assert segments and segments[-1]["end_ms"] == 4000.0
    assert all(x["end_ms"] == y["start_ms"] for x, y in itertools.pairwise(segments))


async def test_the_same_front_is_preferred_and_skips_what_it_has() -> None:
    female, _ = load("female_speech.wav")
    audio = female[: 4 * RATE]
    client = ResumingClient()
    async with running_server(cluster_secret=SECRET) as a:
        await stream_until_acked(a.ws_url, client, audio[: 2 * RATE])
        await eventually(lambda: bool(a.service.registry.detached), "the stream detached")
        run = await resume(client, a.ws_url, audio[2 * RATE :])
    [ready] = run.of("ready")
    assert ready["resumed"] is True and ready["replay_from"] == 2 * RATE  # it has all it got
    assert client.repeats == 0
    seqs = sorted(client.windows)
    assert seqs == list(range(len(seqs))) and len(seqs) == 7
    [end] = run.of("end")
    assert end["windows"] == 7 and end["duration_ms"] == 4000.0


def forge(stream_id: str, secret: str, expires_ms: int, nonce: str = "1" * 32) -> str:
    """A token as a front with ``secret`` would sign it, for a stream at its very start."""
    token = ResumeToken(
        stream_id=stream_id, format=AudioFormat(RATE), input_rate=RATE, lossless=False,
        grid=(RATE, RATE, RATE // 2), checkpoint=Checkpoint(0, 0, 0), expires_ms=expires_ms,
        nonce=nonce,
    )  # fmt: skip
    return sign(token, secret.encode())


async def resume_with(url: str, start: dict[str, Any], audio: np.ndarray) -> StreamRun:
    run = StreamRun()
    async with websockets.connect(url) as ws:
        await ws.send(json.dumps({"type": "start", "sample_rate": RATE} | start))
        reader = asyncio.create_task(collect(ws, run))
        await ws.send(pcm16(audio))
        await ws.send(json.dumps({"type": "stop"}))
        await asyncio.wait_for(reader, 20_000 * MS)
    return run


def reason(run: StreamRun) -> str | None:
    errors = [e for e in run.of("error") if e["code"] == "resume_failed"]
    return errors[0]["reason"] if errors else None


async def test_hostile_tokens_get_resume_failed_with_a_reason_and_a_new_stream() -> None:
    female, _ = load("female_speech.wav")
    second = female[:RATE]
    far = 4_000_000_000_000
    async with running_server(cluster_secret=SECRET) as b:
        forged = await resume_with(b.ws_url, {"resume_token": forge("x1", "not-" + SECRET, far)},
                                   second)  # fmt: skip
        expired = await resume_with(b.ws_url, {"resume_token": forge("x2", SECRET, 1)}, second)
        lifted = await resume_with(
            b.ws_url, {"resume_token": forge("x3", SECRET, far), "stream_id": "mine"}, second
        )
        once = forge("x4", SECRET, far, nonce="4" * 32)
        first = await resume_with(b.ws_url, {"resume_token": once}, second)
        twice = await resume_with(b.ws_url, {"resume_token": once}, second)
        gap = await resume_with(
            b.ws_url, {"resume_token": forge("x5", SECRET, far), "replay_from": 800}, second
        )
        assert not b.service.connections or await _closed(b)
    assert (reason(forged), reason(expired), reason(lifted)) == ("forged", "expired", "mismatch")
    assert (reason(first), reason(twice), reason(gap)) == (None, "replayed", "gap")
    for run in (forged, expired, lifted, twice, gap):  # a new stream, served as usual
        [ready] = run.of("ready")
        assert ready["resumed"] is False and ready["stream_id"] not in ("x1", "x2", "x3", "x4")
        assert run.results and run.close_code == 1000
    assert first.of("ready")[0]["stream_id"] == "x4" and first.of("ready")[0]["resumed"]


async def _closed(srv: Any) -> bool:
    await eventually(lambda: not srv.service.connections, "every stream closed")
    return True


async def test_an_older_token_of_an_open_stream_is_refused_and_the_newest_takes_it_over() -> None:
    female, _ = load("female_speech.wav")
    client = ResumingClient()
    async with running_server(cluster_secret=SECRET) as a:
        # A half-open connection: the client saw it drop, the server has not noticed.
        old = await websockets.connect(a.ws_url)
        await old.send(json.dumps(client.start()))
        for part, acks in (
            (female[: 3 * RATE // 2], 1),
            (female[3 * RATE // 2 : 5 * RATE // 2], 2),
        ):
            await old.send(pcm16(part))
            client.sent(part)
            while len(client.of("ack")) < acks:
                client.received(json.loads(await asyncio.wait_for(old.recv(), 10_000 * MS)))
        older = client.of("ack")[0]["token"]
        thief = await resume_with(a.ws_url, {"resume_token": older}, female[:RATE])
        assert reason(thief) == "live" and len(a.service.connections) == 1  # left alone
        # The newest token's holder takes the stream over; the old connection closes.
        run = await resume(client, a.ws_url, female[5 * RATE // 2 : 3 * RATE])
        with contextlib.suppress(websockets.ConnectionClosed):
            async with asyncio.timeout(5_000 * MS):
                async for _ in old:
                    pass
        assert old.close_code is not None
    [ready] = run.of("ready")
    assert ready["resumed"] is True and ready["stream_id"] == client.stream_id
    assert ready["replay_from"] == 5 * RATE // 2  # the stream had every frame: replay skipped
    assert client.repeats == 0 and sorted(client.windows) == list(range(5))
    [end] = run.of("end")
    assert end["windows"] == 5 and end["duration_ms"] == 3000.0


async def test_a_replay_past_max_replay_ms_is_read_at_real_time_pace() -> None:
    female, _ = load("female_speech.wav")
    async with running_server(cluster_secret=SECRET, max_replay_ms=200, live_ahead_ms=100) as b:
        token = forge("r1", SECRET, 4_000_000_000_000)
        loop = asyncio.get_running_loop()
        began = loop.time()
        run = await resume_with(b.ws_url, {"resume_token": token}, female[: 2 * RATE])
        took = loop.time() - began
    assert [e["code"] for e in run.of("error")] == ["replay_too_long"]
    assert took > 1.5  # 2 s of audio, 0.3 s of it ahead of real time
    assert len(run.results) == 3 and run.close_code == 1000


async def test_a_resume_storm_harms_no_other_stream() -> None:
    female, _ = load("female_speech.wav")
    far = 4_000_000_000_000
    async with running_server(cluster_secret=SECRET, max_streams=8) as b:
        honest = asyncio.create_task(resume_with(b.ws_url, {}, female[: 3 * RATE]))
        storm = [
            resume_with(
                b.ws_url, {"resume_token": forge(f"s{i}", SECRET, far, f"{i:032x}")}, female[:RATE]
            )
            for i in range(24)
        ]
        outcomes = await asyncio.gather(*storm, return_exceptions=True)
        run = await honest
    assert len(run.results) == 5 and run.close_code == 1000 and not run.of("error")
    served = [o for o in outcomes if isinstance(o, StreamRun) and o.close_code == 1000]
    refused = [o for o in outcomes if not isinstance(o, StreamRun) or o.close_code == 1013]
    assert len(served) + len(refused) == 24 and served
