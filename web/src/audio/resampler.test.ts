import { describe, expect, it } from "vitest";
import { Resampler } from "./resampler";

function tone(freq: number, rate: number, seconds: number, amp = 0.5): Float32Array {
  const out = new Float32Array(Math.round(rate * seconds));
  for (let i = 0; i < out.length; i++) out[i] = amp * Math.sin((2 * Math.PI * freq * i) / rate);
  return out;
}

function resampleChunked(x: Float32Array, from: number, to: number, chunk: number): Float32Array {
  const r = new Resampler(from, to);
  const parts: Float32Array[] = [];
  for (let i = 0; i < x.length; i += chunk) parts.push(r.process(x.subarray(i, i + chunk)));
  const out = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** Amplitude of one frequency by correlation (a single DFT bin). */
function amplitudeAt(x: Float32Array, freq: number, rate: number): number {
  let re = 0;
  let im = 0;
  for (let i = 0; i < x.length; i++) {
    re += x[i] * Math.cos((2 * Math.PI * freq * i) / rate);
    im += x[i] * Math.sin((2 * Math.PI * freq * i) / rate);
  }
  return (2 * Math.hypot(re, im)) / x.length;
}

describe("Resampler", () => {
  it("keeps a sine's frequency and level (48 kHz → 16 kHz, odd chunk sizes)", () => {
    const y = resampleChunked(tone(440, 48_000, 1), 48_000, 16_000, 1000);
    expect(Math.abs(y.length - 16_000)).toBeLessThan(40);
    const steady = y.subarray(800, 15_000);
    expect(amplitudeAt(steady, 440, 16_000)).toBeCloseTo(0.5, 2);
    expect(amplitudeAt(steady, 880, 16_000)).toBeLessThan(0.005);
  });

  it("works from 44.1 kHz too", () => {
    const y = resampleChunked(tone(1000, 44_100, 1), 44_100, 16_000, 128);
    expect(amplitudeAt(y.subarray(800, 15_000), 1000, 16_000)).toBeCloseTo(0.5, 2);
  });

  it("does not alias a tone above the new Nyquist", () => {
    // 10 kHz at 48 kHz would fold to 6 kHz at 16 kHz without a low-pass filter.
    const y = resampleChunked(tone(10_000, 48_000, 1), 48_000, 16_000, 512);
    const steady = y.subarray(800, 15_000);
    expect(amplitudeAt(steady, 6_000, 16_000)).toBeLessThan(0.005);
    let energy = 0;
    for (const v of steady) energy += v * v;
    expect(Math.sqrt(energy / steady.length)).toBeLessThan(0.005);
  });

  it("passes through when rates match", () => {
    const x = tone(300, 16_000, 0.1);
    expect(new Resampler(16_000, 16_000).process(x)).toBe(x);
  });
});
