// The composition root for the page: a PageController wired to the browser's real APIs.

import { AudioEngine, listMicrophones } from "../audio/engine";
import { decodeFileTo16k } from "../audio/file";
import { TARGET_RATE } from "../audio/pcm";
import { encodeWav } from "../audio/wav";
import { StreamClient } from "../net/client";
import { classifyWav, fetchServerInfo, httpBase } from "../net/http";
import { PageController } from "./controller";

export function createBrowserController(token?: string): PageController {
  const doFetch: typeof fetch = (input, init) => fetch(input, init);
  return new PageController(
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
      wallClock: () => Date.now(),
      sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
      fetchServerInfo: (wsUrl) => fetchServerInfo(httpBase(wsUrl), token, doFetch),
      classify: (wsUrl, samples, signal) =>
        classifyWav(httpBase(wsUrl), encodeWav(samples, TARGET_RATE), token, signal, doFetch),
    },
    token,
  );
}
