// What Export writes: every window and segment with its stream and both time bases, and a config
// block saying how they were made. Pure.
//
// Times: `start_ms`/`end_ms` are the stream's own audio time (as the server sent them);
// `page_start_ms`/`page_end_ms` are the page's axis, on which a stream the server forgot (a
// restart) is placed after the old one. Each row names its `stream_id`, so two time bases never
// mix; JSON groups the windows by stream (`streams`: each one's offset, windows and `ready`).
// Audio no stream classified (the server unreachable before the first stream, an outage between
// two) has no stream time: it is a "no data" row in the segments (page times only, `no_data`
// says why), listed in the config block (`gaps`, `no_data_ms`) and counted in the summary.
// Milliseconds are whole numbers, probabilities have 4 decimals: no float noise.
//
// CSV: `#` lines first (the config block: pandas `read_csv(comment="#")` and R `comment.char`
// skip them; a spreadsheet shows them as a few labelled rows above the header), each `# key`
// then one value cell. Every text cell that a spreadsheet would run as a formula (starting with
// = + - @, a tab or a carriage return) gets a leading apostrophe, and every cell with a comma,
// quote, newline or # is quoted.

import type { ReadyMessage } from "../protocol/messages";
import type { LogEntry, ResultsView, TimelinePoint } from "./results";
import { logRows, summarize } from "./results";

/** A value of the config block (what /readyz `config` says, plus what the page knows). */
export type ConfigValue = string | number | boolean | null;

export interface ExportMeta {
  model: string | null; // null when the server never said (no ready, no /readyz)
  backend: string | null;
  fallback: string | null; // why a fallback model served, else null
  source: string; // "microphone" or the file's name
  startedAt: string; // wall clock, ISO 8601
  serverConfig?: Record<string, ConfigValue> | null; // /readyz `config`: version, smoothing, gate, thresholds
}

const FORMULA = /^[=+\-@\t\r]/;

/** Text a spreadsheet will not run: a leading apostrophe before a formula's first character. */
export function neutralise(text: string): string {
  return FORMULA.test(text) ? `'${text}` : text;
}

