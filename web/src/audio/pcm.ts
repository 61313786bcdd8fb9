// PCM encoding: float samples in [-1, 1] → 16-bit signed little-endian.

/** The sample rate the page sends, in Hz (mono). */
export const TARGET_RATE = 16_000;

/** Encode floats as pcm_s16le; values outside [-1, 1] are clipped. */
export function floatToPcm16(samples: Float32Array): ArrayBuffer {
  const out = new ArrayBuffer(samples.length * 2);
  const view = new DataView(out);
  for (let i = 0; i < samples.length; i++) {
    const s = Math.max(-1, Math.min(1, samples[i]));
    view.setInt16(i * 2, s < 0 ? Math.round(s * 32768) : Math.round(s * 32767), true);
  }
  return out;
}

/** Root-mean-square level of a block, 0 for an empty block. */
export function rms(samples: Float32Array): number {
  if (samples.length === 0) return 0;
  let sum = 0;
  for (let i = 0; i < samples.length; i++) sum += samples[i] * samples[i];
  return Math.sqrt(sum / samples.length);
}
