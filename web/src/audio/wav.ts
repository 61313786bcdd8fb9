// A 16-bit PCM mono WAV of float samples: what file mode uploads to /classify. Pure.

import { floatToPcm16 } from "./pcm";

export function encodeWav(samples: Float32Array, sampleRate: number): ArrayBuffer {
  const pcm = new Uint8Array(floatToPcm16(samples));
  const out = new ArrayBuffer(44 + pcm.byteLength);
  const v = new DataView(out);
  const ascii = (at: number, text: string) => [...text].forEach((c, i) => v.setUint8(at + i, c.charCodeAt(0)));
  ascii(0, "RIFF");
  v.setUint32(4, 36 + pcm.byteLength, true);
  ascii(8, "WAVE");
  ascii(12, "fmt ");
  v.setUint32(16, 16, true); // fmt chunk size
  v.setUint16(20, 1, true); // PCM
  v.setUint16(22, 1, true); // mono
  v.setUint32(24, sampleRate, true);
  v.setUint32(28, sampleRate * 2, true); // bytes per second
  v.setUint16(32, 2, true); // block align
  v.setUint16(34, 16, true); // bits per sample
  ascii(36, "data");
  v.setUint32(40, pcm.byteLength, true);
  new Uint8Array(out, 44).set(pcm);
  return out;
}
