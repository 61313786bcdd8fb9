// StreamClient: one WebSocket stream with automatic reconnect and backoff. Framework-free.
// States: idle → connecting → open → (stopping →) closed, or → reconnecting → connecting …

import {
  encodeClientMessage,
  isUnknown,
  parseServerMessage,
  ProtocolError,
  type ServerMessage,
  type StartMessage,
} from "../protocol/messages";
import { ReplayBuffer } from "./replay";

export type ConnState =
  | { kind: "idle" }
  | { kind: "connecting"; attempt: number; unreachable?: boolean } // unreachable: as below, after a failed try
  | { kind: "open" }
  | { kind: "stopping" }
  // retryAtMs: when the next attempt starts, on the client's clock (`now`), for a countdown.
  // unreachable: no connection has opened yet (the server was never reached), not a lost one.
  | { kind: "reconnecting"; attempt: number; delayMs: number; retryAtMs: number; reason: string; unreachable: boolean }
  | { kind: "closed"; code: number; reason: string };

export interface ClientOptions {
  url: string;
  start: StartMessage;
  reconnect?: boolean;
  initialBackoffMs?: number;
  maxBackoffMs?: number;
  // Audio held while (re)connecting (64 000 by default); the oldest is dropped beyond it (see
  // ReplayBuffer). With `start.acks`, the audio sent since the newest ack is held too.
  maxQueuedBytes?: number;
  // The bound instead, once an ack gave the stream a resume token (maxQueuedBytes by default):
  // what a resume replays, on any front. Without a token a new stream would begin, and stale
  // audio sent to it at once would only be shed, so the smaller bound holds then.
  maxReplayBytes?: number;
  onMessage: (message: ServerMessage) => void; // every message but `ack` (the client keeps those)
  onState: (state: ConnState) => void;
  onProtocolError?: (error: ProtocolError) => void; // a text frame the parser refused (it is skipped)
  onDropped?: (totalBytes: number) => void; // the queue dropped audio: droppedBytes, after each drop
  createSocket?: (url: string) => WebSocket;
  now?: () => number; // ms, monotonic; performance.now by default
  log?: (line: string) => void; // console.warn by default: a message type this page does not know (once each)
}

// Close codes after which reconnecting cannot help: the client itself is wrong.
const FATAL_CLOSE_CODES = new Set([1002, 1003, 1007, 1008, 1009]);

export function backoffDelay(attempt: number, initialMs: number, maxMs: number): number {
  return Math.min(maxMs, initialMs * 2 ** Math.max(0, attempt - 1));
}

export class StreamClient {
  private ws: WebSocket | null = null;
  private state: ConnState = { kind: "idle" };
  private attempt = 0;
  private retryAfterMs = 0; // a refused stream's retry_after_ms: the next delay is at least this
  private movingAfterMs: number | null = null; // `moving`: the next delay is exactly this, no backoff
  private timer: ReturnType<typeof setTimeout> | null = null;
  private readonly held: ReplayBuffer; // unsent audio, and (with acks) the sent audio not yet acked
  private ending = false;
  private streamId: string | null = null; // from ready: resume this stream after a blip
  private lastSeq = -1; // the last result seq received in this stream, so the server can replay the rest
  private opened = false; // a connection has opened at least once
  private givenBytes = 0; // audio handed to send() so far, sent, queued or dropped
  private startBytes = 0; // givenBytes before the first byte sent on the current socket
  private token: string | null = null; // the newest ack's resume token in this stream
  private nextPos = 0; // the stream's input frame of the next audio frame sent
  private connStartPos = 0; // nextPos when the current connection sent its first frame
  private readonly unknownTypes = new Set<string>(); // message types logged once and skipped

  constructor(private readonly options: ClientOptions) {
    const start = options.start;
    const bytesPerFrame = (start.encoding === "pcm_f32le" ? 4 : 2) * (start.channels ?? 1);
    this.held = new ReplayBuffer(options.maxQueuedBytes ?? 64_000, bytesPerFrame);
  }

  /** Audio dropped from the buffer so far that was never sent: no server classified it. */
  get droppedBytes(): number {
    return this.held.droppedUnsentBytes;
  }

  /** Audio sent but not yet acked that fell out of the buffer: a resume by token cannot replay it. */
  get replayDroppedBytes(): number {
    return this.held.droppedSentBytes;
  }

