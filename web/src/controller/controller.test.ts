import { describe, expect, it } from "vitest";
import type { EngineEvents, EngineState } from "../audio/engine";
import type { ClientOptions, ConnState } from "../net/client";
import { type ClassifyAnswer, UNAVAILABLE } from "../net/http";
import { ProtocolError } from "../protocol/messages";
import { deferred, end, ready, result } from "../protocol/test-fixtures";
import { emptyResults } from "../state/results";
import {
  type ClientLike,
  type ControllerDeps,
  type EngineLike,
  initialSnapshot,
  PageController,
  REPLAY_MS,
} from "./controller";
import { CHUNK_SAMPLES } from "./file-stream";

const settle = () => new Promise((r) => setTimeout(r, 0));

class FakeEngine implements EngineLike {
  current: EngineState = { kind: "idle" };
  startGate: Promise<EngineState> | null = null; // when set, start() ends in the state it resolves to
  calls: string[] = [];
  constructor(readonly events: EngineEvents) {}
  private set(state: EngineState) {
    this.current = state;
    this.events.onState(state);
  }
  async start(deviceId?: string) {
    this.calls.push(`start ${deviceId ?? "default"}`);
    this.set({ kind: "starting" });
    const final = this.startGate ? await this.startGate : { kind: "running", contextRate: 16000, deviceLabel: "m" };
    if (this.current.kind === "starting") this.set(final as EngineState);
  }
  async stop() {
    this.calls.push("stop");
    this.set({ kind: "stopped" });
  }
  async destroy() {
    this.calls.push("destroy");
  }
}

class FakeClient implements ClientLike {
  current: ConnState = { kind: "idle" };
  bufferedAmount = 0;
  streamStartBytes = 0;
  sent: ArrayBuffer[] = [];
  calls: string[] = [];
  constructor(readonly options: ClientOptions) {}
  set(state: ConnState) {
    this.current = state;
    this.options.onState(state);
  }
  connect() {
    this.calls.push("connect");
    this.set({ kind: "connecting", attempt: 1 });
  }
  send(frame: ArrayBuffer) {
    this.sent.push(frame);
  }
  stop() {
    this.calls.push("stop");
    this.set({ kind: "stopping" });
  }
  close() {
    this.calls.push("close");
    this.set({ kind: "closed", code: 1000, reason: "closed" });
  }
  retryNow() {
    this.calls.push("retryNow");
  }
}

function setup(overrides: Partial<ControllerDeps> = {}, token?: string) {
  const engines: FakeEngine[] = [];
  const clients: FakeClient[] = [];
  const sleeps: number[] = [];
  const plays: { samples: Float32Array; onEnded: () => void; stopped: boolean }[] = [];
  const clock = { ms: 1000 };
  const devices = [{ deviceId: "a", kind: "audioinput", label: "A" }] as MediaDeviceInfo[];
  const watchers = { active: 0, onChange: () => undefined as void };
  let engineSetup: (e: FakeEngine) => void = () => undefined;
  let clientSetup: (c: FakeClient) => void = () => undefined;
  const deps: ControllerDeps = {
    createEngine: (events) => {
      const e = new FakeEngine(events);
      engineSetup(e);
      engines.push(e);
      return e;
    },
    createClient: (options) => {
      const c = new FakeClient(options);
      clientSetup(c);
      clients.push(c);
      return c;
    },
    decodeFile: async () => new Float32Array(CHUNK_SAMPLES * 3).fill(0.25),
    listMicrophones: async () => devices,
    watchDevices: (onChange) => {
      watchers.active += 1;
      watchers.onChange = onChange;
      return () => {
        watchers.active -= 1;
      };
    },
    now: () => clock.ms,
    wallClock: () => Date.UTC(2026, 0, 2, 3, 4, 5),
    fetchServerInfo: async () => ({
      status: "ready",
      model: "pitch",
      backend: "pitch",
      labels: ["male", "female"],
      fallback: null,
      config: null,
      hopMs: 500,
      windowsPerS: 100,
    }),
    classify: async () => {
      throw new Error("no /classify in this test");
    },
    sleep: async (ms) => {
      sleeps.push(ms);
      clock.ms += ms;
      await settle();
    },
    play: (samples, onEnded) => {
      const play = { samples, onEnded, stopped: false };
      plays.push(play);
      return () => {
        play.stopped = true;
        onEnded();
      };
    },
    ...overrides,
  };
  const controller = new PageController(deps, token);
  return {
    controller,
    engines,
    clients,
    sleeps,
    plays,
    clock,
    devices,
    watchers,
    onEngine: (f: (e: FakeEngine) => void) => (engineSetup = f),
    onClient: (f: (c: FakeClient) => void) => (clientSetup = f),
  };
}

