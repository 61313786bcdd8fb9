"""A client that reconnects with its stream_id within the grace period loses no results."""

from __future__ import annotations

import asyncio
import json

import websockets

from tests.helpers import MS, StreamRun, collect, eventually, load, pcm16, running_server


async def test_resume_continues_seq_and_stream_time() -> None:
    female, rate = load("female_speech.wav")
    first_half, second_half = female[: 2 * rate], female[2 * rate :]
    async with running_server(resume_grace_ms=5000) as srv:
        # First connection: 2 s of audio, then the network drops (no stop, no close frame).
        ws = await websockets.connect(srv.ws_url)
        await ws.send(json.dumps({"type": "start", "sample_rate": rate}))
        ready = json.loads(await ws.recv())
        await ws.send(pcm16(first_half))
        first = [json.loads(await ws.recv())]  # at least one result arrives before the drop
        ws.transport.abort()
        await eventually(lambda: not srv.service.connections, "the connection noticed as gone")
        detached = srv.service.registry.detached[ready["stream_id"]].stream
        # windows in flight finish while nobody is connected
        await eventually(lambda: not detached.inflight and not detached.pending, "idle model")

        run = StreamRun()
        async with websockets.connect(srv.ws_url) as ws2:
            reader = asyncio.create_task(collect(ws2, run))
            await ws2.send(json.dumps({"type": "start", "sample_rate": rate,
                                       "stream_id": ready["stream_id"],
                                       "last_seq": first[-1]["seq"]}))  # fmt: skip
            await ws2.send(pcm16(second_half))
            await ws2.send(json.dumps({"type": "stop"}))
            await asyncio.wait_for(reader, 20_000 * MS)
    [again] = run.of("ready")
    assert again["stream_id"] == ready["stream_id"] and again["resumed"] is True
    results = first + run.results
    seqs = [r["seq"] for r in results]
    assert seqs == list(range(len(seqs)))  # nothing lost, nothing twice
    starts = [r["start_ms"] for r in results]
    assert starts == sorted(starts) and starts[0] == 0
    assert results[-1]["end_ms"] >= 4500  # stream time went on across the reconnect
    [end] = run.of("end")
    assert end["windows"] == (
        end["results"]
        + end["gated"]
        + end["dropped_windows"]
        + end["failed"]
        + end["dropped_results"]
    )
    assert end["dropped_windows"] == 0


async def test_unknown_or_expired_stream_id_starts_a_new_stream() -> None:
    female, rate = load("female_speech.wav")
    async with running_server(resume_grace_ms=100) as srv:
        ws = await websockets.connect(srv.ws_url)
        await ws.send(pcm16(female[:rate]))
        old_id = json.loads(await ws.recv())["stream_id"]
        ws.transport.abort()
        await eventually(lambda: not srv.service.connections, "the connection noticed as gone")
        await eventually(lambda: not srv.service.registry.detached, "the grace period over")
        run = StreamRun()
        async with websockets.connect(srv.ws_url + f"?stream_id={old_id}") as ws2:
            reader = asyncio.create_task(collect(ws2, run))
            await ws2.send(pcm16(female[:rate]))
            await ws2.send(json.dumps({"type": "stop"}))
            await asyncio.wait_for(reader, 10_000 * MS)
        assert not srv.service.registry.detached
    assert run.of("error")[0]["code"] == "resume_failed"
    [ready] = run.of("ready")
    assert ready["stream_id"] != old_id and ready["resumed"] is False
    assert run.results[0]["seq"] == 0 and run.close_code == 1000


async def test_resumes_in_a_loop_replay_a_burst_then_only_what_the_rate_allows() -> None:
    female, rate = load("female_speech.wav")
    async with running_server(resume_grace_ms=5000, max_unsent_results=6, gate="none") as srv:
        ws = await websockets.connect(srv.ws_url + f"?sample_rate={rate}")
        await ws.send(pcm16(female))
        first = json.loads(await ws.recv())
        stream_id = first["stream_id"]
        stream = srv.service.registry
        await eventually(lambda: srv.service.connections and next(iter(
            srv.service.connections)).stream.samples_received == len(female), "audio in")  # type: ignore[attr-defined]  # fmt: skip
        ws.transport.abort()
        await eventually(lambda: stream_id in stream.detached, "the stream detached")
        await eventually(
            lambda: not stream.detached[stream_id].stream.pending
            and not stream.detached[stream_id].stream.inflight, "every window classified"
        )  # fmt: skip
        replayed = []
        for _ in range(2):  # resume from the start, twice at once
            ws = await websockets.connect(
                srv.ws_url + f"?sample_rate={rate}&stream_id={stream_id}&last_seq=-1"
            )
            run = StreamRun()
            reader = asyncio.create_task(collect(ws, run))
            await eventually(lambda run=run: bool(run.of("ready")), "ready")
            await asyncio.sleep(200 * MS)  # what is replayed comes right after ready
            ws.transport.abort()
            reader.cancel()
            replayed.append(run)
            await eventually(lambda: stream_id in stream.detached, "detached again")
    assert len(replayed[0].results) == 6 and not replayed[0].of("error")  # the burst: all kept
    [limited] = replayed[1].of("error")
    assert limited["code"] == "replay_limited"
    assert len(replayed[1].results) < 6  # 20 a second, for the fraction of a second since
    assert limited["message"].endswith(f"replaying the newest {len(replayed[1].results)}")
