// A thin React adapter: the page's PageController, read with useSyncExternalStore.

import { useCallback, useEffect, useState, useSyncExternalStore } from "react";
export { useNow } from "./useNow";
import { pageToken } from "../config";
import { createBrowserController } from "../controller/browser";

/** `wsUrl`: the server's address once known; `urlReady` resolves with it, so that Start or a file
 * chosen before it was known waits for it rather than doing nothing. */
export function useVoxlive(wsUrl: string | null, urlReady: Promise<string> | null = null) {
  const [controller] = useState(() => createBrowserController(pageToken(window.location.search)));
  useEffect(() => controller.attach(), [controller]);
  useEffect(() => {
    if (wsUrl) void controller.loadServerInfo(wsUrl);
  }, [controller, wsUrl]);
  const snapshot = useSyncExternalStore(controller.subscribe, controller.getSnapshot);
  const url = useCallback(async () => wsUrl ?? (urlReady ? await urlReady : null), [wsUrl, urlReady]);
  const startMic = useCallback(
    async (deviceId?: string) => {
      const to = await url();
      if (to) await controller.startMic(to, deviceId);
    },
    [controller, url],
  );
  const streamFile = useCallback(
    async (file: File, realtime: boolean) => {
      const to = await url();
      if (to) await controller.streamFile(to, file, realtime);
    },
    [controller, url],
  );
  const stop = useCallback(() => controller.stop(), [controller]);
  const retryNow = useCallback(() => controller.retryNow(), [controller]);
  const markExported = useCallback(() => controller.markExported(), [controller]);
  const listen = useCallback((startMs: number, endMs: number) => controller.listen(startMs, endMs), [controller]);
  const stopListening = useCallback(() => controller.stopListening(), [controller]);
  return {
    ...snapshot,
    level: controller as LevelSource, // read with useLevel, so that the meter alone re-renders
    unexported: controller.unexported,
    startMic,
    stop,
    streamFile,
    retryNow,
    markExported,
    listen,
    stopListening,
  };
}

/** Where the input level comes from: its own store, apart from the page's snapshot. */
export interface LevelSource {
  subscribeLevel(listener: () => void): () => void;
  getLevel(): number;
}

/** The input level (rms in [0, 1]); a component that reads it re-renders with every audio frame. */
export function useLevel(source: LevelSource): number {
  return useSyncExternalStore(source.subscribeLevel, source.getLevel);
}
