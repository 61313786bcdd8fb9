import { describe, expect, it } from "vitest";
import type { EngineState } from "../audio/engine";
import type { ConnState } from "../net/client";
import {
  connState,
  fileProgress,
  fileProgressText,
  isBusy,
  isLive,
  micState,
  type Phase,
  phaseErrors,
  serverStarting,
} from "./phase";

const mic = (m: EngineState["kind"], c: ConnState["kind"]): Phase =>
  ({ kind: "mic", mic: { kind: m }, conn: { kind: c } }) as Phase;
const file = (c: ConnState["kind"], progress = 0.5): Phase =>
  ({ kind: "file", fileName: "a.wav", conn: { kind: c }, progress }) as Phase;

describe("phase selectors", () => {
  it("read the microphone and the connection, idle where there is none", () => {
    const p = mic("running", "open");
    expect(micState(p)).toEqual({ kind: "running" });
    expect(connState(p)).toEqual({ kind: "open" });
    expect(micState(file("open"))).toEqual({ kind: "idle" });
    expect(connState(file("stopping"))).toEqual({ kind: "stopping" });
    for (const p of [
      { kind: "idle" },
      { kind: "decoding", fileName: "x", bytes: 1, sinceMs: 0 },
      { kind: "file_error", message: "m" },
    ] as Phase[]) {
      expect(micState(p)).toEqual({ kind: "idle" });
      expect(connState(p)).toEqual({ kind: "idle" });
    }
  });

  it("file progress only in file mode", () => {
    expect(fileProgress(file("open", 0.25))).toBe(0.25);
    expect(fileProgress(mic("running", "open"))).toBeNull();
    expect(fileProgress({ kind: "decoding", fileName: "x", bytes: 1, sinceMs: 0 })).toBeNull();
  });

  it("busy while the microphone starts or runs, a decode runs, or the connection lives", () => {
    expect(isBusy({ kind: "idle" })).toBe(false);
    expect(isBusy({ kind: "decoding", fileName: "x", bytes: 1, sinceMs: 0 })).toBe(true);
    expect(isBusy({ kind: "file_error", message: "m" })).toBe(false);
    expect(isBusy(mic("starting", "idle"))).toBe(true);
    expect(isBusy(mic("running", "closed"))).toBe(true);
    for (const c of ["connecting", "open", "reconnecting", "stopping"] as const) {
      expect(isBusy(mic("stopped", c))).toBe(true);
      expect(isBusy(file(c))).toBe(true);
    }
    for (const m of ["idle", "stopped", "error"] as const) expect(isBusy(mic(m, "closed"))).toBe(false);
    expect(isBusy(file("closed"))).toBe(false);
    expect(isBusy(file("idle"))).toBe(false);
  });
});

describe("phaseErrors", () => {
  const url = "ws://h/audio";

  it("is empty when nothing went wrong", () => {
    expect(phaseErrors({ kind: "idle" }, url)).toEqual([]);
    expect(phaseErrors(mic("running", "open"), url)).toEqual([]);
  });

  it("says why the microphone failed", () => {
    const p: Phase = {
      kind: "mic",
      mic: { kind: "error", error: { code: "denied", message: "Microphone access was denied." } },
      conn: { kind: "closed", code: 1000, reason: "closed" },
    };
    expect(phaseErrors(p, url)).toEqual(["Microphone access was denied."]);
  });

  it("passes a file error on", () => {
    expect(phaseErrors({ kind: "file_error", message: '"x" could not be decoded' }, url)).toEqual([
      '"x" could not be decoded',
    ]);
  });

  it("names the server it cannot reach", () => {
    const p: Phase = {
      kind: "mic",
      mic: { kind: "running", contextRate: 16000, deviceLabel: "" },
      conn: { kind: "reconnecting", attempt: 2, delayMs: 1000, reason: "lost", retryAtMs: 0, unreachable: false },
    };
    expect(phaseErrors(p, url)).toEqual(["Cannot reach the server at ws://h/audio; retrying."]);
  });

  it("reports an abnormal close with its reason, else its code; a normal close is no error", () => {
    const closed = (code: number, reason: string): Phase => ({
      kind: "file",
      fileName: "a",
      progress: 1,
      durationMs: 1000,
      conn: { kind: "closed", code, reason },
    });
    expect(phaseErrors(closed(1008, "bad token"), url)).toEqual(["The server closed the stream: bad token"]);
    expect(phaseErrors(closed(1011, ""), url)).toEqual(["The server closed the stream: 1011"]);
    expect(phaseErrors(closed(1000, "stream ended"), url)).toEqual([]);
    expect(phaseErrors(closed(1005, ""), url)).toEqual([]);
  });
});

