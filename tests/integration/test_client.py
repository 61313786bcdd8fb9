"""``voxlive.client.stream`` and ``voxlive stream`` against real servers: two fronts sharing a
cluster secret, each behind a TCP proxy the test can cut (the front's machine vanishes: every
connection through it reset, new ones refused). The stream resumes on the other front with
every window's result exactly once."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

import websockets

from tests.helpers import DATA, MS, load, running_server
from voxlive.client import StreamOptions, stream

SECRET = "a-secret-both-fronts-share"
RATE = 16_000
BYTES_PER_S = 2 * RATE  # pcm_s16le mono, as the client sends


class Cuttable:
    """A TCP proxy to ``port``; :meth:`cut` resets every connection and refuses new ones,
    and it cuts itself once ``cut_after`` bytes went from clients to the server."""

    def __init__(self, port: int, cut_after: int | None = None, listen_on: bool = False) -> None:
        self.port, self.cut_after, self.listen_on = port, cut_after, listen_on
        self.forwarded = 0
        self.cut_at: float | None = None  # time.monotonic() of the cut
        self.writers: list[asyncio.StreamWriter] = []
        self.server: asyncio.Server | None = None
        self.url = ""

    async def __aenter__(self) -> Cuttable:
        self.server = await asyncio.start_server(self._pipe, "127.0.0.1", 0)
        self.url = f"ws://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/audio"
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.listen_on = False
        self.cut()
        assert self.server is not None
        await self.server.wait_closed()

    def cut(self) -> None:
        if self.cut_at is None:
            self.cut_at = time.monotonic()
        assert self.server is not None
        if not self.listen_on:  # else only the connections break: a network blip
            self.server.close()
        for w in self.writers:
            w.transport.abort()
        self.writers.clear()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.port)
        self.writers += [writer, up_writer]

        async def copy(src: asyncio.StreamReader, dst: asyncio.StreamWriter, up: bool) -> None:
            with contextlib.suppress(OSError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
                    if up:
                        self.forwarded += len(data)
                        if self.cut_after is not None and self.forwarded >= self.cut_after:
                            self.cut_after = None
                            self.cut()
            dst.transport.abort() if self.cut_at is not None else dst.close()

        await asyncio.gather(copy(reader, up_writer, True), copy(up_reader, writer, False))


def port_of(srv: Any) -> int:
    return int(srv.url.rsplit(":", 1)[1])


@contextlib.asynccontextmanager
async def two_fronts(cut_after: int) -> AsyncIterator[tuple[Cuttable, Cuttable, Any, Any]]:
    async with (
        running_server(cluster_secret=SECRET) as a,
        running_server(cluster_secret=SECRET) as b,
        Cuttable(port_of(a), cut_after) as pa,
        Cuttable(port_of(b)) as pb,
    ):
        yield pa, pb, a, b


def check_once_and_dense(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each window's result once, ``seq`` dense, every window on the 500 ms grid but the last
    (the stream's tail, ending at its end)."""
    windows = [m for m in messages if m["type"] == "result"]
    seqs = [m["seq"] for m in windows]
    assert seqs == list(range(len(seqs))), seqs  # each once, in order, dense
    starts = [m["start_ms"] for m in windows[:-1]]
    assert starts == [500.0 * i for i in range(len(starts))], windows
    return windows


