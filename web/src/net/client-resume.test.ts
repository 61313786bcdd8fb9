// The resume handshake of StreamClient with acks: what a new connection's `start` carries, what
// it replays, and how positions follow a new stream. The connection basics are in client.test.ts.
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { ready as readyMessage, result as resultMessage } from "../protocol/test-fixtures";
import { type ClientOptions, StreamClient } from "./client";
import { FakeSocket } from "./fake-socket";

const FRAME = 3200; // bytes: 100 ms of 16 kHz mono pcm_s16le, 1600 sample frames
const ready = (over: Record<string, unknown> = {}) => JSON.stringify(readyMessage({ stream_id: "s1", ...over }));
const ack = (samples: number, seq: number, token: string) => JSON.stringify({ type: "ack", samples, seq, token });
const result = (seq: number) => JSON.stringify(resultMessage(seq));

/** A frame whose first byte says which it is (frames are told apart in what a socket sent). */
function frame(n: number): ArrayBuffer {
  const buf = new ArrayBuffer(FRAME);
  new Uint8Array(buf)[0] = n;
  return buf;
}

const frameIds = (sent: unknown[]) =>
  sent.filter((d): d is ArrayBuffer => d instanceof ArrayBuffer).map((b) => new Uint8Array(b)[0]);
const starts = (sent: unknown[]) =>
  sent.filter((d): d is string => typeof d === "string").map((t) => JSON.parse(t) as Record<string, unknown>);