const file = (name = "talk.wav") => ({ name, size: 4800 }) as File;

describe("PageController: microphone", () => {
  it("starts in the idle phase with an empty view", () => {
    const { controller } = setup();
    expect(controller.getSnapshot()).toEqual(initialSnapshot);
    expect(controller.active).toBe(false);
  });

  it("opens a reconnecting client with the 16 kHz PCM start message, then the microphone", async () => {
    const { controller, clients, engines } = setup({}, "s3cret");
    await controller.startMic("ws://h/audio", "dev-2");
    expect(clients).toHaveLength(1);
    expect(clients[0].options).toMatchObject({
      url: "ws://h/audio",
      reconnect: true,
      start: { type: "start", sample_rate: 16000, encoding: "pcm_s16le", channels: 1, token: "s3cret" },
    });
    expect(clients[0].calls).toEqual(["connect"]);
    expect(engines[0].calls).toEqual(["start dev-2"]);
    expect(controller.getSnapshot().phase).toEqual({
      kind: "mic",
      mic: { kind: "running", contextRate: 16000, deviceLabel: "m" },
      conn: { kind: "connecting", attempt: 1 },
    });
    expect(controller.active).toBe(true);
  });

  it("sends no token field when there is none", async () => {
    const { controller, clients } = setup();
    await controller.startMic("ws://h/audio");
    expect(clients[0].options.start).toEqual({
      type: "start",
      sample_rate: 16000,
      encoding: "pcm_s16le",
      channels: 1,
      acks: true,
    });
  });

  it("asks for acks and holds 5 s of audio to replay on another front", async () => {
    const { controller, clients } = setup();
    await controller.startMic("ws://h/audio");
    expect(clients[0].options.start.acks).toBe(true);
    expect(clients[0].options.maxReplayBytes).toBe((REPLAY_MS / 1000) * 16000 * 2);
    expect(clients[0].options.maxQueuedBytes).toBe(64_000);
    expect(REPLAY_MS).toBe(5000);
  });

  it("sends the engine's frames as PCM and shows its level", async () => {
    const { controller, clients, engines } = setup();
    await controller.startMic("ws://h/audio");
    engines[0].events.onFrame(Float32Array.from([0.5, -1]));
    engines[0].events.onLevel(0.3);
    expect(new Int16Array(clients[0].sent[0])).toEqual(Int16Array.from([16384, -32768]));
    expect(controller.getLevel()).toBe(0.3);
  });

  it("applies server messages, each label timed from when the end of its audio went out", async () => {
    const { controller, clients, engines, clock } = setup();
    await controller.startMic("ws://h/audio");
    engines[0].events.onFrame(new Float32Array(8000)); // audio 0-500 ms leaves at 1000
    clock.ms += 500;
    engines[0].events.onFrame(new Float32Array(8000)); // audio 500-1000 ms leaves at 1500
    clock.ms += 900;
    clients[0].options.onMessage(result(0)); // the window 0-1000 ms
    const { view } = controller.getSnapshot();
    expect(view.current).toEqual(result(0));
    expect(view.latencyMs).toBe(900);
    expect(view.serverLatencyMs).toBe(80);
    expect(view.timeline).toMatchObject([{ startMs: 0, endMs: 1000, result: result(0), breakBefore: false }]);
    expect(controller.getSnapshot()).toMatchObject({ source: "microphone", startedAt: "2026-01-02T03:04:05.000Z" });
  });

  it("realigns the send clock and the page's axis on a stream that began after audio was dropped", async () => {
    const { controller, clients, engines, clock } = setup();
    await controller.startMic("ws://h/audio");
    for (let i = 0; i < 12; i += 1) {
      engines[0].events.onFrame(new Float32Array(8000)); // 500 ms each; frame i leaves at 1000 + 500 i
      if (i < 11) clock.ms += 500;
    }
    // The server came up late: the connection's first sample was sample 88000 (5.5 s in).
    clients[0].streamStartBytes = 88_000 * 2;
    clients[0].options.onMessage(ready());
    clock.ms += 300;
    clients[0].options.onMessage(result(0, "female", { start_ms: 0, end_ms: 500 })); // audio 5.5-6.0 s
    const { view } = controller.getSnapshot();
    expect(view.latencyMs).toBe(300); // sample 96000 left at 6500, not 5.5 s earlier
    expect(view.gaps).toEqual([{ startMs: 0, endMs: 5500, reason: "unreachable" }]);
    expect(view.timeline[0]).toMatchObject({ startMs: 5500, endMs: 6000 });
  });

  it("a new stream after a restart numbers from 0 on the page's axis after the old one", async () => {
    const { controller, clients, engines, clock } = setup();
    await controller.startMic("ws://h/audio");
    engines[0].events.onFrame(new Float32Array(32000));
    clients[0].options.onMessage(ready({ stream_id: "a" }));
    clients[0].options.onMessage(result(0, "female", { start_ms: 0, end_ms: 1000 }));
    clients[0].options.onMessage(result(1, "female", { start_ms: 500, end_ms: 1500 }));
    clock.ms += 3000;
    engines[0].events.onFrame(new Float32Array(64000));
    clients[0].streamStartBytes = 64_000 * 2; // 4 s in: 2.5 s after the old stream's last window
    clients[0].options.onMessage(ready({ stream_id: "b" }));
    clients[0].options.onMessage(result(0, "male", { start_ms: 0, end_ms: 1000 }));
    const { view } = controller.getSnapshot();
    expect(view.streams.map((s) => [s.streamId, s.offsetMs, s.firstResult])).toEqual([
      ["a", 0, 0],
      ["b", 4000, 2],
    ]);
    expect(view.gaps).toEqual([{ startMs: 1500, endMs: 4000, reason: "outage" }]);
    expect(view.timeline.at(-1)).toMatchObject({ startMs: 4000, endMs: 5000 });
  });

  it("asks /readyz again while the server is unreachable or starting, until it is ready", async () => {
    const answers = ["unreachable", "starting", "ready"] as const;
    let asked = 0;
    const { controller, sleeps } = setup({
      fetchServerInfo: async () => ({ ...UNAVAILABLE, status: answers[Math.min(asked++, 2)] }),
    });
    await controller.loadServerInfo("ws://h/audio");
    expect(asked).toBe(3);
    expect(sleeps).toEqual([2000, 2000]);
    expect(controller.getSnapshot().server?.status).toBe("ready");
  });

  it("asks before a new stream replaces unexported results, not after an export", async () => {
    const { controller, clients } = setup();
    await controller.startMic("ws://h/audio");
    expect(controller.unexported).toBe(false);
    clients[0].options.onMessage(result(0));
    expect(controller.unexported).toBe(true);
    controller.markExported();
    expect(controller.unexported).toBe(false);
  });

  it("loads the server's model line before anything starts, and retries a reconnect on request", async () => {
    const { controller, clients } = setup();
    await controller.loadServerInfo("ws://h/audio");
    expect(controller.getSnapshot().server?.model).toBe("pitch");
    await controller.startMic("ws://h/audio");
    controller.retryNow();
    expect(clients[0].calls).toContain("retryNow");
  });

  it("notifies subscribers on every change until they unsubscribe", async () => {
    const { controller, clients } = setup();
    let calls = 0;
    const unsubscribe = controller.subscribe(() => (calls += 1));
    await controller.startMic("ws://h/audio");
    const before = calls;
    expect(before).toBeGreaterThan(0);
    const snapshot = controller.getSnapshot();
    unsubscribe();
    clients[0].options.onMessage(result(0));
    expect(calls).toBe(before);
    expect(controller.getSnapshot()).not.toBe(snapshot); // a new object for every change
  });

  it("the level has its own listeners: an audio frame does not touch the page's snapshot", async () => {
    const { controller, engines } = setup();
    await controller.startMic("ws://h/audio");
    let page = 0;
    let meter = 0;
    controller.subscribe(() => (page += 1));
    controller.subscribeLevel(() => (meter += 1));
    const snapshot = controller.getSnapshot();
    for (const level of [0.1, 0.2, 0.2, 0.3]) engines[0].events.onLevel(level);
    expect(page).toBe(0);
    expect(controller.getSnapshot()).toBe(snapshot);
    expect(meter).toBe(3); // an unchanged level notifies no one
    expect(controller.getLevel()).toBe(0.3);
  });

  it("ignores Start while a stream is active", async () => {
    const { controller, clients, engines } = setup();
    await controller.startMic("ws://h/audio");
    await controller.startMic("ws://h/audio");
    await controller.streamFile("ws://h/audio", file(), true);
    expect(clients).toHaveLength(1);
    expect(clients[0].options.start).not.toHaveProperty("lossless"); // the microphone stays live
    expect(engines).toHaveLength(1);
  });

  it("Stop releases the microphone, asks the server to finish, and keeps showing the stream's end", async () => {
    const { controller, clients, engines } = setup();
    await controller.startMic("ws://h/audio");
    engines[0].events.onLevel(0.4);
    await controller.stop();
    expect(engines[0].calls).toEqual(["start default", "stop"]);
    expect(clients[0].calls).toEqual(["connect", "stop"]);
    expect(controller.getLevel()).toBe(0);
    expect(controller.active).toBe(false);
    clients[0].options.onMessage(result(1, "male"));
    clients[0].set({ kind: "closed", code: 1000, reason: "stream ended" });
    const { phase, view } = controller.getSnapshot();
    expect(phase).toEqual({
      kind: "mic",
      mic: { kind: "stopped" },
      conn: { kind: "closed", code: 1000, reason: "stream ended" },
    });
    expect(view.current?.label).toBe("male");
  });

  it("Stop during the microphone prompt stops the stream and leaves nothing running", async () => {
    const { controller, clients, engines, onEngine } = setup();
    const prompt = deferred<EngineState>();
    onEngine((e) => (e.startGate = prompt.promise));
    const starting = controller.startMic("ws://h/audio");
    await settle();
    expect(controller.getSnapshot().phase).toMatchObject({ kind: "mic", mic: { kind: "starting" } });
    await controller.stop();
    prompt.resolve({ kind: "running", contextRate: 16000, deviceLabel: "m" });
    await starting;
    expect(engines[0].calls).toEqual(["start default", "stop"]);
    expect(clients[0].calls).toEqual(["connect", "stop"]);
    expect(controller.getSnapshot().phase).toMatchObject({ mic: { kind: "stopped" } });
    expect(controller.active).toBe(false);
  });

  it("closes the connection when the microphone fails, and shows no connection at all", async () => {
    const { controller, clients, onEngine } = setup();
    const error = { code: "denied", message: "Microphone access was denied." } as const;
    onEngine((e) => (e.startGate = Promise.resolve({ kind: "error", error })));
    await controller.startMic("ws://h/audio");
    expect(clients[0].calls).toEqual(["connect", "close"]);
    expect(controller.getSnapshot().phase).toEqual({
      kind: "mic",
      mic: { kind: "error", error },
      conn: { kind: "idle" }, // the microphone failed, not the server: nothing to say about it
    });
    expect(controller.active).toBe(false);
    await controller.startMic("ws://h/audio"); // and Start works again
    expect(clients).toHaveLength(2);
  });

  it("lists microphones on attach, on device changes and once the microphone runs", async () => {
    let listed = 0;
    const { controller, watchers } = setup({ listMicrophones: async () => (listed++, []) });
    const detach = controller.attach();
    expect(listed).toBe(1);
    expect(watchers.active).toBe(1);
    watchers.onChange();
    expect(listed).toBe(2);
    await controller.startMic("ws://h/audio");
    expect(listed).toBe(3);
    detach();
    expect(watchers.active).toBe(0);
  });

  it("shows the listed microphones, or none when listing fails", async () => {
    const ok = setup();
    ok.controller.refreshDevices();
    await settle();
    expect(ok.controller.getSnapshot().devices).toBe(ok.devices);
    const failing = setup({ listMicrophones: () => Promise.reject(new Error("no")) });
    failing.controller.getSnapshot().devices.push(...ok.devices); // prove it is replaced
    failing.controller.refreshDevices();
    await settle();
    expect(failing.controller.getSnapshot().devices).toEqual([]);
  });

  it("detach disposes: the client is closed at once and the engine destroyed", async () => {
    const { controller, clients, engines } = setup();
    const detach = controller.attach();
    await controller.startMic("ws://h/audio");
    detach();
    await settle();
    expect(clients[0].calls).toEqual(["connect", "close"]);
    expect(engines[0].calls).toEqual(["start default", "destroy"]);
    expect(controller.active).toBe(false);
  });

  it("callbacks of an earlier stream no longer touch the page once a new one began", async () => {
    const { controller, clients, engines } = setup();
    await controller.startMic("ws://h/audio");
    await controller.stop();
    await controller.startMic("ws://h/audio");
    const snapshot = controller.getSnapshot();
    clients[0].options.onMessage(result(7));
    clients[0].set({ kind: "closed", code: 1011, reason: "old" });
    engines[0].events.onState({ kind: "stopped" });
    engines[0].events.onLevel(0.9);
    expect(controller.getSnapshot()).toBe(snapshot);
  });

  it("a stopped microphone's late level does not move the meter", async () => {
    const { controller, engines } = setup();
    await controller.startMic("ws://h/audio");
    await controller.stop();
    engines[0].events.onLevel(0.9);
    expect(controller.getLevel()).toBe(0);
  });
});

