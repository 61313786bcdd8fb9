"""Every documented limit, exactly at it and one past it (README "Configuration" and "Limits",
docs/protocol.md). A limit tested only far from its edge lets an off-by-one through."""

from __future__ import annotations

import dataclasses
import json
import struct

import numpy as np
import pytest

from tests.fakes import Clock
from voxlive.audio.ring import RingBuffer
from voxlive.audio.smoothing import MajoritySmoother
from voxlive.errors import FormatError, FrameError
from voxlive.pipeline.slots import MIN_TAIL_MS
from voxlive.pipeline.stream import Stream, StreamConfig
from voxlive.protocol.frames import (
    DEFAULT_FORMAT,
    MAX_CHANNELS,
    MAX_FLOAT_PEAK,
    MAX_SAMPLE_RATE_HZ,
    MAX_WAV_CHUNKS,
    MIN_SAMPLE_RATE_HZ,
    AudioFormat,
    decode_pcm,
    decode_wav,
    encode_wav_s16,
    is_wav,
    make_format,
    shown,
)
from voxlive.protocol.session import Session, parse_start

F32 = AudioFormat(16_000, "pcm_f32le")


# ---- sample rate 8000..192000 Hz, channels 1..2 (inclusive) ----------------------------------
@pytest.mark.parametrize("rate", [MIN_SAMPLE_RATE_HZ, MAX_SAMPLE_RATE_HZ])
def test_sample_rates_at_both_ends_are_accepted(rate: int) -> None:
    assert (MIN_SAMPLE_RATE_HZ, MAX_SAMPLE_RATE_HZ) == (8_000, 192_000)
    assert make_format(rate, "pcm_s16le", 1).sample_rate == rate
    _, wav_rate = decode_wav(encode_wav_s16(np.zeros(8, np.float32), rate))
    assert wav_rate == rate


@pytest.mark.parametrize("rate", [MIN_SAMPLE_RATE_HZ - 1, MAX_SAMPLE_RATE_HZ + 1])
def test_sample_rates_one_past_either_end_are_refused(rate: int) -> None:
    with pytest.raises(
        FormatError, match=rf"^sample_rate: expected 8000\.\.192000 Hz, got {rate}$"
    ):
        make_format(rate, "pcm_s16le", 1)
    with pytest.raises(FormatError, match=rf"got {rate}$"):
        decode_wav(encode_wav_s16(np.zeros(8, np.float32), rate))


@pytest.mark.parametrize(
    ("channels", "ok"), [(0, False), (1, True), (MAX_CHANNELS, True), (3, False)]
)
def test_channels_one_and_two_only(channels: int, ok: bool) -> None:
    if ok:
        assert make_format(16_000, "pcm_s16le", channels).channels == channels
    else:
        with pytest.raises(FormatError, match=rf"^channels: expected 1 or 2, got {channels}$"):
            make_format(16_000, "pcm_s16le", channels)


@pytest.mark.parametrize("value", [True, 16_000.0, "16000", None])
def test_a_rate_or_channel_count_that_is_not_an_int_is_refused(value: object) -> None:
    with pytest.raises(
        FormatError,
        match=rf"^sample_rate: expected an integer in Hz, got {shown(value)!s}$".replace(
            "(", r"\("
        ).replace(")", r"\)"),
    ):
        make_format(value, "pcm_s16le", 1)
    with pytest.raises(FormatError, match=r"^channels: expected 1 or 2, got "):
        make_format(16_000, "pcm_s16le", value)


# ---- float samples within ±16 (inclusive) ---------------------------------------------------
@pytest.mark.parametrize("peak", [MAX_FLOAT_PEAK, -MAX_FLOAT_PEAK])
def test_a_float_peak_of_exactly_16_is_accepted(peak: float) -> None:
    out = decode_pcm(np.array([0.0, peak], "<f4").tobytes(), F32)
    assert out[1, 0] == peak


