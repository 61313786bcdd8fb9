// A thin React adapter over AudioEngine + StreamClient + the session reducer.

import { useCallback, useEffect, useReducer, useRef, useState } from "react";
import { AudioEngine, type EngineState, listMicrophones, TARGET_RATE } from "../audio/engine";
import { decodeFileTo16k } from "../audio/file";
import { floatToPcm16 } from "../audio/pcm";
import { pageToken } from "../config";
import { type ConnState, StreamClient } from "../net/client";
import { initialSession, sessionReducer } from "../state/session";

export type Source = "mic" | "file";

export function useVoxlive(wsUrl: string | null) {
  const [session, dispatch] = useReducer(sessionReducer, initialSession);
  const [conn, setConn] = useState<ConnState>({ kind: "idle" });
  const [mic, setMic] = useState<EngineState>({ kind: "idle" });
  const [level, setLevel] = useState(0);
  const [devices, setDevices] = useState<MediaDeviceInfo[]>([]);
  const [source, setSource] = useState<Source | null>(null);
  const [fileProgress, setFileProgress] = useState<number | null>(null);
  const [fileError, setFileError] = useState<string | null>(null);
  const engine = useRef<AudioEngine | null>(null);
  const client = useRef<StreamClient | null>(null);
  const t0 = useRef(0);
  const cancelFile = useRef(false);
  const token = pageToken(window.location.search);

  const refreshDevices = useCallback(() => {
    listMicrophones()
      .then(setDevices)
      .catch(() => setDevices([]));
  }, []);

  useEffect(() => {
    refreshDevices();
    navigator.mediaDevices?.addEventListener?.("devicechange", refreshDevices);
    return () => navigator.mediaDevices?.removeEventListener?.("devicechange", refreshDevices);
  }, [refreshDevices]);

  const openClient = useCallback(
    (reconnect: boolean) => {
      if (!wsUrl) return null;
      dispatch({ type: "reset" });
      t0.current = performance.now();
      const c = new StreamClient({
        url: wsUrl,
        start: {
          type: "start",
          sample_rate: TARGET_RATE,
          encoding: "pcm_s16le",
          channels: 1,
          ...(token ? { token } : {}),
        },
        reconnect,
        onMessage: (message) => dispatch({ type: "message", message, atMs: performance.now() - t0.current }),
        onState: setConn,
      });
      client.current = c;
      c.connect();
      return c;
    },
    [wsUrl, token],
  );

  const startMic = useCallback(
    async (deviceId?: string) => {
      if (client.current || !wsUrl) return;
      setSource("mic");
      const c = openClient(true);
      const e = new AudioEngine({
        onFrame: (samples) => c?.send(floatToPcm16(samples)),
        onLevel: setLevel,
        onState: setMic,
      });
      engine.current = e;
      await e.start(deviceId);
      if (e.current.kind === "error") {
        c?.close();
        client.current = null;
      } else {
        refreshDevices(); // labels are visible once permission is granted
      }
    },
    [openClient, refreshDevices, wsUrl],
  );

  const stop = useCallback(async () => {
    cancelFile.current = true;
    await engine.current?.stop();
    engine.current = null;
    client.current?.stop();
    client.current = null;
    setLevel(0);
  }, []);

  const streamFile = useCallback(
    async (file: File, realtime: boolean) => {
      if (client.current || !wsUrl) return;
      setSource("file");
      setFileError(null);
      let samples: Float32Array;
      try {
        samples = await decodeFileTo16k(file);
      } catch {
        setFileError(`"${file.name}" could not be decoded as audio.`);
        return;
      }
      const c = openClient(false);
      if (!c) return;
      cancelFile.current = false;
      const chunk = TARGET_RATE / 10; // 100 ms
      const started = performance.now();
      for (let i = 0; i < samples.length && !cancelFile.current; i += chunk) {
        while (c.current.kind === "connecting" || c.bufferedAmount > 256_000) {
          await new Promise((r) => setTimeout(r, 10));
        }
        if (c.current.kind !== "open") break;
        const block = samples.subarray(i, i + chunk);
        c.send(floatToPcm16(block));
        setLevel(Math.sqrt(block.reduce((a, v) => a + v * v, 0) / Math.max(1, block.length)));
        setFileProgress(Math.min(1, (i + chunk) / samples.length));
        if (realtime) {
          const due = started + ((i + chunk) / TARGET_RATE) * 1000;
          await new Promise((r) => setTimeout(r, Math.max(0, due - performance.now())));
        }
      }
      setLevel(0);
      // openClient() set client.current; a Stop press since then cleared it.
      if ((client.current as StreamClient | null) === c) {
        c.stop();
        client.current = null;
      }
    },
    [openClient, wsUrl],
  );

  useEffect(
    () => () => {
      void engine.current?.destroy();
      client.current?.close();
    },
    [],
  );

  return { session, conn, mic, level, devices, source, fileProgress, fileError, startMic, stop, streamFile };
}
