// The results view: what the page shows of the latest run (a microphone or a file), derived by one
// reducer from the server's messages, plus what the page itself saw go wrong (a server message it
// could not read, audio it could not send). Pure.
//
// Time on the page is audio time (ms of the stream's audio), not arrival time: a file sent fast
// spreads over its own length, and a gap in the audio stays a gap. A stream the server forgot (a
// restart) begins again at 0; its audio is placed after the old one, one outage later.

import type { EndMessage, ReadyMessage, ResultMessage, SegmentMessage, ServerMessage } from "../protocol/messages";
import type { PaceMessage } from "../protocol/messages";

export const TIMELINE_MS = 60_000; // a live chart follows the last minute of audio
export const MAX_RESULTS = 20_000; // kept for the timeline and export; the oldest are dropped beyond this
export const AMBIENT = "ambient";
export const NO_SPEECH = "no speech"; // the one name the page gives `ambient` (gated or quiet windows)
export const MIN_GAP_MS = 100; // less missing audio than this is not shown as a gap

/** A label as the page writes it: `ambient` is "no speech" everywhere (headline, legend, log, summary). */
export function labelText(label: string): string {
  return label === AMBIENT ? NO_SPEECH : label;
}

/**
 * Audio of this run that no stream classified, on the page's axis: before the first stream
 * (`unreachable`: the server could not be reached yet) or between two streams (`outage`: the
 * connection or the server went away and the new stream does not continue the old one).
 */
export interface Gap {
  startMs: number;
  endMs: number;
  reason: "unreachable" | "outage";
}

/**
 * One server stream of the run (a resume continues one; a restart begins a new one with its own
 * time base): results from `firstResult` (an index into `results`) on are its.
 */
export interface StreamSpan {
  streamId: string;
  offsetMs: number; // where its audio time 0 lies on the page's axis (page time = its time + this)
  firstResult: number;
  ready: ReadyMessage; // its configuration, as the server announced it
  // Why the stream before it did not go on: the `reason` of the server's `resume_failed` (gap,
  // forged, unknown…); null when the server said nothing (a new stream after a restart, say).
  resumeFailed: string | null;
}

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
  streams: StreamSpan[]; // the run's server streams (a resume continues one), oldest first
  gaps: Gap[]; // audio no stream classified, in order (for the log, the summary and exports)
  resumeFailed: string | null; // a resume_failed's reason, until the new stream's `ready`
  pace: PaceMessage | null; // the server is busy: windows further apart than ready's hop (null: normal)
}

