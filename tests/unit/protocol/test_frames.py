import io
import struct

import numpy as np
import pytest
import soundfile as sf

from voxlive.errors import FormatError, FrameError
from voxlive.protocol.frames import (
    AudioFormat,
    decode_pcm,
    decode_wav,
    encode_wav_s16,
    is_wav,
    make_format,
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
