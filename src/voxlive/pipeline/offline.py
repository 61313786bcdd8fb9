"""Classifying a whole recording through the same stream + batcher pipeline.

Used by ``voxlive classify`` and ``POST /classify``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
from dataclasses import dataclass

import numpy as np

from voxlive.metrics import Metrics
from voxlive.pipeline.batcher import Batcher
from voxlive.pipeline.config import StreamConfig
from voxlive.pipeline.hooks import StreamHooks
from voxlive.pipeline.stream import Stream
from voxlive.protocol.messages import EndMessage, StreamMessage

_ids = itertools.count()


@dataclass(frozen=True)
class Classified:
    """What the stream that classified a recording said: its window messages (``result`` and
    ``error``) in order, then the segments of the smoothed label; and its ``end``."""

    messages: list[StreamMessage]
    end: EndMessage


async def classify_samples(
    batcher: Batcher, samples: np.ndarray, config: StreamConfig, metrics: Metrics | None = None
) -> Classified:
    """Classify mono float32 samples at ``config.sample_rate`` as one lossless stream.

    Audio is fed in blocks with back-pressure and the stream is lossless (never shed), so
    nothing is dropped however long the file or busy the server, and memory stays bounded by the
    stream's buffer.
    """
    block = config.hop * max(batcher.max_batch, 4)
    # Room for one block of new windows on top of the window being cut.
    config = dataclasses.replace(
        config,
        buffer_ms=max(
            config.buffer_ms, (block + config.window + config.hop) * 1000 // config.sample_rate + 1
        ),
    )
    wake = asyncio.Event()
    stream = Stream(
        f"file-{next(_ids)}", config, listener=StreamHooks(batcher, wake.set), metrics=metrics
    )
    stream.background = True  # live streams' windows go first
    stream.lossless = True  # a file loses nothing: never shed, whatever the load
    batcher.add(stream)
    out: list[StreamMessage] = []
    try:
        for start in range(0, max(len(samples), 1), block):
            stream.push(samples[start : start + block])
            while stream.pending or stream.inflight or stream.gating:
                out.extend(stream.pop_messages())
                await wake.wait()
                wake.clear()
            # The last results too, before the next block: unpopped, they would count against
            # max_unsent like a client that does not read, and the oldest would be dropped.
            out.extend(stream.pop_messages())
        stream.finish()
        while not stream.drained:
            out.extend(stream.pop_messages())
            if stream.drained:
                break
            await wake.wait()
            wake.clear()
        out.extend(stream.pop_messages())
        out.extend(stream.pop_segments(final=True))
        end = stream.end_message()
    finally:
        batcher.remove(stream)
        stream.close()
    return Classified(out, end)