/** One CSV cell: numbers and booleans as they are, text neutralised, then quoted when needed. */
export function csvCell(value: ConfigValue): string {
  if (value === null) return "";
  if (typeof value !== "string") return String(value);
  const text = neutralise(value);
  return /[",\n\r#]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

const ms = (value: number): number => Math.round(value);
const prob = (value: number): number => Number(value.toFixed(4));

/** The config block: how the results were made. Keys are stable; values may be null (unknown). */
export function exportConfig(view: ResultsView, meta: ExportMeta): Record<string, ConfigValue> {
  const ready: ReadyMessage | null = view.ready;
  const server = meta.serverConfig ?? {};
  return {
    format: "voxlive-export/2",
    voxlive_version: server.version ?? null, // the server's
    page_version: __PAGE_VERSION__,
    model: ready?.model ?? meta.model,
    backend: ready?.backend ?? meta.backend,
    fallback: meta.fallback,
    labels: ready ? ready.labels.join(" ") : null,
    window_ms: ready?.window_ms ?? null,
    hop_ms: ready?.hop_ms ?? null,
    smoothing_windows: server.smoothing ?? null,
    gate: server.gate ?? null,
    gate_rms: server.gate_rms ?? null,
    vad_threshold: server.vad_threshold ?? null,
    vad_min_speech_ms: server.vad_min_speech_ms ?? null,
    pitch_threshold_hz: server.pitch_threshold_hz ?? null,
    segment_boundary_resolution_ms: ready ? ready.hop_ms / 2 : null,
    source: meta.source,
    started_at: meta.startedAt,
    streams: view.streams.map((s) => `${s.streamId}@${ms(s.offsetMs)}`).join(" "),
    time_base: "start_ms/end_ms: the stream's audio time; page_*: the page's axis (stream_id@offset_ms)",
    gaps: view.gaps.map((g) => `${ms(g.startMs)}-${ms(g.endMs)}:${g.reason}`).join(" "),
    no_data_ms: ms(view.gaps.reduce((sum, g) => sum + g.endMs - g.startMs, 0)),
  };
}

/** `# key,value` lines; a value's line breaks become spaces, so each stays one comment line. */
function configLines(config: Record<string, ConfigValue>): string[] {
  const oneLine = (v: ConfigValue) => (typeof v === "string" ? v.replace(/[\r\n]+/g, " ") : v);
  return Object.entries(config).map(([key, value]) => `# ${key},${csvCell(oneLine(value))}`);
}

function csv(rows: ConfigValue[][]): string {
  return rows.map((row) => row.map(csvCell).join(",")).join("\n");
}

/** A window as exported: the server's result, rounded, with its stream and page time. */
function windowRow(p: TimelinePoint) {
  const r = p.result;
  return {
    stream_id: p.streamId,
    seq: r.seq,
    start_ms: ms(r.start_ms),
    end_ms: ms(r.end_ms),
    page_start_ms: ms(p.startMs),
    page_end_ms: ms(p.endMs),
    label: r.label,
    class: r.class,
    confidence: prob(r.confidence),
    scores: Object.fromEntries(Object.entries(r.scores).map(([k, v]) => [k, prob(v)])),
    smoothed: r.smoothed,
    gated: r.gated,
    latency_ms: ms(r.latency_ms),
    dropped_ms: ms(r.dropped_ms),
  };
}

export const NO_DATA = "no data"; // the label of a gap's row: audio no stream classified

/** A row of the log as exported: a segment in both times, or a gap (page time only: no stream). */
function segmentRow({ seg, open, gap }: LogEntry) {
  return {
    stream_id: gap ? null : seg.stream_id,
    start_ms: gap ? null : ms(seg.start_ms - seg.offset_ms),
    end_ms: gap ? null : ms(seg.end_ms - seg.offset_ms),
    page_start_ms: ms(seg.start_ms),
    page_end_ms: ms(seg.end_ms),
    label: gap ? NO_DATA : seg.label,
    confidence: gap ? null : prob(seg.confidence),
    windows: seg.windows,
    open, // still open when exported: the server had not closed it
    no_data: gap ? gap.reason : null, // why nobody classified it: "unreachable" or "outage"
  };
}

/** Windows as CSV: the config block, then one row per window, one score column per label. */
export function resultsToCsv(view: ResultsView, labels: string[], meta: ExportMeta): string {
  const header = [
    "stream_id", "seq", "start_ms", "end_ms", "page_start_ms", "page_end_ms", "label", "class",
    "confidence", "smoothed", "gated", "latency_ms", "dropped_ms", ...labels.map((l) => `score_${l}`),
  ]; // prettier-ignore
  const rows = view.timeline.map((p) => {
    const w = windowRow(p);
    return [
      w.stream_id, w.seq, w.start_ms, w.end_ms, w.page_start_ms, w.page_end_ms, w.label, w.class,
      w.confidence.toFixed(4), w.smoothed, w.gated, w.latency_ms, w.dropped_ms,
      ...labels.map((l) => (l in w.scores ? w.scores[l].toFixed(4) : null)),
    ]; // prettier-ignore
  });
  return [...configLines(exportConfig(view, meta)), csv([header, ...rows])].join("\n") + "\n";
}

/** Segments as CSV: the config block, then one row per segment (the open one marked) and per gap
 * ("no data"), in page time order, as the page's log shows them. */
export function segmentsToCsv(view: ResultsView, meta: ExportMeta): string {
  const header = [
    "stream_id",
    "start_ms",
    "end_ms",
    "page_start_ms",
    "page_end_ms",
    "label",
    "confidence",
    "windows",
    "open",
    "no_data",
  ];
  const rows = logRows(view).map((entry) => {
    const s = segmentRow(entry);
    return [
      s.stream_id,
      s.start_ms,
      s.end_ms,
      s.page_start_ms,
      s.page_end_ms,
      s.label,
      s.confidence?.toFixed(4) ?? null,
      s.windows,
      s.open,
      s.no_data,
    ];
  });
  return [...configLines(exportConfig(view, meta)), csv([header, ...rows])].join("\n") + "\n";
}

/** Everything the page shows as JSON: the config block, the streams (each with its offset, window
 * count and `ready`), segments and gaps, windows (each with its stream and both times), totals.
 * `ready` and `end` are the last stream's (`end_stream_id`). Earlier top-level keys are kept. */
export function resultsToJson(view: ResultsView, meta: ExportMeta): string {
  return JSON.stringify(
    {
      config: exportConfig(view, meta),
      model: meta.model,
      backend: meta.backend,
      source: meta.source,
      startedAt: meta.startedAt,
      fallback: meta.fallback !== null,
      fallback_reason: meta.fallback,
      ready: view.ready,
      streams: view.streams.map((s) => ({
        stream_id: s.streamId,
        page_offset_ms: ms(s.offsetMs),
        windows: view.timeline.filter((p) => p.streamId === s.streamId).length,
        ready: s.ready,
      })),
      segments: logRows(view).map(segmentRow),
      gaps: view.gaps.map((g) => ({ page_start_ms: ms(g.startMs), page_end_ms: ms(g.endMs), reason: g.reason })),
      summary: summarize(view),
      end: view.end,
      end_stream_id: view.end ? (view.streams.at(-1)?.streamId ?? null) : null,
      results: view.timeline.map(windowRow),
    },
    null,
    2,
  );
}
