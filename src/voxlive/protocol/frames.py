"""Decoding binary frames into float32 samples: raw PCM and self-describing WAV.

Pure functions, no I/O. Arbitrary bytes raise only :class:`~voxlive.errors.FrameError` or
:class:`~voxlive.errors.FormatError` (fuzzed in tests/unit/protocol/test_frames.py).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Literal

import numpy as np

from voxlive.errors import FormatError, FrameError

Encoding = Literal["pcm_s16le", "pcm_f32le"]
ENCODING_BYTES: dict[str, int] = {"pcm_s16le": 2, "pcm_f32le": 4}
MIN_SAMPLE_RATE_HZ = 8_000
MAX_SAMPLE_RATE_HZ = 192_000
MAX_CHANNELS = 2
# Float samples are full scale at ±1; louder than this is not audio but an attack on the maths
# downstream (±3.4e38 overflows the resampler into NaN).
MAX_FLOAT_PEAK = 16.0
# A WAV frame may carry this many chunks before its data chunk (fmt, LIST, fact, ... are a few):
# walking chunks is a Python loop, so a frame of thousands of tiny chunks would stall the server.
MAX_WAV_CHUNKS = 16

_WAVE_FORMAT_PCM = 0x0001
_WAVE_FORMAT_IEEE_FLOAT = 0x0003
_WAVE_FORMAT_EXTENSIBLE = 0xFFFE
# Streaming writers that do not know the final length put one of these in the data chunk size.
_UNKNOWN_SIZES = (0, 0xFFFFFFFF)


@dataclass(frozen=True, slots=True)
class AudioFormat:
    """How raw PCM frames of a stream are encoded."""

    sample_rate: int
    encoding: Encoding = "pcm_s16le"
    channels: int = 1

    @property
    def frame_bytes(self) -> int:
        """Bytes per sample frame (all channels)."""
        return ENCODING_BYTES[self.encoding] * self.channels


DEFAULT_FORMAT = AudioFormat(sample_rate=16_000, encoding="pcm_s16le", channels=1)


def shown(value: object, limit: int = 40) -> str:
    """``repr(value)`` cut to ``limit`` characters: error messages quote client values, bounded."""
    text = repr(value) if not isinstance(value, int) or abs(value) < 10**limit else "<huge int>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def check_rate(sample_rate: object) -> int:
    """Return the sample rate if it is an int within the supported range, else raise FormatError."""
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, int):
        raise FormatError(f"sample_rate: expected an integer in Hz, got {shown(sample_rate)}")
    if not MIN_SAMPLE_RATE_HZ <= sample_rate <= MAX_SAMPLE_RATE_HZ:
        raise FormatError(
            f"sample_rate: expected {MIN_SAMPLE_RATE_HZ}..{MAX_SAMPLE_RATE_HZ} Hz, "
            f"got {shown(sample_rate)}"
        )
    return sample_rate


def check_channels(channels: object) -> int:
    if isinstance(channels, bool) or not isinstance(channels, int):
        raise FormatError(f"channels: expected 1 or 2, got {shown(channels)}")
    if not 1 <= channels <= MAX_CHANNELS:
        raise FormatError(f"channels: expected 1 or 2, got {shown(channels)}")
    return channels


def make_format(sample_rate: object, encoding: object, channels: object) -> AudioFormat:
    """Validate and build an :class:`AudioFormat`; errors name the key and the bad value."""
    if not isinstance(encoding, str) or encoding not in ENCODING_BYTES:
        raise FormatError(
            f"encoding: expected one of {sorted(ENCODING_BYTES)}, got {shown(encoding)}"
        )
    enc: Encoding = "pcm_s16le" if encoding == "pcm_s16le" else "pcm_f32le"
    return AudioFormat(check_rate(sample_rate), enc, check_channels(channels))


def _finite(samples: np.ndarray) -> np.ndarray:
    """Float samples as they may enter the pipeline: finite and at most ``MAX_FLOAT_PEAK``."""
    bad = int(np.count_nonzero(~np.isfinite(samples)))
    if bad:
        raise FrameError(f"expected finite float samples, got {bad} NaN or Inf values")
    peak = float(np.max(np.abs(samples))) if samples.size else 0.0
    if peak > MAX_FLOAT_PEAK:
        raise FrameError(
            f"expected float samples within ±{MAX_FLOAT_PEAK:g} (full scale is ±1), "
            f"got a peak of {peak:.3g}"
        )
    return samples


def decode_pcm(data: bytes, fmt: AudioFormat) -> np.ndarray:
    """Decode raw little-endian PCM into float32 of shape (frames, channels), values in [-1, 1]."""
    if not data:
        raise FrameError("expected audio bytes, got an empty frame")
    if len(data) % fmt.frame_bytes:
        raise FrameError(
            f"expected a multiple of {fmt.frame_bytes} bytes ({fmt.channels} channel(s) of "
            f"{fmt.encoding}), got {len(data)} bytes"
        )
    if fmt.encoding == "pcm_s16le":
        samples = np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0
    else:
        samples = _finite(np.frombuffer(data, dtype="<f4").astype(np.float32))
    return samples.reshape(-1, fmt.channels)


def is_wav(data: bytes) -> bool:
    """True when the frame starts like a RIFF/WAVE file (the reference client sends those)."""
    return len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WAVE"


@dataclass(frozen=True, slots=True)
class _WavFmt:
    tag: int
    channels: int
    sample_rate: int
    block_align: int
    bits: int


def _parse_fmt(body: bytes) -> _WavFmt:
    if len(body) < 16:
        raise FrameError(f"WAV fmt chunk: expected at least 16 bytes, got {len(body)}")
    tag, channels, rate, _byte_rate, block_align, bits = struct.unpack_from("<HHIIHH", body)
    if tag == _WAVE_FORMAT_EXTENSIBLE:
        if len(body) < 40:
            raise FrameError(f"WAV extensible fmt chunk: expected 40 bytes, got {len(body)}")
        tag = struct.unpack_from("<H", body, 24)[0]  # first two bytes of the sub-format GUID
    return _WavFmt(tag, channels, rate, block_align, bits)


def _wav_samples(raw: bytes, f: _WavFmt) -> np.ndarray:
    width = f.bits // 8
    if f.tag == _WAVE_FORMAT_PCM and f.bits == 8:
        out = (np.frombuffer(raw, dtype=np.uint8).astype(np.float32) - 128.0) / 128.0
    elif f.tag == _WAVE_FORMAT_PCM and f.bits == 16:
        out = np.frombuffer(raw, dtype="<i2").astype(np.float32) / 32768.0
    elif f.tag == _WAVE_FORMAT_PCM and f.bits == 24:
        b = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
        ints = (b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)) << 8 >> 8  # sign-extend 24 bits
        out = ints.astype(np.float32) / 8388608.0
    elif f.tag == _WAVE_FORMAT_PCM and f.bits == 32:
        out = (np.frombuffer(raw, dtype="<i4").astype(np.float64) / 2147483648.0).astype(np.float32)
    elif f.tag == _WAVE_FORMAT_IEEE_FLOAT and f.bits in (32, 64):
        dt = "<f4" if width == 4 else "<f8"
        out = _finite(np.frombuffer(raw, dtype=dt).astype(np.float32))
    else:
        raise FormatError(
            f"WAV: expected 8/16/24/32-bit PCM or 32/64-bit float, got format tag {f.tag:#06x} "
            f"with {f.bits} bits"
        )
    return out.reshape(-1, f.channels)


def decode_wav(data: bytes) -> tuple[np.ndarray, int]:
    """Decode a complete WAV file held in one frame.

    Returns float32 samples of shape (frames, channels) and the sample rate in Hz.
    A data chunk size of 0 or 0xFFFFFFFF (written by streaming encoders) means "to the end".
    """
    if not is_wav(data):
        raise FrameError("expected a RIFF/WAVE header")
    pos = 12
    fmt: _WavFmt | None = None
    for _ in range(MAX_WAV_CHUNKS):
        if pos + 8 > len(data):
            break
        chunk_id = data[pos : pos + 4]
        size = struct.unpack_from("<I", data, pos + 4)[0]
        body_start = pos + 8
        if chunk_id == b"data":
            if fmt is None:
                raise FrameError("WAV: expected a fmt chunk before the data chunk")
            available = len(data) - body_start
            if size in _UNKNOWN_SIZES:
                size = available - available % max(fmt.block_align, 1)
            elif size > available:
                raise FrameError(
                    f"WAV data chunk declares {size} bytes, but the frame holds {available}"
                )
            return _decode_wav_body(data[body_start : body_start + size], fmt), fmt.sample_rate
        if size > len(data) - body_start:
            raise FrameError(
                f"WAV chunk {chunk_id!r} declares {size} bytes, but only "
                f"{len(data) - body_start} remain"
            )
        if chunk_id == b"fmt ":
            fmt = _parse_fmt(data[body_start : body_start + size])
        pos = body_start + size + (size & 1)  # chunks are padded to even sizes
    else:
        raise FrameError(f"WAV: expected the data chunk within {MAX_WAV_CHUNKS} chunks, got more")
    raise FrameError("WAV: expected a data chunk, found none")


def _decode_wav_body(raw: bytes, f: _WavFmt) -> np.ndarray:
    check_rate(f.sample_rate)
    check_channels(f.channels)
    if f.bits not in (8, 16, 24, 32, 64) or f.block_align != f.channels * (f.bits // 8):
        raise FormatError(
            f"WAV: expected block_align = channels × bits/8, got channels={f.channels}, "
            f"bits={f.bits}, block_align={f.block_align}"
        )
    if not raw:
        raise FrameError("WAV: expected audio in the data chunk, got 0 bytes")
    if len(raw) % f.block_align:
        raise FrameError(
            f"WAV data: expected a multiple of {f.block_align} bytes, got {len(raw)} bytes"
        )
    return _wav_samples(raw, f)


def encode_wav_s16(samples: np.ndarray, sample_rate: int) -> bytes:
    """Encode mono float samples as a 16-bit PCM WAV (what the reference front end sends)."""
    pcm: bytes = (np.clip(samples, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()
    header = struct.pack(
        "<4sI4s4sIHHIIHH4sI",
        b"RIFF", 36 + len(pcm), b"WAVE", b"fmt ", 16, 1, 1, sample_rate, sample_rate * 2, 2, 16,
        b"data", len(pcm),
    )  # fmt: skip
    return header + pcm
