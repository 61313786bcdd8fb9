"""The wire protocol to the letter: every client error's exact code and message (they are sent
verbatim, so they are part of the protocol), the start fields that resume and auth rely on, the
JSON encoding and the rounding of message fields, and the WAV files the reference client sends."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest
import soundfile as sf

from voxlive.errors import ClientError, FormatError, FrameError, MessageError, StateError
from voxlive.protocol import messages
from voxlive.protocol.frames import (
    DEFAULT_FORMAT,
    AudioFormat,
    decode_pcm,
    decode_wav,
    encode_wav_s16,
)
from voxlive.protocol.session import Audio, Session, Started, State, parse_query, parse_start


@pytest.mark.parametrize(
    ("text", "error", "code", "message"),
    [
        ("not json", MessageError, "bad_json",
         "expected a JSON object, got text that is not JSON (8 chars)"),
        ("[1, 2]", MessageError, "bad_message", "expected a JSON object, got list"),
        ('{"type": 7}', MessageError, "bad_message", "expected a string 'type' field, got 7"),
        ('{"x": 1}', MessageError, "bad_message", "expected a string 'type' field, got None"),
        ('{"type": "' + "d" * 50 + '"}', MessageError, "unknown_type",
         "expected type 'start' or 'stop', got '" + "d" * 40 + "'"),
        ('{"type": "start", "bogus": 5, "alpha": 1}', FormatError, "unsupported_format",
         "start: expected keys among ['channels', 'encoding', 'last_seq', 'lossless', "
         "'sample_rate', 'stream_id', 'token', 'type'], got unknown ['alpha', 'bogus']"),
        ('{"type": "start", "token": 5}', FormatError, "unsupported_format",
         "start: expected token to be a string, got int"),
        ('{"type": "start", "stream_id": []}', FormatError, "unsupported_format",
         "start: expected stream_id to be a string, got list"),
        ('{"type": "start", "last_seq": "3"}', FormatError, "unsupported_format",
         "start: expected last_seq to be an integer >= -1, got '3'"),
        ('{"type": "start", "last_seq": true}', FormatError, "unsupported_format",
         "start: expected last_seq to be an integer >= -1, got True"),
        ('{"type": "start", "encoding": "mp3"}', FormatError, "unsupported_format",
         "encoding: expected one of ['pcm_f32le', 'pcm_s16le'], got 'mp3'"),
        ('{"type": "start", "channels": "2"}', FormatError, "unsupported_format",
         "channels: expected 1 or 2, got '2'"),
        ('{"type": "start", "sample_rate": 1.5}', FormatError, "unsupported_format",
         "sample_rate: expected an integer in Hz, got 1.5"),
    ],
)  # fmt: skip
def test_bad_text_gets_its_exact_code_and_message(
    text: str, error: type[ClientError], code: str, message: str
) -> None:
    with pytest.raises(error) as info:
        Session(DEFAULT_FORMAT).receive_text(text)
    assert (info.value.code, info.value.message) == (code, message)
    assert info.value.close_code == (1003 if error is FormatError else None)


def test_nothing_is_accepted_after_stop_and_the_errors_say_so() -> None:
    s = Session(DEFAULT_FORMAT)
    s.receive_text('{"type": "stop"}')
    assert s.state is State.STOPPED
    with pytest.raises(StateError) as again:
        s.receive_text('{"type": "stop"}')
    assert again.value.message == "expected nothing after stop, got another stop"
    with pytest.raises(StateError) as audio:
        s.receive_bytes(b"\x00\x00")
    assert audio.value.message == "expected nothing after stop, got an audio frame"
    assert audio.value.code == "unexpected_message"


def test_stop_before_start_starts_with_the_default_format_first() -> None:
    started, stopped = Session(DEFAULT_FORMAT).receive_text('{"type": "stop"}')
    assert started == Started(DEFAULT_FORMAT)
    assert type(stopped).__name__ == "Stopped"


def test_start_carries_token_stream_id_and_last_seq() -> None:
    text = json.dumps({"type": "start", "token": "t", "stream_id": "abc", "last_seq": 7,
                       "sample_rate": 8_000, "encoding": "pcm_f32le", "channels": 2})  # fmt: skip
    [started] = Session(DEFAULT_FORMAT).receive_text(text)
    assert started == Started(AudioFormat(8_000, "pcm_f32le", 2), "t", "abc", 7)
    assert parse_start({"type": "start"}, DEFAULT_FORMAT) == Started(DEFAULT_FORMAT)


def test_query_parameters_carry_the_same_keys_as_start() -> None:
    q = {"sample_rate": "8000", "channels": "2", "last_seq": "-1", "stream_id": "abc",
         "token": "t", "type": "start", "other": "ignored"}  # fmt: skip
    preset = parse_query(q, DEFAULT_FORMAT)
    assert preset == Started(AudioFormat(8_000, "pcm_s16le", 2), "t", "abc", -1)
    assert parse_query({"type": "start", "other": "1"}, DEFAULT_FORMAT) is None
    with pytest.raises(FormatError) as info:
        parse_query({"last_seq": "x"}, DEFAULT_FORMAT)
    assert info.value.message == "last_seq: expected an integer, got 'x'"


def test_a_preset_session_streams_in_its_format_and_refuses_a_start() -> None:
    preset = Started(AudioFormat(8_000, "pcm_f32le", 1))
    s = Session(DEFAULT_FORMAT, preset)
    assert s.state is State.STREAMING and s.format == preset.format
    [audio] = s.receive_bytes(np.zeros(2, "<f4").tobytes())  # no Started: ready was sent
    assert isinstance(audio, Audio) and audio.sample_rate == 8_000
    with pytest.raises(StateError, match="got a second start"):
        s.receive_text('{"type": "start"}')


def test_a_wav_frame_at_another_rate_is_refused_and_a_bad_wav_is_a_frame_error() -> None:
    s = Session(DEFAULT_FORMAT)
    s.receive_bytes(encode_wav_s16(np.zeros(8, np.float32), 16_000))
    with pytest.raises(FrameError) as info:
        s.receive_bytes(encode_wav_s16(np.zeros(8, np.float32), 44_100))
    assert info.value.code == "rate_changed"
    assert info.value.message == (
        "expected audio at the stream's 16000 Hz, got a WAV frame at 44100 Hz "
        "(start a new stream to change rates)"
    )
    bad = bytearray(encode_wav_s16(np.zeros(8, np.float32), 16_000))
    struct.pack_into("<I", bad, 24, 4_000)  # a rate outside 8000..192000
    with pytest.raises(FrameError) as wav:
        Session(DEFAULT_FORMAT).receive_bytes(bytes(bad))
    assert (wav.value.code, wav.value.close_code) == ("unsupported_format", None)
    assert wav.value.message == "sample_rate: expected 8000..192000 Hz, got 4000"


def test_a_text_frame_is_measured_in_bytes_only_when_it_could_fit() -> None:
    s = Session(DEFAULT_FORMAT)
    with pytest.raises(MessageError) as info:
        s.receive_text("x" * 5000)
    assert info.value.message == (
        "expected a control message of at most 4096 bytes, got at least 5000 bytes"
    )
    assert info.value.code == "message_too_large"


# ---- server messages: JSON and rounding ------------------------------------------------------
def test_messages_are_compact_json_and_refuse_nan() -> None:
    assert messages.encode({"type": "x", "a": [1, 2]}) == '{"type":"x","a":[1,2]}'
    with pytest.raises(ValueError):
        messages.encode({"type": "x", "v": float("nan")})


def test_result_fields_are_rounded_to_microseconds_and_scores_to_six_places() -> None:
    r = messages.result(seq=3, start_ms=1.23456, end_ms=2.34567, label="a", confidence=0.1234567,
                        scores={"a": 0.1234567, "b": 0.87654321}, smoothed="a", gated=False,
                        latency_ms=5.55555, dropped_ms=7.77777)  # fmt: skip
    assert r == {
        "type": "result", "seq": 3, "start_ms": 1.235, "end_ms": 2.346, "label": "a",
        "class": "a", "confidence": 0.123457, "scores": {"a": 0.123457, "b": 0.876543},
        "smoothed": "a", "gated": False, "latency_ms": 5.556, "dropped_ms": 7.778,
    }  # fmt: skip


def test_error_end_and_ready_fields() -> None:
    assert messages.error("c", "m", seq=0, start_ms=1.23456, end_ms=0.0004) == {
        "type": "error", "code": "c", "message": "m", "seq": 0, "start_ms": 1.235, "end_ms": 0.0,
    }  # fmt: skip
    assert messages.error("c", "m") == {"type": "error", "code": "c", "message": "m"}
    end = messages.end(stream_id="s", duration_ms=1.23456, windows=1, results=1, gated=0,
                       failed=0, dropped_windows=0, dropped_ms=2.34567)  # fmt: skip
    assert (end["duration_ms"], end["dropped_ms"]) == (1.235, 2.346)
    ready = messages.ready(stream_id="s", model="m", backend="b", labels=("x",), fallback=None,
                           window_ms=1, hop_ms=1, sample_rate=1, model_sample_rate=1)  # fmt: skip
    assert ready["resumed"] is False and ready["labels"] == ["x"]


# ---- WAV frames ---------------------------------------------------------------------------------
def test_the_reference_wav_encoder_writes_what_libsndfile_reads() -> None:
    import io

    x = np.array([0.0, 0.5, -0.5, 1.0, -1.0, 2.0, -2.0], np.float32)
    data = encode_wav_s16(x, 22_050)
    info = sf.info(io.BytesIO(data))
    assert (info.samplerate, info.channels, info.frames, info.subtype) == (22_050, 1, 7, "PCM_16")
    riff_size, byte_rate = (
        struct.unpack_from("<I", data, 4)[0],
        struct.unpack_from("<I", data, 28)[0],
    )
    assert (riff_size, byte_rate, len(data)) == (36 + 14, 44_100, 44 + 14)
    pcm = np.frombuffer(data[44:], "<i2").tolist()
    assert pcm == [0, 16383, -16383, 32767, -32767, 32767, -32767]  # clipped to full scale
    # The header's fields are unsigned (RIFF): a byte rate past 2**31 is written, not refused.
    assert struct.unpack_from("<I", encode_wav_s16(x, 2**30), 28)[0] == 2**31


def test_wav_sample_formats_decode_to_exact_values() -> None:
    def wav(tag: int, bits: int, body: bytes, channels: int = 1) -> bytes:
        align = channels * bits // 8
        fmt = struct.pack("<HHIIHH", tag, channels, 8_000, 8_000 * align, align, bits)
        chunks = (
            b"fmt " + struct.pack("<I", 16) + fmt + b"data" + struct.pack("<I", len(body)) + body
        )
        return b"RIFF" + struct.pack("<I", 4 + len(chunks)) + b"WAVE" + chunks

    def extensible(sub: int) -> bytes:
        fmt = struct.pack("<HHIIHH", 0xFFFE, 1, 8_000, 16_000, 2, 16) + b"\x16\x00" + bytes(6)
        fmt += struct.pack("<H", sub) + bytes(14)
        data = b"\x00\x00"
        chunks = b"fmt " + struct.pack("<I", 40) + fmt + b"data" + struct.pack("<I", 2) + data
        return b"RIFF" + struct.pack("<I", 4 + len(chunks)) + b"WAVE" + chunks

    u8 = decode_wav(wav(1, 8, bytes([0, 128, 255, 64])))[0][:, 0]
    assert u8.dtype == np.float32 and u8.tolist() == [-1.0, 0.0, 127 / 128, -0.5]
    s16 = decode_wav(wav(1, 16, struct.pack("<hh", -32768, 16384)))[0][:, 0]
    assert s16.dtype == np.float32 and s16.tolist() == [-1.0, 0.5]
    s24 = decode_wav(wav(1, 24, b"\x00\x00\x80" + b"\xff\xff\x7f" + b"\x00\x00\x40"))[0][:, 0]
    assert s24.dtype == np.float32
    assert s24.tolist() == [-1.0, np.float32(8388607 / 8388608), 0.5]  # exact, not approximate
    # 2**31 - 64 lies halfway between 1.0 and the float32 below it (and rounds to even, 1.0):
    # a divisor a hair off 2**31 tips it the other way.
    s32 = decode_wav(wav(1, 32, struct.pack("<4i", -(2**31), 2**30, 1, 2**31 - 64)))[0][:, 0]
    assert s32.dtype == np.float32 and s32.tolist() == [-1.0, 0.5, 2**-31, 1.0]
    f64 = decode_wav(wav(3, 64, struct.pack("<dd", 0.25, -16.0)))[0][:, 0]
    assert f64.dtype == np.float32 and f64.tolist() == [0.25, -16.0]
    stereo = decode_wav(wav(1, 16, struct.pack("<hhhh", 1, 2, 3, 4), channels=2))[0]
    assert stereo.shape == (2, 2) and stereo[1, 0] == 3 / 32768
    with pytest.raises(FormatError) as bad:
        decode_wav(wav(3, 16, b"\x00\x00"))  # 16-bit float
    assert bad.value.message == (
        "WAV: expected 8/16/24/32-bit PCM or 32/64-bit float, got format tag 0x0003 with 16 bits"
    )
    with pytest.raises(FormatError) as align:
        decode_wav(wav(1, 12, b"\x00\x00"))
    assert align.value.message == (
        "WAV: expected block_align = channels × bits/8, got channels=1, bits=12, block_align=1"
    )
    with pytest.raises(FrameError) as empty:
        decode_wav(wav(1, 16, b""))
    assert empty.value.message == "WAV: expected audio in the data chunk, got 0 bytes"
    with pytest.raises(FormatError, match=r"got format tag 0x8001 with 16 bits$"):
        decode_wav(extensible(0x8001))  # the sub-format's tag, read unsigned
    with pytest.raises(FrameError) as odd:
        decode_wav(wav(1, 16, b"\x00\x00\x00"))
    assert odd.value.message == "WAV data: expected a multiple of 2 bytes, got 3 bytes"


def test_pcm_frames_keep_their_channels_and_float_frames_are_checked() -> None:
    stereo = decode_pcm(struct.pack("<hhhh", 1, 2, 3, 4), AudioFormat(16_000, "pcm_s16le", 2))
    assert stereo.shape == (2, 2) and stereo.dtype == np.float32
    with pytest.raises(FrameError) as nan:
        decode_pcm(struct.pack("<ff", float("nan"), float("inf")), AudioFormat(16_000, "pcm_f32le"))
    assert nan.value.message == "expected finite float samples, got 2 NaN or Inf values"
    with pytest.raises(FrameError) as empty:
        decode_pcm(b"", DEFAULT_FORMAT)
    assert empty.value.message == "expected audio bytes, got an empty frame"


# ---- WAV frames: the exact errors, streaming sizes, whole frames -------------------------------
def _chunk(kind: bytes, body: bytes, size: int | None = None) -> bytes:
    return kind + struct.pack("<I", len(body) if size is None else size) + body


def _fmt(channels: int = 1, bits: int = 16, rate: int = 16_000) -> bytes:
    align = channels * bits // 8
    return _chunk(b"fmt ", struct.pack("<HHIIHH", 1, channels, rate, rate * align, align, bits))


def _riff(*chunks: bytes) -> bytes:
    body = b"WAVE" + b"".join(chunks)
    return b"RIFF" + struct.pack("<I", len(body)) + body


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (b"RIFF\x00\x00\x00\x00WAVX", "expected a RIFF/WAVE header"),
        (_riff(_chunk(b"data", b"\x00\x00")), "WAV: expected a fmt chunk before the data chunk"),
        (_riff(_fmt()), "WAV: expected a data chunk, found none"),
        (_riff(_fmt(), _chunk(b"LIST", b"ab", size=10)),
         "WAV chunk b'LIST' declares 10 bytes, but only 2 remain"),
    ],
)  # fmt: skip
def test_broken_wav_frames_get_exact_errors(frame: bytes, message: str) -> None:
    with pytest.raises(FrameError) as info:
        decode_wav(frame)
    assert info.value.message == message


def test_a_chunk_that_ends_exactly_at_the_frame_s_end_is_whole() -> None:
    frame = _riff(_fmt(), _chunk(b"data", b"\x00\x40\x00\xc0"), _chunk(b"LIST", b"ab"))
    samples, rate = decode_wav(frame)
    assert rate == 16_000 and samples[:, 0].tolist() == [0.5, -0.5]
    with pytest.raises(FrameError, match="found none"):
        decode_wav(_riff(_fmt(), _chunk(b"LIST", b"ab")))  # LIST ends the frame exactly


@pytest.mark.parametrize("unknown", [0, 0xFFFFFFFF])
def test_a_streaming_data_size_takes_the_whole_frames_that_arrived(unknown: int) -> None:
    # 8-bit mono: every byte is a frame, so an odd count is whole
    samples, _ = decode_wav(_riff(_fmt(bits=8), _chunk(b"data", b"\xc0\x80\x40", size=unknown)))
    assert samples[:, 0].tolist() == [0.5, 0.0, -0.5]
    # 16-bit stereo: 4 bytes a frame; the 3 bytes of a frame still arriving are left out
    raw = struct.pack("<4h", 16384, -16384, 0, 8192) + b"\x01\x02\x03"
    samples, _ = decode_wav(_riff(_fmt(channels=2), _chunk(b"data", raw, size=unknown)))
    assert samples.tolist() == [[0.5, -0.5], [0.0, 0.25]]


def test_a_wav_frame_in_a_session_gives_its_samples_at_its_rate() -> None:
    s = Session(DEFAULT_FORMAT)
    started, audio = s.receive_bytes(encode_wav_s16(np.array([0.5, -0.25], np.float32), 22_050))
    assert isinstance(started, Started) and isinstance(audio, Audio)
    assert audio.sample_rate == 22_050
    np.testing.assert_allclose(audio.samples[:, 0], [0.5, -0.25], atol=1e-4)
    assert s.state is State.STREAMING  # audio first started the stream
    [more] = s.receive_bytes(encode_wav_s16(np.zeros(2, np.float32), 22_050))
    assert isinstance(more, Audio)
    assert [type(e).__name__ for e in s.receive_text('{"type": "stop"}')] == ["Stopped"]


@pytest.mark.parametrize(("value", "flag"), [("true", True), ("1", True), ("false", False),
                                             ("0", False)])  # fmt: skip
def test_lossless_in_the_query_is_true_false_1_or_0(value: str, flag: bool) -> None:
    preset = parse_query({"lossless": value}, DEFAULT_FORMAT)
    assert preset is not None and preset.lossless is flag


def test_a_bad_lossless_value_is_shown_in_the_error() -> None:
    with pytest.raises(FormatError) as query:
        parse_query({"lossless": "maybe"}, DEFAULT_FORMAT)
    assert query.value.message == "lossless: expected true or false, got 'maybe'"
    with pytest.raises(FormatError) as start:
        parse_start({"type": "start", "lossless": "yes"}, DEFAULT_FORMAT)
    assert start.value.message == "start: expected lossless to be true or false, got 'yes'"


def test_text_of_exactly_4096_characters_is_measured_in_bytes() -> None:
    with pytest.raises(MessageError) as info:
        Session(DEFAULT_FORMAT).receive_text("é" * 4096)  # 8192 bytes
    assert info.value.message.endswith("got at least 8192 bytes")
    # longer than the limit in characters already: refused without encoding it, so the
    # message gives the character count as the lower bound it is
    with pytest.raises(MessageError) as long:
        Session(DEFAULT_FORMAT).receive_text("é" * 5000)
    assert long.value.message.endswith("got at least 5000 bytes")


def test_segment_and_error_times_are_rounded_to_microseconds() -> None:
    seg = messages.segment(label="a", start_ms=1.23456, end_ms=2.34567, confidence=0.5, windows=2)
    assert (seg["start_ms"], seg["end_ms"]) == (1.235, 2.346)
    assert messages.error("c", "m", end_ms=2.34567)["end_ms"] == 2.346


def test_end_counts_no_dropped_results_or_errors_unless_told() -> None:
    end = messages.end(stream_id="s", duration_ms=1, windows=1, results=1, gated=0, failed=0,
                       dropped_windows=0, dropped_ms=0)  # fmt: skip
    assert (end["dropped_results"], end["dropped_errors"]) == (0, 0)
