import { describe, expect, it } from "vitest";
import type { EndMessage, ReadyMessage, ResultMessage } from "../protocol/messages";
import { initialSession, MAX_RESULTS, resultsToCsv, sessionReducer, type SessionState, TIMELINE_MS } from "./session";

function result(seq: number, label = "female", extra: Partial<ResultMessage> = {}): ResultMessage {
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

describe("sessionReducer", () => {
  it("tracks the current result, latency and drops", () => {
    let s = sessionReducer(initialSession, { type: "message", message: result(0), atMs: 0 });
    s = sessionReducer(s, {
      type: "message",
      message: result(1, "male", { latency_ms: 120, dropped_ms: 500 }),
      atMs: 500,
    });
    expect(s.current?.label).toBe("male");
    expect(s.latencyMs).toBe(120);
    expect(s.droppedMs).toBe(500);
    expect(s.results).toHaveLength(2);
  });

  it("keeps only the last minute on the timeline but every result for export", () => {
    let s = initialSession;
    for (let i = 0; i < 200; i++) s = sessionReducer(s, { type: "message", message: result(i), atMs: i * 500 });
    expect(s.results).toHaveLength(200);
    expect(s.timeline.length).toBe(TIMELINE_MS / 500 + 1);
    expect(s.timeline[0].atMs).toBe(199 * 500 - TIMELINE_MS);
  });

  it("keeps the last five errors and resets", () => {
    let s = initialSession;
    for (let i = 0; i < 7; i++) {
      s = sessionReducer(s, {
        type: "message",
        message: { type: "error", code: "bad_frame", message: `e${i}` },
        atMs: i,
      });
    }
    expect(s.errors.map((e) => e.message)).toEqual(["e2", "e3", "e4", "e5", "e6"]);
    expect(sessionReducer(s, { type: "reset" })).toBe(initialSession);
  });
});

const ready: ReadyMessage = {
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
  resumed: false,
};

const end: EndMessage = {
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
};

describe("sessionReducer lifecycle", () => {
  it("a new session shows nothing yet", () => {
    expect(initialSession).toEqual({
      ready: null,
      current: null,
      timeline: [],
      results: [],
      segments: [],
      errors: [],
      end: null,
      droppedMs: 0,
      latencyMs: null,
    });
  });

  it("records ready and end; a later ready (a resumed stream) clears the end", () => {
    let s = sessionReducer(initialSession, { type: "message", message: ready, atMs: 0 });
    expect(s.ready).toBe(ready);
    s = sessionReducer(s, { type: "message", message: result(0), atMs: 10 });
    s = sessionReducer(s, { type: "message", message: end, atMs: 20 });
    expect(s.end).toBe(end);
    expect(s.results).toHaveLength(1);
    expect(s.ready).toBe(ready);
    s = sessionReducer(s, { type: "message", message: { ...ready, resumed: true }, atMs: 30 });
    expect(s.end).toBeNull();
    expect(s.ready?.resumed).toBe(true);
    expect(s.results).toHaveLength(1);
  });

  it("does not show resume_failed: the client carries on with a new stream", () => {
    const s = sessionReducer(initialSession, {
      type: "message",
      message: { type: "error", code: "resume_failed", message: "unknown stream" },
      atMs: 0,
    });
    expect(s).toBe(initialSession);
  });

  it("keeps at most MAX_RESULTS results, dropping the oldest", () => {
    const full: SessionState = { ...initialSession, results: Array.from({ length: MAX_RESULTS }, (_, i) => result(i)) };
    const s = sessionReducer(full, { type: "message", message: result(MAX_RESULTS), atMs: 0 });
    expect(s.results).toHaveLength(MAX_RESULTS);
    expect(s.results[0].seq).toBe(1);
    expect(s.results.at(-1)?.seq).toBe(MAX_RESULTS);
    const almost: SessionState = { ...full, results: full.results.slice(1) };
    const t = sessionReducer(almost, { type: "message", message: result(MAX_RESULTS), atMs: 0 });
    expect(t.results).toHaveLength(MAX_RESULTS);
    expect(t.results[0].seq).toBe(1);
  });
});

describe("resultsToCsv", () => {
  it("ends every row, the last included, with a newline", () => {
    expect(resultsToCsv([], ["male"])).toBe(
      "seq,start_ms,end_ms,label,confidence,smoothed,gated,latency_ms,score_male\n",
    );
  });

  it("quotes cells with commas, quotes or newlines", () => {
    const csv = resultsToCsv([result(0, 'a "b", c')], []);
    expect(csv.split("\n")[1]).toBe('0,0,1000,"a ""b"", c",0.9,"a ""b"", c",false,80');
  });

  it("writes one row per result with score columns", () => {
    const csv = resultsToCsv([result(0), result(1, "ambient", { scores: {}, gated: true })], ["male", "female"]);
    const lines = csv.trim().split("\n");
    expect(lines[0]).toBe("seq,start_ms,end_ms,label,confidence,smoothed,gated,latency_ms,score_male,score_female");
    expect(lines[1]).toBe("0,0,1000,female,0.9,female,false,80,0.1,0.9");
    expect(lines[2]).toBe("1,500,1500,ambient,0.9,ambient,true,80,,");
  });
});
