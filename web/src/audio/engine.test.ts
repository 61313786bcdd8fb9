import { deferred } from "../protocol/test-fixtures";
import { describe, expect, it } from "vitest";
import { type AudioPlatform, AudioEngine, type EngineState } from "./engine";

// Fakes for the browser's media and Web Audio objects: just enough to record what was opened and
// whether it was released.

class FakeTrack {
  stopped = false;
  constructor(readonly label: string) {}
  stop() {
    this.stopped = true;
  }
}

class FakeStream {
  readonly track: FakeTrack;
  constructor(label: string) {
    this.track = new FakeTrack(label);
  }
  getTracks() {
    return [this.track];
  }
  getAudioTracks() {
    return [this.track];
  }
}

class FakeNode {
  port = {
    onmessage: null as ((e: { data: Float32Array }) => void) | null,
    closed: false,
    close() {
      this.closed = true;
    },
  };
  connected = true;
  connect<T>(next: T): T {
    return next;
  }
  disconnect() {
    this.connected = false;
  }
}

class FakeContext {
  state: "running" | "suspended" | "closed" = "suspended";
  modules: string[] = [];
  addModuleGate: Promise<void> = Promise.resolve();
  resumeGate: Promise<void> = Promise.resolve();
  audioWorklet = {
    addModule: async (url: string) => {
      this.modules.push(url);
      await this.addModuleGate;
    },
  };
  destination = {};
  constructor(readonly sampleRate: number) {}
  createMediaStreamSource() {
    return { context: this, connect: () => undefined };
  }
  createGain() {
    return { gain: { value: 1 }, connect: <T>(next: T) => next };
  }
  async resume() {
    await this.resumeGate;
    if (this.state !== "closed") this.state = "running";
  }
  async close() {
    this.state = "closed";
  }
}

/** A fake platform; `rates` are what successive AudioContexts run at (0: the constructor throws). */
function platform(options: { rates?: number[] } = {}) {
  const rates = [...(options.rates ?? [16_000])];
  const fake = {
    streams: [] as FakeStream[],
    contexts: [] as FakeContext[],
    nodes: [] as FakeNode[],
    requests: [] as MediaStreamConstraints[],
    pending: [] as ReturnType<typeof deferred<FakeStream>>[],
    hold: false, // getUserMedia waits until the test resolves it
    onContext: null as ((ctx: FakeContext) => void) | null, // adjusts each new context
  };
  const api: AudioPlatform = {
    getUserMedia: (constraints) => {
      fake.requests.push(constraints);
      const d = deferred<FakeStream>();
      fake.pending.push(d);
      if (!fake.hold) d.resolve(new FakeStream(`mic ${fake.requests.length}`));
      return d.promise.then((s) => {
        fake.streams.push(s);
        return s as unknown as MediaStream;
      });
    },
    createContext: () => {
      const rate = rates.length > 1 ? rates.shift()! : rates[0];
      if (rate === 0) throw new DOMException("rate not supported", "NotSupportedError");
      const ctx = new FakeContext(rate);
      fake.contexts.push(ctx);
      fake.onContext?.(ctx);
      return ctx as unknown as AudioContext;
    },
    createWorkletNode: () => {
      const node = new FakeNode();
      fake.nodes.push(node);
      return node as unknown as AudioWorkletNode;
    },
    workletUrl: "worklet.js",
  };
  return { fake, api };
}

function engineWith(api: AudioPlatform) {
  const states: EngineState[] = [];
  const frames: Float32Array[] = [];
  const levels: number[] = [];
  const engine = new AudioEngine(
    { onFrame: (f) => frames.push(f), onLevel: (l) => levels.push(l), onState: (s) => states.push(s) },
    api,
  );
  return { engine, states, frames, levels };
}

const settle = () => new Promise((r) => setTimeout(r, 0));