describe("live, starting and file progress", () => {
  const fileAt = (progress: number, conn: ConnState): Phase => ({
    kind: "file",
    fileName: "a.wav",
    progress,
    durationMs: 18_800,
    conn,
  });

  it("is live only while results can arrive", () => {
    const running = { kind: "running", contextRate: 16000, deviceLabel: "" } as const;
    expect(isLive({ kind: "mic", mic: running, conn: { kind: "open" } })).toBe(true);
    expect(
      isLive({
        kind: "mic",
        mic: running,
        conn: { kind: "reconnecting", attempt: 1, delayMs: 500, reason: "x", retryAtMs: 0, unreachable: false },
      }),
    ).toBe(false);
    expect(isLive({ kind: "mic", mic: { kind: "stopped" }, conn: { kind: "stopping" } })).toBe(false);
    expect(isLive(fileAt(0.5, { kind: "open" }))).toBe(true);
    expect(isLive(fileAt(1, { kind: "open" }))).toBe(false);
    expect(isLive({ kind: "classifying", fileName: "a", durationMs: 1, sinceMs: 0, estimateMs: null })).toBe(false);
    expect(isLive({ kind: "idle" })).toBe(false);
  });

  it("reads not_ready as the server starting, not as unreachable", () => {
    const p: Phase = {
      kind: "mic",
      mic: { kind: "running", contextRate: 16000, deviceLabel: "" },
      conn: { kind: "reconnecting", attempt: 2, delayMs: 1000, reason: "not_ready", retryAtMs: 0, unreachable: false },
    };
    expect(serverStarting(p)).toBe(true);
    expect(phaseErrors(p, "ws://h/audio")).toEqual([]);
  });

  it("says file progress in audio time, what is left, and where a stopped file stopped", () => {
    expect(fileProgressText(fileAt(0.5, { kind: "open" }))).toBe('"a.wav": 0:09 of 0:18 sent · 0:09 left');
    expect(fileProgressText(fileAt(1, { kind: "closed", code: 1000, reason: "classified" }))).toBe(
      '"a.wav": all 0:18 classified',
    );
    expect(fileProgressText({ ...fileAt(0.5, { kind: "stopping" }), stoppedMs: 9_400 } as Phase)).toBe(
      '"a.wav": stopped at 0:09 of 0:18; the results cover only that',
    );
    const classifying: Phase = {
      kind: "classifying",
      fileName: "a.wav",
      durationMs: 18_800,
      sinceMs: 1000,
      estimateMs: null,
    };
    expect(fileProgressText(classifying)).toBe('Classifying all 0:18 of "a.wav"…');
    expect(fileProgressText({ ...classifying, estimateMs: 40_000 }, 13_000)).toBe(
      'Classifying all 0:18 of "a.wav"… 0:12 of about 0:40',
    );
    expect(fileProgressText({ kind: "decoding", fileName: "b.mp3", bytes: 3_250_000, sinceMs: 0 }, 3000)).toBe(
      'Decoding "b.mp3" (3.3 MB) in the browser… 0:03',
    );
    expect(fileProgressText({ kind: "idle" })).toBeNull();
    expect(fileProgressText({ kind: "idle", cancelled: '"b.mp3": cancelled while decoding' })).toBe(
      '"b.mp3": cancelled while decoding',
    );
    expect(isBusy({ kind: "classifying", fileName: "a.wav", durationMs: 1, sinceMs: 0, estimateMs: null })).toBe(true);
  });
});