async def test_a_cut_front_resumes_on_the_other_each_window_once() -> None:
    """Live pace: cut after 2.5 s of audio went to front A; the rest goes to front B."""
    audio, _ = load("male_speech.wav")  # 5.7 s
    got: list[dict[str, Any]] = []
    first_after_cut: float | None = None
    async with two_fronts(cut_after=5 * BYTES_PER_S // 2) as (pa, pb, _, _b):
        opts = StreamOptions(lossless=False)
        async for msg in stream([pa.url, pb.url], audio, RATE, opts):
            got.append(dict(msg))
            if msg["type"] == "result" and pa.cut_at and first_after_cut is None:
                first_after_cut = time.monotonic() - pa.cut_at
    assert pa.cut_at is not None and first_after_cut is not None
    [resumed] = [m for m in got if m["type"] == "resumed"]
    assert resumed["url"] == pb.url and resumed["same_stream"], got
    windows = check_once_and_dense(got)
    [end] = [m for m in got if m["type"] == "end"]
    summary = got[-1]
    assert summary["type"] == "summary" and summary["ok"], summary
    assert summary["windows"] == end["windows"] == len(windows) + summary["shed"]
    assert summary["lost"] == 0 and summary["failed"] == 0 and summary["resumes"] == 1
    assert abs(end["duration_ms"] - 5694.7) < 1 and windows[-1]["end_ms"] == end["duration_ms"]
    print(f"\ncut → resumed on B: {resumed['outage_ms']:.0f} ms; "
          f"cut → first result from B: {first_after_cut * 1000:.0f} ms")  # fmt: skip
    segments = [m for m in got if m["type"] == "segment"]
    assert all(x["end_ms"] == y["start_ms"] for x, y in itertools.pairwise(segments))


async def test_a_lossless_file_resumes_every_window_answered() -> None:
    path = DATA / "female_speech.mp3"  # 4.7 s at 44.1 kHz, decoded to 16 kHz
    got: list[dict[str, Any]] = []
    async with two_fronts(cut_after=2 * BYTES_PER_S) as (pa, pb, _, _b):
        async for msg in stream([pa.url, pb.url], path):
            got.append(dict(msg))
    assert pa.cut_at is not None
    windows = check_once_and_dense(got)
    summary = got[-1]
    # sent as fast as it goes, the cut may come before the first ready: then it starts over
    assert summary["ok"] and summary["resumes"] <= 1, summary
    assert summary["windows"] == summary["answered"] == len(windows) == 9
    assert summary["shed"] == summary["lost"] == 0


async def voxlive_stream(*args: str) -> tuple[int, list[dict[str, Any]], str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "voxlive", "stream", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60_000 * MS)
    rows = [json.loads(x) for x in out.decode().splitlines() if x.startswith("{")]
    assert proc.returncode is not None
    return proc.returncode, rows, out.decode() + err.decode()


async def test_the_cli_streams_a_file_across_a_cut_as_json_lines() -> None:
    path = str(DATA / "male_speech.wav")
    async with two_fronts(cut_after=3 * BYTES_PER_S) as (pa, pb, _, _b):
        code, rows, text = await voxlive_stream(path, "--url", pa.url, "--url", pb.url, "--json",
                                                "--realtime")  # fmt: skip
    assert code == 0, text
    assert all(r["file"] == path for r in rows)
    check_once_and_dense(rows)
    summary = rows[-1]
    assert summary["type"] == "summary" and summary["resumes"] == 1, text
    assert [r["same_stream"] for r in rows if r["type"] == "resumed"] == [True]
    assert summary["windows"] == summary["answered"] == 11 and summary["lost"] == 0


async def test_the_cli_waits_out_a_refusal_then_streams() -> None:
    """A full server answers 1013 with retry_after_ms 1000: the client waits that long, retries,
    and gets in once the stream holding the only slot has gone."""
    async with running_server(max_streams=1, max_connections=4) as srv:
        holder = await websockets.connect(srv.ws_url)
        await holder.send(json.dumps({"type": "start", "sample_rate": RATE}))
        await asyncio.wait_for(holder.recv(), 5_000 * MS)  # ready: the slot is taken
        cli = asyncio.create_task(voxlive_stream(str(DATA / "female_speech.wav"), "--url",
                                                 srv.ws_url, "--json"))  # fmt: skip
        await asyncio.sleep(1_500 * MS)
        await holder.close()
        code, rows, text = await cli
    assert code == 0, text
    waits = [r for r in rows if r["type"] == "reconnecting"]
    assert waits and all(r["delay_ms"] >= 800 for r in waits), rows  # retry_after_ms - jitter
    summary = rows[-1]
    assert summary["refusals"] >= 1 and summary["ok"] and summary["lost"] == 0


async def test_the_cli_fails_when_no_server_answers() -> None:
    async with Cuttable(1) as nowhere:
        url = nowhere.url
    code, _rows, text = await voxlive_stream(str(DATA / "female_speech.wav"), "--url", url,
                                            "--give-up-ms", "300")  # fmt: skip
    assert code == 1 and "FAILED: gave up reconnecting" in text and "Traceback" not in text


async def test_a_front_that_stops_hands_the_stream_to_the_next() -> None:
    """Front A shuts down (SIGTERM's path) mid-stream: it sends a fresh ack, ``moving`` and
    close 1012; the client goes straight to front B and resumes from that ack."""
    audio, _ = load("male_speech.wav")
    got: list[dict[str, Any]] = []
    async with (
        running_server(cluster_secret=SECRET) as b,
        contextlib.AsyncExitStack() as stack,
    ):
        a = await stack.enter_async_context(running_server(cluster_secret=SECRET))
        stopped_at: float | None = None
        first_after: float | None = None
        async for msg in stream([a.ws_url, b.ws_url], audio, RATE, StreamOptions(lossless=False)):
            got.append(dict(msg))
            if msg["type"] == "result" and msg["seq"] == 3 and stopped_at is None:
                stopped_at = time.monotonic()
                asyncio.get_running_loop().create_task(stack.aclose())  # front A stops
            elif (
                msg["type"] == "result" and stopped_at and any(m["type"] == "resumed" for m in got)
            ):
                first_after = first_after or time.monotonic() - stopped_at
    [resumed] = [m for m in got if m["type"] == "resumed"]
    assert resumed["url"] == b.ws_url and resumed["same_stream"], got
    check_once_and_dense(got)
    summary = got[-1]
    assert summary["ok"] and summary["lost"] == 0 and summary["failed"] == 0, summary
    assert summary["windows"] == summary["answered"] + summary["shed"]
    assert first_after is not None
    segments = [m for m in got if m["type"] == "segment"]  # A's cut-short last one left out
    assert all(x["end_ms"] == y["start_ms"] for x, y in itertools.pairwise(segments)), segments
    assert [m["type"] for m in got].count("end") == 1
    [moved] = [m for m in got if m["type"] == "reconnecting"]  # straight to B, at once
    assert moved["url"] == b.ws_url and moved["reason"].startswith("moving"), moved
    print(f"\nA stopped → resumed on B: {resumed['outage_ms']:.0f} ms after the 1012; "
          f"first result from B {first_after * 1000:.0f} ms after the stop")  # fmt: skip


async def test_a_replay_buffer_smaller_than_a_window_does_not_stall_a_lossless_file() -> None:
    """A lossless sender waits for acks before its buffer overflows; a buffer too small for a
    window would wait for ever, so it grows to a window and two hops."""
    async with running_server() as srv:
        got = [m async for m in stream(srv.ws_url, DATA / "female_speech.wav",
                                       options=StreamOptions(max_replay_ms=100))]  # fmt: skip
    summary = got[-1]
    assert summary["type"] == "summary" and summary["ok"] and summary["answered"] == 9, summary


async def test_the_cli_prints_lines_for_people() -> None:
    async with running_server() as srv:
        code, _, text = await voxlive_stream(str(DATA / "male_speech.wav"), "--url", srv.ws_url)
    assert code == 0, text
    assert "smoothed male" in text and "segment 0:00.0–" in text
    assert "done: 11 windows: 11 answered, 0 failed, 0 shed, 0 lost; 0 resumes" in text


async def test_a_blip_on_one_url_resumes_on_the_same_front() -> None:
    """One URL (a load balancer's, say); the connection breaks, the front lives: the client
    comes back at once and the front takes its detached stream back."""
    async with (
        running_server(cluster_secret=SECRET) as a,
        Cuttable(port_of(a), cut_after=2 * BYTES_PER_S, listen_on=True) as pa,
    ):
        opts = StreamOptions(lossless=False)  # real-time pace: acks came before the blip
        got: list[dict[str, Any]] = [
            dict(m) async for m in stream(pa.url, DATA / "female_speech.wav", options=opts)
        ]
    [resumed] = [m for m in got if m["type"] == "resumed"]
    assert resumed["same_stream"] and resumed["url"] == pa.url, got
    check_once_and_dense(got)
    summary = got[-1]
    assert summary["ok"] and summary["windows"] == summary["answered"] == 9, summary


async def test_a_wrong_token_fails_at_once_and_the_right_one_streams() -> None:
    wav = str(DATA / "female_speech.wav")
    async with running_server(token="s3cret") as srv:
        bad, _, bad_text = await voxlive_stream(wav, "--url", srv.ws_url, "--token", "nope")
        good, rows, text = await voxlive_stream(wav, "--url", srv.ws_url, "--token", "s3cret",
                                                "--json")  # fmt: skip
    assert bad == 1 and "FAILED: unauthorized" in bad_text and "reconnecting" not in bad_text
    assert good == 0 and rows[-1]["answered"] == 9, text


async def test_a_refused_resume_goes_on_as_a_new_stream_and_says_where_it_begins() -> None:
    """Front B has another secret: it refuses A's token (``forged``) and starts a new stream
    from the replay; the client says so, with where the new stream's time 0 lies."""
    audio, _ = load("male_speech.wav")
    async with (
        running_server(cluster_secret=SECRET) as a,
        running_server(cluster_secret="another-cluster-secret") as b,
        Cuttable(port_of(a), cut_after=5 * BYTES_PER_S // 2) as pa,
        Cuttable(port_of(b)) as pb,
    ):
        opts = StreamOptions(lossless=False)
        got: list[dict[str, Any]] = [
            dict(m) async for m in stream([pa.url, pb.url], audio, RATE, opts)
        ]
    [refused] = [m for m in got if m.get("code") == "resume_failed"]
    assert refused["reason"] == "forged"
    [resumed] = [m for m in got if m["type"] == "resumed"]
    assert not resumed["same_stream"] and resumed["offset_ms"] == resumed["replay_from"] / 16
    assert resumed["offset_ms"] > 0 and resumed["offset_ms"] % 500 == 0  # an ack's window edge
    [end] = [m for m in got if m["type"] == "end"]
    assert abs(end["duration_ms"] + resumed["offset_ms"] - 5694.7) < 1
    summary = got[-1]
    assert summary["ok"] and summary["lost"] == 0, summary
    assert summary["windows"] == summary["answered"] + summary["shed"] + summary["failed"]


async def test_a_dead_first_url_is_passed_over_without_a_resume() -> None:
    async with running_server() as b, Cuttable(1) as nowhere:
        dead = nowhere.url
        nowhere.cut()
        got: list[dict[str, Any]] = [
            dict(m) async for m in stream([dead, b.ws_url], DATA / "female_speech.wav")
        ]
    assert [m["type"] for m in got][:2] == ["reconnecting", "ready"]
    assert not [m for m in got if m["type"] == "resumed"]
    assert got[-1]["ok"] and got[-1]["resumes"] == 0 and got[-1]["answered"] == 9