@pytest.mark.parametrize("sign", [1, -1])
def test_a_float_peak_just_over_16_is_refused(sign: int) -> None:
    over = np.nextafter(np.float32(MAX_FLOAT_PEAK), np.float32(100)) * sign
    with pytest.raises(
        FrameError,
        match=r"^expected float samples within ±16 \(full scale is ±1\), got a peak of 16$",
    ):
        decode_pcm(np.array([0.0, over], "<f4").tobytes(), F32)


# ---- WAV: the data chunk among the first 16 chunks; fmt chunk sizes ------------------------
def _wav_with_chunks(extra: int) -> bytes:
    """A WAV whose data chunk follows fmt and ``extra`` other chunks (odd-sized, so padded)."""
    wav = encode_wav_s16(np.zeros(4, np.float32), 16_000)
    fmt, data = wav[12:36], wav[36:]
    junk = b"LIST" + struct.pack("<I", 1) + b"x\x00"  # 1 byte of body + 1 pad byte
    body = b"WAVE" + fmt + junk * extra + data
    return b"RIFF" + struct.pack("<I", len(body)) + body


def test_a_data_chunk_that_is_the_16th_chunk_is_decoded() -> None:
    samples, _ = decode_wav(_wav_with_chunks(MAX_WAV_CHUNKS - 2))  # fmt, 14 others, data
    assert samples.shape == (4, 1)


def test_a_data_chunk_that_is_the_17th_chunk_is_refused() -> None:
    with pytest.raises(
        FrameError, match=r"^WAV: expected the data chunk within 16 chunks, got more$"
    ):
        decode_wav(_wav_with_chunks(MAX_WAV_CHUNKS - 1))


def _with_fmt_size(size: int, tag: int = 1) -> bytes:
    fmt = struct.pack("<HHIIHH", tag, 1, 16_000, 32_000, 2, 16).ljust(size, b"\x00")[:size]
    if tag == 0xFFFE and size >= 26:
        fmt = fmt[:24] + struct.pack("<H", 1) + fmt[26:]
    data = np.zeros(4, "<i2").tobytes()
    body = b"WAVE" + b"fmt " + struct.pack("<I", size) + fmt + b"\x00" * (size & 1)
    body += b"data" + struct.pack("<I", len(data)) + data
    return b"RIFF" + struct.pack("<I", len(body)) + body


def test_fmt_chunks_of_16_bytes_and_extensible_ones_of_40_are_enough() -> None:
    assert decode_wav(_with_fmt_size(16))[0].shape == (4, 1)
    assert decode_wav(_with_fmt_size(40, tag=0xFFFE))[0].shape == (4, 1)


def test_fmt_chunks_one_byte_short_are_refused() -> None:
    with pytest.raises(FrameError, match=r"^WAV fmt chunk: expected at least 16 bytes, got 15$"):
        decode_wav(_with_fmt_size(15))
    with pytest.raises(FrameError, match=r"^WAV extensible fmt chunk: expected 40 bytes, got 39$"):
        decode_wav(_with_fmt_size(39, tag=0xFFFE))


def test_the_shortest_wav_header_is_twelve_bytes() -> None:
    assert is_wav(b"RIFF\x00\x00\x00\x00WAVE")
    assert not is_wav(b"RIFF\x00\x00\x00\x00WAV")
    assert not is_wav(b"RIFX\x00\x00\x00\x00WAVE")
    assert not is_wav(b"RIFF\x00\x00\x00\x00WAVX")


# ---- last_seq >= -1 ---------------------------------------------------------------------------
def test_last_seq_minus_one_is_accepted_and_minus_two_refused() -> None:
    assert parse_start({"type": "start", "last_seq": -1}, DEFAULT_FORMAT).last_seq == -1
    with pytest.raises(
        FormatError, match=r"^start: expected last_seq to be an integer >= -1, got -2$"
    ):
        parse_start({"type": "start", "last_seq": -2}, DEFAULT_FORMAT)


