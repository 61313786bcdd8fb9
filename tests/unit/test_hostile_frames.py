"""Input an attacker would send to the pure protocol layer: each is refused with a documented
error, cheaply, at the documented limit (exactly at it passes, one past it fails)."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest

from voxlive.errors import FormatError, FrameError, MessageError
from voxlive.protocol.frames import (
    DEFAULT_FORMAT,
    MAX_FLOAT_PEAK,
    MAX_WAV_CHUNKS,
    AudioFormat,
    decode_pcm,
    decode_wav,
    encode_wav_s16,
    make_format,
)
from voxlive.protocol.session import MAX_TEXT_BYTES, Audio, Session, Started, State


def wav_with_junk(junk_chunks: int, *, junk_bytes: int = 2) -> bytes:
    """A 16 kHz mono s16 WAV whose fmt chunk is followed by ``junk_chunks`` JUNK chunks."""
    fmt = struct.pack("<4sIHHIIHH", b"fmt ", 16, 1, 1, 16_000, 32_000, 2, 16)
    junk = (struct.pack("<4sI", b"JUNK", junk_bytes) + b"\0" * junk_bytes) * junk_chunks
    data = struct.pack("<4sI", b"data", 8) + np.zeros(4, "<i2").tobytes()
    body = b"WAVE" + fmt + junk + data
    return struct.pack("<4sI", b"RIFF", len(body)) + body


def test_wav_chunk_walk_is_bounded_at_the_documented_count() -> None:
    # fmt + JUNK… + data: the data chunk is chunk number MAX_WAV_CHUNKS exactly
    samples, rate = decode_wav(wav_with_junk(MAX_WAV_CHUNKS - 2))
    assert samples.shape == (4, 1) and rate == 16_000
    with pytest.raises(FrameError, match=f"within {MAX_WAV_CHUNKS} chunks"):
        decode_wav(wav_with_junk(MAX_WAV_CHUNKS - 1))


def test_a_megabyte_of_tiny_chunks_is_refused_after_the_bound() -> None:
    frame = wav_with_junk(130_000, junk_bytes=0)  # ~1 MiB, ~1.5 KB on the wire with deflate
    assert len(frame) > 1_000_000
    with pytest.raises(FrameError, match="within 16 chunks"):
        decode_wav(frame)


@pytest.mark.parametrize(("peak", "ok"), [(MAX_FLOAT_PEAK, True), (np.nextafter(MAX_FLOAT_PEAK, 99, dtype=np.float32), False), (3.4e38, False)])  # fmt: skip
def test_float_samples_beyond_the_peak_are_refused(peak: float, ok: bool) -> None:
    data = np.array([0.0, peak, -0.5], dtype="<f4").tobytes()
    fmt = AudioFormat(16_000, "pcm_f32le")
    if ok:
        assert decode_pcm(data, fmt)[1, 0] == pytest.approx(peak)
    else:
        with pytest.raises(FrameError, match="got a peak of"):
            decode_pcm(data, fmt)


@pytest.mark.parametrize("encoding", [["pcm_s16le"], {"a": 1}, 16, None])
def test_an_encoding_of_the_wrong_type_is_a_format_error(encoding: object) -> None:
    with pytest.raises(FormatError, match="encoding: expected one of"):
        make_format(16_000, encoding, 1)
    with pytest.raises(FormatError):
        Session(DEFAULT_FORMAT).receive_text(json.dumps({"type": "start", "encoding": encoding}))


def _padded(size: int) -> str:
    text = '{"type": "stop"}'
    return text + " " * (size - len(text.encode()))


def test_text_limit_is_in_bytes_inclusive() -> None:
    assert len(_padded(MAX_TEXT_BYTES).encode()) == MAX_TEXT_BYTES
    Session(DEFAULT_FORMAT).receive_text(_padded(MAX_TEXT_BYTES))
    with pytest.raises(MessageError, match=f"at most {MAX_TEXT_BYTES} bytes") as err:
        Session(DEFAULT_FORMAT).receive_text(_padded(MAX_TEXT_BYTES + 1))
    assert err.value.code == "message_too_large"


def test_text_limit_counts_multibyte_characters_as_bytes() -> None:
    emoji = "😀" * (MAX_TEXT_BYTES // 4 + 1)  # fewer characters than the limit, more bytes
    assert len(emoji) < MAX_TEXT_BYTES < len(emoji.encode())
    with pytest.raises(MessageError, match="at most 4096 bytes"):
        Session(DEFAULT_FORMAT).receive_text(json.dumps({"type": emoji}, ensure_ascii=False))


def test_huge_integers_are_refused_with_a_short_message() -> None:
    text = '{"type": "start", "sample_rate": ' + "9" * 4000 + "}"
    assert len(text) <= MAX_TEXT_BYTES
    with pytest.raises(FormatError, match="got <huge int>") as err:
        Session(DEFAULT_FORMAT).receive_text(text)
    assert len(err.value.message) < 100
    # past Python's 4300-digit parsing limit the size check answers first: never a ValueError
    with pytest.raises(MessageError, match="at most"):
        Session(DEFAULT_FORMAT).receive_text('{"type": "start", "sample_rate": ' + "9" * 5000 + "}")


def test_wav_frames_that_switch_rate_are_refused_and_the_stream_goes_on() -> None:
    s = Session(DEFAULT_FORMAT)
    first = s.receive_bytes(encode_wav_s16(np.zeros(160, np.float32), 16_000))
    assert [type(e) for e in first] == [Started, Audio]
    with pytest.raises(FrameError, match="stream's 16000 Hz, got a WAV frame at 44100 Hz") as err:
        s.receive_bytes(encode_wav_s16(np.zeros(441, np.float32), 44_100))
    assert err.value.code == "rate_changed"
    [audio] = s.receive_bytes(encode_wav_s16(np.zeros(160, np.float32), 16_000))
    assert isinstance(audio, Audio) and audio.sample_rate == 16_000


def test_raw_pcm_fixes_the_rate_for_later_wav_frames() -> None:
    s = Session(DEFAULT_FORMAT)
    s.receive_bytes(np.zeros(4, "<i2").tobytes())
    with pytest.raises(FrameError, match="got a WAV frame at 48000 Hz"):
        s.receive_bytes(encode_wav_s16(np.zeros(480, np.float32), 48_000))


def test_a_bad_first_frame_leaves_the_stream_waiting_for_its_start() -> None:
    s = Session(DEFAULT_FORMAT)
    with pytest.raises(FrameError):
        s.receive_bytes(b"\x00")  # odd byte count for s16
    assert s.state is State.AWAITING_START
    events = s.receive_bytes(np.zeros(4, "<i2").tobytes())
    assert [type(e) for e in events] == [Started, Audio]
