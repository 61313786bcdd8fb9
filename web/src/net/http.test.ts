import { describe, expect, it } from "vitest";
import { ClassifyError, classifyWav, fetchServerInfo, httpBase, parseReadyz, UNAVAILABLE } from "./http";

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
  const body = { status: "ready", model: "pitch", backend: "pitch", labels: ["male", "female"], fallback: "hub down" };

  it("reads the model line, and 503 while loading as starting", () => {
    expect(parseReadyz(200, body)).toEqual({ ...body, status: "ready" });
    expect(parseReadyz(503, { status: "loading" })).toMatchObject({ status: "starting", model: null, labels: [] });
    expect(parseReadyz(503, { status: "stopping" }).status).toBe("unavailable");
    expect(parseReadyz(401, { error: {} }).status).toBe("unavailable");
    expect(parseReadyz(200, null)).toEqual(UNAVAILABLE);
  });

  it("degrades to unavailable when /readyz cannot be fetched or read", async () => {
    const down = (async () => Promise.reject(new TypeError("network"))) as unknown as typeof fetch;
    expect(await fetchServerInfo("http://h/", undefined, down)).toEqual(UNAVAILABLE);
    expect(await fetchServerInfo("http://h/", undefined, respond(200, "not json"))).toEqual(UNAVAILABLE);
    expect((await fetchServerInfo("http://h/", "t", respond(200, body))).model).toBe("pitch");
  });
});

describe("/classify", () => {
  const signal = new AbortController().signal;

  it("returns the results and segments", async () => {
    const answer = await classifyWav(
      "http://h/",
      new ArrayBuffer(44),
      undefined,
      signal,
      respond(200, {
        model: "pitch",
        backend: "pitch",
        fallback: null,
        labels: ["male", "female"],
        duration_ms: 1000,
        window_ms: 1000,
        hop_ms: 500,
        results: [],
        segments: [],
      }),
    );
    expect(answer).toMatchObject({ model: "pitch", labels: ["male", "female"], durationMs: 1000, hopMs: 500 });
  });

  it("rejects with the server's message, or its status", async () => {
    const busy = respond(503, { error: { code: "busy", message: "expected at most 2 uploads at once" } });
    await expect(classifyWav("http://h/", new ArrayBuffer(0), "t", signal, busy)).rejects.toThrow(
      new ClassifyError("expected at most 2 uploads at once"),
    );
    await expect(
      classifyWav("http://h/", new ArrayBuffer(0), undefined, signal, respond(502, "not json")),
    ).rejects.toThrow("the server answered 502");
  });
});
