// The composition root for the page: a SessionController wired to the browser's real APIs.

import { AudioEngine, listMicrophones } from "../audio/engine";
import { decodeFileTo16k } from "../audio/file";
import { StreamClient } from "../net/client";
import { SessionController } from "./controller";

export function createBrowserController(token?: string): SessionController {
  return new SessionController(
    {
      createEngine: (events) => new AudioEngine(events),
      createClient: (options) => new StreamClient(options),
      decodeFile: decodeFileTo16k,
      listMicrophones,
      watchDevices: (onChange) => {
        navigator.mediaDevices?.addEventListener?.("devicechange", onChange);
        return () => navigator.mediaDevices?.removeEventListener?.("devicechange", onChange);
      },
      now: () => performance.now(),
      sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
    },
    token,
  );
}