  /** Audio held now (unsent, or sent and not yet acked), bytes. */
  get heldBytes(): number {
    return this.held.heldBytes;
  }

  get current(): ConnState {
    return this.state;
  }

  private set(state: ConnState): void {
    this.state = state;
    this.options.onState(state);
  }

  connect(): void {
    if (this.ws) return;
    this.attempt += 1;
    this.set({
      kind: "connecting",
      attempt: this.attempt,
      ...(this.attempt > 1 && !this.opened ? { unreachable: true } : {}),
    });
    const create = this.options.createSocket ?? ((url: string) => new WebSocket(url));
    let ws: WebSocket;
    try {
      ws = create(this.options.url);
    } catch (err) {
      this.scheduleReconnect(`cannot connect to ${this.options.url}: ${String(err)}`);
      return;
    }
    ws.binaryType = "arraybuffer";
    this.ws = ws;
    let wasOpen = false;
    ws.onopen = () => {
      wasOpen = true;
      ws.send(encodeClientMessage({ ...this.options.start, ...this.resumeKeys() }));
      this.opened = true;
      this.connStartPos = this.nextPos;
      const held = this.held.all();
      this.startBytes = held.length ? held[0].runByte : this.givenBytes; // what is held goes out first
      this.set({ kind: "open" });
      for (const item of held) {
        ws.send(item.frame);
        this.held.place(item, this.nextPos);
        this.nextPos += this.held.frames(item);
      }
      if (!this.options.start.acks) this.held.forgetSent();
      if (this.ending) this.sendStop();
    };
    ws.onmessage = (event: MessageEvent) => {
      if (typeof event.data !== "string") return;
      try {
        const message = parseServerMessage(event.data);
        if (isUnknown(message)) {
          if (!this.unknownTypes.has(message.type)) {
            this.unknownTypes.add(message.type);
            (this.options.log ?? console.warn)(`voxlive: skipping server messages of unknown type "${message.type}"`);
          }
          return;
        }
        if (message.type === "moving") {
          this.movingAfterMs = Math.max(0, message.retry_after_ms); // the close (1012) follows
          return;
        }
        if (message.type === "ack") {
          if (this.token === null) this.limit(this.options.maxReplayBytes);
          this.token = message.token;
          this.held.ack(message.samples);
          return;
        }
        if (message.type === "ready") {
          this.attempt = 0; // a healthy connection resets the backoff
          this.streamId = message.stream_id;
          // A new stream (the server forgot the old one, or refused the resume) numbers its
          // results from 0 again, and its audio from the first frame this connection sent.
          if (!message.resumed) this.newStream();
        }
        if (message.type === "error" && typeof message.retry_after_ms === "number") {
          this.retryAfterMs = message.retry_after_ms;
        }
        if ("seq" in message && typeof message.seq === "number") {
          if (message.seq <= this.lastSeq) return; // a replayed result we already have
          this.lastSeq = message.seq;
        }
        this.options.onMessage(message);
      } catch (err) {
        if (err instanceof ProtocolError) this.options.onProtocolError?.(err);
        else throw err;
      }
    };
    ws.onclose = (event: CloseEvent) => {
      this.ws = null;
      if (this.ending && !wasOpen) {
        // Stopped while a connection was still being tried: the person ended it, not the server.
        this.set({ kind: "closed", code: 1000, reason: "stopped before the server answered" });
        return;
      }
      if (this.ending || event.code === 1000 || FATAL_CLOSE_CODES.has(event.code) || !this.options.reconnect) {
        this.set({ kind: "closed", code: event.code, reason: event.reason });
        return;
      }
      this.scheduleReconnect(
        event.reason ||
          (this.opened ? `connection lost (code ${event.code})` : `server unreachable at ${this.options.url}`),
      );
    };
  }

  /**
   * The resume keys of a `start` on a new connection: by token (any front) when an ack gave one,
   * replaying what is held from `replay_from`; else by `stream_id` (the same front only), and
   * the sent audio held is forgotten (the server would take it as new audio); else none.
   */
  private resumeKeys(): Partial<StartMessage> {
    if (this.token !== null && this.streamId !== null) {
      const replayFrom = this.held.firstSentPos ?? this.nextPos;
      this.nextPos = replayFrom;
      return { stream_id: this.streamId, last_seq: this.lastSeq, resume_token: this.token, replay_from: replayFrom };
    }
    this.held.forgetSent();
    return this.streamId !== null ? { stream_id: this.streamId, last_seq: this.lastSeq } : {};
  }

