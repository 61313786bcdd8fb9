"""Frame decoding (protocol/frames.py): raw PCM in the stream's format and WAV frames that
describe themselves, every format limit exactly at it and one past it, the exact errors (they are
sent verbatim), hostile frames refused cheaply, and arbitrary bytes raising only the documented
errors."""

from __future__ import annotations

import contextlib
import io
import json
import struct

import numpy as np
import pytest
import soundfile as sf
from hypothesis import given, settings
from hypothesis import strategies as st

from voxlive.errors import ClientError, FormatError, FrameError
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
from voxlive.protocol.order import (
    MessageOrder,
)


def _wav_bytes(samples: np.ndarray, rate: int, subtype: str) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, samples, rate, format="WAV", subtype=subtype)
    return buf.getvalue()


def test_pcm_s16_mono() -> None:
    data = np.array([0, 16384, -32768, 32767], dtype="<i2").tobytes()
    out = decode_pcm(data, AudioFormat(16_000))
    assert out.shape == (4, 1)
    np.testing.assert_allclose(out[:, 0], [0, 0.5, -1.0, 32767 / 32768])


def test_pcm_f32_stereo() -> None:
    data = np.array([0.5, -0.5, 0.25, 0.0], dtype="<f4").tobytes()
    out = decode_pcm(data, AudioFormat(48_000, "pcm_f32le", 2))
    np.testing.assert_allclose(out, [[0.5, -0.5], [0.25, 0.0]])


@pytest.mark.parametrize(
    ("data", "fmt", "match"),
    [
        (b"", AudioFormat(16_000), "empty frame"),
        (b"\x00\x01\x02", AudioFormat(16_000), "multiple of 2 bytes.*got 3"),
        (b"\x00" * 6, AudioFormat(16_000, "pcm_s16le", 2), "multiple of 4 bytes"),
        (np.array([np.nan, 1], "<f4").tobytes(), AudioFormat(16_000, "pcm_f32le"), "1 NaN or Inf"),
        (np.array([np.inf], "<f4").tobytes(), AudioFormat(16_000, "pcm_f32le"), "NaN or Inf"),
    ],
)
def test_bad_pcm(data: bytes, fmt: AudioFormat, match: str) -> None:
    with pytest.raises(FrameError, match=match):
        decode_pcm(data, fmt)


@pytest.mark.parametrize(
    ("rate", "channels", "subtype", "tol"),
    [
        (16_000, 1, "PCM_16", 1e-4),
        (44_100, 2, "PCM_16", 1e-4),
        (48_000, 1, "FLOAT", 1e-7),
        (22_050, 2, "PCM_24", 1e-6),
        (8_000, 1, "PCM_U8", 1e-2),
        (96_000, 1, "PCM_32", 1e-7),
        (192_000, 2, "DOUBLE", 1e-7),
    ],
)
def test_wav_decodes_like_libsndfile(rate: int, channels: int, subtype: str, tol: float) -> None:
    rng = np.random.default_rng(1)
    samples = rng.uniform(-0.9, 0.9, size=(1024, channels)).astype(np.float32)
    data = _wav_bytes(samples, rate, subtype)
    assert is_wav(data)
    out, out_rate = decode_wav(data)
    assert out_rate == rate
    ref, _ = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    assert out.shape == ref.shape
    np.testing.assert_allclose(out, ref, atol=tol)


def test_wav_extensible_header() -> None:
    samples = np.zeros((64, 2), dtype=np.float32)
    buf = io.BytesIO()
    sf.write(buf, samples, 16_000, format="WAV", subtype="PCM_16")
    data = bytearray(buf.getvalue())
    # libsndfile writes WAVE_FORMAT_EXTENSIBLE for stereo? Build one by hand to be sure.
    fmt = struct.pack("<HHIIHHHHI16s", 0xFFFE, 1, 16_000, 32_000, 2, 16, 22, 16, 4,
                      b"\x01\x00" + b"\x00" * 14)  # fmt: skip
    pcm = np.array([1000, -1000], "<i2").tobytes()
    wav = b"RIFF" + struct.pack("<I", 4 + 8 + len(fmt) + 8 + len(pcm)) + b"WAVE"
    wav += b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(pcm)) + pcm
    out, rate = decode_wav(wav)
    assert rate == 16_000
    np.testing.assert_allclose(out[:, 0], [1000 / 32768, -1000 / 32768])
    assert decode_wav(bytes(data))[0].shape == (64, 2)  # the libsndfile-written file decodes too


def test_reference_client_frame_roundtrip() -> None:
    x = np.sin(np.linspace(0, 20, 1024)).astype(np.float32) * 0.5
    out, rate = decode_wav(encode_wav_s16(x, 16_000))
    assert rate == 16_000 and out.shape == (1024, 1)
    np.testing.assert_allclose(out[:, 0], x, atol=1e-4)


