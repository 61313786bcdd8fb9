// What the page is doing, as one union, and the pure questions the page asks of it.
// The PageController is the only writer; components only read.

import type { EngineState } from "../audio/engine";
import type { ConnState } from "../net/client";
import { minSec } from "../format";

export type Phase =
  | { kind: "idle"; cancelled?: string } // nothing started yet, or a file was cancelled: what it says about it
  | { kind: "mic"; mic: EngineState; conn: ConnState } // a microphone stream, live or finished
  | { kind: "decoding"; fileName: string; bytes: number; sinceMs: number } // decoding; no connection yet
  | {
      kind: "file";
      fileName: string;
      conn: ConnState;
      progress: number; // sent, in [0, 1]
      durationMs: number;
      stoppedMs?: number; // Stop was pressed with this much of the file sent
    }
  | {
      kind: "classifying"; // a file uploaded to /classify, waiting for the answer
      fileName: string;
      durationMs: number;
      sinceMs: number; // page clock (ms) when the upload began
      estimateMs: number | null; // how long the server should take, from its capacity; null: unknown
    }
  | { kind: "file_error"; message: string }; // the file could not be decoded or classified

const ACTIVE_CONN: ReadonlySet<ConnState["kind"]> = new Set(["connecting", "open", "reconnecting", "stopping"]);

/** The microphone's state; `idle` outside a microphone stream. */
export function micState(phase: Phase): EngineState {
  return phase.kind === "mic" ? phase.mic : { kind: "idle" };
}

/** The connection's state; `idle` while there is none. */
export function connState(phase: Phase): ConnState {
  return phase.kind === "mic" || phase.kind === "file" ? phase.conn : { kind: "idle" };
}

/** Whether something runs that Stop would end: the page shows Stop instead of Start. */
export function isBusy(phase: Phase): boolean {
  if (phase.kind === "decoding" || phase.kind === "classifying") return true;
  const mic = micState(phase).kind;
  return mic === "running" || mic === "starting" || ACTIVE_CONN.has(connState(phase).kind);
}

/** File progress in [0, 1], or null outside file mode. */
export function fileProgress(phase: Phase): number | null {
  return phase.kind === "file" ? phase.progress : null;
}

function megabytes(bytes: number): string {
  return `${(bytes / 1e6).toFixed(bytes < 1e7 ? 1 : 0)} MB`;
}

/**
 * File progress in words, or null when no file is involved: "Decoding … 0:03", "Classifying all
 * 10:00 … 0:12 of about 0:40", "0:07 of 0:18 sent · 0:11 left", "stopped at 0:07 of 0:18".
 * `nowMs`: the page clock, for the time a step has taken (null: not shown).
 */
export function fileProgressText(phase: Phase, nowMs: number | null = null): string | null {
  const elapsed = (since: number) => (nowMs === null ? "" : ` ${minSec(Math.max(0, nowMs - since))}`);
  if (phase.kind === "idle") return phase.cancelled ?? null;
  if (phase.kind === "decoding") {
    return `Decoding "${phase.fileName}" (${megabytes(phase.bytes)}) in the browser…${elapsed(phase.sinceMs)}`;
  }
  if (phase.kind === "classifying") {
    const estimate = phase.estimateMs !== null ? ` of about ${minSec(phase.estimateMs)}` : "";
    return `Classifying all ${minSec(phase.durationMs)} of "${phase.fileName}"…${elapsed(phase.sinceMs)}${estimate}`;
  }
  if (phase.kind !== "file") return null;
  const sent = phase.progress * phase.durationMs;
  if (phase.stoppedMs !== undefined) {
    return `"${phase.fileName}": stopped at ${minSec(phase.stoppedMs)} of ${minSec(phase.durationMs)}; the results cover only that`;
  }
  if (phase.progress >= 1) return `"${phase.fileName}": all ${minSec(phase.durationMs)} classified`;
  return `"${phase.fileName}": ${minSec(sent)} of ${minSec(phase.durationMs)} sent · ${minSec(phase.durationMs - sent)} left`;
}

/** Whether results are arriving now; when not, the page greys what it shows and gives its age. */
export function isLive(phase: Phase): boolean {
  if (phase.kind === "mic") return phase.mic.kind === "running" && phase.conn.kind === "open";
  if (phase.kind === "file") return phase.conn.kind === "open" && phase.progress < 1;
  return false;
}

/** The server answered not_ready while reconnecting: it is starting, not broken. */
export function serverStarting(phase: Phase): boolean {
  const conn = connState(phase);
  return conn.kind === "reconnecting" && /not_ready/.test(conn.reason);
}

/** The plain-language problems of this phase, for the error banner (server messages come separately). */
export function phaseErrors(phase: Phase, wsUrl: string | null): string[] {
  const conn = connState(phase);
  // A microphone that failed is the whole story: the connection opened for it was only closed.
  if (phase.kind === "mic" && phase.mic.kind === "error") return [phase.mic.error.message];
  const out: string[] = [];
  if (phase.kind === "file_error") out.push(phase.message);
  if (conn.kind === "reconnecting" && !serverStarting(phase)) {
    out.push(
      conn.unreachable
        ? `Server unreachable at ${wsUrl}; retrying. Audio is held for a few seconds, then counted as not classified.`
        : `Cannot reach the server at ${wsUrl}; retrying.`,
    );
  }
  if (conn.kind === "closed" && conn.code !== 1000 && conn.code !== 1005) {
    out.push(`The server closed the stream: ${conn.reason || conn.code}`);
  }
  return out;
}
