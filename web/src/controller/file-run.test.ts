import { describe, expect, it } from "vitest";
import { UNAVAILABLE } from "../net/http";
import { estimateMs, stoppedFilePhase } from "./file-run";

describe("file run", () => {
  it("estimates from the server's capacity, or not at all", () => {
    expect(estimateMs({ ...UNAVAILABLE, hopMs: 500, windowsPerS: 100 }, 60_000)).toBe(1200); // 120 windows
    expect(estimateMs({ ...UNAVAILABLE, hopMs: 500, windowsPerS: null }, 60_000)).toBeNull();
    expect(estimateMs(null, 60_000)).toBeNull();
  });

  it("says what Stop left of a file: cancelled, or where it stopped", () => {
    expect(stoppedFilePhase({ kind: "decoding", fileName: "a.wav", bytes: 1, sinceMs: 0 }, 5)).toEqual({
      kind: "idle",
      cancelled: '"a.wav": cancelled while decoding',
    });
    const classifying = {
      kind: "classifying",
      fileName: "a.wav",
      durationMs: 1,
      sinceMs: 0,
      estimateMs: null,
    } as const;
    expect(stoppedFilePhase(classifying, 3000)).toMatchObject({
      kind: "idle",
      cancelled: expect.stringContaining("0:03"),
    });
    const file = {
      kind: "file",
      fileName: "a.wav",
      conn: { kind: "idle" },
      progress: 0.5,
      durationMs: 10_000,
    } as const;
    expect(stoppedFilePhase(file, 0)).toMatchObject({ stoppedMs: 5000 });
    expect(stoppedFilePhase({ ...file, progress: 1 }, 0)).toBeNull(); // finished: nothing was stopped
    expect(stoppedFilePhase({ kind: "idle" }, 0)).toBeNull();
  });
});