describe("AudioEngine", () => {
  it("starts at 16 kHz with processing off and delivers the worklet's frames untouched", async () => {
    const { fake, api } = platform();
    const { engine, states, frames, levels } = engineWith(api);
    await engine.start("dev-1");
    expect(states.map((s) => s.kind)).toEqual(["starting", "running"]);
    expect(engine.current).toEqual({ kind: "running", contextRate: 16_000, deviceLabel: "mic 1" });
    expect(fake.requests[0]).toEqual({
      audio: {
        deviceId: { exact: "dev-1" },
        echoCancellation: false,
        noiseSuppression: false,
        autoGainControl: false,
        channelCount: 1,
      },
    });
    expect(fake.contexts[0].modules).toEqual(["worklet.js"]);
    expect(fake.contexts[0].state).toBe("running"); // a suspended context is resumed
    const frame = Float32Array.from([0.5, -0.5, 0.5, -0.5]);
    fake.nodes[0].port.onmessage?.({ data: frame });
    expect(frames).toEqual([frame]);
    expect(frames[0]).toBe(frame);
    expect(levels).toEqual([0.5]);
  });

  it("asks for the default microphone without a device id", async () => {
    const { fake, api } = platform();
    await engineWith(api).engine.start();
    expect((fake.requests[0].audio as MediaTrackConstraints).deviceId).toBeUndefined();
  });

  it("falls back to the browser's rate and resamples to 16 kHz when 16 kHz is refused", async () => {
    const { fake, api } = platform({ rates: [0, 48_000] });
    const { engine, frames } = engineWith(api);
    await engine.start();
    expect(engine.current).toMatchObject({ kind: "running", contextRate: 48_000 });
    for (let i = 0; i < 10; i++) fake.nodes[0].port.onmessage?.({ data: new Float32Array(2400) });
    const total = frames.reduce((n, f) => n + f.length, 0);
    expect(Math.abs(total - 8000)).toBeLessThan(40); // 0.5 s at 16 kHz
  });

  it("does not start twice while starting or running", async () => {
    const { fake, api } = platform();
    const { engine } = engineWith(api);
    await Promise.all([engine.start(), engine.start()]);
    await engine.start();
    expect(fake.requests).toHaveLength(1);
  });

  it("reports a denied microphone as an error and holds nothing", async () => {
    const { fake, api } = platform();
    fake.hold = true;
    const { engine, states } = engineWith(api);
    const started = engine.start();
    fake.pending[0].reject(new DOMException("no", "NotAllowedError"));
    await started;
    expect(states.at(-1)).toMatchObject({ kind: "error", error: { code: "denied" } });
    expect(fake.contexts).toHaveLength(0);
  });

  it("releases the track and the context when the worklet cannot load", async () => {
    const { fake, api } = platform();
    fake.onContext = (ctx) => {
      ctx.addModuleGate = Promise.reject(new Error("worklet 404"));
    };
    const { engine } = engineWith(api);
    await engine.start();
    expect(engine.current).toMatchObject({ kind: "error", error: { code: "failed" } });
    expect(fake.streams[0].track.stopped).toBe(true);
    expect(fake.contexts[0].state).toBe("closed");
  });

  it("stop releases the track, the worklet and the context", async () => {
    const { fake, api } = platform();
    const { engine, states } = engineWith(api);
    await engine.start();
    await engine.stop();
    expect(states.at(-1)).toEqual({ kind: "stopped" });
    expect(fake.streams[0].track.stopped).toBe(true);
    expect(fake.nodes[0].port.closed).toBe(true);
    expect(fake.nodes[0].connected).toBe(false);
    expect(fake.contexts[0].state).toBe("closed");
  });

  describe("stopped mid-start", () => {
    it("stops the track that getUserMedia grants after stop(), and builds no audio graph", async () => {
      const { fake, api } = platform();
      fake.hold = true;
      const { engine, states } = engineWith(api);
      const started = engine.start();
      await engine.stop();
      fake.pending[0].resolve(new FakeStream("late"));
      await started;
      await settle();
      expect(fake.streams[0].track.stopped).toBe(true);
      expect(fake.contexts).toHaveLength(0);
      expect(fake.nodes).toHaveLength(0);
      expect(states.map((s) => s.kind)).toEqual(["starting", "stopped"]);
      expect(engine.current).toEqual({ kind: "stopped" });
    });

    it("reports no error when the overtaken request is then refused", async () => {
      const { fake, api } = platform();
      fake.hold = true;
      const { engine, states } = engineWith(api);
      const started = engine.start();
      await engine.stop();
      fake.pending[0].reject(new DOMException("no", "NotAllowedError"));
      await started;
      expect(states.map((s) => s.kind)).toEqual(["starting", "stopped"]);
    });

    it("closes the context and creates no worklet when stopped while the worklet module loads", async () => {
      const { fake, api } = platform();
      const gate = deferred<void>();
      fake.onContext = (ctx) => {
        ctx.addModuleGate = gate.promise;
      };
      const { engine, states } = engineWith(api);
      const started = engine.start();
      await settle(); // getUserMedia resolved, addModule pending
      expect(fake.contexts).toHaveLength(1);
      await engine.stop();
      gate.resolve();
      await started;
      expect(fake.nodes).toHaveLength(0);
      expect(fake.contexts[0].state).toBe("closed");
      expect(fake.streams[0].track.stopped).toBe(true);
      expect(states.at(-1)).toEqual({ kind: "stopped" });
    });

    it("tears the worklet down when stopped while the context resumes", async () => {
      const { fake, api } = platform();
      const gate = deferred<void>();
      fake.onContext = (ctx) => {
        ctx.resumeGate = gate.promise;
      };
      const { engine, states } = engineWith(api);
      const started = engine.start();
      await settle();
      expect(fake.nodes).toHaveLength(1);
      await engine.destroy();
      gate.resolve();
      await started;
      expect(fake.nodes[0].port.closed).toBe(true);
      expect(fake.nodes[0].connected).toBe(false);
      expect(fake.contexts[0].state).toBe("closed");
      expect(fake.streams[0].track.stopped).toBe(true);
      expect(states.map((s) => s.kind)).toEqual(["starting"]); // destroy reports nothing
    });

    it("a new start after stop owns its microphone; the overtaken start releases only its own", async () => {
      const { fake, api } = platform();
      fake.hold = true;
      const { engine } = engineWith(api);
      const first = engine.start();
      await engine.stop();
      const second = engine.start();
      fake.pending[1].resolve(new FakeStream("second"));
      await second;
      fake.pending[0].resolve(new FakeStream("first"));
      await first;
      expect(engine.current).toEqual({ kind: "running", contextRate: 16_000, deviceLabel: "second" });
      const byLabel = Object.fromEntries(fake.streams.map((s) => [s.track.label, s.track.stopped]));
      expect(byLabel).toEqual({ first: true, second: false });
      expect(fake.contexts).toHaveLength(1);
      expect(fake.contexts[0].state).toBe("running");
    });
  });
});