  /** Hold at most `bytes` (maxQueuedBytes when undefined), telling onDropped of unsent audio dropped. */
  private limit(bytes: number | undefined): void {
    if (this.held.limit(bytes ?? this.options.maxQueuedBytes ?? 64_000) > 0)
      this.options.onDropped?.(this.droppedBytes);
  }

  /** `ready` began a new stream: its input frame 0 is the first frame this connection sent. */
  private newStream(): void {
    this.lastSeq = -1;
    if (this.token !== null) this.limit(undefined);
    this.token = null;
    this.held.renumber(this.connStartPos);
    this.nextPos -= this.connStartPos;
    this.connStartPos = 0;
  }

  private scheduleReconnect(reason: string): void {
    // A short ceiling: a server that restarts is back within seconds, and the page should be too.
    // A server that refused the stream (close 1013) says when to come back: through a load
    // balancer the next try goes to a front with room.
    // A front that is shutting down said `moving`: go at once (or when it said), no backoff.
    const backoff = backoffDelay(this.attempt, this.options.initialBackoffMs ?? 500, this.options.maxBackoffMs ?? 2000);
    const delayMs = this.movingAfterMs ?? Math.max(backoff, this.retryAfterMs);
    this.retryAfterMs = 0;
    this.movingAfterMs = null;
    const now = this.options.now ?? (() => performance.now());
    this.set({
      kind: "reconnecting",
      attempt: this.attempt,
      delayMs,
      retryAtMs: now() + delayMs,
      reason,
      unreachable: !this.opened,
    });
    this.timer = setTimeout(() => {
      this.timer = null;
      this.connect();
    }, delayMs);
  }

  /** While waiting to reconnect: try now instead of at the end of the backoff. */
  retryNow(): void {
    if (!this.timer || this.ending) return;
    clearTimeout(this.timer);
    this.timer = null;
    this.connect();
  }

  /**
   * Bytes of audio handed to send() before the first one sent on the current connection: where a
   * stream that is not a resume begins, on the run's own count (dropped audio included).
   */
  get streamStartBytes(): number {
    return this.startBytes;
  }

  /**
   * Send one audio frame (a whole number of sample frames); held (bounded) while the socket is
   * not open, and with acks kept after sending until an ack covers it.
   */
  send(frame: ArrayBuffer): void {
    const runByte = this.givenBytes;
    this.givenBytes += frame.byteLength;
    let dropped: number;
    if (this.ws && this.ws.readyState === WebSocket.OPEN) {
      this.ws.send(frame);
      const pos = this.nextPos;
      this.nextPos += frame.byteLength / this.held.bytesPerFrame;
      if (!this.options.start.acks) return;
      dropped = this.held.add(frame, runByte, pos);
    } else {
      dropped = this.held.add(frame, runByte, null);
    }
    if (dropped > 0) this.options.onDropped?.(this.droppedBytes);
  }

  /** Bytes the browser has not yet put on the wire (for flow control in file mode). */
  get bufferedAmount(): number {
    return this.ws?.bufferedAmount ?? 0;
  }

  /** Ask the server to flush and end the stream; it closes with 1000 after `end`. */
  stop(): void {
    this.ending = true;
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = null;
      this.set({ kind: "closed", code: 1000, reason: "stopped" });
      return;
    }
    this.sendStop();
  }

  private sendStop(): void {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) {
      this.ws.send(encodeClientMessage({ type: "stop" }));
      this.set({ kind: "stopping" });
    }
  }

  /** Drop the connection now, without flushing. Idempotent. */
  close(): void {
    this.ending = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (this.ws) {
      // Its late close event (1006 for a socket still connecting) is no news: this side ended it.
      this.ws.onopen = this.ws.onmessage = this.ws.onclose = null;
      this.ws.close(1000, "client closed");
    }
    this.ws = null;
    if (this.state.kind !== "closed") this.set({ kind: "closed", code: 1000, reason: "closed" });
  }
}
