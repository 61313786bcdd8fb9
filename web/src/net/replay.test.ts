import { describe, expect, it } from "vitest";
import { ReplayBuffer } from "./replay";

const frame = (bytes: number) => new ArrayBuffer(bytes);

describe("ReplayBuffer", () => {
  it("forgets sent frames once an ack covers them whole, and keeps one the ack falls inside", () => {
    const b = new ReplayBuffer(1000, 2);
    b.add(frame(200), 0, 0); // frames 0..100
    b.add(frame(200), 200, 100); // 100..200
    b.add(frame(200), 400, 200); // 200..300
    b.ack(100);
    expect(b.firstSentPos).toBe(100);
    b.ack(250); // inside the third frame: it is kept, to replay from 200
    expect(b.firstSentPos).toBe(200);
    expect(b.heldBytes).toBe(200);
  });

  it("an ack stops at the first unsent frame", () => {
    const b = new ReplayBuffer(1000, 2);
    b.add(frame(200), 0, null);
    b.ack(1_000_000);
    expect(b.length).toBe(1);
  });

  it("drops the oldest beyond maxBytes and counts sent and unsent apart", () => {
    const b = new ReplayBuffer(500, 2);
    expect(b.add(frame(200), 0, 0)).toBe(0);
    expect(b.add(frame(200), 200, 100)).toBe(0);
    expect(b.add(frame(200), 400, null)).toBe(0); // 600 > 500: the oldest (sent) falls out
    expect(b.droppedSentBytes).toBe(200);
    expect(b.firstSentPos).toBe(100);
    b.forgetSent();
    expect(b.heldBytes).toBe(200);
    expect(b.add(frame(400), 600, null)).toBe(200); // an unsent one falls out: reported
    expect([b.droppedSentBytes, b.droppedUnsentBytes, b.heldBytes]).toEqual([200, 200, 400]);
  });

  it("renumbers a new stream from the first frame its connection sent; the old stream's go", () => {
    const b = new ReplayBuffer(10_000, 2);
    b.add(frame(200), 0, 500);
    b.add(frame(200), 200, 600);
    b.add(frame(200), 400, null);
    b.renumber(600);
    expect(b.all().map((h) => h.pos)).toEqual([0, null]);
    expect(b.heldBytes).toBe(400);
  });

  it("place numbers a frame as it goes out; frames counts sample frames (stereo f32: 8 bytes each)", () => {
    const b = new ReplayBuffer(10_000, 8);
    b.add(frame(800), 0, null);
    expect(b.firstSentPos).toBeNull();
    b.place(b.all()[0], 42);
    expect(b.firstSentPos).toBe(42);
    expect(b.frames(b.all()[0])).toBe(100);
  });
});
