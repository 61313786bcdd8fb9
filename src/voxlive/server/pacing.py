"""How fast a stream may send audio, as the moment its reader may read again. Pure.

Not reading is TCP back-pressure: a client ahead of its pace slows down, nothing is dropped, and
other streams keep their share.

- A **live** stream is a person speaking now: it may run at most ``live_ahead_ms`` ahead of real
  time (what its client queued during a network blip, sent at once on reconnect), then real
  time. So a live stream costs the model what one real-time stream costs, and the capacity gauge
  (which counts windows offered per second) counts it as one: a client that streams a file
  20× faster on a live stream is held to real time, or asks for ``lossless``.
- A **lossless** stream (files, clients that ask) may send up to ``max_speed`` × real time after
  a ``BURST_S`` burst; its windows are background work that live streams' windows go before
  (:attr:`voxlive.pipeline.stream.Stream.background`), as uploads are.

Any stream that sends nothing for ``idle_timeout_ms``, or stays longer than ``max_stream_ms``, is
closed (:func:`receive_timeout`, :func:`timed_out`).
"""

from __future__ import annotations

from voxlive.errors import StreamTimeout
from voxlive.settings import Settings

BURST_S = 1.0  # audio a lossless stream may send ahead of max_speed at once


def read_at(
    *, started_at: float, received_s: float, lossless: bool, max_speed: float, live_ahead_s: float
) -> float:
    """The loop time at which a stream that has sent ``received_s`` of audio on a connection
    opened at ``started_at`` may send more (``started_at`` or earlier: at once)."""
    paced = [started_at]
    if max_speed:
        paced.append(started_at + (received_s - BURST_S) / max_speed)
    if live_ahead_s and not lossless:
        paced.append(started_at + received_s - live_ahead_s)
    return max(paced)


def receive_timeout(now: float, started_at: float, settings: Settings) -> float | None:
    """How long the reader may wait for the next message (None: for ever)."""
    timeout = settings.idle_timeout_ms / 1000 or None
    if settings.max_stream_ms:
        ends_at = started_at + settings.max_stream_ms / 1000
        timeout = max(0.0, min(timeout or float("inf"), ends_at - now))
    return timeout


def timed_out(now: float, started_at: float, settings: Settings) -> StreamTimeout:
    """Why a wait of :func:`receive_timeout` ended: the stream's length, or its silence."""
    if settings.max_stream_ms and now >= started_at + settings.max_stream_ms / 1000:
        return StreamTimeout(
            f"stream reached the limit of {settings.max_stream_ms} ms; closing it",
            code="max_duration",
        )
    idle_s = settings.idle_timeout_ms / 1000
    return StreamTimeout(f"no message for {idle_s:g} s; closing the stream")
