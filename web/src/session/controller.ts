// SessionController: the page's one owner of the microphone engine, the stream client and the
// file-sending loop. Framework-free: its state is one snapshot (a Phase union plus the session's
// results), replaced on every change and read through subscribe/getSnapshot, which is exactly
// what React's useSyncExternalStore wants. Browser APIs come in through ControllerDeps.

import type { EngineEvents, EngineState } from "../audio/engine";
import { floatToPcm16, TARGET_RATE } from "../audio/pcm";
import type { ClientOptions } from "../net/client";
import { initialSession, sessionReducer, type SessionState } from "../state/session";
import { type FileSink, streamSamples } from "./file-stream";
import type { Phase } from "./phase";

/** The part of AudioEngine the controller uses. */
export interface EngineLike {
  readonly current: EngineState;
  start(deviceId?: string): Promise<void>;
  stop(): Promise<void>;
  destroy(): Promise<void>;
}

/** The part of StreamClient the controller uses. */
export interface ClientLike extends FileSink {
  connect(): void;
  stop(): void;
  close(): void;
}

export interface ControllerDeps {
  createEngine(events: EngineEvents): EngineLike;
  createClient(options: ClientOptions): ClientLike;
  decodeFile(file: File): Promise<Float32Array>; // 16 kHz mono; rejects when it is not audio
  listMicrophones(): Promise<MediaDeviceInfo[]>;
  watchDevices(onChange: () => void): () => void; // returns the unsubscribe
  now(): number; // ms, monotonic
  sleep(ms: number): Promise<void>;
}

export interface Snapshot {
  phase: Phase;
  session: SessionState; // what the server said in the latest stream
  level: number; // input rms in [0, 1]: the microphone's, or the chunk being sent
  devices: MediaDeviceInfo[];
}

export const initialSnapshot: Snapshot = { phase: { kind: "idle" }, session: initialSession, level: 0, devices: [] };

/** One microphone or file stream. Its callbacks update the page while it is the latest run. */
interface Run {
  engine: EngineLike | null;
  client: ClientLike | null;
  ended: boolean; // Stop was pressed, the file was sent, or it failed: nothing more to cancel
}

export class SessionController {
  private snapshot: Snapshot = initialSnapshot;
  private readonly listeners = new Set<() => void>();
  private run: Run | null = null;

  constructor(
    private readonly deps: ControllerDeps,
    private readonly token?: string, // sent in `start` for servers that require one
  ) {}

  // Arrow properties: stable identities for useSyncExternalStore.
  readonly subscribe = (listener: () => void): (() => void) => {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  };

  readonly getSnapshot = (): Snapshot => this.snapshot;

  private update(patch: Partial<Snapshot>): void {
    this.snapshot = { ...this.snapshot, ...patch };
    for (const listener of [...this.listeners]) listener();
  }

  /** Change the phase on behalf of `run`; ignored once a newer run has begun. */
  private updatePhase(run: Run, change: (phase: Phase) => Phase): void {
    if (this.run !== run) return;
    this.update({ phase: change(this.snapshot.phase) });
  }

  /** Whether a stream runs that Stop would end (a stopping connection no longer counts). */
  get active(): boolean {
    return this.run !== null && !this.run.ended;
  }

  /** List microphones now and whenever they change; the returned function undoes it and disposes. */
  attach(): () => void {
    this.refreshDevices();
    const unwatch = this.deps.watchDevices(() => this.refreshDevices());
    return () => {
      unwatch();
      void this.dispose();
    };
  }

  refreshDevices(): void {
    this.deps.listMicrophones().then(
      (devices) => this.update({ devices }),
      () => this.update({ devices: [] }),
    );
  }

  private begin(phase: Phase): Run {
    const run: Run = { engine: null, client: null, ended: false };
    this.run = run;
    this.update({ phase });
    return run;
  }

