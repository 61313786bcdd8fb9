// Listening back: the page keeps the latest file's decoded audio and plays a stretch of it (a
// segment) on request, one at a time. Framework-free; the sound goes through an injected `play`.

import { TARGET_RATE } from "../audio/pcm";

/** A stretch of the latest file playing back, in its audio time (ms). */
export interface Playing {
  startMs: number;
  endMs: number;
}

/** Plays 16 kHz mono samples; calls `onEnded` once they have played or were stopped; returns the stop. */
export type PlayFn = (samples: Float32Array, onEnded: () => void) => () => void;

export class Playback {
  private samples: Float32Array | null = null; // the latest file, 16 kHz mono
  private stopFn: (() => void) | null = null;
  private current: Playing | null = null;

  constructor(
    private readonly play: PlayFn,
    private readonly onChange: (playing: Playing | null) => void, // what plays changed
  ) {}

  /** Hold `samples` (a decoded file) for listening back, or nothing (null); stops what plays. */
  hold(samples: Float32Array | null): void {
    this.stop();
    this.samples = samples;
  }

  get holding(): boolean {
    return this.samples !== null;
  }

  /** Play `startMs`–`endMs` of the held audio (clipped to it); what played stops. Nothing held: nothing. */
  listen(startMs: number, endMs: number): void {
    const samples = this.samples;
    if (!samples) return;
    this.stop();
    const from = Math.max(0, Math.floor((startMs / 1000) * TARGET_RATE));
    const to = Math.min(samples.length, Math.ceil((endMs / 1000) * TARGET_RATE));
    if (to <= from) return;
    const playing: Playing = { startMs, endMs };
    this.current = playing;
    this.stopFn = this.play(samples.subarray(from, to), () => {
      if (this.current !== playing) return; // an earlier stretch, already replaced
      this.current = null;
      this.stopFn = null;
      this.onChange(null);
    });
    this.onChange(playing);
  }

  /** Stop what plays, if anything. Idempotent. */
  stop(): void {
    const stop = this.stopFn;
    const was = this.current;
    this.stopFn = null;
    this.current = null;
    stop?.();
    if (was) this.onChange(null);
  }
}
