// PageController: the page's one owner of the microphone engine, the stream client, the
// file-sending loop and the /classify upload (a file's run is in file-run.ts, listening back in
// playback.ts). Framework-free: its state is one snapshot (a Phase union plus the results view of
// the latest run), replaced on every change and read through subscribe/getSnapshot, which is
// exactly what React's useSyncExternalStore wants. Browser APIs come in through ControllerDeps.

import type { EngineEvents, EngineState } from "../audio/engine";
import { floatToPcm16, TARGET_RATE } from "../audio/pcm";
import type { ClientOptions } from "../net/client";
import type { ClassifyAnswer, ServerInfo } from "../net/http";
import type { ServerMessage } from "../protocol/messages";
import { emptyResults, type ResultsAction, resultsReducer, type ResultsView } from "../state/results";
import type { FileSink } from "./file-stream";
import { type FileHost, runFile, stoppedFilePhase } from "./file-run";
import type { Phase } from "./phase";
import { Playback, type PlayFn, type Playing } from "./playback";
import { SendClock } from "./send-clock";

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
  retryNow(): void;
  /** Audio bytes handed to send() before the current connection's first (see StreamClient). */
  readonly streamStartBytes: number;
}

export interface ControllerDeps {
  createEngine(events: EngineEvents): EngineLike;
  createClient(options: ClientOptions): ClientLike;
  decodeFile(file: File): Promise<Float32Array>; // 16 kHz mono; rejects when it is not audio
  listMicrophones(): Promise<MediaDeviceInfo[]>;
  watchDevices(onChange: () => void): () => void; // returns the unsubscribe
  now(): number; // ms, monotonic
  wallClock(): number; // ms since the epoch, for the export's start time
  sleep(ms: number): Promise<void>;
  /** /readyz of the server behind `wsUrl`; resolves with status "unavailable" when it cannot tell. */
  fetchServerInfo(wsUrl: string): Promise<ServerInfo>;
  /** POST 16 kHz mono samples to /classify of the server behind `wsUrl`; rejects with a message to show. */
  classify(wsUrl: string, samples: Float32Array, signal: AbortSignal): Promise<ClassifyAnswer>;
  play: PlayFn; // for listening back to a file's segments
}

export interface Snapshot {
  phase: Phase;
  view: ResultsView; // what the server said in the latest stream
  devices: MediaDeviceInfo[];
  server: ServerInfo | null; // what /readyz said; null until it answered
  source: string | null; // "microphone" or the file's name, for the export
  startedAt: string | null; // wall clock, ISO 8601
  exported: boolean; // the latest run's results were exported (or there are none)
  recording: string | null; // the file whose audio the page holds for listening back; null: none
  playing: Playing | null; // what is playing back now
}

const MAX_QUEUED_BYTES = 64_000; // audio the client holds while (re)connecting, 2 s (its default)
// A microphone stream asks for acks. Once one came, it holds the audio sent since the newest ack
// plus what waits for a connection: at most this much (5 s at 16 kHz, the server's default
// --max-replay-ms), to replay after a lost connection, on the same front or another. Beyond it
// the oldest is dropped and counted (a front without the audio between then refuses: `gap`).
export const REPLAY_MS = 5000;
const REPLAY_BYTES = (REPLAY_MS / 1000) * TARGET_RATE * 2;
export const SERVER_POLL_MS = 2000; // how often /readyz is asked again while the server is not ready

export const initialSnapshot: Snapshot = {
  phase: { kind: "idle" },
  view: emptyResults,
  devices: [],
  server: null,
  source: null,
  startedAt: null,
  exported: true,
  recording: null,
  playing: null,
};

/** One microphone or file stream. Its callbacks update the page while it is the latest run. */
interface Run {
  engine: EngineLike | null;
  client: ClientLike | null;
  abort: AbortController | null; // a /classify upload
  clock: SendClock; // when each sample went out, for the latency a person sees
  ended: boolean; // Stop was pressed, the file was sent, or it failed: nothing more to cancel
}

export class PageController {
  private snapshot: Snapshot = initialSnapshot;
  private readonly listeners = new Set<() => void>();
  // The input level changes with every audio frame (20 times a second): it has its own
  // listeners, so that the meter moves without the page re-rendering.
  private level = 0;
  private readonly levelListeners = new Set<() => void>();
  private readonly playback: Playback; // the latest file's audio, for listening back
  private run: Run | null = null;

