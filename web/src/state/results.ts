// The results view: what the page shows of the latest run (a microphone or a file), derived by one
// reducer from the server's messages, plus what the page itself saw go wrong (a server message it
// could not read, audio it could not send). Pure.
//
// Time on the page is audio time (ms of the stream's audio), not arrival time: a file sent fast
// spreads over its own length, and a gap in the audio stays a gap. A stream the server forgot (a
// restart) begins again at 0; its audio is placed after the old one, one outage later.

import type { EndMessage, ReadyMessage, ResultMessage, SegmentMessage, ServerMessage } from "../protocol/messages";

export const TIMELINE_MS = 60_000; // a live chart follows the last minute of audio
export const MAX_RESULTS = 20_000; // kept for the timeline and export; the oldest are dropped beyond this
export const AMBIENT = "ambient";

export interface TimelinePoint {
  startMs: number; // audio time of the window on the page's axis (offset for restarted streams)
  endMs: number;
  result: ResultMessage;
  breakBefore: boolean; // a gap in the audio (or an outage) lies before this window
  streamId: string; // the server stream it came from: its own time base (a restart starts a new one)
}

/** A closed segment on the page's axis (start_ms, end_ms: page audio time), and its stream. */
export interface PageSegment extends SegmentMessage {
  stream_id: string;
  offset_ms: number; // page time minus the stream's own time
}

/** One server stream of this run: a restart begins a new one, placed after the last (offset). */
export interface StreamRun {
  stream_id: string;
  offset_ms: number; // added to the stream's time to give page time
  ready: ReadyMessage;
}

/** The smoothed label now held, built from results the same way the server builds `segment`. */
export interface OpenSegment {
  label: string;
  startMs: number; // page audio time
  endMs: number;
  confidenceSum: number;
  windows: number;
}

export interface ResultsView {
  ready: ReadyMessage | null;
  current: ResultMessage | null;
  open: OpenSegment | null;
  timeline: TimelinePoint[]; // every window kept (up to MAX_RESULTS), page audio time
  results: ResultMessage[];
  segments: PageSegment[]; // closed segments of the smoothed label, in order, page audio time
  streams: StreamRun[]; // the server streams, oldest first
  errors: { code: string; message: string }[]; // the server's error messages, and BAD_SERVER_MESSAGE
  starting: boolean; // the server said not_ready since the last ready: it is still loading
  end: EndMessage | null;
  droppedMs: number; // audio the server dropped or shed (the latest result's dropped_ms)
  unsentMs: number; // audio the page dropped while the connection was down: never sent
  latencyMs: number | null; // what the person waits: audio end → label on screen
  serverLatencyMs: number | null; // the server's part of it
  lastAtMs: number | null; // when the latest result arrived (page clock, ms)
  offsetMs: number; // added to the current stream's audio time
  audioEndMs: number; // the latest window end on the page's axis
}

export type ResultsAction =
  | { type: "reset" }
  | { type: "message"; message: ServerMessage; atMs: number; latencyMs?: number | null }
  | { type: "unreadable"; problem: string } // a server message failed the parser (ProtocolError)
  | { type: "unsent"; totalMs: number }; // the page's queue dropped audio; total so far this run

/** The page's own code for a server message it could not read (not one the server sends). */
export const BAD_SERVER_MESSAGE = "bad_server_message";
const MAX_ERRORS = 5; // the latest are shown

export const emptyResults: ResultsView = {
  ready: null,
  current: null,
  open: null,
  timeline: [],
  results: [],
  segments: [],
  streams: [],
  errors: [],
  starting: false,
  end: null,
  droppedMs: 0,
  unsentMs: 0,
  latencyMs: null,
  serverLatencyMs: null,
  lastAtMs: null,
  offsetMs: 0,
  audioEndMs: 0,
};

/** The probability `result` gives `label` (the server's segment confidence uses the same rule). */
export function windowConfidence(result: ResultMessage, label: string): number {
  return result.label === label ? result.confidence : (result.scores[label] ?? 0);
}

