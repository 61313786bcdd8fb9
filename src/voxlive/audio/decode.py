"""Decoding whole audio files (WAV, FLAC, OGG, MP3, ...) with libsndfile via soundfile.

Bounded for uploads, by the work decoding costs and before it is spent:

- the sample rate and channel count are checked from the header;
- the duration (``max_duration_ms``: what the model will classify) and the *work*, samples ×
  channels at the file's own rate (what decoding and resampling cost), are checked from the
  header before anything is decoded, and again by the running count (a header may lie or say
  nothing). The work limit is the duration limit priced at 48 kHz stereo
  (:data:`WORK_PER_S`): any ordinary recording within ``max_duration_ms`` passes, and no file
  costs more to decode than the longest such recording: 590 s at 192 kHz × 8 channels is
  16 times that and is refused from its header;
- decoding runs in blocks of at most :data:`BLOCK_SAMPLES` samples × channels (1 MiB of
  float32, a few ms of CPU), each resampled to mono at the model's rate as it comes, so memory
  is bounded by the output; before each block :meth:`Control.check` may stop it (the client
  left, a deadline passed, the server is shutting down): a decode on another thread stops
  within one block of being asked.
"""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import soundfile as sf

from voxlive.audio.resample import StreamResampler, to_mono
from voxlive.errors import FrameError, VoxliveError
from voxlive.protocol.frames import MAX_FLOAT_PEAK, MAX_SAMPLE_RATE_HZ, MIN_SAMPLE_RATE_HZ

MAX_FILE_CHANNELS = 8
BLOCK_SAMPLES = 2**18  # samples × channels decoded (and resampled) at a time: 1 MiB of float32
WORK_PER_S = 48_000 * 2  # samples × channels per second of max_duration_ms: 48 kHz stereo
UNKNOWN_FRAMES = 2**62


class DecodeStopped(VoxliveError):
    """A decode was stopped between blocks (:meth:`Control.stop`, or its deadline passed)."""


class Control:
    """Stops a decode running on another thread between two blocks, and counts its blocks.

    ``deadline`` is a ``clock()`` time after which the next block is not decoded (``None``:
    none). Thread-safe: :meth:`stop` may be called from any thread, any number of times.
    """

    def __init__(
        self, deadline: float | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.deadline = deadline
        self.clock = clock
        self.blocks = 0  # blocks decoded so far
        self.done = threading.Event()  # set when the decode returned or raised
        self._stop = threading.Event()

    def stop(self) -> None:
        self._stop.set()

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def check(self) -> None:
        """Raise :class:`DecodeStopped` if asked to stop or past the deadline."""
        if self._stop.is_set():
            raise DecodeStopped("the decode was stopped")
        if self.deadline is not None and self.clock() > self.deadline:
            raise DecodeStopped("the decode passed its deadline")


def _bad(message: str) -> FrameError:
    return FrameError(message, code="bad_audio_file")


def max_work(max_duration_ms: int) -> int:
    """The work limit, samples × channels at the file's rate, for ``max_duration_ms``."""
    return max_duration_ms * WORK_PER_S // 1000


def decode_file(
    source: bytes | str | Path,
    target_rate: int,
    max_duration_ms: int | None = None,
    control: Control | None = None,
) -> np.ndarray:
    """Decode an audio file to mono float32 at ``target_rate`` Hz.

    ``source`` is a path or the file's bytes. ``max_duration_ms`` (``None``: no limit) refuses
    longer files and files that cost more work than :func:`max_work` allows, from the header
    when it says so, else once decoding passes the limit. ``control`` (``None``: none) can stop
    the decode between blocks (:class:`DecodeStopped`) and counts them.
    Raises :class:`FrameError` for data libsndfile cannot read, with a message that carries no
    path, and for files outside the limits.
    """
    control = control or Control()
    handle: io.BytesIO | str = io.BytesIO(source) if isinstance(source, bytes) else str(source)
    try:
        control.check()
        with sf.SoundFile(handle) as f:
            rate, channels = int(f.samplerate), int(f.channels)
            if not MIN_SAMPLE_RATE_HZ <= rate <= MAX_SAMPLE_RATE_HZ:
                raise _bad(
                    f"expected a sample rate of {MIN_SAMPLE_RATE_HZ}..{MAX_SAMPLE_RATE_HZ} Hz, "
                    f"got {rate} Hz"
                )
            if not 1 <= channels <= MAX_FILE_CHANNELS:
                raise _bad(f"expected 1..{MAX_FILE_CHANNELS} channels, got {channels}")
            limits = None if max_duration_ms is None else _Limits(rate, channels, max_duration_ms)
            # libsndfile reports an unknown length as a huge count: then the running count decides
            if limits is not None and f.frames < UNKNOWN_FRAMES:
                limits.check(f.frames, or_more=False)
            return _decode_blocks(f, rate, channels, target_rate, limits, control)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
        raise _bad(
            "expected an audio file (WAV, FLAC, OGG or MP3), got data that libsndfile cannot "
            f"decode ({type(exc).__name__})"
        ) from None
    finally:
        control.done.set()


class _Limits:
    """The duration and work limits of one file, in its frames."""

    def __init__(self, rate: int, channels: int, max_duration_ms: int) -> None:
        self.rate, self.channels, self.max_duration_ms = rate, channels, max_duration_ms
        self.frames = rate * max_duration_ms // 1000
        self.work = max_work(max_duration_ms)

    def check(self, frames: int, *, or_more: bool) -> None:
        more = " or more" if or_more else ""
        if frames > self.frames:
            raise FrameError(
                f"expected at most {self.max_duration_ms / 1000:g} s of audio, got "
                f"{frames / self.rate:.1f} s{more}",
                code="too_long",
            )
        if frames * self.channels > self.work:
            raise FrameError(
                f"expected at most {self.work} samples × channels to decode "
                f"({self.max_duration_ms / 1000:g} s at 48 kHz stereo), got "
                f"{frames * self.channels}{more} ({frames / self.rate:.1f} s at {self.rate} Hz × "
                f"{self.channels} channels)",
                code="too_much_audio",
            )


def _decode_blocks(
    f: sf.SoundFile,
    rate: int,
    channels: int,
    target_rate: int,
    limits: _Limits | None,
    control: Control,
) -> np.ndarray:
    resampler = StreamResampler(target_rate)
    parts: list[np.ndarray] = []
    frames = 0
    per_block = max(1, BLOCK_SAMPLES // channels)
    # f.read in a loop, not f.blocks: blocks() pads MP3s past their end with zeros
    while True:
        control.check()
        block = f.read(per_block, dtype="float32", always_2d=True)
        if not len(block):
            break
        control.blocks += 1
        frames += len(block)
        if limits is not None:
            limits.check(frames, or_more=True)
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