  constructor(
    private readonly deps: ControllerDeps,
    private readonly token?: string, // sent in `start` for servers that require one
  ) {
    this.playback = new Playback(deps.play, (playing) => this.update({ playing }));
  }

  // Arrow properties: stable identities for useSyncExternalStore.
  readonly subscribe = (listener: () => void): (() => void) => {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  };

  readonly getSnapshot = (): Snapshot => this.snapshot;

  /** Listen to the input level alone (rms in [0, 1]: the microphone's, or the chunk being sent). */
  readonly subscribeLevel = (listener: () => void): (() => void) => {
    this.levelListeners.add(listener);
    return () => this.levelListeners.delete(listener);
  };

  readonly getLevel = (): number => this.level;

  private setLevel(level: number): void {
    if (level === this.level) return;
    this.level = level;
    for (const listener of [...this.levelListeners]) listener();
  }

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

  private begin(phase: Phase, source: string): Run {
    const run: Run = {
      engine: null,
      client: null,
      abort: null,
      clock: new SendClock(),
      ended: false,
    };
    this.run = run;
    this.playback.hold(null);
    this.update({ phase, source, startedAt: new Date(this.deps.wallClock()).toISOString(), recording: null });
    return run;
  }

  /** Whether starting now would discard results nobody exported. */
  get unexported(): boolean {
    return !this.snapshot.exported && this.snapshot.view.results.length > 0;
  }

  /** The latest run's results were exported: a new run may replace them without asking. */
  markExported(): void {
    this.update({ exported: true });
  }

  private disposed = false;

  /**
   * Ask /readyz what the server runs (model, fallback) before anything starts, and again every
   * SERVER_POLL_MS while it is unreachable or starting, until it is ready (or /readyz turns out
   * to be hidden) or the page goes away. Never rejects.
   */
  async loadServerInfo(wsUrl: string): Promise<void> {
    for (;;) {
      const server = await this.deps.fetchServerInfo(wsUrl);
      if (this.disposed) return;
      this.update({ server });
      if (server.status !== "unreachable" && server.status !== "starting") return;
      await this.deps.sleep(SERVER_POLL_MS);
    }
  }

  /**
   * Play back the latest file from `startMs` to `endMs` (its audio time: a segment's times), from
   * the page's own copy of the decoded file; whatever was playing stops. Does nothing without a
   * file. A microphone stream is not recorded.
   */
  listen(startMs: number, endMs: number): void {
    this.playback.listen(startMs, endMs);
  }

  /** Stop what plays back, if anything. Idempotent. */
  stopListening(): void {
    this.playback.stop();
  }

  /** Reconnect now instead of waiting out the backoff. */
  retryNow(): void {
    this.run?.client?.retryNow();
  }

  /**
   * A stream began. One that is not a resume (the first, or one after the server forgot the old)
   * starts with the first sample its connection carried: audio dropped while no connection held
   * lies before it. That is its audio time 0, on the send clock (for the latency) and on the
   * page's axis (ms of audio this run captured), so what nobody classified shows as a gap.
   * Returns where it begins on the page's axis; null for a resume.
   */
  private onReady(run: Run, client: ClientLike, resumed: boolean): number | null {
    if (resumed) return null;
    const at = client.streamStartBytes / 2;
    run.clock.restart(at);
    return (at / TARGET_RATE) * 1000;
  }

  private apply(action: ResultsAction): void {
    const view = resultsReducer(this.snapshot.view, action);
    this.update({ view, exported: this.snapshot.exported && view.results.length === 0 });
  }

  private dispatch(message: ServerMessage, latencyMs: number | null = null, streamStartMs: number | null = null): void {
    this.apply({ type: "message", message, atMs: this.deps.now(), latencyMs, streamStartMs });
  }

