import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { end as endMessageOf, ready as readyMessage, result } from "../protocol/test-fixtures";
import { backoffDelay, type ClientOptions, type ConnState, StreamClient } from "./client";
import { FakeSocket } from "./fake-socket";

const ready = readyMessage({ stream_id: "abc", backend: "b", labels: ["x"] });
const endMessage = endMessageOf({ stream_id: "abc", duration_ms: 1, windows: 1, results: 1 });

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

  function make(states: ConnState[], messages: unknown[] = [], extra: Partial<ClientOptions> = {}) {
    return new StreamClient({
      url: "ws://x/audio",
      start: { type: "start", sample_rate: 16000 },
      reconnect: true,
      onMessage: (m) => messages.push(m),
      onState: (s) => states.push(s),
      createSocket: (url) => new FakeSocket(url) as unknown as WebSocket,
      ...extra,
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

  it("backs off to at most 2 s by default, and Retry now connects at once", () => {
    const states: ConnState[] = [];
    const client = make(states);
    client.retryNow(); // nothing to retry yet
    expect(FakeSocket.instances).toHaveLength(0);
    client.connect();
    for (let i = 0; i < 4; i++) {
      FakeSocket.instances.at(-1)!.drop(1013, "not_ready");
      vi.runOnlyPendingTimers();
    }
    FakeSocket.instances.at(-1)!.drop(1013, "not_ready");
    expect(states.at(-1)).toMatchObject({ kind: "reconnecting", delayMs: 2000, reason: "not_ready" });
    const before = FakeSocket.instances.length;
    client.retryNow();
    expect(FakeSocket.instances).toHaveLength(before + 1);
    expect(states.at(-1)).toMatchObject({ kind: "connecting" });
    vi.advanceTimersByTime(5000); // the cancelled timer does not connect again
    expect(FakeSocket.instances).toHaveLength(before + 1);
  });

  it("waits at least the retry_after_ms of a refused stream before trying again", () => {
    const states: ConnState[] = [];
    const client = make(states);
    client.connect();
    const full = FakeSocket.instances[0];
    full.open();
    full.onmessage?.({
      data: '{"type":"error","code":"too_many_streams","message":"full","retry_after_ms":1500}',
    });
    full.drop(1013, "too_many_streams");
    expect(states.at(-1)).toMatchObject({ kind: "reconnecting", delayMs: 1500 }); // not 500
    vi.advanceTimersByTime(1500);
    FakeSocket.instances[1].drop(1006); // once only: the next delay is the backoff again
    expect(states.at(-1)).toMatchObject({ kind: "reconnecting", delayMs: 1000 });
  });

  it("reconnects at once when its front says it is moving, then backs off as usual", () => {
    const states: ConnState[] = [];
    const client = make(states);
    client.connect();
    const draining = FakeSocket.instances[0];
    draining.open();
    draining.onmessage?.({ data: '{"type":"moving","reason":"shutdown","retry_after_ms":0}' });
    draining.drop(1012, "service restart");
    expect(states.at(-1)).toMatchObject({ kind: "reconnecting", delayMs: 0 }); // not 500
    vi.advanceTimersByTime(0);
    expect(FakeSocket.instances).toHaveLength(2);
    FakeSocket.instances[1].drop(1006); // once only
    expect(states.at(-1)).toMatchObject({ kind: "reconnecting", delayMs: 1000 });
  });

  it("does not reconnect after a client error close code", () => {
    const states: ConnState[] = [];
    const client = make(states);
    client.connect();
    FakeSocket.instances[0].open();
    FakeSocket.instances[0].drop(1003, "unsupported_format");
    expect(states.at(-1)).toEqual({ kind: "closed", code: 1003, reason: "unsupported_format" });
  });

  it("bounds the audio held while disconnected, and says after each drop how much was dropped", () => {
    const dropped: number[] = [];
    const client = make([], [], { onDropped: (total) => dropped.push(total) });
    client.connect();
    for (let i = 0; i < 100; i++) client.send(new ArrayBuffer(1000));
    expect(client.droppedBytes).toBe(100_000 - 64_000);
    expect(dropped).toEqual(Array.from({ length: 36 }, (_, i) => (i + 1) * 1000)); // none before the queue is full
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

  it("starts idle, says it is connecting, and opens one socket however often connect is called", () => {
    const states: ConnState[] = [];
    const client = make(states);
    expect(client.current).toEqual({ kind: "idle" });
    client.connect();
    client.connect();
    expect(states).toEqual([{ kind: "connecting", attempt: 1 }]);
    expect(client.current).toEqual({ kind: "connecting", attempt: 1 });
    expect(FakeSocket.instances).toHaveLength(1);
    expect(FakeSocket.instances[0].binaryType).toBe("arraybuffer");
    expect(FakeSocket.instances[0].url).toBe("ws://x/audio");
  });

  it("uses the browser's WebSocket when no factory is given", () => {
    const client = make([], [], { createSocket: undefined });
    client.connect();
    expect(FakeSocket.instances.map((s) => s.url)).toEqual(["ws://x/audio"]);
  });

  it("retries with backoff when the socket cannot even be created", () => {
    const states: ConnState[] = [];
    const client = make(states, [], {
      createSocket: () => {
        throw new SyntaxError("bad url");
      },
    });
    client.connect();
    expect(states.at(-1)).toEqual({
      kind: "reconnecting",
      attempt: 1,
      delayMs: 500,
      retryAtMs: expect.any(Number),
      reason: "cannot connect to ws://x/audio: SyntaxError: bad url",
      unreachable: true,
    });
  });

  it("sends audio straight to an open socket, and held audio only once", () => {
    const client = make([]);
    client.connect();
    client.send(new ArrayBuffer(2));
    const first = FakeSocket.instances[0];
    first.open();
    client.send(new ArrayBuffer(6));
    expect(first.sent.slice(1).map((b) => (b as ArrayBuffer).byteLength)).toEqual([2, 6]);
    first.drop(1006);
    vi.advanceTimersByTime(500);
    const second = FakeSocket.instances[1];
    second.open();
    expect(second.sent).toHaveLength(1); // just the start message
  });

  it("says how many bytes the socket has not sent yet, 0 without a socket", () => {
    const client = make([]);
    expect(client.bufferedAmount).toBe(0);
    client.connect();
    FakeSocket.instances[0].bufferedAmount = 1234;
    expect(client.bufferedAmount).toBe(1234);
  });

  it("ignores binary frames from the server", () => {
    const messages: unknown[] = [];
    const errors: unknown[] = [];
    const client = make([], messages, { onProtocolError: (e) => errors.push(e) });
    client.connect();
    const ws = FakeSocket.instances[0];
    ws.open();
    ws.onmessage?.({ data: new ArrayBuffer(8) });
    expect(messages).toEqual([]);
    expect(errors).toEqual([]);
  });

  it("passes protocol errors to onProtocolError and lets other errors through", () => {
    const errors: unknown[] = [];
    const client = make([], [], {
      onProtocolError: (e) => errors.push(e),
      onMessage: () => {
        throw new TypeError("a bug in the page");
      },
    });
    client.connect();
    const ws = FakeSocket.instances[0];
    ws.open();
    ws.onmessage?.({ data: "garbage" });
    expect(errors).toHaveLength(1);
    expect(() => ws.onmessage?.({ data: JSON.stringify(result(0)) })).toThrow("a bug in the page");
    expect(errors).toHaveLength(1);
  });

  it("hands a pace to the page like any message, and skips a kind it does not know (an older page's view of pace)", () => {
    const messages: unknown[] = [];
    const logged: string[] = [];
    const client = make([], messages, { log: (line) => logged.push(line) });
    client.connect();
    const ws = FakeSocket.instances[0];
    ws.open();
    const pace = { type: "pace", hop_ms: 1000, normal_hop_ms: 500, reason: "busy" };
    ws.onmessage?.({ data: JSON.stringify(pace) });
    ws.onmessage?.({ data: JSON.stringify({ ...pace, type: "pace2" }) });
    ws.onmessage?.({ data: JSON.stringify(result(0)) });
    expect(messages).toEqual([pace, result(0)]);
    expect(logged).toEqual(['voxlive: skipping server messages of unknown type "pace2"']);
  });

  it("delivers the first result (seq 0), and messages without a numeric seq, without moving the resume point", () => {
    const messages: unknown[] = [];
    const client = make([], messages);
    client.connect();
    const first = FakeSocket.instances[0];
    first.open();
    first.onmessage?.({ data: JSON.stringify(ready) });
    first.onmessage?.({ data: JSON.stringify(result(0)) });
    first.onmessage?.({ data: JSON.stringify(result(1)) });
    const odd = { type: "error", code: "inference_failed", message: "x", seq: null };
    first.onmessage?.({ data: JSON.stringify(odd) });
    first.onmessage?.({ data: JSON.stringify(endMessage) });
    expect(messages.map((m) => (m as { type: string }).type)).toEqual(["ready", "result", "result", "error", "end"]);
    first.drop(1006);
    vi.advanceTimersByTime(500);
    FakeSocket.instances[1].open();
    expect(JSON.parse(FakeSocket.instances[1].sent[0] as string)).toEqual({
      type: "start",
      sample_rate: 16000,
      stream_id: "abc",
      last_seq: 1,
    });
  });

  it("resumes from last_seq -1 when no result had arrived", () => {
    const client = make([]);
    client.connect();
    FakeSocket.instances[0].open();
    FakeSocket.instances[0].onmessage?.({ data: JSON.stringify(ready) });
    FakeSocket.instances[0].drop(1006);
    vi.advanceTimersByTime(500);
    FakeSocket.instances[1].open();
    expect(JSON.parse(FakeSocket.instances[1].sent[0] as string)).toMatchObject({ last_seq: -1 });
  });

  it("says the server is unreachable until a connection opened, then names a lost one's code", () => {
    const states: ConnState[] = [];
    let now = 10_000;
    const client = make(states, [], { now: () => now });
    client.connect();
    FakeSocket.instances[0].drop(1006); // never opened: there was no connection to lose
    expect(states.at(-1)).toMatchObject({
      reason: "server unreachable at ws://x/audio",
      unreachable: true,
      retryAtMs: 10_500, // for a countdown
    });
    now += 500;
    vi.advanceTimersByTime(500);
    FakeSocket.instances[1].open();
    FakeSocket.instances[1].drop(1006);
    expect(states.at(-1)).toMatchObject({ reason: "connection lost (code 1006)", unreachable: false });
    vi.advanceTimersByTime(1000); // the second attempt's backoff
    FakeSocket.instances[2].drop(1001, "going away");
    expect(states.at(-1)).toMatchObject({ kind: "reconnecting", reason: "going away" });
  });

  it("numbers a new stream's results afresh: after a restart seq 0 is news, not a replay", () => {
    const messages: { type: string; seq?: number }[] = [];
    const client = make([], messages);
    client.connect();
    const socket = FakeSocket.instances[0];
    socket.open();
    socket.onmessage?.({ data: JSON.stringify({ ...ready, stream_id: "a" }) });
    for (const seq of [0, 1, 2]) socket.onmessage?.({ data: JSON.stringify(result(seq)) });
    socket.drop(1006);
    vi.advanceTimersByTime(500);
    const again = FakeSocket.instances[1];
    again.open();
    expect(JSON.parse(again.sent[0] as string)).toMatchObject({ stream_id: "a", last_seq: 2 });
    again.onmessage?.({ data: JSON.stringify({ ...ready, stream_id: "b", resumed: false }) });
    again.onmessage?.({ data: JSON.stringify(result(0)) });
    again.onmessage?.({ data: JSON.stringify(result(0)) }); // a repeat is still dropped
    expect(messages.filter((m) => m.type === "result").map((m) => m.seq)).toEqual([0, 1, 2, 0]);
  });

  it("says where a stream begins in the audio it was given: after what was dropped while down", () => {
    const client = make([], [], { maxQueuedBytes: 4 });
    client.connect();
    client.send(new ArrayBuffer(4));
    client.send(new ArrayBuffer(4)); // the first 4 bytes are dropped
    client.send(new ArrayBuffer(2)); // ... and this pushes out the second frame
    FakeSocket.instances[0].open();
    expect(client.streamStartBytes).toBe(8);
    expect(client.droppedBytes).toBe(8);
  });

  it("stop() while a connection never opens ends as stopped, not as a server's 1006", () => {
    const states: ConnState[] = [];
    const client = make(states);
    client.connect();
    client.stop();
    FakeSocket.instances[0].drop(1006);
    expect(states.at(-1)).toEqual({ kind: "closed", code: 1000, reason: "stopped before the server answered" });
  });

  it("close() while connecting leaves no late close behind (the socket's 1006 is not news)", () => {
    const states: ConnState[] = [];
    const client = make(states);
    client.connect();
    client.close();
    FakeSocket.instances[0].drop(1006);
    expect(states.at(-1)).toEqual({ kind: "closed", code: 1000, reason: "closed" });
  });

  it("does not reconnect after a normal close by the server, or when reconnect is off", () => {
    const states: ConnState[] = [];
    make(states).connect();
    FakeSocket.instances[0].drop(1000, "max duration");
    expect(states.at(-1)).toEqual({ kind: "closed", code: 1000, reason: "max duration" });
    const off: ConnState[] = [];
    make(off, [], { reconnect: false }).connect();
    FakeSocket.instances[1].drop(1006);
    expect(off.at(-1)).toEqual({ kind: "closed", code: 1006, reason: "" });
    vi.advanceTimersByTime(10_000);
    expect(FakeSocket.instances).toHaveLength(2);
  });

  it("stop while connecting waits for the socket, then sends stop after the held audio", () => {
    const states: ConnState[] = [];
    const client = make(states);
    client.connect();
    client.send(new ArrayBuffer(4));
    client.stop();
    const ws = FakeSocket.instances[0];
    expect(ws.sent).toEqual([]);
    expect(client.current.kind).toBe("connecting");
    ws.open();
    expect(ws.sent).toHaveLength(3);
    expect(JSON.parse(ws.sent[2] as string)).toEqual({ type: "stop" });
    expect(states.at(-1)).toEqual({ kind: "stopping" });
  });

  it("stop during the backoff wait closes at once and never reconnects", () => {
    const states: ConnState[] = [];
    const client = make(states);
    client.connect();
    FakeSocket.instances[0].drop(1006);
    client.stop();
    expect(states.at(-1)).toEqual({ kind: "closed", code: 1000, reason: "stopped" });
    vi.advanceTimersByTime(10_000);
    expect(FakeSocket.instances).toHaveLength(1);
  });

  it("stop before connect does nothing", () => {
    const states: ConnState[] = [];
    make(states).stop();
    expect(states).toEqual([]);
  });

  it("close drops the socket with 1000 and reports closed once", () => {
    const states: ConnState[] = [];
    const client = make(states);
    client.connect();
    const ws = FakeSocket.instances[0];
    ws.open();
    client.close();
    client.close();
    expect(ws.closeCalls).toEqual([[1000, "client closed"]]);
    expect(states.filter((s) => s.kind === "closed")).toEqual([{ kind: "closed", code: 1000, reason: "closed" }]);
  });

  it("close during the backoff wait never reconnects", () => {
    const client = make([]);
    client.connect();
    FakeSocket.instances[0].drop(1006);
    client.close();
    vi.advanceTimersByTime(10_000);
    expect(FakeSocket.instances).toHaveLength(1);
    expect(client.current).toEqual({ kind: "closed", code: 1000, reason: "closed" });
  });

  it("close while connecting does not reconnect when the socket then reports 1006", () => {
    const states: ConnState[] = [];
    const client = make(states);
    client.connect();
    const ws = FakeSocket.instances[0];
    client.close();
    ws.drop(1006); // a browser closing a CONNECTING socket reports an abnormal close
    vi.advanceTimersByTime(10_000);
    expect(FakeSocket.instances).toHaveLength(1);
    expect(states.some((s) => s.kind === "reconnecting")).toBe(false);
  });

  it("close before connect reports closed", () => {
    const client = make([]);
    client.close();
    expect(client.current).toEqual({ kind: "closed", code: 1000, reason: "closed" });
  });
});
