// Server messages for the tests (not part of the app): one result factory instead of a copy per
// test file. Values follow the default model (labels male/female, 1 s windows, 500 ms hop).
import type { ResultMessage } from "./messages";

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
