import { describe, expect, it } from "vitest";
import { ProtocolError } from "../protocol/messages";
import { end, ready, result, specVector } from "../protocol/test-fixtures";
import {
  ClassifyError,
  classifyWav,
  fetchServerInfo,
  httpBase,
  inStreamOrder,
  parseClassifyAnswer,
  parseReadyz,
  UNAVAILABLE,
} from "./http";

const respond = (status: number, body: unknown) =>
  (async () =>
    ({
      ok: status < 400,
      status,
      json: async () => (body === "not json" ? Promise.reject(new SyntaxError("x")) : body),
    }) as Response) as unknown as typeof fetch;

describe("httpBase", () => {
  it.each([
    ["ws://h:8000/audio", "http://h:8000/"],
    ["wss://example.org/voxlive/audio?token=x", "https://example.org/voxlive/"],
  ])("%s → %s", (ws, http) => expect(httpBase(ws)).toBe(http));
});

describe("/readyz", () => {
  const body = {
    status: "ready",
    model: "pitch",
    backend: "pitch",
    labels: ["male", "female"],
    fallback: "hub down",
    config: { version: "0.1.0", smoothing: 4, gate: "vad" },
  };

  it("reads the model line, and 503 while loading as starting", () => {
    expect(parseReadyz(200, body)).toEqual({ ...body, status: "ready", hopMs: null, windowsPerS: null });
    const gauge = { ...body, hop_ms: 500, capacity: { windows_per_s: 120.5 } };
    expect(parseReadyz(200, gauge)).toMatchObject({ hopMs: 500, windowsPerS: 120.5 });
    expect(parseReadyz(503, { status: "loading" })).toMatchObject({ status: "starting", model: null, labels: [] });
    expect(parseReadyz(503, { status: "stopping" }).status).toBe("unavailable");
    expect(parseReadyz(401, { error: {} }).status).toBe("unavailable");
    expect(parseReadyz(200, null)).toEqual(UNAVAILABLE);
  });

  it("keeps only the scalar values of config, and null without one", () => {
    expect(parseReadyz(200, { ...body, config: { a: 1, b: [2], c: { d: 3 }, e: null } }).config).toEqual({
      a: 1,
      e: null,
    });
    expect(parseReadyz(200, { ...body, config: "x" }).config).toBeNull();
  });

  it("degrades to unavailable when /readyz cannot be fetched or read", async () => {
    const down = (async () => Promise.reject(new TypeError("network"))) as unknown as typeof fetch;
    // Nothing answered (the server is down): unreachable, which the page keeps asking about.
    expect(await fetchServerInfo("http://h/", undefined, down)).toEqual({ ...UNAVAILABLE, status: "unreachable" });
    expect(await fetchServerInfo("http://h/", undefined, respond(200, "not json"))).toEqual(UNAVAILABLE);
    expect((await fetchServerInfo("http://h/", "t", respond(200, body))).model).toBe("pitch");
  });
});

describe("/classify", () => {
  const signal = new AbortController().signal;

  const segment = (label: string, start: number, endMs: number) => ({
    type: "segment" as const,
    label,
    start_ms: start,
    end_ms: endMs,
    confidence: 0.9,
    windows: 2,
  });
  const body = {
    model: "pitch",
    backend: "pitch",
    fallback: null,
    labels: ["male", "female"],
    duration_ms: 2000,
    window_ms: 1000,
    hop_ms: 500,
    ready: ready({ stream_id: "file-0" }),
    results: [result(0), result(1)],
    segments: [segment("female", 0, 1000)],
    end: end({ stream_id: "file-0", windows: 2, results: 2 }),
  };

  it("returns the file's stream in the server's own messages", async () => {
    const answer = await classifyWav("http://h/", new ArrayBuffer(44), undefined, signal, respond(200, body));
    expect(answer).toEqual({
      ready: body.ready,
      windows: body.results,
      segments: body.segments,
      end: body.end,
      problems: [],
    });
  });

  it("reads the golden answer (spec/vectors/classify.json, which the Python tests build) without a problem", () => {
    const golden = (specVector("classify.json") as { answer: Record<string, unknown> }).answer;
    const answer = parseClassifyAnswer(golden);
    expect(answer).toEqual({
      ready: golden.ready,
      windows: golden.results,
      segments: golden.segments,
      end: golden.end,
      problems: [],
    });
    expect(inStreamOrder(answer).map((m) => m.type)).toEqual(["ready", "result", "result", "error", "segment", "end"]);
  });

  it("checks every item with the live parser: a bad one is left out and said why", () => {
    const answer = parseClassifyAnswer({
      ...body,
      ready: { ...body.ready, labels: "male" },
      results: [result(0), { ...result(1), seq: "1" }, body.end, 7],
      segments: "none",
    });
    expect(answer.ready).toBeNull();
    expect(answer.windows).toEqual([result(0)]);
    expect(answer.segments).toEqual([]);
    expect(answer.end).toEqual(body.end);
    expect(answer.problems.every((p) => p instanceof ProtocolError)).toBe(true);
    expect(answer.problems.map((p) => p.message)).toEqual([
      'ready: ready.labels: expected string[], got "male"',
      'results[1]: result.seq: expected number, got "1"',
      'results[2]: expected type result|error, got "end"',
      "results[3]: expected a JSON object, got number",
      'segments: expected a list, got "none"',
    ]);
  });

  it("a missing ready or end is a problem too (a server from before they were in the answer)", () => {
    const answer = parseClassifyAnswer({ ...body, ready: undefined, end: undefined });
    expect([answer.ready, answer.end]).toEqual([null, null]);
    expect(answer.windows).toHaveLength(2);
    expect(answer.problems.map((p) => p.message)).toEqual([
      "ready: expected a JSON object, got undefined",
      "end: expected a JSON object, got undefined",
    ]);
  });

  it("puts the messages in the stream's order: each segment right after the result that closed it", () => {
    const answer = parseClassifyAnswer({
      ...body,
      results: [result(0), result(1), result(2, "male"), result(3, "male")],
      segments: [segment("female", 0, 1000), segment("male", 1000, 2500)],
    });
    expect(inStreamOrder(answer).map((m) => (m.type === "result" ? m.seq : m.type))).toEqual([
      "ready",
      0,
      1,
      2,
      "segment",
      3,
      "segment",
      "end",
    ]);
    expect(inStreamOrder({ ...answer, ready: null, end: null })[0]).toEqual(result(0));
  });

  it("rejects with the server's message, or its status", async () => {
    const busy = respond(503, { error: { code: "busy", message: "expected at most 2 uploads at once" } });
    await expect(classifyWav("http://h/", new ArrayBuffer(0), "t", signal, busy)).rejects.toThrow(
      new ClassifyError("expected at most 2 uploads at once"),
    );
    await expect(
      classifyWav("http://h/", new ArrayBuffer(0), undefined, signal, respond(502, "not json")),
    ).rejects.toThrow("the server answered 502");
    await expect(classifyWav("http://h/", new ArrayBuffer(0), undefined, signal, respond(200, [1]))).rejects.toThrow(
      "the server's answer was not a JSON object",
    );
  });
});