  /** Empty results and a new client for `run`; connects at once. `lossless`: the server must
   * classify every window (back-pressure instead of shedding under overload): files. */
  private openClient(run: Run, url: string, reconnect: boolean, lossless = false): ClientLike {
    this.update({ view: emptyResults, exported: true });
    const client = this.deps.createClient({
      url,
      // A stream that reconnects asks for acks, to resume on any front (see REPLAY_MS).
      maxQueuedBytes: MAX_QUEUED_BYTES,
      ...(reconnect ? { maxReplayBytes: REPLAY_BYTES } : {}),
      start: {
        type: "start",
        sample_rate: TARGET_RATE,
        encoding: "pcm_s16le",
        channels: 1,
        ...(reconnect ? { acks: true } : {}),
        ...(lossless ? { lossless: true } : {}),
        ...(this.token ? { token: this.token } : {}),
      },
      reconnect,
      onMessage: (message) => {
        if (this.run !== run) return;
        const streamStartMs = message.type === "ready" ? this.onReady(run, client, message.resumed) : null;
        const latency = message.type === "result" ? run.clock.since(message.end_ms, this.deps.now()) : null;
        this.dispatch(message, latency, streamStartMs);
      },
      onState: (conn) => {
        this.updatePhase(run, (p) => (p.kind === "mic" || p.kind === "file" ? { ...p, conn } : p));
      },
      onProtocolError: (error) => {
        if (this.run === run) this.apply({ type: "unreadable", problem: error.message });
      },
      onDropped: (totalBytes) => {
        if (this.run === run) this.apply({ type: "unsent", totalMs: (totalBytes / 2 / TARGET_RATE) * 1000 });
      },
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
    const run = this.begin({ kind: "mic", mic: { kind: "idle" }, conn: { kind: "idle" } }, "microphone");
    const client = this.openClient(run, url, true);
    const engine = this.deps.createEngine({
      onFrame: (samples) => {
        run.clock.sent(samples.length, this.deps.now());
        client.send(floatToPcm16(samples));
      },
      onLevel: (level) => {
        if (!run.ended) this.setLevel(level); // a run that is not ended is the latest
      },
      onState: (mic) => this.updatePhase(run, (p) => (p.kind === "mic" ? { ...p, mic } : p)),
    });
    run.engine = engine;
    await engine.start(deviceId);
    if (run.ended) return; // stopped meanwhile; stop() released everything
    if (engine.current.kind === "error") {
      // Only the microphone failed: the connection opened for it is no news (nothing was sent).
      run.ended = true;
      client.close();
      this.updatePhase(run, (p) => (p.kind === "mic" ? { ...p, conn: { kind: "idle" } } : p));
    } else {
      this.refreshDevices(); // labels are visible once permission is granted
    }
  }

  /**
   * Decode `file` and classify it: in real time over the stream (a live demo: results arrive as
   * the audio plays), or "fast" through POST /classify, which classifies every window (never
   * drops, however busy the server). Does nothing while a stream is active. Never rejects.
   */
  async streamFile(url: string, file: File, realtime: boolean): Promise<void> {
    if (this.active) return;
    const decoding: Phase = { kind: "decoding", fileName: file.name, bytes: file.size, sinceMs: this.deps.now() };
    const run = this.begin(decoding, file.name);
    await runFile(this.fileHost(run, url), run, url, file, realtime);
  }

  /** What a file run may do to the page, on behalf of `run` (see file-run.ts). */
  private fileHost(run: Run, url: string): FileHost {
    return {
      deps: this.deps,
      server: () => this.snapshot.server,
      setPhase: (change) => this.updatePhase(run, change),
      hold: (samples, fileName) => {
        this.playback.hold(samples);
        this.update({ recording: fileName });
      },
      clearResults: () => this.update({ view: emptyResults, exported: true }),
      openClient: () => this.openClient(run, url, false, true),
      setLevel: (level) => this.setLevel(level),
      dispatch: (message) => this.dispatch(message),
      unreadable: (problem) => this.apply({ type: "unreadable", problem }),
    };
  }

  /**
   * Stop what runs: the microphone is released, the server is asked to flush and end the stream
   * (its last results and `end` still arrive), a pending decode is dropped. Idempotent.
   */
  async stop(): Promise<void> {
    const run = this.run;
    if (!run || run.ended) return;
    run.ended = true;
    const stopped = stoppedFilePhase(this.snapshot.phase, this.deps.now());
    if (stopped) this.update({ phase: stopped });
    run.abort?.abort();
    await run.engine?.stop();
    run.client?.stop();
    this.setLevel(0);
  }

  /** Release everything now without flushing (the page is going away). Idempotent. */
  async dispose(): Promise<void> {
    this.disposed = true;
    this.playback.stop();
    const run = this.run;
    if (!run) return;
    run.ended = true;
    run.abort?.abort();
    run.client?.close();
    await run.engine?.destroy();
  }
}
