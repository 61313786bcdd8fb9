// AudioEngine: microphone → AudioWorklet → 16 kHz mono float frames. Framework-free, with an
// explicit lifecycle: idle → starting → running → stopped (or error).

import workletUrl from "./capture-worklet.ts?worker&url";
import { Resampler } from "./resampler";
import { rms } from "./pcm";

export const TARGET_RATE = 16_000;

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

export class AudioEngine {
  private state: EngineState = { kind: "idle" };
  private context: AudioContext | null = null;
  private media: MediaStream | null = null;
  private node: AudioWorkletNode | null = null;
  private resampler: Resampler | null = null;

  constructor(private readonly events: EngineEvents) {}

  get current(): EngineState {
    return this.state;
  }

  private set(state: EngineState): void {
    this.state = state;
    this.events.onState(state);
  }

  async start(deviceId?: string): Promise<void> {
    if (this.state.kind === "starting" || this.state.kind === "running") return;
    this.set({ kind: "starting" });
    try {
      if (!navigator.mediaDevices?.getUserMedia) throw new TypeError("no mediaDevices");
      // Echo cancellation, noise suppression and gain control change what the classifier hears.
      this.media = await navigator.mediaDevices.getUserMedia({
        audio: {
          deviceId: deviceId ? { exact: deviceId } : undefined,
          echoCancellation: false,
          noiseSuppression: false,
          autoGainControl: false,
          channelCount: 1,
        },
      });
      const source = await this.connect(this.media);
      const track = this.media.getAudioTracks()[0];
      this.set({ kind: "running", contextRate: source.context.sampleRate, deviceLabel: track?.label ?? "" });
    } catch (err) {
      await this.release();
      this.set({ kind: "error", error: describeMicError(err) });
    }
  }

  /** Prefer a 16 kHz context; browsers that refuse it run at their own rate and we resample. */
  private async connect(media: MediaStream): Promise<MediaStreamAudioSourceNode> {
    let source: MediaStreamAudioSourceNode;
    try {
      this.context = new AudioContext({ sampleRate: TARGET_RATE });
      source = this.context.createMediaStreamSource(media);
    } catch {
      await this.context?.close().catch(() => undefined);
      this.context = new AudioContext();
      source = this.context.createMediaStreamSource(media);
    }
    const ctx = this.context;
    this.resampler = ctx.sampleRate === TARGET_RATE ? null : new Resampler(ctx.sampleRate, TARGET_RATE);
    await ctx.audioWorklet.addModule(workletUrl);
    this.node = new AudioWorkletNode(ctx, "voxlive-capture", { processorOptions: { frameMs: 50 } });
    this.node.port.onmessage = (event: MessageEvent<Float32Array>) => {
      const frame = this.resampler ? this.resampler.process(event.data) : event.data;
      this.events.onLevel(rms(event.data));
      this.events.onFrame(frame);
    };
    source.connect(this.node);
    // Keep the graph pulled without playing the microphone back.
    const mute = ctx.createGain();
    mute.gain.value = 0;
    this.node.connect(mute).connect(ctx.destination);
    if (ctx.state === "suspended") await ctx.resume();
    return source;
  }

  private async release(): Promise<void> {
    this.node?.port.close();
    this.node?.disconnect();
    this.node = null;
    this.media?.getTracks().forEach((t) => t.stop());
    this.media = null;
    if (this.context && this.context.state !== "closed") await this.context.close().catch(() => undefined);
    this.context = null;
    this.resampler = null;
  }

  async stop(): Promise<void> {
    await this.release();
    this.set({ kind: "stopped" });
  }

  async destroy(): Promise<void> {
    await this.release();
  }
}
