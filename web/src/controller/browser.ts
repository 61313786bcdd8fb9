// The composition root for the page: a PageController wired to the browser's real APIs.

import { AudioEngine, listMicrophones } from "../audio/engine";
import { decodeFileTo16k } from "../audio/file";
import { TARGET_RATE } from "../audio/pcm";
import { encodeWav } from "../audio/wav";
import { StreamClient } from "../net/client";
import { classifyWav, fetchServerInfo, httpBase } from "../net/http";
import { PageController } from "./controller";

/** Play 16 kHz mono samples through a fresh AudioContext, closed when they end or are stopped. */
function playSamples(samples: Float32Array, onEnded: () => void): () => void {
  const context = new AudioContext();
  const buffer = context.createBuffer(1, samples.length, TARGET_RATE);
  buffer.copyToChannel(new Float32Array(samples), 0);
  const source = context.createBufferSource();
  source.buffer = buffer;
  source.connect(context.destination);
  let done = false;
  const finish = () => {
    if (done) return;
    done = true;
    void context.close();
    onEnded();
  };
  source.onended = finish;
  source.start();
  return () => {
    try {
      source.stop();
    } catch {
      // not started or already stopped
    }
    finish();
  };
}

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
      play: playSamples,
      classify: (wsUrl, samples, signal) =>
        classifyWav(httpBase(wsUrl), encodeWav(samples, TARGET_RATE), token, signal, doFetch),
    },
    token,
  );
}
