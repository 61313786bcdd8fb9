// File mode: decode any audio file the browser understands and resample it to 16 kHz mono with
// an OfflineAudioContext (the browser's own band-limited resampler).

import { TARGET_RATE } from "./pcm";

export async function decodeFileTo16k(file: File): Promise<Float32Array> {
  const bytes = await file.arrayBuffer();
  const probe = new AudioContext();
  let decoded: AudioBuffer;
  try {
    decoded = await probe.decodeAudioData(bytes);
  } finally {
    await probe.close();
  }
  const frames = Math.ceil(decoded.duration * TARGET_RATE);
  const offline = new OfflineAudioContext(1, Math.max(frames, 1), TARGET_RATE);
  const node = offline.createBufferSource();
  node.buffer = decoded; // channels are downmixed to mono by the destination
  node.connect(offline.destination);
  node.start();
  const rendered = await offline.startRendering();
  return rendered.getChannelData(0);
}
