import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { backoffDelay, type ConnState, StreamClient } from "./client";

class FakeSocket {
  static instances: FakeSocket[] = [];
  static readonly OPEN = 1;
  readyState = 0;
  binaryType = "blob";
  sent: unknown[] = [];
  bufferedAmount = 0;
  onopen: (() => void) | null = null;
  onclose: ((e: { code: number; reason: string }) => void) | null = null;
  onmessage: ((e: { data: unknown }) => void) | null = null;
  constructor(readonly url: string) {
    FakeSocket.instances.push(this);
  }
  send(data: unknown) {
    this.sent.push(data);
  }
  close() {}
  open() {
    this.readyState = 1;
    this.onopen?.();
  }
  drop(code: number, reason = "") {
    this.readyState = 3;
    this.onclose?.({ code, reason });
  }
}

describe("backoffDelay", () => {
  it("doubles up to the maximum", () => {
    expect([1, 2, 3, 4, 5, 6].map((a) => backoffDelay(a, 500, 8000))).toEqual([500, 1000, 2000, 4000, 8000, 8000]);
  });
});

describe("StreamClient", () => {
  beforeEach(() => {
    vi.useFakeTimers();
    FakeSocket.instances = [];
    vi.stubGlobal("WebSocket", FakeSocket);
  });
  afterEach(() => {
    vi.useRealTimers();
    vi.unstubAllGlobals();
  });

  function make(states: ConnState[], messages: unknown[] = []) {
    return new StreamClient({
      url: "ws://x/audio",
      start: { type: "start", sample_rate: 16000 },
      reconnect: true,
      onMessage: (m) => messages.push(m),
      onState: (s) => states.push(s),
      createSocket: (url) => new FakeSocket(url) as unknown as WebSocket,
    });
  }

  it("sends start first, queues audio while connecting, and reconnects with backoff", () => {
    const states: ConnState[] = [];
    const client = make(states);
    client.connect();
    client.send(new ArrayBuffer(4));
    const first = FakeSocket.instances[0];
    first.open();
    expect(JSON.parse(first.sent[0] as string)).toEqual({ type: "start", sample_rate: 16000 });
    expect(first.sent).toHaveLength(2);
    first.drop(1006);
    expect(states.at(-1)).toMatchObject({ kind: "reconnecting", delayMs: 500 });
    vi.advanceTimersByTime(500);
    expect(FakeSocket.instances).toHaveLength(2);
    FakeSocket.instances[1].drop(1006);
    expect(states.at(-1)).toMatchObject({ kind: "reconnecting", delayMs: 1000 });
    vi.advanceTimersByTime(1000);
    FakeSocket.instances[2].open();
    expect(states.at(-1)).toEqual({ kind: "open" });
  });

  it("does not reconnect after a client error close code", () => {
    const states: ConnState[] = [];
    const client = make(states);
    client.connect();
    FakeSocket.instances[0].open();
    FakeSocket.instances[0].drop(1003, "unsupported_format");
    expect(states.at(-1)).toEqual({ kind: "closed", code: 1003, reason: "unsupported_format" });
  });

  it("bounds the audio held while disconnected", () => {
    const client = make([]);
    client.connect();
    for (let i = 0; i < 100; i++) client.send(new ArrayBuffer(1000));
    expect(client.droppedBytes).toBe(100_000 - 64_000);
  });

  it("parses messages and reports protocol errors without throwing", () => {
    const messages: unknown[] = [];
    const client = make([], messages);
    client.connect();
    const ws = FakeSocket.instances[0];
    ws.open();
    ws.onmessage?.({ data: '{"type":"error","code":"bad_frame","message":"x"}' });
    ws.onmessage?.({ data: "garbage" });
    expect(messages).toEqual([{ type: "error", code: "bad_frame", message: "x" }]);
  });

  it("stop sends stop and waits for the server to close", () => {
    const states: ConnState[] = [];
    const client = make(states);
    client.connect();
    const ws = FakeSocket.instances[0];
    ws.open();
    client.stop();
    expect(JSON.parse(ws.sent.at(-1) as string)).toEqual({ type: "stop" });
    expect(states.at(-1)).toEqual({ kind: "stopping" });
    ws.drop(1000, "stream ended");
    expect(states.at(-1)).toEqual({ kind: "closed", code: 1000, reason: "stream ended" });
  });

  it("resumes its stream after a drop and ignores replayed results it already has", () => {
    const messages: unknown[] = [];
    const client = make([], messages);
    client.connect();
    const first = FakeSocket.instances[0];
    first.open();
    const ready = {
      type: "ready",
      stream_id: "abc",
      model: "m",
      backend: "b",
      labels: ["x"],
      fallback: null,
      window_ms: 1000,
      hop_ms: 500,
      sample_rate: 16000,
      model_sample_rate: 16000,
      resumed: false,
    };
    const result = (seq: number) => ({
      type: "result",
      seq,
      start_ms: 0,
      end_ms: 1,
      label: "x",
      class: "x",
      confidence: 1,
      scores: {},
      smoothed: "x",
      gated: false,
      latency_ms: 1,
      dropped_ms: 0,
    });
    first.onmessage?.({ data: JSON.stringify(ready) });
    first.onmessage?.({ data: JSON.stringify(result(3)) });
    first.drop(1006);
    vi.advanceTimersByTime(500);
    const second = FakeSocket.instances[1];
    second.open();
    expect(JSON.parse(second.sent[0] as string)).toMatchObject({ type: "start", stream_id: "abc", last_seq: 3 });
    second.onmessage?.({ data: JSON.stringify(result(3)) }); // replayed: already seen
    second.onmessage?.({ data: JSON.stringify(result(4)) });
    expect(messages.filter((m) => (m as { type: string }).type === "result")).toHaveLength(2);
  });
});
