import { describe, expect, it } from "vitest";
import type { ResultMessage } from "../protocol/messages";
import { initialSession, resultsToCsv, sessionReducer, TIMELINE_MS } from "./session";

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

describe("resultsToCsv", () => {
  it("writes one row per result with score columns", () => {
    const csv = resultsToCsv([result(0), result(1, "ambient", { scores: {}, gated: true })], ["male", "female"]);
    const lines = csv.trim().split("\n");
    expect(lines[0]).toBe("seq,start_ms,end_ms,label,confidence,smoothed,gated,latency_ms,score_male,score_female");
    expect(lines[1]).toBe("0,0,1000,female,0.9,female,false,80,0.1,0.9");
    expect(lines[2]).toBe("1,500,1500,ambient,0.9,ambient,true,80,,");
  });
});
