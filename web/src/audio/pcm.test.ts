import { describe, expect, it } from "vitest";
import { floatToPcm16, rms } from "./pcm";

describe("floatToPcm16", () => {
  it("encodes little-endian 16-bit with clipping", () => {
    const view = new DataView(floatToPcm16(Float32Array.from([0, 0.5, -1, 1, 2, -3])));
    expect([0, 1, 2, 3, 4, 5].map((i) => view.getInt16(i * 2, true))).toEqual([0, 16384, -32768, 32767, 32767, -32768]);
    expect(view.byteLength).toBe(12);
  });
});

describe("rms", () => {
  it("is the root mean square", () => {
    expect(rms(Float32Array.from([0.5, -0.5]))).toBeCloseTo(0.5);
    expect(rms(new Float32Array(0))).toBe(0);
  });
});
