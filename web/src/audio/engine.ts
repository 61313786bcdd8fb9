// AudioEngine: microphone → AudioWorklet → 16 kHz mono float frames. Framework-free, with an
// explicit lifecycle: idle → starting → running → stopped (or error).

import workletUrl from "./capture-worklet.ts?worker&url";
import { Resampler } from "./resampler";
import { rms, TARGET_RATE } from "./pcm";

export { TARGET_RATE };

export type EngineState =
  | { kind: "idle" }
  | { kind: "starting" }
  | { kind: "running"; contextRate: number; deviceLabel: string }
  | { kind: "stopped" }
  | { kind: "error"; error: MicError };

export type MicErrorCode = "denied" | "no_microphone" | "unsupported" | "failed";

export interface MicError {
  code: MicErrorCode;
  message: string;
}

export interface EngineEvents {
  onFrame: (samples: Float32Array) => void; // 16 kHz mono
  onLevel: (rms: number) => void;
  onState: (state: EngineState) => void;
}

export function describeMicError(err: unknown): MicError {
  const name = err instanceof Error || err instanceof DOMException ? err.name : "";
  if (name === "NotAllowedError" || name === "SecurityError") {
    return {
      code: "denied",
      message: "Microphone access was denied. Allow it in the browser's site settings and press Start again.",
    };
  }
  if (name === "NotFoundError" || name === "OverconstrainedError") {
    return { code: "no_microphone", message: "No microphone was found. Plug one in and press Start again." };
  }
  if (name === "TypeError" && !navigator.mediaDevices) {
    return {
      code: "unsupported",
      message: "This page needs a secure origin (https or localhost) to use the microphone.",
    };
  }
  return { code: "failed", message: `The microphone could not be started (${name || String(err)}).` };
}

export async function listMicrophones(): Promise<MediaDeviceInfo[]> {
  if (!navigator.mediaDevices?.enumerateDevices) return [];
  const devices = await navigator.mediaDevices.enumerateDevices();
  return devices.filter((d) => d.kind === "audioinput");
}

/** The browser APIs the engine uses, injectable so tests can run it without a browser. */
export interface AudioPlatform {
  getUserMedia(constraints: MediaStreamConstraints): Promise<MediaStream>;
  createContext(options?: AudioContextOptions): AudioContext;
  createWorkletNode(context: AudioContext, name: string, options: AudioWorkletNodeOptions): AudioWorkletNode;
  workletUrl: string;
}

export const browserAudio: AudioPlatform = {
  async getUserMedia(constraints) {
    if (!navigator.mediaDevices?.getUserMedia) throw new TypeError("no mediaDevices");
    return navigator.mediaDevices.getUserMedia(constraints);
  },
  createContext: (options) => new AudioContext(options),
  createWorkletNode: (context, name, options) => new AudioWorkletNode(context, name, options),
  workletUrl,
};

/** What one start() built, so a start that was overtaken can release exactly its own resources. */
interface Graph {
  media: MediaStream | null;
  context: AudioContext | null;
  node: AudioWorkletNode | null;
}

async function release(graph: Graph): Promise<void> {
  graph.node?.port.close();
  graph.node?.disconnect();
  graph.node = null;
  graph.media?.getTracks().forEach((t) => t.stop());
  graph.media = null;
  const context = graph.context;
  graph.context = null;
  if (context && context.state !== "closed") await context.close().catch(() => undefined);
}

export class AudioEngine {
  private state: EngineState = { kind: "idle" };
  private graph: Graph | null = null;
  // Bumped by start, stop and destroy. A start that finds it changed after an await has been
  // overtaken: it releases what it built and reports nothing.
  private generation = 0;

  constructor(
    private readonly events: EngineEvents,
    private readonly platform: AudioPlatform = browserAudio,
  ) {}

  get current(): EngineState {
    return this.state;
  }

  private set(state: EngineState): void {
    this.state = state;
    this.events.onState(state);
  }

  /**
   * Open the microphone and start delivering frames. Never rejects: failures end in the `error`
   * state. A stop() or destroy() while this is pending wins: whatever this start obtains afterwards
   * (a track, a context, a worklet) is released, and the state stays as stop() left it.
   */
  async start(deviceId?: string): Promise<void> {
    if (this.state.kind === "starting" || this.state.kind === "running") return;
    const generation = ++this.generation;
    const overtaken = () => generation !== this.generation;
    const graph: Graph = { media: null, context: null, node: null };
    this.graph = graph;
    this.set({ kind: "starting" });
    try {
      // Echo cancellation, noise suppression and gain control change what the classifier hears.
      graph.media = await this.platform.getUserMedia({
        audio: {
          deviceId: deviceId ? { exact: deviceId } : undefined,
          echoCancellation: false,
          noiseSuppression: false,
          autoGainControl: false,
          channelCount: 1,
        },
      });
      if (overtaken()) return await release(graph);
      const contextRate = await this.connect(graph, overtaken);
      if (overtaken()) return await release(graph);
      const track = graph.media.getAudioTracks()[0];
      this.set({ kind: "running", contextRate, deviceLabel: track?.label ?? "" });
    } catch (err) {
      await release(graph);
      if (!overtaken()) this.set({ kind: "error", error: describeMicError(err) });
    }
  }

  /**
   * Prefer a 16 kHz context; browsers that refuse it run at their own rate and we resample.
   * Returns the context's rate; returns early (building nothing more) once overtaken.
   */
  private async connect(graph: Graph, overtaken: () => boolean): Promise<number> {
    const media = graph.media!;
    let source: MediaStreamAudioSourceNode;
    try {
      graph.context = this.platform.createContext({ sampleRate: TARGET_RATE });
      source = graph.context.createMediaStreamSource(media);
    } catch {
      await graph.context?.close().catch(() => undefined);
      graph.context = null;
      if (overtaken()) return 0;
      graph.context = this.platform.createContext();
      source = graph.context.createMediaStreamSource(media);
    }
    const ctx = graph.context;
    const resampler = ctx.sampleRate === TARGET_RATE ? null : new Resampler(ctx.sampleRate, TARGET_RATE);
    await ctx.audioWorklet.addModule(this.platform.workletUrl);
    if (overtaken()) return 0;
    const node = this.platform.createWorkletNode(ctx, "voxlive-capture", { processorOptions: { frameMs: 50 } });
    graph.node = node;
    node.port.onmessage = (event: MessageEvent<Float32Array>) => {
      const frame = resampler ? resampler.process(event.data) : event.data;
      this.events.onLevel(rms(event.data));
      this.events.onFrame(frame);
    };
    source.connect(node);
    // Keep the graph pulled without playing the microphone back.
    const mute = ctx.createGain();
    mute.gain.value = 0;
    node.connect(mute).connect(ctx.destination);
    if (ctx.state === "suspended") await ctx.resume();
    return ctx.sampleRate;
  }

  private async releaseCurrent(): Promise<void> {
    this.generation += 1; // a start still pending is overtaken
    const graph = this.graph;
    this.graph = null;
    if (graph) await release(graph);
  }

  /** Release the microphone and the audio graph, also mid-start; ends in `stopped`. */
  async stop(): Promise<void> {
    await this.releaseCurrent();
    this.set({ kind: "stopped" });
  }

  /** Release everything without reporting a state (the owner is going away). */
  async destroy(): Promise<void> {
    await this.releaseCurrent();
  }
}
