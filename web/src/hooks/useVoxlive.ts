// A thin React adapter: the page's SessionController, read with useSyncExternalStore.

import { useCallback, useEffect, useState, useSyncExternalStore } from "react";
import { pageToken } from "../config";
import { createBrowserController } from "../session/browser";

export function useVoxlive(wsUrl: string | null) {
  const [controller] = useState(() => createBrowserController(pageToken(window.location.search)));
  useEffect(() => controller.attach(), [controller]);
  const snapshot = useSyncExternalStore(controller.subscribe, controller.getSnapshot);
  const startMic = useCallback(
    async (deviceId?: string) => {
      if (wsUrl) await controller.startMic(wsUrl, deviceId);
    },
    [controller, wsUrl],
  );
  const streamFile = useCallback(
    async (file: File, realtime: boolean) => {
      if (wsUrl) await controller.streamFile(wsUrl, file, realtime);
    },
    [controller, wsUrl],
  );
  const stop = useCallback(() => controller.stop(), [controller]);
  return { ...snapshot, startMic, stop, streamFile };
}
