// The wire protocol, mirrored from src/voxlive/protocol/messages.py and checked against the
// golden messages in spec/vectors/messages.json. Pure: no sockets, no audio.

export type Encoding = "pcm_s16le" | "pcm_f32le";

export interface StartMessage {
  type: "start";
  sample_rate?: number;
  encoding?: Encoding;
  channels?: 1 | 2;
  token?: string;
  stream_id?: string;
  last_seq?: number;
  /** Back-pressure instead of shedding stale windows: every window is classified (files). */
  lossless?: boolean;
  /** Ask for `ack` messages (resume tokens): the stream can then resume on any front. */
  acks?: boolean;
  /** The newest ack's token: resume this stream here, on any front sharing the cluster secret. */
  resume_token?: string;
  /** With resume_token: the input sample frame (from the stream's start) of the first audio frame sent. */
  replay_from?: number;
}

export interface StopMessage {
  type: "stop";
}

export type ClientMessage = StartMessage | StopMessage;

export interface ReadyMessage {
  type: "ready";
  stream_id: string;
  model: string;
  backend: string;
  labels: string[];
  fallback: string | null;
  window_ms: number;
  hop_ms: number;
  sample_rate: number;
  model_sample_rate: number;
  smoothing: number; // the headline is a strict majority of this many recent windows (1: off)
  resumed: boolean;
  /** A resume by token: the input frame the server goes on from (replayed audio before it is skipped). */
  replay_from?: number;
}

/** What the client may forget and how to resume: only for a stream that asked for acks. */
export interface AckMessage {
  type: "ack";
  samples: number; // input sample frames from the stream's start before which no window waits for an answer
  seq: number; // the last seq sent before this ack (-1: none yet)
  token: string; // hand back as `resume_token`
}

export interface ResultMessage {
  type: "result";
  seq: number;
  start_ms: number;
  end_ms: number;
  label: string;
  class: string;
  confidence: number;
  scores: Record<string, number>;
  smoothed: string;
  gated: boolean;
  latency_ms: number;
  dropped_ms: number;
}

export interface ErrorMessage {
  type: "error";
  code: string;
  message: string;
  seq?: number;
  start_ms?: number;
  end_ms?: number;
  /** A refused stream (close 1013): connect again after this long, ms. */
  retry_after_ms?: number;
  /** resume_failed: why (unknown, malformed, forged, expired, mismatch, replayed, live, busy, gap). */
  reason?: string;
}

/** A run of one smoothed label: sent when the smoothed label changes and at the end. */
export interface SegmentMessage {
  type: "segment";
  label: string;
  start_ms: number; // stream audio time
  end_ms: number;
  confidence: number; // mean probability of `label` over the segment's windows
  windows: number;
}

export interface EndMessage {
  type: "end";
  stream_id: string;
  duration_ms: number;
  windows: number;
  results: number;
  gated: number;
  failed: number;
  dropped_windows: number;
  dropped_ms: number;
  dropped_results: number;
  dropped_errors: number;
}

/** The front is shutting down: reconnect (through the load balancer) after `retry_after_ms`,
 * resuming with the newest ack's token; close 1012 follows. Only for a stream that asked for acks. */
export interface MovingMessage {
  type: "moving";
  reason: string;
  retry_after_ms: number;
}

/** A live stream's windows are cut `hop_ms` apart from the next result on: wider than `normal_hop_ms`
 * (ready's) while the server is busy (fewer results, each as fresh), back to it (`normal`) after. Sent in
 * window order, before the first result of a window cut at the new hop. */
export interface PaceMessage {
  type: "pace";
  hop_ms: number;
  normal_hop_ms: number;
  reason: string; // "busy" | "normal" (a newer server may add reasons: shown as busy while hop_ms is wider)
}

export type ServerMessage =
  ReadyMessage | ResultMessage | ErrorMessage | SegmentMessage | EndMessage | AckMessage | MovingMessage | PaceMessage;

export class ProtocolError extends Error {}

type Shape = Record<string, "string" | "number" | "boolean" | "object" | "string|null" | "string[]">;