describe("PageController: file", () => {
  it("decodes, streams every chunk on a non-reconnecting client, then asks the server to finish", async () => {
    const { controller, clients, onClient } = setup();
    const progress: number[] = [];
    onClient((c) => {
      c.connect = () => {
        c.calls.push("connect");
        c.set({ kind: "open" });
      };
    });
    controller.subscribe(() => {
      const p = controller.getSnapshot().phase;
      if (p.kind === "file" && progress.at(-1) !== p.progress) progress.push(p.progress);
    });
    await controller.streamFile("ws://h/audio", file(), true);
    expect(clients[0].options.reconnect).toBe(false);
    expect(clients[0].options.start).toMatchObject({ type: "start", lossless: true }); // never shed
    expect(clients[0].sent).toHaveLength(3);
    expect(clients[0].calls).toEqual(["connect", "stop"]);
    expect(progress).toEqual([0, 1 / 3, 2 / 3, 1]);
    expect(controller.getSnapshot().phase).toEqual({
      kind: "file",
      fileName: "talk.wav",
      conn: { kind: "stopping" },
      progress: 1,
      durationMs: 300,
    });
    expect(controller.getLevel()).toBe(0);
    expect(controller.active).toBe(false);
  });

  it("shows the decoding phase, and Stop during it cancels without connecting", async () => {
    const decoding = deferred<Float32Array>();
    const { controller, clients } = setup({ decodeFile: () => decoding.promise });
    const streaming = controller.streamFile("ws://h/audio", file("a.mp3"), true);
    expect(controller.getSnapshot().phase).toMatchObject({ kind: "decoding", fileName: "a.mp3" });
    expect(controller.active).toBe(true);
    await controller.stop();
    const cancelled = { kind: "idle", cancelled: '"a.mp3": cancelled while decoding' };
    expect(controller.getSnapshot().phase).toEqual(cancelled);
    decoding.resolve(new Float32Array(16000));
    await streaming;
    expect(clients).toHaveLength(0);
    expect(controller.getSnapshot().phase).toEqual(cancelled);
  });

  it("says which file could not be decoded, and no earlier results stay to be taken for its own", async () => {
    const { controller, clients } = setup({ decodeFile: () => Promise.reject(new Error("EncodingError")) });
    await controller.startMic("ws://h/audio");
    clients[0].options.onMessage(result(0));
    await controller.stop();
    await controller.streamFile("ws://h/audio", file("notes.txt"), true);
    expect(controller.getSnapshot().phase).toEqual({
      kind: "file_error",
      message: '"notes.txt" could not be decoded as audio.',
    });
    expect(controller.getSnapshot().view.results).toEqual([]);
    expect(controller.active).toBe(false);
    expect(clients).toHaveLength(1);
  });

  it("a decode failure after Stop changes nothing", async () => {
    const decoding = deferred<Float32Array>();
    const { controller } = setup({ decodeFile: () => decoding.promise });
    const streaming = controller.streamFile("ws://h/audio", file(), true);
    await controller.stop();
    decoding.reject(new Error("late"));
    await streaming;
    expect(controller.getSnapshot().phase).toEqual({ kind: "idle", cancelled: '"talk.wav": cancelled while decoding' });
  });

  it("Stop while streaming ends the loop and finishes the stream once", async () => {
    const { controller, clients, onClient } = setup();
    onClient((c) => (c.connect = () => c.set({ kind: "open" })));
    const streaming = controller.streamFile("ws://h/audio", file(), true);
    await settle();
    expect(clients[0].sent.length).toBeGreaterThan(0);
    await controller.stop();
    const sent = clients[0].sent.length;
    await streaming;
    expect(clients[0].sent).toHaveLength(sent);
    expect(clients[0].calls).toEqual(["stop"]);
    expect(controller.getLevel()).toBe(0);
  });

  it("keeps the results of the file's stream after it ends", async () => {
    const { controller, clients, onClient } = setup();
    onClient((c) => (c.connect = () => c.set({ kind: "open" })));
    await controller.streamFile("ws://h/audio", file(), true);
    clients[0].options.onMessage(result(0, "male"));
    clients[0].set({ kind: "closed", code: 1000, reason: "stream ended" });
    expect(controller.getSnapshot().view.results).toHaveLength(1);
    expect(controller.getSnapshot().phase).toMatchObject({ kind: "file", conn: { kind: "closed" } });
  });

  it("a new stream starts with empty results", async () => {
    const { controller, clients } = setup();
    await controller.startMic("ws://h/audio");
    clients[0].options.onMessage(result(0));
    await controller.stop();
    await controller.startMic("ws://h/audio");
    expect(controller.getSnapshot().view).toBe(emptyResults);
  });

  it("passes through the decoding phase, then shows the connection and the progress", async () => {
    const { controller, onClient } = setup();
    onClient((c) => (c.connect = () => c.set({ kind: "open" })));
    const phases: unknown[] = [];
    controller.subscribe(() => {
      const { phase } = controller.getSnapshot();
      if (phase !== phases.at(-1)) phases.push(phase); // each change of phase once
    });
    await controller.streamFile("ws://h/audio", file(), true);
    expect(phases.slice(0, 4)).toEqual([
      { kind: "decoding", fileName: "talk.wav", bytes: expect.any(Number), sinceMs: expect.any(Number) },
      { kind: "file", fileName: "talk.wav", conn: { kind: "idle" }, progress: 0, durationMs: 300 },
      { kind: "file", fileName: "talk.wav", conn: { kind: "open" }, progress: 0, durationMs: 300 },
      { kind: "file", fileName: "talk.wav", conn: { kind: "open" }, progress: 1 / 3, durationMs: 300 },
    ]);
  });

  it("shows each chunk's level while sending, and 0 after", async () => {
    const { controller, onClient } = setup({ decodeFile: async () => Float32Array.from([0.5, -0.5, 0.5, -0.5]) });
    onClient((c) => (c.connect = () => c.set({ kind: "open" })));
    const levels: number[] = [];
    controller.subscribeLevel(() => levels.push(controller.getLevel()));
    await controller.streamFile("ws://h/audio", file(), true);
    expect(levels).toContain(0.5);
    expect(levels.at(-1)).toBe(0);
  });

  it("Stop while the file's connection is still opening ends the loop without sending", async () => {
    const { controller, clients, onClient } = setup();
    onClient((c) => (c.stop = () => c.calls.push("stop"))); // like StreamClient: stays connecting until open
    const streaming = controller.streamFile("ws://h/audio", file(), true);
    await settle();
    await controller.stop();
    await streaming;
    expect(clients[0].current.kind).toBe("connecting");
    expect(clients[0].sent).toEqual([]);
    expect(clients[0].calls).toEqual(["connect", "stop"]);
  });

  it("dispose during decoding or sending closes what exists", async () => {
    const decoding = deferred<Float32Array>();
    const first = setup({ decodeFile: () => decoding.promise });
    const pending = first.controller.streamFile("ws://h/audio", file(), true);
    await first.controller.dispose();
    decoding.resolve(new Float32Array(10));
    await pending;
    expect(first.clients).toHaveLength(0);

    const second = setup();
    const streaming = second.controller.streamFile("ws://h/audio", file(), true);
    await settle();
    await second.controller.dispose();
    await streaming;
    expect(second.clients[0].calls).toEqual(["connect", "close"]);
  });
});

