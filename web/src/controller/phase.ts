// What the page is doing, as one union, and the pure questions the page asks of it.
// The PageController is the only writer; components only read.

import type { EngineState } from "../audio/engine";
import type { ConnState } from "../net/client";
import { minSec } from "../format";

export type Phase =
  | { kind: "idle" } // nothing started yet, or a file decode was cancelled
  | { kind: "mic"; mic: EngineState; conn: ConnState } // a microphone stream, live or finished
  | { kind: "decoding"; fileName: string } // a chosen file is being decoded; no connection yet
  | { kind: "file"; fileName: string; conn: ConnState; progress: number; durationMs: number } // progress in [0, 1]
  | { kind: "classifying"; fileName: string; durationMs: number } // a file uploaded to /classify, waiting
  | { kind: "file_error"; message: string }; // the file could not be decoded

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

/** File progress in audio time ("0:07 of 0:18 sent"), or null outside file mode. */
export function fileProgressText(phase: Phase): string | null {
  if (phase.kind === "classifying") return `Classifying all ${minSec(phase.durationMs)} of "${phase.fileName}"…`;
  if (phase.kind !== "file") return null;
  const sent = phase.progress * phase.durationMs;
  if (phase.progress >= 1) return `"${phase.fileName}": all ${minSec(phase.durationMs)} classified`;
  return `"${phase.fileName}": ${minSec(sent)} of ${minSec(phase.durationMs)} sent`;
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
