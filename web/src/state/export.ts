// What Export writes: every result, the segments, and where they came from. Pure.

import type { ResultMessage } from "../protocol/messages";
import type { ResultsView } from "./results";
import { segmentLog, summarize } from "./results";

export interface ExportMeta {
  model: string | null; // null when the server never said (no ready, no /readyz)
  backend: string | null;
  fallback: string | null; // why a fallback model served, else null
  source: string; // "microphone" or the file's name
  startedAt: string; // wall clock, ISO 8601
}

function csvCell(value: string | number | boolean | null): string {
  const text = value === null ? "" : String(value);
  return /[",\n#]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

/** Results as CSV: `#` lines with the metadata, then one row per window, one score column per label. */
export function resultsToCsv(results: ResultMessage[], labels: string[], meta?: ExportMeta): string {
  const head = meta
    ? [
        `# model: ${meta.model ?? "unknown"}${meta.backend ? ` (${meta.backend})` : ""}`,
        `# fallback: ${meta.fallback ? "yes" : "no"}`,
        `# source: ${meta.source}`,
        `# started: ${meta.startedAt}`,
      ]
    : [];
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
  return [...head, header.join(","), ...rows].join("\n") + "\n";
}

/** Everything the page shows as JSON: metadata, segments (the open one closed at the last window), results, totals. */
export function resultsToJson(view: ResultsView, meta: ExportMeta): string {
  return JSON.stringify(
    {
      ...meta,
      fallback: meta.fallback !== null,
      fallback_reason: meta.fallback,
      ready: view.ready,
      segments: segmentLog(view).map(({ seg }) => seg),
      summary: summarize(view),
      end: view.end,
      results: view.results,
    },
    null,
    2,
  );
}