describe("PageController: fast files through /classify", () => {
  const answer: ClassifyAnswer = {
    ready: ready({ stream_id: "file-3", model: "pitch" }),
    windows: [result(0), result(1), result(2, "male")],
    segments: [{ type: "segment", label: "female", start_ms: 0, end_ms: 1000, confidence: 0.9, windows: 2 }],
    end: end({ stream_id: "file-3", gated: 1, results: 2 }),
    problems: [],
  };

  it("shows the file's stream from the server's own messages: ready, every window, segments, end", async () => {
    const seen: Float32Array[] = [];
    const { controller, clients } = setup({
      classify: async (_url, samples) => {
        seen.push(samples);
        return answer;
      },
    });
    const phases: string[] = [];
    controller.subscribe(() => phases.push(controller.getSnapshot().phase.kind));
    await controller.streamFile("ws://h/audio", file(), false);
    expect(clients).toHaveLength(0);
    expect(seen[0]).toHaveLength(CHUNK_SAMPLES * 3);
    expect(phases).toContain("classifying");
    const { phase, view } = controller.getSnapshot();
    expect(phase).toEqual({
      kind: "file",
      fileName: "talk.wav",
      conn: { kind: "closed", code: 1000, reason: "classified" },
      progress: 1,
      durationMs: 300,
    });
    expect(view.results).toHaveLength(3);
    expect(view.segments.map((s) => s.label)).toEqual(["female"]);
    expect(view.ready).toEqual(answer.ready); // the server's, nothing made up
    expect(view.end).toEqual(answer.end);
    expect(view.errors).toEqual([]);
    expect(controller.active).toBe(false);
  });

  it("shows what failed the parser among the page's errors, and everything else", async () => {
    const problem = new ProtocolError('results[1]: result.seq: expected number, got "1"');
    const { controller } = setup({
      classify: async () => ({ ...answer, ready: null, windows: [result(0), result(2)], problems: [problem] }),
    });
    await controller.streamFile("ws://h/audio", file(), false);
    const { view } = controller.getSnapshot();
    expect(view.ready).toBeNull();
    expect(view.results.map((r) => r.seq)).toEqual([0, 2]);
    expect(view.end).toEqual(answer.end);
    expect(view.errors).toEqual([
      {
        code: "bad_server_message",
        message: 'sent a message the page cannot read (results[1]: result.seq: expected number, got "1")',
      },
    ]);
  });

  it("says why a file was not classified, and Stop abandons the upload", async () => {
    const failing = setup({ classify: () => Promise.reject(new Error("the server answered 503")) });
    await failing.controller.streamFile("ws://h/audio", file("a.wav"), false);
    expect(failing.controller.getSnapshot().phase).toEqual({
      kind: "file_error",
      message: '"a.wav" was not classified: the server answered 503',
    });
    let signal: AbortSignal | null = null;
    const waiting = setup({
      classify: (_url, _samples, s) => {
        signal = s;
        return new Promise(() => undefined);
      },
    });
    void waiting.controller.streamFile("ws://h/audio", file(), false);
    await settle();
    await waiting.controller.stop();
    expect(signal!.aborted).toBe(true);
    expect(waiting.controller.getSnapshot().phase).toMatchObject({
      kind: "idle",
      cancelled: expect.stringMatching(/cancelled after 0:\d\d of classifying/),
    });
  });
});

