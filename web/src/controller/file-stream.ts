// File mode's send loop: decoded 16 kHz samples → 100 ms PCM chunks on a connection, paced in
// real time or as fast as the socket drains. No React, no timers of its own: time is injected.

import { floatToPcm16, rms, TARGET_RATE } from "../audio/pcm";
import type { ConnState } from "../net/client";

export const CHUNK_SAMPLES = TARGET_RATE / 10; // 100 ms per frame
export const MAX_BUFFERED_BYTES = 256_000; // unsent bytes in the socket before the loop waits
export const POLL_MS = 10; // how often a waiting loop looks again

/** The part of StreamClient the loop uses. */
export interface FileSink {
  readonly current: ConnState;
  readonly bufferedAmount: number; // bytes not yet on the wire
  send(frame: ArrayBuffer): void;
}

export interface FileStreamOptions {
  realtime: boolean; // pace chunks at the audio's own speed
  cancelled: () => boolean; // checked before every chunk and while waiting
  onChunk: (level: number, progress: number, samples: number) => void; // rms of the chunk; fraction sent in [0, 1]; its samples
  now: () => number; // ms, monotonic
  sleep: (ms: number) => Promise<void>;
}

export type FileStreamEnd = "sent" | "cancelled" | "closed";

/**
 * Send `samples` (16 kHz mono) in 100 ms chunks. Waits while the connection is connecting or more
 * than MAX_BUFFERED_BYTES are unsent. Resolves with why it ended: every chunk sent, cancelled, or the
 * connection was no longer open. Safe to abandon: it only sends while `cancelled()` is false.
 */
export async function streamSamples(
  samples: Float32Array,
  sink: FileSink,
  options: FileStreamOptions,
): Promise<FileStreamEnd> {
  const { realtime, cancelled, onChunk, now, sleep } = options;
  const started = now();
  for (let i = 0; i < samples.length; i += CHUNK_SAMPLES) {
    while (!cancelled() && (sink.current.kind === "connecting" || sink.bufferedAmount > MAX_BUFFERED_BYTES)) {
      await sleep(POLL_MS);
    }
    if (cancelled()) return "cancelled";
    if (sink.current.kind !== "open") return "closed";
    const block = samples.subarray(i, i + CHUNK_SAMPLES);
    sink.send(floatToPcm16(block));
    const sent = i + block.length;
    onChunk(rms(block), sent / samples.length, block.length);
    if (realtime) {
      const due = started + (sent / TARGET_RATE) * 1000;
      await sleep(Math.max(0, due - now()));
    }
  }
  return "sent";
}
