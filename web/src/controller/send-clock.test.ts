import { describe, expect, it } from "vitest";
import { MAX_MARKS, SendClock } from "./send-clock";

describe("SendClock", () => {
  it("times a window's end from when its last sample was captured", () => {
    const c = new SendClock();
    c.sent(1600, 1100); // samples 0-1600 (0-100 ms), the last captured at 1100
    c.sent(1600, 1200); // 100-200 ms
    expect(c.since(200, 1500)).toBe(300);
    expect(c.since(150, 1500)).toBe(350); // inside a frame: 50 ms before it was sent
    expect(c.since(300, 1500)).toBeNull(); // not sent yet: no claim
    expect(c.total).toBe(3200);
  });

  it("counts a restarted stream's audio from where it began", () => {
    const c = new SendClock();
    c.sent(16000, 1000);
    c.sent(16000, 2000);
    c.restart(16000); // the new stream's 0 is the clock's second second
    expect(c.since(1000, 2100)).toBe(100);
    c.restart(99_999);
    expect(c.since(0, 2100)).toBe(100); // clamped to what was sent
  });

  it("merges close marks and forgets the oldest beyond its bound", () => {
    const c = new SendClock();
    c.sent(160, 0);
    c.sent(160, 5);
    c.sent(160, 8); // replaces the mark at 5: too close to the one at 0
    expect(c.since(30, 10)).toBe(2);
    expect(c.since(20, 10)).toBe(2 + 10); // inside the merged mark: 10 ms of audio before it
    for (let i = 1; i <= MAX_MARKS + 20; i++) c.sent(1600, i * 100);
    expect(c.since(20, 10)).toBeNull(); // forgotten: more than a second before the oldest mark
  });
});
