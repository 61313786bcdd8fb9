"""Decoding whole audio files (WAV, FLAC, OGG, MP3, ...) with libsndfile via soundfile."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import soundfile as sf

from voxlive.audio.resample import resample, to_mono
from voxlive.errors import FrameError


def decode_file(source: bytes | str | Path, target_rate: int) -> np.ndarray:
    """Decode an audio file to mono float32 at ``target_rate`` Hz.

    ``source`` is a path or the file's bytes. Raises :class:`FrameError` for data libsndfile
    cannot read, with a message that carries no path.
    """
    handle: io.BytesIO | str = io.BytesIO(source) if isinstance(source, bytes) else str(source)
    try:
        samples, rate = sf.read(handle, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
        raise FrameError(
            "expected an audio file (WAV, FLAC, OGG or MP3), got data that libsndfile cannot "
            f"decode ({type(exc).__name__})",
            code="bad_audio_file",
        ) from None
    if samples.size and not np.all(np.isfinite(samples)):
        raise FrameError("expected finite samples, got NaN or Inf", code="bad_audio_file")
    return resample(to_mono(samples), int(rate), target_rate)
