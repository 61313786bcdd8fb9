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

export type ServerMessage = ReadyMessage | ResultMessage | ErrorMessage | SegmentMessage | EndMessage;

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

/** Parse one server text frame; throws ProtocolError with "expected X, got Y". */
export function parseServerMessage(text: string): ServerMessage {
  let obj: unknown;
  try {
    obj = JSON.parse(text);
  } catch {
    throw new ProtocolError(`expected JSON, got ${text.slice(0, 40)}`);
  }
  return checkServerMessage(obj);
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
    throw new ProtocolError(`expected type ready|result|error|segment|end, got ${JSON.stringify(type)}`);
  }
  for (const [key, kind] of Object.entries(SHAPES[type as ServerMessage["type"]])) {
    checkField(record, key, kind);
  }
  return record as unknown as ServerMessage;
}

export function encodeClientMessage(message: ClientMessage): string {
  return JSON.stringify(message);
}