describe("PageController: what the page saw go wrong", () => {
  it("a live message that fails the parser is shown among the errors, while the stream is the latest", async () => {
    const { controller, clients } = setup();
    await controller.startMic("ws://h/audio");
    clients[0].options.onProtocolError!(new ProtocolError("result.seq: expected number, got null"));
    expect(controller.getSnapshot().view.errors).toEqual([
      {
        code: "bad_server_message",
        message: "sent a message the page cannot read (result.seq: expected number, got null)",
      },
    ]);
    await controller.stop();
    await controller.startMic("ws://h/audio");
    clients[0].options.onProtocolError!(new ProtocolError("late")); // the first stream's
    clients[0].options.onDropped!(32_000);
    expect(controller.getSnapshot().view.errors).toEqual([]);
    expect(controller.getSnapshot().view.unsentMs).toBe(0);
  });

  it("audio the client dropped while disconnected is shown in seconds of audio", async () => {
    const { controller, clients } = setup();
    await controller.startMic("ws://h/audio");
    clients[0].options.onDropped!(32_000); // 16 kHz, 2 bytes a sample: 1 s
    expect(controller.getSnapshot().view.unsentMs).toBe(1000);
    clients[0].options.onDropped!(48_000);
    expect(controller.getSnapshot().view.unsentMs).toBe(1500);
  });
});

