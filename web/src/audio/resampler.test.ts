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

/** Level of `freq` after resampling `from` → 16 kHz, in dB relative to the input's level. */
function gainDb(freq: number, from: number): number {
  const y = resampleChunked(tone(freq, from, 0.3), from, 16_000, 777).subarray(400, 4400);
  let energy = 0;
  for (const v of y) energy += v * v;
  return 20 * Math.log10(Math.sqrt((2 * energy) / y.length) / 0.5);
}

describe("Resampler response", () => {
  it.each([
    [48_000, 73],
    [44_100, 69],
    [22_050, 35],
  ])("from %i Hz the output is the input delayed by %i input samples (kernel half-width + 1)", (from, delay) => {
    // 44.1 and 22.05 kHz put output points between input samples (22.05 kHz up to 319/320 of the
    // way to the next), so this checks the interpolation between kernel phases too.
    const y = resampleChunked(tone(440, from, 0.3), from, 16_000, 999);
    let worst = 0;
    for (let n = 400; n < 4400; n++) {
      const ideal = 0.5 * Math.sin((2 * Math.PI * 440 * (n * (from / 16_000) - delay)) / from);
      worst = Math.max(worst, Math.abs(y[n] - ideal));
    }
    expect(worst).toBeLessThan(1e-4);
  });

  it.each([48_000, 44_100, 22_050])("from %i Hz has unity gain at DC, to float precision", (from) => {
    const y = resampleChunked(new Float32Array(Math.round(from * 0.3)).fill(1), from, 16_000, 512);
    let worst = 0;
    for (const v of y.subarray(400, 4400)) worst = Math.max(worst, Math.abs(v - 1));
    expect(worst).toBeLessThan(1e-6);
  });

  it.each([48_000, 44_100])(
    "from %i Hz: flat to 6 kHz, −6 dB at 7.2 kHz, ≥ 50 dB down at 8 kHz, ≥ 85 dB above",
    (from) => {
      expect(Math.abs(gainDb(6_000, from))).toBeLessThan(0.1);
      expect(gainDb(7_200, from)).toBeCloseTo(-6, 0);
      expect(gainDb(8_000, from)).toBeLessThan(-50);
      for (const f of [9_000, 10_000, 12_000, 20_000]) expect(gainDb(f, from)).toBeLessThan(-85);
    },
  );

  it("keeps a bounded history however much it has processed", () => {
    const r = new Resampler(44_100, 16_000);
    const chunk = new Float32Array(1000);
    for (let i = 0; i < 100; i++) r.process(chunk);
    expect(r.heldSamples).toBeLessThan(136); // under one kernel width: 2 × 68 taps at 44.1 kHz
  });

  it.each([
    [0, 16_000],
    [-1, 16_000],
    [48_000, 0],
    [48_000, -16_000],
    [Number.NaN, 16_000],
  ])("rejects the rates %d → %d", (from, to) => {
    expect(() => new Resampler(from, to)).toThrow(RangeError);
    expect(() => new Resampler(from, to)).toThrow(`expected positive rates, got ${from} → ${to}`);
  });
});
