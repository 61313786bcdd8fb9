"""A stream's gate: which windows the model sees. Quiet windows are settled as ``ambient``.

``rms`` and ``none`` decide a window the moment it is cut. ``vad`` waits for the VAD runner:
the gate hands it the audio it has not seen (:meth:`Gate.vad_job`), keeps the speech
probability of every 32 ms chunk still in the ring, and decides each window once the VAD has
seen all of its whole chunks. The stream owns the VAD's recurrent state (Silero's ONNX wrapper
would reset it whenever the batch size changes).
"""

from __future__ import annotations

from collections import deque

import numpy as np

from voxlive.audio.gate import RmsGate
from voxlive.audio.vad import SAMPLE_RATES as VAD_RATES
from voxlive.audio.vad import VadState
from voxlive.metrics import Metrics
from voxlive.pipeline.config import StreamConfig
from voxlive.pipeline.slots import Slot, SlotState
from voxlive.pipeline.windows import Windows


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


class Gate:
    """Not thread-safe: used from the event loop only."""

    def __init__(
        self, config: StreamConfig, windows: Windows, metrics: Metrics | None = None
    ) -> None:
        self.config = config
        self._windows = windows
        self._metrics = metrics
        self._rms = RmsGate(config.gate_rms if config.gate == "rms" else 0.0)
        self.last_to_model = True  # whether the latest decision sent a window to the model
        self.vad: VadState | None = None  # the stream's VAD state (``None``: no VAD gate)
        self._chunk = 1
        if config.gate == "vad":
            self._chunk, context = VAD_RATES[config.sample_rate]
            self.vad = VadState(context)
        self._vad_pos = 0  # samples the VAD has seen (a multiple of the chunk)
        self._vad_busy = False  # a job is out with the VAD runner
        self._speech: deque[float] = deque()  # per-chunk probabilities, from chunk _speech_base
        self._speech_base = 0

    def admit(self, slot: Slot) -> None:
        """A newly cut slot (GATING): decide it now, unless the VAD must see it first."""
        if self.vad is not None:
            return
        audio = self._windows.ring.view(slot.start, slot.length)
        self._decide(slot, to_model=not self._rms.is_ambient(audio))

    def _decide(self, slot: Slot, *, to_model: bool) -> None:
        self.last_to_model = to_model
        if to_model:
            self._windows.move(slot, SlotState.PENDING)
            return
        slot.gated = True
        if self._metrics:
            self._metrics.windows.labels("gated").inc()
        self._windows.move(slot, SlotState.DONE)

    # ---- the VAD runner's side ---------------------------------------------------------------
    def vad_job(self) -> tuple[VadState, np.ndarray] | None:
        """The audio the VAD has not seen yet, whole chunks only (a copy), with this stream's
        VAD state; ``None`` when there is nothing to do. Call :meth:`vad_done` with the result."""
        if self.vad is None or self._vad_busy:
            return None
        ring, chunk = self._windows.ring, self._chunk
        if self._vad_pos < ring.oldest:  # the VAD fell behind the ring: skip, start afresh
            skip_to = _ceil_div(ring.oldest, chunk) * chunk  # first chunk boundary in the ring
            self._append_speech([0.0] * ((skip_to - self._vad_pos) // chunk))
            self._vad_pos = skip_to
            self.vad.reset()
        count = (ring.written - self._vad_pos) // chunk
        if count <= 0:
            # No whole chunk is new, but a window cut since the last job may end in the partial
            # chunk after what the VAD has seen: it is decided now, not when that chunk is full.
            self.decide_gating()
            return None
        self._vad_busy = True
        return self.vad, ring.view(self._vad_pos, count * chunk).copy()

    def vad_done(self, probs: np.ndarray | None) -> None:
        """Speech probabilities for the last job's chunks (``None``: the VAD failed, so its
        windows count as speech and go to the classifier)."""
        self._vad_busy = False
        if probs is None:
            assert self.vad is not None
            self.vad.reset()
            n = (self._windows.ring.written - self._vad_pos) // self._chunk
            probs = np.ones(n, np.float32)
        self._append_speech(probs.tolist())
        self._vad_pos += len(probs) * self._chunk
        self.decide_gating()

    @property
    def vad_busy(self) -> bool:
        return self._vad_busy

    def _append_speech(self, probs: list[float]) -> None:
        self._speech.extend(probs)
        # Keep only the chunks a window may still need (those inside the ring).
        keep_from = self._windows.ring.oldest // self._chunk
        while self._speech and self._speech_base < keep_from:
            self._speech.popleft()
            self._speech_base += 1

    def decide_gating(self) -> None:
        """Settle every window whose whole chunks the VAD has all seen (at the end of a stream,
        once the VAD has seen every whole chunk, that is every window)."""
        windows = self._windows
        if not windows.gating:
            return
        cfg, chunk = self.config, self._chunk
        # Speech must cover at least vad_min_speech_ms, rounded up to whole chunks (and 1).
        need = max(_ceil_div(_ceil_div(cfg.vad_min_speech_ms * cfg.sample_rate, 1000), chunk), 1)
        for slot in list(windows.slots):
            if slot.state is not SlotState.GATING:
                continue
            end = slot.start + slot.length
            # Decide once the VAD has seen every whole chunk of the window: waiting for the
            # chunk that straddles its end would add up to a chunk (32 ms) of latency.
            if end // chunk * chunk > self._vad_pos:
                break
            # The chunks that overlap the window and that the VAD has seen, as positions in
            # _speech (the chunk holding its first sample up to the one holding its last).
            first = max(slot.start // chunk - self._speech_base, 0)
            last = min(_ceil_div(end, chunk), self._vad_pos // chunk) - self._speech_base
            speech = sum(
                1 for i in range(first, max(last, first)) if self._speech[i] >= cfg.vad_threshold
            )
            self._decide(slot, to_model=speech >= need)
        windows.notify_ready()

    def clear(self) -> None:
        self._speech.clear()
