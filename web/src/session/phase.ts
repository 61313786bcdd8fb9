// What the page is doing, as one union, and the pure questions the page asks of it.
// The session controller is the only writer; components only read.

import type { EngineState } from "../audio/engine";
import type { ConnState } from "../net/client";

export type Phase =
  | { kind: "idle" } // nothing started yet, or a file decode was cancelled
  | { kind: "mic"; mic: EngineState; conn: ConnState } // a microphone stream, live or finished
  | { kind: "decoding"; fileName: string } // a chosen file is being decoded; no connection yet
  | { kind: "file"; fileName: string; conn: ConnState; progress: number } // progress in [0, 1]
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
  if (phase.kind === "decoding") return true;
  const mic = micState(phase).kind;
  return mic === "running" || mic === "starting" || ACTIVE_CONN.has(connState(phase).kind);
}

/** File progress in [0, 1], or null outside file mode. */
export function fileProgress(phase: Phase): number | null {
  return phase.kind === "file" ? phase.progress : null;
}

/** The plain-language problems of this phase, for the error banner (server messages come separately). */
export function phaseErrors(phase: Phase, wsUrl: string | null): string[] {
  const conn = connState(phase);
  const out: string[] = [];
  if (phase.kind === "mic" && phase.mic.kind === "error") out.push(phase.mic.error.message);
  if (phase.kind === "file_error") out.push(phase.message);
  if (conn.kind === "reconnecting") out.push(`Cannot reach the server at ${wsUrl}; retrying.`);
  if (conn.kind === "closed" && conn.code !== 1000 && conn.code !== 1005) {
    out.push(`The server closed the stream: ${conn.reason || conn.code}`);
  }
  return out;
}
