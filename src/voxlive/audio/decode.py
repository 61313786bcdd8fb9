"""Decoding whole audio files (WAV, FLAC, OGG, MP3, ...) with libsndfile via soundfile.

Bounded for uploads: the sample rate and channel count are checked and the duration is checked
from the header before anything is decoded; decoding then runs in blocks that are resampled as
they come, so memory is bounded by the output at the model's rate, and a header that lies about
the length is caught by the running count.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import soundfile as sf

from voxlive.audio.resample import StreamResampler, to_mono
from voxlive.errors import FrameError
from voxlive.protocol.frames import MAX_FLOAT_PEAK, MAX_SAMPLE_RATE_HZ, MIN_SAMPLE_RATE_HZ

MAX_FILE_CHANNELS = 8
BLOCK_S = 10  # seconds of audio decoded (and resampled) at a time
UNKNOWN_FRAMES = 2**62


def _bad(message: str) -> FrameError:
    return FrameError(message, code="bad_audio_file")


def decode_file(
    source: bytes | str | Path, target_rate: int, max_duration_ms: int | None = None
) -> np.ndarray:
    """Decode an audio file to mono float32 at ``target_rate`` Hz.

    ``source`` is a path or the file's bytes. ``max_duration_ms`` (``None``: no limit) refuses
    longer files, from the header when it says so, else once decoding passes the limit.
    Raises :class:`FrameError` for data libsndfile cannot read, with a message that carries no
    path, and for files outside the limits.
    """
    handle: io.BytesIO | str = io.BytesIO(source) if isinstance(source, bytes) else str(source)
    try:
        with sf.SoundFile(handle) as f:
            rate, channels = int(f.samplerate), int(f.channels)
            if not MIN_SAMPLE_RATE_HZ <= rate <= MAX_SAMPLE_RATE_HZ:
                raise _bad(
                    f"expected a sample rate of {MIN_SAMPLE_RATE_HZ}..{MAX_SAMPLE_RATE_HZ} Hz, "
                    f"got {rate} Hz"
                )
            if not 1 <= channels <= MAX_FILE_CHANNELS:
                raise _bad(f"expected 1..{MAX_FILE_CHANNELS} channels, got {channels}")
            limit = None if max_duration_ms is None else rate * max_duration_ms // 1000
            # libsndfile reports an unknown length as a huge count: then the running count decides
            if limit is not None and limit < f.frames < UNKNOWN_FRAMES:
                raise _too_long(f.frames / rate, max_duration_ms)
            return _decode_blocks(f, rate, target_rate, limit, max_duration_ms)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
        raise _bad(
            "expected an audio file (WAV, FLAC, OGG or MP3), got data that libsndfile cannot "
            f"decode ({type(exc).__name__})"
        ) from None


def _too_long(seconds: float, max_duration_ms: int | None) -> FrameError:
    return FrameError(
        f"expected at most {(max_duration_ms or 0) / 1000:g} s of audio, got {seconds:.1f} s "
        "or more",
        code="too_long",
    )


def _decode_blocks(
    f: sf.SoundFile, rate: int, target_rate: int, limit: int | None, max_duration_ms: int | None
) -> np.ndarray:
    resampler = StreamResampler(target_rate)
    parts: list[np.ndarray] = []
    frames = 0
    # f.read in a loop, not f.blocks: blocks() pads MP3s past their end with zeros
    while len(block := f.read(rate * BLOCK_S, dtype="float32", always_2d=True)):
        frames += len(block)
        if limit is not None and frames > limit:
            raise _too_long(frames / rate, max_duration_ms)
        if not np.all(np.isfinite(block)):
            raise _bad("expected finite samples, got NaN or Inf")
        if block.size and (peak := float(np.max(np.abs(block)))) > MAX_FLOAT_PEAK:
            raise _bad(
                f"expected samples within ±{MAX_FLOAT_PEAK:g} (full scale ±1), got {peak:.3g}"
            )
        parts.append(resampler.process(to_mono(block), rate))
    parts.append(resampler.flush())
    # Block by block, soxr gives the length one-shot resampling gives (frames × ratio, rounded
    # half up): no cut. (A cut with round(), which rounds halves to even, lost a sample.)
    return np.concatenate(parts)