const SHAPES: Record<ServerMessage["type"], Shape> = {
  ready: {
    stream_id: "string",
    model: "string",
    backend: "string",
    labels: "string[]",
    fallback: "string|null",
    window_ms: "number",
    hop_ms: "number",
    sample_rate: "number",
    model_sample_rate: "number",
    smoothing: "number",
    resumed: "boolean",
  },
  result: {
    seq: "number",
    start_ms: "number",
    end_ms: "number",
    label: "string",
    class: "string",
    confidence: "number",
    scores: "object",
    smoothed: "string",
    gated: "boolean",
    latency_ms: "number",
    dropped_ms: "number",
  },
  error: { code: "string", message: "string" },
  segment: { label: "string", start_ms: "number", end_ms: "number", confidence: "number", windows: "number" },
  end: {
    stream_id: "string",
    duration_ms: "number",
    windows: "number",
    results: "number",
    gated: "number",
    failed: "number",
    dropped_windows: "number",
    dropped_ms: "number",
    dropped_results: "number",
    dropped_errors: "number",
  },
  ack: { samples: "number", seq: "number", token: "string" },
  moving: { reason: "string", retry_after_ms: "number" },
  pace: { hop_ms: "number", normal_hop_ms: "number", reason: "string" },
};

function checkField(obj: Record<string, unknown>, key: string, kind: Shape[string]): void {
  const value = obj[key];
  const ok =
    kind === "string|null"
      ? value === null || typeof value === "string"
      : kind === "string[]"
        ? Array.isArray(value) && value.every((v) => typeof v === "string")
        : kind === "object"
          ? typeof value === "object" && value !== null && !Array.isArray(value)
          : typeof value === kind;
  if (!ok) {
    throw new ProtocolError(`${String(obj.type)}.${key}: expected ${kind}, got ${JSON.stringify(value)}`);
  }
}

/** A well-formed message of a type this page does not know (from a newer server): skipped. */
export interface UnknownMessage {
  type: string;
  unknown: true;
}

const KNOWN_TYPES = Object.keys(SHAPES).join("|");

/**
 * Parse one server text frame; throws ProtocolError with "expected X, got Y". A JSON object whose
 * `type` is a string this page does not know is not an error: it comes back as an UnknownMessage,
 * for the caller to skip (a newer server may send more kinds of message).
 */
export function parseServerMessage(text: string): ServerMessage | UnknownMessage {
  let obj: unknown;
  try {
    obj = JSON.parse(text);
  } catch {
    throw new ProtocolError(`expected JSON, got ${text.slice(0, 40)}`);
  }
  const type = (obj as { type?: unknown } | null)?.type;
  if (typeof obj === "object" && !Array.isArray(obj) && typeof type === "string" && !Object.hasOwn(SHAPES, type)) {
    return { type: type.slice(0, 40), unknown: true };
  }
  return checkServerMessage(obj);
}

/** Whether `message` is one this page skips (see parseServerMessage). */
export function isUnknown(message: ServerMessage | UnknownMessage): message is UnknownMessage {
  return "unknown" in message && message.unknown === true;
}

/**
 * Check one server message already decoded from JSON (an item of a POST /classify answer, say)
 * with the same rules as a text frame; returns it typed, or throws ProtocolError.
 */
export function checkServerMessage(obj: unknown): ServerMessage {
  if (typeof obj !== "object" || obj === null || Array.isArray(obj)) {
    throw new ProtocolError(`expected a JSON object, got ${typeof obj}`);
  }
  const record = obj as Record<string, unknown>;
  const type = record.type;
  if (typeof type !== "string" || !Object.hasOwn(SHAPES, type)) {
    throw new ProtocolError(`expected type ${KNOWN_TYPES}, got ${JSON.stringify(type)}`);
  }
  for (const [key, kind] of Object.entries(SHAPES[type as ServerMessage["type"]])) {
    checkField(record, key, kind);
  }
  return record as unknown as ServerMessage;
}

export function encodeClientMessage(message: ClientMessage): string {
  return JSON.stringify(message);
}