# ---- values quoted in errors: at most 40 characters -----------------------------------------
def test_quoted_values_are_cut_at_40_characters() -> None:
    assert shown("x" * 38) == repr("x" * 38)  # 40 characters with the quotes
    assert shown("x" * 39) == repr("x" * 39)[:37] + "..."
    assert len(shown("x" * 39)) == 40
    assert shown(10**40 - 1) == "9" * 40  # 40 digits
    assert shown(-(10**39)) == "-1" + "0" * 35 + "..."  # 41 characters, cut to 40
    assert shown(10**40) == "<huge int>"
    assert shown(-(10**40)) == "<huge int>"


# ---- a tail of 100 ms or more is classified ---------------------------------------------------
def _stream(**kw: object) -> Stream:
    cfg = StreamConfig(sample_rate=1000, window_ms=200, hop_ms=200, buffer_ms=1000,
                       labels=("a", "b"), gate_rms=0.0, smoothing=1)  # fmt: skip
    return Stream("b", dataclasses.replace(cfg, **kw), clock=Clock())  # type: ignore[arg-type]


@pytest.mark.parametrize(("uncovered", "tail"), [(MIN_TAIL_MS - 1, False), (MIN_TAIL_MS, True)])
def test_a_tail_of_exactly_100_ms_is_classified_and_99_ms_is_not(
    uncovered: int, tail: bool
) -> None:
    s = _stream()
    s.push(np.full(200 + uncovered, 0.5, np.float32))
    s.finish()
    spans = [(w.audio.size, w.index) for w in iter(s.take, None)]
    assert spans == ([(200, 0), (200, 1)] if tail else [(200, 0)])


@pytest.mark.parametrize(("length", "windows"), [(MIN_TAIL_MS - 1, 0), (MIN_TAIL_MS, 1)])
def test_a_stream_shorter_than_a_window_needs_100_ms(length: int, windows: int) -> None:
    s = _stream()
    s.push(np.full(length, 0.5, np.float32))
    s.finish()
    assert [w.audio.size for w in iter(s.take, None)] == [length] * windows


# ---- buffer_ms: a window whose audio is still in the ring is kept ---------------------------
@pytest.mark.parametrize(("more", "dropped"), [(0, 0), (1, 1)])
def test_a_pending_window_is_dropped_only_once_its_first_sample_is_gone(
    more: int, dropped: int
) -> None:
    s = _stream(buffer_ms=400)
    s.push(np.full(200, 0.5, np.float32))  # window 0 pending, [0, 200)
    s.push(np.full(200 + more, 0.5, np.float32))  # the ring holds exactly [0, 400), or [1, 401)
    assert s.stats.dropped_windows == dropped
    first = s.take()
    assert first is not None and first.index == dropped


# ---- max_unsent_results: exactly that many kept for a client that resumes --------------------
def test_replay_keeps_exactly_max_unsent_messages() -> None:
    s = _stream(max_unsent=3, gate_rms=0.01)
    s.push(np.zeros(800, np.float32))  # four quiet windows, gated at once
    sent = s.pop_messages()
    assert [m["seq"] for m in sent] == [0, 1, 2, 3]
    assert [m["seq"] for m in s.replay(-1)] == [1, 2, 3]
    assert [m["seq"] for m in s.replay(2)] == [3]
    assert s.replay(3) == []


# ---- the ring: exactly full, one past, views at the edges -----------------------------------
def test_a_ring_written_exactly_full_keeps_everything() -> None:
    ring = RingBuffer(4)
    ring.write(np.arange(4, dtype=np.float32))
    assert ring.oldest == 0
    assert ring.view(0, 4).tolist() == [0, 1, 2, 3]
    ring.write(np.array([4], np.float32))
    assert ring.oldest == 1
    assert ring.view(1, 4).tolist() == [1, 2, 3, 4]
    with pytest.raises(IndexError, match=r"^expected a range within \[1, 5\), got \[0, 4\)$"):
        ring.view(0, 4)
    with pytest.raises(IndexError, match=r"got \[2, 6\)$"):
        ring.view(2, 4)
    assert ring.view(5, 0).tolist() == []
    with pytest.raises(IndexError):
        ring.view(2, -1)