  /** A fresh session on a new client for `run`; connects at once. */
  private openClient(run: Run, url: string, reconnect: boolean): ClientLike {
    const t0 = this.deps.now();
    this.update({ session: initialSession });
    const client = this.deps.createClient({
      url,
      start: {
        type: "start",
        sample_rate: TARGET_RATE,
        encoding: "pcm_s16le",
        channels: 1,
        ...(this.token ? { token: this.token } : {}),
      },
      reconnect,
      onMessage: (message) => {
        if (this.run !== run) return;
        const atMs = this.deps.now() - t0;
        this.update({ session: sessionReducer(this.snapshot.session, { type: "message", message, atMs }) });
      },
      onState: (conn) => this.updatePhase(run, (p) => (p.kind === "mic" || p.kind === "file" ? { ...p, conn } : p)),
    });
    run.client = client;
    client.connect();
    return client;
  }

  /**
   * Stream the microphone to `url`, reconnecting on network loss. Does nothing while a stream is
   * active. Resolves once the microphone runs or failed (the failure is in the phase); never rejects.
   */
  async startMic(url: string, deviceId?: string): Promise<void> {
    if (this.active) return;
    const run = this.begin({ kind: "mic", mic: { kind: "idle" }, conn: { kind: "idle" } });
    const client = this.openClient(run, url, true);
    const engine = this.deps.createEngine({
      onFrame: (samples) => client.send(floatToPcm16(samples)),
      onLevel: (level) => {
        if (!run.ended) this.update({ level }); // a run that is not ended is the latest
      },
      onState: (mic) => this.updatePhase(run, (p) => (p.kind === "mic" ? { ...p, mic } : p)),
    });
    run.engine = engine;
    await engine.start(deviceId);
    if (run.ended) return; // stopped meanwhile; stop() released everything
    if (engine.current.kind === "error") {
      run.ended = true;
      client.close();
    } else {
      this.refreshDevices(); // labels are visible once permission is granted
    }
  }

  /**
   * Decode `file` and stream it to `url` in 100 ms chunks, in real time or as fast as the socket
   * drains, then ask the server to finish. Does nothing while a stream is active. Never rejects.
   */
  async streamFile(url: string, file: File, realtime: boolean): Promise<void> {
    if (this.active) return;
    const run = this.begin({ kind: "decoding", fileName: file.name });
    let samples: Float32Array;
    try {
      samples = await this.deps.decodeFile(file);
    } catch {
      if (run.ended) return;
      run.ended = true;
      this.updatePhase(run, () => ({ kind: "file_error", message: `"${file.name}" could not be decoded as audio.` }));
      return;
    }
    if (run.ended) return; // Stop pressed while decoding
    this.update({ phase: { kind: "file", fileName: file.name, conn: { kind: "idle" }, progress: 0 } });
    const client = this.openClient(run, url, false);
    await streamSamples(samples, client, {
      realtime,
      cancelled: () => run.ended,
      onChunk: (level, progress) => {
        this.update({ level });
        this.updatePhase(run, (p) => (p.kind === "file" ? { ...p, progress } : p));
      },
      now: this.deps.now,
      sleep: this.deps.sleep,
    });
    if (run.ended) return; // Stop pressed: stop() already asked the server to finish
    run.ended = true;
    this.update({ level: 0 });
    client.stop();
  }

  /**
   * Stop what runs: the microphone is released, the server is asked to flush and end the stream
   * (its last results and `end` still arrive), a pending decode is dropped. Idempotent.
   */
  async stop(): Promise<void> {
    const run = this.run;
    if (!run || run.ended) return;
    run.ended = true;
    if (this.snapshot.phase.kind === "decoding") this.update({ phase: { kind: "idle" } });
    await run.engine?.stop();
    run.client?.stop();
    this.update({ level: 0 });
  }

  /** Release everything now without flushing (the page is going away). Idempotent. */
  async dispose(): Promise<void> {
    const run = this.run;
    if (!run) return;
    run.ended = true;
    run.client?.close();
    await run.engine?.destroy();
  }
}