def test_streaming_wav_with_unknown_size_reads_to_end() -> None:
    data = bytearray(encode_wav_s16(np.zeros(100, np.float32), 16_000))
    data[40:44] = struct.pack("<I", 0xFFFFFFFF)
    assert decode_wav(bytes(data))[0].shape == (100, 1)


@pytest.mark.parametrize(
    ("mutate", "error", "match"),
    [
        (lambda d: d[:30], FrameError, "expected a data chunk|declares"),
        (lambda d: d[:44] + d[44:100], FrameError, "declares 2048 bytes, but the frame holds 56"),
        (lambda d: d[:40] + struct.pack("<I", 2_000_000_000) + d[44:], FrameError, "declares"),
        (lambda d: d[:24] + struct.pack("<I", 1_000_000) + d[28:], FormatError, "192000 Hz"),
        (lambda d: d[:24] + struct.pack("<I", 100) + d[28:], FormatError, "8000..192000"),
        (lambda d: d[:22] + struct.pack("<H", 9) + d[24:], FormatError, "channels"),
        (lambda d: d[:20] + struct.pack("<H", 0x55) + d[22:], FormatError, "format tag 0x0055"),
        (lambda d: d[:40] + struct.pack("<I", 0), FrameError, "got 0 bytes"),
        (lambda d: d[:45], FrameError, "declares"),
    ],
)
def test_bad_wav(mutate, error: type[Exception], match: str) -> None:  # type: ignore[no-untyped-def]
    data = encode_wav_s16(np.zeros(1024, np.float32), 16_000)
    with pytest.raises(error, match=match):
        decode_wav(mutate(data))


def test_non_audio_bytes_are_not_wav() -> None:
    assert not is_wav(b"<html>hello</html>")
    with pytest.raises(FrameError):
        decode_wav(b"RIFF\x00\x00\x00\x00WAVE")


@pytest.mark.parametrize(
    ("rate", "enc", "ch", "match"),
    [
        (7999, "pcm_s16le", 1, "8000..192000 Hz, got 7999"),
        (192_001, "pcm_s16le", 1, "got 192001"),
        ("16000", "pcm_s16le", 1, "integer"),
        (True, "pcm_s16le", 1, "integer"),
        (16_000, "mp3", 1, "encoding: expected one of"),
        (16_000, "pcm_s16le", 3, "channels: expected 1 or 2, got 3"),
        (16_000, "pcm_s16le", 0, "channels"),
    ],
)
def test_make_format_rejects(rate: object, enc: object, ch: object, match: str) -> None:
    with pytest.raises(FormatError, match=match):
        make_format(rate, enc, ch)


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


# ---- values quoted in errors: at most 40 characters -----------------------------------------
def test_quoted_values_are_cut_at_40_characters() -> None:
    assert shown("x" * 38) == repr("x" * 38)  # 40 characters with the quotes
    assert shown("x" * 39) == repr("x" * 39)[:37] + "..."
    assert len(shown("x" * 39)) == 40
    assert shown(10**40 - 1) == "9" * 40  # 40 digits
    assert shown(-(10**39)) == "-1" + "0" * 35 + "..."  # 41 characters, cut to 40
    assert shown(10**40) == "<huge int>"
    assert shown(-(10**40)) == "<huge int>"


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


# ---- hostile frames: refused cheaply, at the documented limit ------------------------------------
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
        MessageOrder(DEFAULT_FORMAT).receive_text(
            json.dumps({"type": "start", "encoding": encoding})
        )


# ---- fuzzed: arbitrary bytes raise only the documented errors ------------------------------------
@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=2048))
def test_arbitrary_bytes(data: bytes) -> None:
    for fmt in (DEFAULT_FORMAT, AudioFormat(48_000, "pcm_f32le", 2)):
        try:
            out = decode_pcm(data, fmt)
            assert out.dtype == np.float32 and np.all(np.isfinite(out))
        except ClientError:
            pass
    with contextlib.suppress(ClientError):
        MessageOrder(DEFAULT_FORMAT).receive_bytes(data)


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=512))
def test_arbitrary_wav_bodies(body: bytes) -> None:
    try:
        samples, rate = decode_wav(b"RIFF\x00\x00\x00\x00WAVE" + body)
        assert np.all(np.isfinite(samples)) and 8000 <= rate <= 192_000
    except ClientError:
        pass


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from([b"fmt ", b"data", b"LIST"]), st.integers(0, 2**32 - 1), st.binary(max_size=64)
)
def test_wav_chunks_with_any_size(chunk: bytes, size: int, body: bytes) -> None:
    header = b"RIFF\x00\x00\x00\x00WAVE" + chunk + size.to_bytes(4, "little")
    with contextlib.suppress(ClientError):
        decode_wav(header + body)