function extendOpen(open: OpenSegment | null, r: ResultMessage, startMs: number, endMs: number): OpenSegment {
  const conf = windowConfidence(r, r.smoothed);
  if (open && open.label === r.smoothed) {
    return { ...open, endMs, confidenceSum: open.confidenceSum + conf, windows: open.windows + 1 };
  }
  return { label: r.smoothed, startMs, endMs, confidenceSum: conf, windows: 1 };
}

function onResult(state: ResultsView, r: ResultMessage, atMs: number, latencyMs: number | null): ResultsView {
  const startMs = state.offsetMs + r.start_ms;
  const endMs = state.offsetMs + r.end_ms;
  const prev = state.timeline[state.timeline.length - 1];
  // Windows overlap by design (a hop apart); more than a window's gap means audio is missing.
  const hop = state.ready?.hop_ms ?? 500;
  const breakBefore = prev !== undefined && startMs - prev.startMs > hop * 1.5;
  const point = { startMs, endMs, result: r, breakBefore, streamId: state.ready?.stream_id ?? "" };
  const timeline = bounded(state.timeline, point);
  const results = bounded(state.results, r);
  return {
    ...state,
    current: r,
    open: extendOpen(state.open, r, startMs, endMs),
    timeline,
    results,
    droppedMs: r.dropped_ms,
    latencyMs: latencyMs ?? null,
    serverLatencyMs: r.latency_ms,
    lastAtMs: atMs,
    audioEndMs: Math.max(state.audioEndMs, endMs),
  };
}

/** `list` with `item` appended, the oldest dropped beyond MAX_RESULTS. */
function bounded<T>(list: T[], item: T): T[] {
  return list.length >= MAX_RESULTS ? [...list.slice(1), item] : [...list, item];
}

function withError(state: ResultsView, code: string, message: string): ResultsView {
  return { ...state, errors: [...state.errors, { code, message }].slice(-MAX_ERRORS) };
}

export function resultsReducer(state: ResultsView, action: ResultsAction): ResultsView {
  if (action.type === "reset") return emptyResults;
  if (action.type === "unsent") return { ...state, unsentMs: action.totalMs };
  if (action.type === "unreadable") {
    return withError(state, BAD_SERVER_MESSAGE, `sent a message the page cannot read (${action.problem})`);
  }
  const { message, atMs } = action;
  switch (message.type) {
    case "ready": {
      // A new stream (not a resumed one) after earlier results: the server forgot the old one.
      // Its audio time starts at 0 again, so it goes after the old audio, one outage later.
      const restarted = !message.resumed && state.results.length > 0;
      const outageMs = restarted && state.lastAtMs !== null ? Math.max(0, atMs - state.lastAtMs) : 0;
      const streams = message.resumed && state.streams.length ? state.streams : [...state.streams];
      const offsetMs = restarted ? state.audioEndMs + outageMs : state.offsetMs;
      if (!message.resumed || !streams.length)
        streams.push({ stream_id: message.stream_id, offset_ms: offsetMs, ready: message });
      return {
        ...state,
        ready: message,
        streams,
        end: null,
        errors: [], // connected again: earlier problems are over
        starting: false,
        offsetMs,
        open: restarted ? null : state.open,
      };
    }
    case "result":
      return onResult(state, message, atMs, action.latencyMs ?? null);
    case "segment": {
      const seg: PageSegment = {
        ...message,
        start_ms: message.start_ms + state.offsetMs,
        end_ms: message.end_ms + state.offsetMs,
        stream_id: state.ready?.stream_id ?? "",
        offset_ms: state.offsetMs,
      };
      return { ...state, segments: [...state.segments, seg].slice(-MAX_RESULTS) };
    }
    case "error":
      // A server restart forgets streams; the app carries on with a new one, nothing to show.
      if (message.code === "resume_failed") return state;
      if (message.code === "not_ready") return { ...state, starting: true };
      return withError(state, message.code, message.message);
    case "end":
      return { ...state, end: message, open: null };
  }
}

