// ReplayBuffer: the audio a stream may still need, bounded. Pure: no sockets, no clock.
//
// Two kinds of frame are held, oldest first:
// - sent ones, with `pos`: the stream's input sample frame of their first sample (counted from
//   the stream's start, the way the server counts an `ack`'s `samples`). Kept only while the
//   stream asks for acks, until an ack says no window waits on them any more: after a lost
//   connection they are replayed (resume by token, on any front);
// - unsent ones (`pos` null): handed over while no connection was open; sent on the next.
//
// Overflow policy: beyond `maxBytes` the oldest frames are dropped and counted, sent and unsent
// apart (`droppedSentBytes`: a resume by token then starts later than the ack, and a front that
// lacks the audio between refuses it as a `gap`; `droppedUnsentBytes`: audio no server ever had).

export interface Held {
  frame: ArrayBuffer;
  runByte: number; // the client's count of bytes handed over before this frame (the page's axis)
  pos: number | null; // null: not sent yet
}

export class ReplayBuffer {
  private items: Held[] = [];
  private bytes = 0;
  droppedSentBytes = 0;
  droppedUnsentBytes = 0;

  /**
   * @param maxBytes the most audio held, bytes (at 16 kHz mono pcm_s16le, 32 000 a second)
   * @param bytesPerFrame bytes of one sample frame (all channels): 2 for mono pcm_s16le
   */
  constructor(
    private maxBytes: number,
    readonly bytesPerFrame: number,
  ) {}

  /** Hold at most `maxBytes` from now on (dropping the oldest); returns the unsent bytes dropped now. */
  limit(maxBytes: number): number {
    this.maxBytes = maxBytes;
    return this.trim();
  }

  get heldBytes(): number {
    return this.bytes;
  }

  get length(): number {
    return this.items.length;
  }

  /** Hold `frame`, dropping the oldest beyond the limit; returns the bytes of unsent audio dropped now. */
  add(frame: ArrayBuffer, runByte: number, pos: number | null): number {
    this.items.push({ frame, runByte, pos });
    this.bytes += frame.byteLength;
    return this.trim();
  }

  private trim(): number {
    const before = this.droppedUnsentBytes;
    while (this.bytes > this.maxBytes && this.items.length) {
      const old = this.items.shift()!;
      this.bytes -= old.frame.byteLength;
      if (old.pos === null) this.droppedUnsentBytes += old.frame.byteLength;
      else this.droppedSentBytes += old.frame.byteLength;
    }
    return this.droppedUnsentBytes - before;
  }

  /** Sample frames in `item`. */
  frames(item: Held): number {
    return item.frame.byteLength / this.bytesPerFrame;
  }

  /** An ack: forget the sent frames that end at or before input frame `samples`. */
  ack(samples: number): void {
    while (this.items.length) {
      const first = this.items[0];
      if (first.pos === null || first.pos + this.frames(first) > samples) return;
      this.items.shift();
      this.bytes -= first.frame.byteLength;
    }
  }

  /** Forget every sent frame (they cannot be replayed: resume without a token, or no acks). */
  forgetSent(): void {
    this.keep((item) => item.pos === null);
  }

  /** The input frame of the oldest frame held that was sent; null: none. */
  get firstSentPos(): number | null {
    return this.items.find((item) => item.pos !== null)?.pos ?? null;
  }

  /**
   * Everything held, oldest first, to go out on a new connection: the sent frames again (a
   * replay), then the unsent. The caller numbers them with `place` as they go.
   */
  all(): readonly Held[] {
    return this.items;
  }

  /** Give `item` its input frame: it went out on the wire. */
  place(item: Held, pos: number): void {
    item.pos = pos;
  }

  /**
   * The server began a new stream whose input frame 0 is the old numbering's `from`: frames sent
   * before it belong to the old stream and are forgotten; the others are numbered anew.
   */
  renumber(from: number): void {
    this.keep((item) => item.pos === null || item.pos >= from);
    for (const item of this.items) if (item.pos !== null) item.pos -= from;
  }

  private keep(wanted: (item: Held) => boolean): void {
    this.items = this.items.filter(wanted);
    this.bytes = this.items.reduce((sum, item) => sum + item.frame.byteLength, 0);
  }
}