describe("StreamClient resume by token (acks)", () => {
  let messages: { type: string; seq?: number }[];
  beforeEach(() => {
    vi.useFakeTimers();
    FakeSocket.instances = [];
    vi.stubGlobal("WebSocket", FakeSocket);
    messages = [];
  });
  afterEach(() => {
    vi.useRealTimers();
    vi.unstubAllGlobals();
  });

  function make(extra: Partial<ClientOptions> = {}) {
    const client = new StreamClient({
      url: "ws://x/audio",
      start: { type: "start", sample_rate: 16000, encoding: "pcm_s16le", channels: 1, acks: true },
      reconnect: true,
      maxQueuedBytes: 4 * FRAME,
      maxReplayBytes: 10 * FRAME,
      onMessage: (m) => messages.push(m as { type: string; seq?: number }),
      onState: () => {},
      createSocket: (url) => new FakeSocket(url) as unknown as WebSocket,
      ...extra,
    });
    client.connect();
    return client;
  }

  const socket = (i: number) => FakeSocket.instances[i];
  const say = (i: number, text: string) => socket(i).onmessage?.({ data: text });

  /** Reconnect after `dropCode` on socket `i`: the backoff passes, the next socket opens. */
  function reconnect(i: number, dropCode = 1006) {
    socket(i).drop(dropCode);
    vi.advanceTimersByTime(2000);
    socket(i + 1).open();
  }

  it("replays the audio sent after the newest ack with its token, last_seq and replay_from, then goes on", () => {
    const client = make();
    socket(0).open();
    say(0, ready());
    for (let n = 0; n < 5; n++) client.send(frame(n)); // frames 0..8000
    say(0, result(0));
    say(0, ack(3200, 0, "tok-a")); // frames 0 and 1 are answered
    expect(messages.map((m) => m.type)).toEqual(["ready", "result"]); // the ack stays in the client
    expect(client.heldBytes).toBe(3 * FRAME);
    socket(0).drop(1006);
    client.send(frame(5)); // while down: held, unsent
    vi.advanceTimersByTime(2000);
    socket(1).open();
    expect(starts(socket(1).sent)).toEqual([
      {
        type: "start",
        sample_rate: 16000,
        encoding: "pcm_s16le",
        channels: 1,
        acks: true,
        stream_id: "s1",
        last_seq: 0,
        resume_token: "tok-a",
        replay_from: 3200,
      },
    ]);
    expect(frameIds(socket(1).sent)).toEqual([2, 3, 4, 5]);
    // The new front rebuilt the stream: results go on after last_seq, a repeat is dropped.
    say(1, ready({ resumed: true, replay_from: 3200 }));
    say(1, result(0));
    say(1, result(1));
    expect(messages.filter((m) => m.type === "result").map((m) => m.seq)).toEqual([0, 1]);
    // Positions go on: frame 6 is input frame 9600, and an ack there forgets everything before.
    client.send(frame(6));
    say(1, ack(9600, 1, "tok-b"));
    expect(client.heldBytes).toBe(FRAME);
    reconnect(1);
    expect(starts(socket(2).sent)[0]).toMatchObject({ resume_token: "tok-b", replay_from: 9600, last_seq: 1 });
    expect(frameIds(socket(2).sent)).toEqual([6]);
  });

  it("a refused resume starts a new stream from the replayed audio: positions and the token start again", () => {
    const client = make();
    socket(0).open();
    say(0, ready());
    for (let n = 0; n < 4; n++) client.send(frame(n));
    say(0, result(0));
    say(0, ack(3200, 0, "tok-a"));
    reconnect(0);
    expect(frameIds(socket(1).sent)).toEqual([2, 3]);
    const refused = {
      type: "error",
      code: "resume_failed",
      reason: "forged",
      message: "forged; starting a new stream",
    };
    say(1, JSON.stringify(refused));
    say(1, ready({ stream_id: "s2" }));
    expect(messages.map((m) => m.type)).toEqual(["ready", "result", "error", "ready"]);
    // The new stream's audio time 0 is frame 2: where the replay began, on the page's count.
    expect(client.streamStartBytes).toBe(2 * FRAME);
    say(1, result(0)); // seq 0 again: news, not a repeat
    expect(messages.filter((m) => m.type === "result")).toHaveLength(2);
    client.send(frame(4)); // the new stream's input frames 3200..4800
    reconnect(1); // no ack in the new stream yet: resume by stream_id alone, nothing replayed
    expect(starts(socket(2).sent)[0]).toEqual({
      type: "start",
      sample_rate: 16000,
      encoding: "pcm_s16le",
      channels: 1,
      acks: true,
      stream_id: "s2",
      last_seq: 0,
    });
    expect(frameIds(socket(2).sent)).toEqual([]);
    say(2, ready({ stream_id: "s2", resumed: true }));
    client.send(frame(5)); // input frame 4800 of s2 (the front kept what it had)
    say(2, ack(4800, 0, "tok-s2"));
    reconnect(2);
    expect(starts(socket(3).sent)[0]).toMatchObject({ stream_id: "s2", resume_token: "tok-s2", replay_from: 4800 });
    expect(frameIds(socket(3).sent)).toEqual([5]);
  });

  it("holds at most maxReplayBytes: what fell out is counted, and the replay starts after it", () => {
    const client = make({ maxReplayBytes: 3 * FRAME });
    socket(0).open();
    say(0, ready());
    say(0, ack(0, -1, "tok-0"));
    for (let n = 0; n < 5; n++) client.send(frame(n)); // no ack covers them: the oldest two fall out
    expect(client.replayDroppedBytes).toBe(2 * FRAME);
    expect(client.droppedBytes).toBe(0); // all of it reached a server
    reconnect(0);
    // Later than the ack: a front that lacks the audio between refuses it (resume_failed, gap).
    expect(starts(socket(1).sent)[0]).toMatchObject({ resume_token: "tok-0", replay_from: 3200 });
    expect(frameIds(socket(1).sent)).toEqual([2, 3, 4]);
  });

  it("holds maxQueuedBytes until the stream's first ack, maxReplayBytes from then until a new stream", () => {
    const onDropped = vi.fn();
    const client = make({ onDropped });
    socket(0).open();
    say(0, ready());
    for (let n = 0; n < 6; n++) client.send(frame(n));
    expect(client.heldBytes).toBe(4 * FRAME); // no token yet: the smaller bound
    say(0, ack(3200, 0, "tok-a"));
    for (let n = 6; n < 14; n++) client.send(frame(n));
    expect(client.heldBytes).toBe(10 * FRAME);
    socket(0).drop(1006);
    client.send(frame(14)); // held unsent; the oldest sent one falls out
    vi.advanceTimersByTime(2000);
    socket(1).open();
    say(1, JSON.stringify({ type: "error", code: "resume_failed", reason: "gap", message: "gap" }));
    say(1, ready({ stream_id: "s2" })); // a new stream: back to the smaller bound
    expect(client.heldBytes).toBe(4 * FRAME);
    expect(onDropped).not.toHaveBeenCalled(); // all of it was sent: none of it is "unsent"
  });

  it("without acks holds no audio that went out", () => {
    const client = make({ start: { type: "start", sample_rate: 16000 } });
    socket(0).open();
    client.send(frame(0));
    expect(client.heldBytes).toBe(0);
    socket(0).drop(1006);
    client.send(frame(1));
    vi.advanceTimersByTime(2000);
    socket(1).open();
    expect(frameIds(socket(1).sent)).toEqual([1]);
    expect(client.heldBytes).toBe(0);
  });

  it("skips a message of a type it does not know, logging it once, and goes on", () => {
    const log = vi.fn();
    const onProtocolError = vi.fn();
    make({ log, onProtocolError });
    socket(0).open();
    say(0, JSON.stringify({ type: "hint", text: "x" }));
    say(0, JSON.stringify({ type: "hint", text: "y" }));
    say(0, JSON.stringify({ type: "other" }));
    say(0, ready());
    expect(log.mock.calls).toEqual([
      ['voxlive: skipping server messages of unknown type "hint"'],
      ['voxlive: skipping server messages of unknown type "other"'],
    ]);
    expect(onProtocolError).not.toHaveBeenCalled();
    expect(messages.map((m) => m.type)).toEqual(["ready"]);
  });
});