/** The headline: the smoothed label, its own mean confidence and how long it has held. */
export interface Headline {
  label: string;
  confidence: number; // mean probability of `label` over the windows it has held
  heldMs: number;
}

export function headline(state: Pick<ResultsView, "segments" | "open" | "streams">): Headline | null {
  const log = segmentLog(state);
  const seg = log[log.length - 1]?.seg;
  if (!seg) return null;
  return { label: seg.label, confidence: seg.confidence, heldMs: seg.end_ms - seg.start_ms };
}

export interface LogEntry {
  seg: PageSegment;
  open: boolean;
}

/** Closed segments, then the one still open (not yet closed by the server), for the log. The
 * open one starts where the server's last segment ended: the server back-dates a boundary to
 * where the label began, before the window whose result flipped the smoothed label. */
export function segmentLog(state: Pick<ResultsView, "segments" | "open" | "streams">): LogEntry[] {
  const out: LogEntry[] = state.segments.map((seg) => ({ seg, open: false }));
  const o = state.open;
  const last = state.segments[state.segments.length - 1];
  const stream = state.streams[state.streams.length - 1];
  const lastEnd = last?.end_ms ?? 0;
  if (o && o.endMs > lastEnd) {
    const sameStream = last !== undefined && stream !== undefined && last.stream_id === stream.stream_id;
    out.push({
      seg: {
        type: "segment",
        label: o.label,
        start_ms: sameStream ? lastEnd : Math.max(o.startMs, lastEnd),
        end_ms: o.endMs,
        confidence: o.confidenceSum / o.windows,
        windows: o.windows,
        stream_id: stream?.stream_id ?? "",
        offset_ms: stream?.offset_ms ?? 0,
      },
      open: true,
    });
  }
  return out;
}

/** The answer for a whole recording: time under each smoothed label and the dominant one (the
 * speech label held longest; `ambient` only when no speech was found). */
export interface Answer {
  label: string;
  perLabelMs: [string, number][]; // longest first
  totalMs: number;
}

export function answer(state: Pick<ResultsView, "segments" | "open" | "streams">): Answer | null {
  const per = new Map<string, number>();
  for (const { seg } of segmentLog(state)) per.set(seg.label, (per.get(seg.label) ?? 0) + seg.end_ms - seg.start_ms);
  if (!per.size) return null;
  const perLabelMs = [...per.entries()].sort((a, b) => b[1] - a[1]);
  const speech = perLabelMs.find(([label, ms]) => label !== AMBIENT && ms > 0);
  return {
    label: speech ? speech[0] : perLabelMs[0][0],
    perLabelMs,
    totalMs: perLabelMs.reduce((a, [, ms]) => a + ms, 0),
  };
}

export interface Summary {
  perLabelMs: [string, number][]; // audio time under each smoothed label, longest first
  windows: number;
  droppedWindows: number; // cut but never classified (the server fell behind)
  droppedResults: number; // classified but never sent
  unsentMs: number; // audio the page dropped while the connection was down: the server never had it
  durationMs: number;
}

/** The totals of a finished run: from `end` when the server sent one, else from what arrived. */
export function summarize(state: ResultsView): Summary | null {
  if (!state.results.length) return null;
  const per = new Map<string, number>();
  for (const { seg } of segmentLog(state)) per.set(seg.label, (per.get(seg.label) ?? 0) + seg.end_ms - seg.start_ms);
  const end = state.end;
  return {
    perLabelMs: [...per.entries()].sort((a, b) => b[1] - a[1]),
    windows: end?.windows ?? state.results.length,
    droppedWindows: end?.dropped_windows ?? 0,
    droppedResults: end?.dropped_results ?? 0,
    unsentMs: state.unsentMs,
    durationMs: end?.duration_ms ?? state.audioEndMs,
  };
}