describe("PageController: Stop and dispose", () => {
  it("Stop and dispose with nothing started change nothing", async () => {
    const { controller } = setup();
    let calls = 0;
    controller.subscribe(() => (calls += 1));
    await controller.stop();
    await controller.dispose();
    expect(calls).toBe(0);
    expect(controller.getSnapshot()).toBe(initialSnapshot);
  });

  it("a second Stop does nothing", async () => {
    const { controller, clients, engines } = setup();
    await controller.startMic("ws://h/audio");
    await controller.stop();
    await controller.stop();
    expect(engines[0].calls).toEqual(["start default", "stop"]);
    expect(clients[0].calls).toEqual(["connect", "stop"]);
  });

  it("a microphone start cancelled by Stop does not list devices", async () => {
    let listed = 0;
    const { controller, onEngine } = setup({ listMicrophones: async () => (listed++, []) });
    const prompt = deferred<EngineState>();
    onEngine((e) => (e.startGate = prompt.promise));
    const starting = controller.startMic("ws://h/audio");
    await controller.stop();
    prompt.resolve({ kind: "running", contextRate: 16000, deviceLabel: "m" });
    await starting;
    expect(listed).toBe(0);
  });

  it("Start goes through idle parts to a starting microphone on a connecting client", async () => {
    const { controller } = setup();
    const phases: unknown[] = [];
    controller.subscribe(() => {
      const { phase } = controller.getSnapshot();
      if (phase !== phases.at(-1)) phases.push(phase); // each change of phase once
    });
    await controller.startMic("ws://h/audio");
    expect(phases).toEqual([
      { kind: "mic", mic: { kind: "idle" }, conn: { kind: "idle" } },
      { kind: "mic", mic: { kind: "idle" }, conn: { kind: "connecting", attempt: 1 } },
      { kind: "mic", mic: { kind: "starting" }, conn: { kind: "connecting", attempt: 1 } },
      {
        kind: "mic",
        mic: { kind: "running", contextRate: 16000, deviceLabel: "m" },
        conn: { kind: "connecting", attempt: 1 },
      },
    ]);
  });
});

