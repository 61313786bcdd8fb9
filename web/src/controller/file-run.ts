// File mode's run, apart from the PageController that owns it: decode the file, then classify it
// over the stream in real time (a live demo) or whole through POST /classify, with the phase
// telling a person where it is (decoding, classifying with an estimate, progress, where Stop
// left it). The controller lends what it owns through FileHost. No React, no timers of its own.

import { TARGET_RATE } from "../audio/pcm";
import { minSec } from "../format";
import { type ClassifyAnswer, inStreamOrder, type ServerInfo } from "../net/http";
import type { ServerMessage } from "../protocol/messages";
import { streamSamples } from "./file-stream";
import type { Phase } from "./phase";
import type { ClientLike, ControllerDeps } from "./controller";
import type { SendClock } from "./send-clock";

/** The part of a controller's run that a file run reads and sets. */
export interface FileRun {
  abort: AbortController | null; // a /classify upload
  clock: SendClock;
  ended: boolean;
}

/** What a file run needs of the controller, for this run only (ignored once a newer run began). */
export interface FileHost {
  readonly deps: Pick<ControllerDeps, "decodeFile" | "classify" | "now" | "sleep">;
  server(): ServerInfo | null; // what /readyz last said, for the estimate
  setPhase(change: (phase: Phase) => Phase): void;
  hold(samples: Float32Array, fileName: string): void; // the decoded copy, for listening back
  clearResults(): void; // nothing shown may be taken for this file's results
  openClient(): ClientLike; // a lossless stream that does not reconnect
  setLevel(level: number): void;
  dispatch(message: ServerMessage): void;
  unreadable(problem: string): void;
}

/** How long the server should take to classify `durationMs` of audio, from its last reported
 * capacity (windows per second, /readyz); null when it never said. */
export function estimateMs(server: ServerInfo | null, durationMs: number): number | null {
  if (!server?.windowsPerS || !server.hopMs) return null;
  return (durationMs / server.hopMs / server.windowsPerS) * 1000;
}

/**
 * Decode `file` and classify it: in real time over the stream (results arrive as the audio
 * plays), or "fast" through POST /classify, which classifies every window (never drops, however
 * busy the server). Never rejects; a failure is in the phase.
 */
export async function runFile(host: FileHost, run: FileRun, url: string, file: File, realtime: boolean): Promise<void> {
  const { deps } = host;
  host.clearResults();
  let samples: Float32Array;
  try {
    samples = await deps.decodeFile(file);
  } catch {
    if (run.ended) return;
    run.ended = true;
    host.setPhase(() => ({ kind: "file_error", message: `"${file.name}" could not be decoded as audio.` }));
    return;
  }
  if (run.ended) return; // Stop pressed while decoding
  host.hold(samples, file.name);
  const durationMs = (samples.length / TARGET_RATE) * 1000;
  if (!realtime) return classifyFast(host, run, url, file.name, samples, durationMs);
  host.setPhase(() => ({ kind: "file", fileName: file.name, conn: { kind: "idle" }, progress: 0, durationMs }));
  const client = host.openClient();
  await streamSamples(samples, client, {
    realtime,
    cancelled: () => run.ended,
    onChunk: (level, progress, sent) => {
      run.clock.sent(sent, deps.now());
      host.setLevel(level);
      // The page re-renders when the shown progress moves (a tenth of a second of audio), not per chunk.
      const shown = (p: number) => Math.round((p * durationMs) / 100);
      host.setPhase((p) =>
        p.kind === "file" && (shown(progress) !== shown(p.progress) || progress >= 1) ? { ...p, progress } : p,
      );
    },
    now: deps.now,
    sleep: deps.sleep,
  });
  if (run.ended) return; // Stop pressed: stop() already asked the server to finish
  run.ended = true;
  host.setLevel(0);
  client.stop();
}

async function classifyFast(
  host: FileHost,
  run: FileRun,
  url: string,
  fileName: string,
  samples: Float32Array,
  durationMs: number,
): Promise<void> {
  const { deps } = host;
  run.abort = new AbortController();
  const estimate = estimateMs(host.server(), durationMs);
  host.setPhase(() => ({ kind: "classifying", fileName, durationMs, sinceMs: deps.now(), estimateMs: estimate }));
  host.clearResults();
  let answer: ClassifyAnswer;
  try {
    answer = await deps.classify(url, samples, run.abort.signal);
  } catch (err) {
    if (run.ended) return; // Stop pressed: the upload was abandoned
    run.ended = true;
    const why = err instanceof Error ? err.message : String(err);
    host.setPhase(() => ({ kind: "file_error", message: `"${fileName}" was not classified: ${why}` }));
    return;
  }
  if (run.ended) return;
  run.ended = true;
  // The server's own messages for the file's stream, as a live stream would have sent them;
  // then what failed the parser (after `ready`, which clears the errors of earlier streams).
  for (const message of inStreamOrder(answer)) host.dispatch(message);
  for (const problem of answer.problems) host.unreadable(problem.message);
  host.setPhase(() => ({
    kind: "file",
    fileName,
    conn: { kind: "closed", code: 1000, reason: "classified" },
    progress: 1,
    durationMs,
  }));
}

/** The phase Stop leaves behind for a file run: what was cancelled or where the file stopped;
 * null when `phase` is not a file's. */
export function stoppedFilePhase(phase: Phase, nowMs: number): Phase | null {
  if (phase.kind === "decoding") return { kind: "idle", cancelled: `"${phase.fileName}": cancelled while decoding` };
  if (phase.kind === "classifying") {
    const took = minSec(nowMs - phase.sinceMs);
    return {
      kind: "idle",
      cancelled: `"${phase.fileName}": cancelled after ${took} of classifying; nothing came back`,
    };
  }
  if (phase.kind === "file" && phase.progress < 1) {
    return { ...phase, stoppedMs: Math.round(phase.progress * phase.durationMs) };
  }
  return null;
}