def test_a_write_of_exactly_the_capacity_after_a_wrap_keeps_positions() -> None:
    ring = RingBuffer(4)
    ring.write(np.array([0, 1, 2], np.float32))
    ring.write(np.array([3, 4, 5, 6], np.float32))  # n == capacity
    assert ring.view(3, 4).tolist() == [3, 4, 5, 6]
    ring.write(np.array([7], np.float32))
    assert ring.view(4, 4).tolist() == [4, 5, 6, 7]


# ---- smoothing: a strict majority of n, n >= 1 -----------------------------------------------
def test_smoothing_needs_a_strict_majority_and_n_of_at_least_one() -> None:
    assert MajoritySmoother(1).n == 1
    with pytest.raises(ValueError, match=r"^n: expected at least 1, got 0$"):
        MajoritySmoother(0)
    s = MajoritySmoother(3)
    assert [s.update(x) for x in "aab"] == ["a", "a", "a"]
    assert s.update("b") == "b"  # a, b, b: 2 of 3


# ---- text frames: 4096 bytes, counted in UTF-8 -------------------------------------------------
def test_a_start_of_exactly_4096_bytes_in_multibyte_characters_is_parsed() -> None:
    base = json.dumps({"type": "start", "stream_id": ""})
    pad = 4096 - len(base.encode())
    text = json.dumps(
        {"type": "start", "stream_id": "é" * (pad // 2) + "x" * (pad % 2)}, ensure_ascii=False
    )
    assert len(text.encode()) == 4096 and len(text) < 4096
    [started] = Session(DEFAULT_FORMAT).receive_text(text)
    assert started.stream_id is not None and len(started.stream_id) > 1000  # type: ignore[union-attr]


def test_the_100_ms_tail_is_counted_in_whole_samples_at_any_rate() -> None:
    # 11025 Hz: 100 ms is 1102.5 samples; a tail of 1102 whole samples is long enough
    s = Stream("r", StreamConfig(sample_rate=11_025, window_ms=200, hop_ms=200, buffer_ms=1000,
                                 labels=("a", "b"), gate_rms=0.0), clock=Clock())  # fmt: skip
    s.push(np.full(2_205 + 1_102, 0.5, np.float32))
    s.finish()
    assert [w.audio.size for w in iter(s.take, None)] == [2_205, 2_205]


def test_a_stream_takes_single_samples_and_refuses_audio_after_finish() -> None:
    s = _stream()
    for _ in range(200):
        s.push(np.full(1, 0.5, np.float32))
    assert s.samples_received == 200 and s.pending == 1
    s.finish()
    with pytest.raises(RuntimeError, match=r"^push after finish$"):
        s.push(np.full(1, 0.5, np.float32))


def test_the_next_window_is_due_until_exactly_one_hop_late() -> None:
    clock = Clock()
    s = Stream("d", StreamConfig(sample_rate=1000, window_ms=200, hop_ms=200, buffer_ms=1000,
                                 labels=("a", "b"), gate_rms=0.0), clock=clock)  # fmt: skip
    assert s.next_window_at(0.0) == float("inf") and s.oldest_ready_at() == float("inf")
    clock.t = 1.0
    s.push(np.full(200, 0.5, np.float32))
    assert s.oldest_ready_at() == 1.0
    assert s.next_window_at(1.4) == pytest.approx(1.2)  # due + one hop: still expected
    assert s.next_window_at(1.41) == float("inf")  # later: the stream stalled
    w = s.take()
    assert w is not None and w.ready_at == 1.0
    s.close()
    assert s.closed is True and s.vad_job() is None
