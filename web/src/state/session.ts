// The session reducer: what the page shows, derived from server messages. Pure.

import type { EndMessage, ReadyMessage, ResultMessage, SegmentMessage, ServerMessage } from "../protocol/messages";

export const TIMELINE_MS = 60_000; // the chart shows the last minute
export const MAX_RESULTS = 20_000; // kept for export; the oldest are dropped beyond this

export interface TimelinePoint {
  atMs: number; // when it arrived, ms since the session began (wall clock, survives reconnects)
  result: ResultMessage;
}

export interface SessionState {
  ready: ReadyMessage | null;
  current: ResultMessage | null;
  timeline: TimelinePoint[];
  results: ResultMessage[];
  segments: SegmentMessage[]; // closed segments of the smoothed label, in order
  errors: { code: string; message: string }[];
  end: EndMessage | null;
  droppedMs: number;
  latencyMs: number | null;
}

export type SessionAction = { type: "reset" } | { type: "message"; message: ServerMessage; atMs: number };

export const initialSession: SessionState = {
  ready: null,
  current: null,
  timeline: [],
  results: [],
  segments: [],
  errors: [],
  end: null,
  droppedMs: 0,
  latencyMs: null,
};

export function sessionReducer(state: SessionState, action: SessionAction): SessionState {
  if (action.type === "reset") return initialSession;
  const { message, atMs } = action;
  switch (message.type) {
    case "ready":
      return { ...state, ready: message, end: null };
    case "result": {
      const timeline = [...state.timeline, { atMs, result: message }].filter((p) => p.atMs >= atMs - TIMELINE_MS);
      const results =
        state.results.length >= MAX_RESULTS ? [...state.results.slice(1), message] : [...state.results, message];
      return {
        ...state,
        current: message,
        timeline,
        results,
        droppedMs: message.dropped_ms,
        latencyMs: message.latency_ms,
      };
    }
    case "error":
      // A server restart forgets streams; the app carries on with a new one, nothing to show.
      if (message.code === "resume_failed") return state;
      return { ...state, errors: [...state.errors, { code: message.code, message: message.message }].slice(-5) };
    case "segment":
      return { ...state, segments: [...state.segments, message].slice(-MAX_RESULTS) };
    case "end":
      return { ...state, end: message };
  }
}

function csvCell(value: string | number | boolean): string {
  const text = String(value);
  return /[",\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

/** Results as CSV: one row per window, one score column per label. */
export function resultsToCsv(results: ResultMessage[], labels: string[]): string {
  const header = [
    "seq",
    "start_ms",
    "end_ms",
    "label",
    "confidence",
    "smoothed",
    "gated",
    "latency_ms",
    ...labels.map((l) => `score_${l}`),
  ];
  const rows = results.map((r) =>
    [
      r.seq,
      r.start_ms,
      r.end_ms,
      r.label,
      r.confidence,
      r.smoothed,
      r.gated,
      r.latency_ms,
      ...labels.map((l) => r.scores[l] ?? ""),
    ]
      .map(csvCell)
      .join(","),
  );
  return [header.join(","), ...rows].join("\n") + "\n";
}
