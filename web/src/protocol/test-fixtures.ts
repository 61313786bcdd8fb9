// Server messages for the tests (not part of the app): one factory per message type instead of a
// copy per test file. Values follow the default model (labels male/female, 1 s windows, 500 ms hop).
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { EndMessage, ReadyMessage, ResultMessage } from "./messages";

/** spec/vectors/<name>, parsed, from the nearest folder above this file that has it (Stryker runs
 * from a copy of web/): the golden vectors the Python tests read too. */
export function specVector(name: string): unknown {
  for (let dir = dirname(fileURLToPath(import.meta.url)); ; dir = dirname(dir)) {
    const path = join(dir, "spec", "vectors", name);
    if (existsSync(path)) return JSON.parse(readFileSync(path, "utf8"));
    if (dirname(dir) === dir) throw new Error(`expected spec/vectors/${name} above ${import.meta.url}`);
  }
}

export function ready(extra: Partial<ReadyMessage> = {}): ReadyMessage {
  return {
    type: "ready",
    stream_id: "s1",
    model: "m",
    backend: "pitch",
    labels: ["male", "female"],
    fallback: null,
    window_ms: 1000,
    hop_ms: 500,
    sample_rate: 16000,
    model_sample_rate: 16000,
    smoothing: 4,
    resumed: false,
    ...extra,
  };
}

export function end(extra: Partial<EndMessage> = {}): EndMessage {
  return {
    type: "end",
    stream_id: "s1",
    duration_ms: 2000,
    windows: 3,
    results: 3,
    gated: 0,
    failed: 0,
    dropped_windows: 0,
    dropped_ms: 0,
    dropped_results: 0,
    dropped_errors: 0,
    ...extra,
  };
}

export function result(seq: number, label = "female", extra: Partial<ResultMessage> = {}): ResultMessage {
  return {
    type: "result",
    seq,
    start_ms: seq * 500,
    end_ms: seq * 500 + 1000,
    label,
    class: label,
    confidence: 0.9,
    scores: { male: 0.1, female: 0.9 },
    smoothed: label,
    gated: false,
    latency_ms: 80,
    dropped_ms: 0,
    ...extra,
  };
}

/** A promise with its resolve and reject handed out, for tests that settle it later. */
export function deferred<T>() {
  let resolve!: (value: T) => void;
  let reject!: (err: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}
