// When each sample of a stream went out, so a result can say how long a person waited for it:
// from the moment its window's last sample left the page (≈ was spoken) to the label arriving.

import { TARGET_RATE } from "../audio/pcm";

export const MAX_MARKS = 4096; // about 7 minutes of 100 ms marks; the oldest are forgotten
const MIN_GAP_MS = 20; // marks closer than this are merged

export class SendClock {
  private marks: [number, number][] = []; // [samples sent so far (after the frame), ms]
  private sentTotal = 0;
  private base = 0; // samples sent before the current server stream began

  /** `samples` more samples (16 kHz) went out at `atMs`. */
  sent(samples: number, atMs: number): void {
    this.sentTotal += samples;
    // The latest mark is always exact; it replaces its predecessor while that one is recent.
    const n = this.marks.length;
    if (n >= 2 && atMs - this.marks[n - 2][1] < MIN_GAP_MS) this.marks[n - 1] = [this.sentTotal, atMs];
    else this.marks.push([this.sentTotal, atMs]);
    if (this.marks.length > MAX_MARKS) this.marks.splice(0, this.marks.length - MAX_MARKS);
  }

  /** Samples handed to the connection so far. */
  get total(): number {
    return this.sentTotal;
  }

  /** The server began a new stream (not a resume) whose audio time 0 is sample `at` of this clock. */
  restart(at: number): void {
    this.base = Math.max(0, Math.min(at, this.sentTotal));
  }

  /** ms from when the sample at audio time `endMs` went out until `nowMs`; null when unknown. */
  since(endMs: number, nowMs: number): number | null {
    const target = this.base + Math.round((endMs / 1000) * TARGET_RATE);
    // The first mark that covers the target sample.
    let lo = 0;
    let hi = this.marks.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.marks[mid][0] >= target) hi = mid;
      else lo = mid + 1;
    }
    if (lo === this.marks.length || (lo === 0 && this.marks[0][0] - target > TARGET_RATE)) return null;
    // A frame's samples were captured over the frame's length, the last one when it was sent.
    const [samples, atMs] = this.marks[lo];
    const capturedAt = atMs - ((samples - target) / TARGET_RATE) * 1000;
    return Math.max(0, nowMs - capturedAt);
  }
}