describe("PageController: listening back", () => {
  it("plays a stretch of the latest file from its own copy, one at a time, until it ends", async () => {
    const { controller, onClient, plays } = setup();
    onClient((c) => (c.connect = () => c.set({ kind: "open" })));
    controller.listen(0, 100); // no file yet: nothing to play
    expect(plays).toHaveLength(0);
    await controller.streamFile("ws://h/audio", file("talk.wav"), true);
    expect(controller.getSnapshot().recording).toBe("talk.wav");
    controller.listen(100, 200);
    expect(plays[0].samples.length).toBe(CHUNK_SAMPLES); // 100 ms at 16 kHz
    expect(controller.getSnapshot().playing).toEqual({ startMs: 100, endMs: 200 });
    controller.listen(0, 5000); // another segment: the first stops; the end is the file's
    expect(plays[0].stopped).toBe(true);
    expect(plays[1].samples.length).toBe(CHUNK_SAMPLES * 3);
    expect(controller.getSnapshot().playing).toEqual({ startMs: 0, endMs: 5000 });
    plays[1].onEnded();
    expect(controller.getSnapshot().playing).toBeNull();
  });

  it("a new run forgets the file and stops what plays", async () => {
    const { controller, onClient, plays } = setup();
    onClient((c) => (c.connect = () => c.set({ kind: "open" })));
    await controller.streamFile("ws://h/audio", file("talk.wav"), true);
    controller.listen(0, 100);
    await controller.startMic("ws://h/audio");
    expect(plays[0].stopped).toBe(true);
    expect(controller.getSnapshot()).toMatchObject({ recording: null, playing: null });
    controller.listen(0, 100);
    expect(plays).toHaveLength(1);
  });
});