export type ResultsAction =
  | { type: "reset" }
  // streamStartMs (a `ready` only): where the stream's audio time 0 lies on the page's axis, from
  // the page's own count of the audio it captured; without it a new stream goes after the old
  // one, one outage (by the clock) later.
  | { type: "message"; message: ServerMessage; atMs: number; latencyMs?: number | null; streamStartMs?: number | null }
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
  streams: [],
  gaps: [],
  resumeFailed: null,
  pace: null,
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
  // Windows overlap by design (a hop apart); more than a window's gap means audio is missing. The hop is
  // the one in force: a busy server cuts windows further apart and says so (pace) before the first of them.
  const hop = hopMs(state);
  const breakBefore = prev !== undefined && startMs - prev.startMs > hop * 1.5;
  const point = { startMs, endMs, result: r, breakBefore, streamId: state.ready?.stream_id ?? "" };
  const timeline = bounded(state.timeline, point);
  const full = state.results.length >= MAX_RESULTS;
  const results = bounded(state.results, r);
  const streams = full
    ? state.streams.map((s) => ({ ...s, firstResult: Math.max(0, s.firstResult - 1) }))
    : state.streams;
  return {
    ...state,
    streams,
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

/**
 * A stream began. A resume continues the current one. A new one (the server forgot the old one:
 * a restart) starts its audio time and its `seq` at 0 again; it is placed on the page's axis where
 * its first sample was captured (`streamStartMs`), and the audio between the old stream's last
 * window and that point is a gap: nobody classified it.
 */
function onReady(state: ResultsView, message: ReadyMessage, atMs: number, streamStartMs: number | null): ResultsView {
  // Earlier problems are over; the hop is ready's until a pace says otherwise (a resumed stream's is told again).
  const connected = {
    ...state,
    ready: message,
    end: null,
    errors: [],
    starting: false,
    resumeFailed: null,
    pace: null,
  };
  if (message.resumed && state.streams.length > 0) return connected;
  const first = state.streams.length === 0 && state.results.length === 0;
  const outageMs = state.lastAtMs !== null ? Math.max(0, atMs - state.lastAtMs) : 0;
  const offsetMs = streamStartMs ?? (first ? state.offsetMs : state.audioEndMs + outageMs);
  const gapFrom = first ? 0 : state.audioEndMs;
  const gaps =
    offsetMs - gapFrom >= MIN_GAP_MS
      ? [...state.gaps, { startMs: gapFrom, endMs: offsetMs, reason: first ? "unreachable" : "outage" } as Gap]
      : state.gaps;
  // The old stream's open segment will never be closed by its server: it ends where its audio did
  // (and starts where the log shows it starting: after the server's last, back-dated boundary).
  const held = first ? undefined : segmentLog(state).at(-1);
  const closed: PageSegment[] = held?.open ? [{ ...held.seg }] : [];
  return {
    ...connected,
    offsetMs,
    open: null,
    gaps,
    segments: [...state.segments, ...closed],
    streams: [
      ...state.streams,
      {
        streamId: message.stream_id,
        offsetMs,
        firstResult: state.results.length,
        ready: message,
        resumeFailed: first ? null : state.resumeFailed,
      },
    ],
    audioEndMs: Math.max(state.audioEndMs, offsetMs),
  };
}

/** The hop the current stream's windows are cut at now, ms: a pace's while the server is busy, else ready's. */
export function hopMs(state: Pick<ResultsView, "pace" | "ready">): number {
  return state.pace?.hop_ms ?? state.ready?.hop_ms ?? 500;
}

/** Whether the latest stream is not the run's first: a new stream began (the old was forgotten). */
export function newStreamAt(state: ResultsView): number | null {
  return state.streams.length > 1 ? state.streams[state.streams.length - 1].offsetMs : null;
}

/** Why the latest new stream began: its resume_failed reason, or null (none given, or no new stream). */
export function newStreamReason(state: ResultsView): string | null {
  return state.streams.length > 1 ? state.streams[state.streams.length - 1].resumeFailed : null;
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
    case "ready":
      return onReady(state, message, atMs, action.streamStartMs ?? null);
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
      // The app carries on with a new stream (its `ready` comes next); the new-stream notice
      // says why, from the reason.
      if (message.code === "resume_failed") return { ...state, resumeFailed: message.reason ?? "unknown" };
      if (message.code === "not_ready") return { ...state, starting: true };
      return withError(state, message.code, message.message);
    case "end":
      return { ...state, end: message, open: null, pace: null };
    case "pace":
      return { ...state, pace: message.hop_ms > message.normal_hop_ms ? message : null };
    case "ack":
    case "moving":
      return state; // the client keeps acks and moves the stream; nothing to show
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

/**
 * Where the headline may be going: the latest raw window's label while it differs from the
 * headline (which changes only once most recent windows agree), else null. Shown faint and
 * tentative; the headline commits it, or the next windows take it back.
 */
export function tentative(state: ResultsView): string | null {
  const held = headline(state);
  const raw = state.current;
  if (!held || !raw || raw.label === held.label) return null;
  return raw.label;
}

/** A row of the segment log: a segment of the smoothed label, or a stretch with no data. */
export interface LogEntry {
  seg: PageSegment; // for a gap: its page times, label "", no windows, no stream
  open: boolean; // the segment still held (not yet closed by the server)
  gap: Gap | null;
}

/** Closed segments, then the one still open (not yet closed by the server), for the log. The
 * open one starts where the server's last segment ended: the server back-dates a boundary to
 * where the label began, before the window whose result flipped the smoothed label. */
export function segmentLog(state: Pick<ResultsView, "segments" | "open" | "streams">): LogEntry[] {
  const out: LogEntry[] = state.segments.map((seg) => ({ seg, open: false, gap: null }));
  const o = state.open;
  const last = state.segments[state.segments.length - 1];
  const stream = state.streams[state.streams.length - 1];
  const lastEnd = last?.end_ms ?? 0;
  if (o && o.endMs > lastEnd) {
    const sameStream = last !== undefined && stream !== undefined && last.stream_id === stream.streamId;
    out.push({
      seg: {
        type: "segment",
        label: o.label,
        start_ms: sameStream ? lastEnd : Math.max(o.startMs, lastEnd),
        end_ms: o.endMs,
        confidence: o.confidenceSum / o.windows,
        windows: o.windows,
        stream_id: stream?.streamId ?? "",
        offset_ms: stream?.offsetMs ?? 0,
      },
      open: true,
      gap: null,
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

/** The log the page shows: the segments and, in time order among them, the gaps (no data). */
export function logRows(state: Pick<ResultsView, "segments" | "open" | "streams" | "gaps">): LogEntry[] {
  const gaps = state.gaps.map((gap): LogEntry => {
    const seg: PageSegment = {
      type: "segment",
      label: "",
      start_ms: gap.startMs,
      end_ms: gap.endMs,
      confidence: 0,
      windows: 0,
      stream_id: "",
      offset_ms: 0,
    };
    return { seg, open: false, gap };
  });
  return [...segmentLog(state), ...gaps].sort((a, b) => a.seg.start_ms - b.seg.start_ms);
}

export interface Summary {
  perLabelMs: [string, number][]; // audio time under each smoothed label, longest first
  windows: number;
  droppedWindows: number; // cut but never classified (the server fell behind)
  droppedResults: number; // classified but never sent
  unsentMs: number; // audio the page dropped while the connection was down: the server never had it
  noDataMs: number; // audio in gaps: no stream classified it (the page's count; unsentMs is part of it)
  durationMs: number;
}

/** The totals of a finished run: from `end` when the server sent one, else from what arrived. */
export function summarize(state: ResultsView): Summary | null {
  if (!state.results.length) return null;
  const per = new Map<string, number>();
  for (const { seg } of segmentLog(state)) per.set(seg.label, (per.get(seg.label) ?? 0) + seg.end_ms - seg.start_ms);
  const end = state.end;
  const noDataMs = state.gaps.reduce((sum, g) => sum + g.endMs - g.startMs, 0);
  return {
    perLabelMs: [...per.entries()].sort((a, b) => b[1] - a[1]),
    // `end` counts the last stream's windows; the streams before it count by their results.
    windows: end ? (state.streams.at(-1)?.firstResult ?? 0) + end.windows : state.results.length,
    droppedWindows: end?.dropped_windows ?? 0,
    droppedResults: end?.dropped_results ?? 0,
    unsentMs: state.unsentMs,
    noDataMs,
    // The run's audio on the page's axis: the last stream's own length after where it began.
    durationMs: end ? Math.max(state.audioEndMs, state.offsetMs + end.duration_ms) : state.audioEndMs,
  };
}
