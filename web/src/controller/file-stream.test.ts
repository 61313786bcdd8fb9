import { describe, expect, it } from "vitest";
import type { ConnState } from "../net/client";
import {
  CHUNK_SAMPLES,
  type FileSink,
  type FileStreamOptions,
  MAX_BUFFERED_BYTES,
  POLL_MS,
  streamSamples,
} from "./file-stream";

class Sink implements FileSink {
  current: ConnState = { kind: "open" };
  bufferedAmount = 0;
  sent: ArrayBuffer[] = [];
  send(frame: ArrayBuffer) {
    this.sent.push(frame);
  }
}

function run(samples: Float32Array, sink: Sink, overrides: Partial<FileStreamOptions> = {}) {
  const clock = { ms: 5000 };
  const sleeps: number[] = [];
  const chunks: [number, number][] = [];
  const options: FileStreamOptions = {
    realtime: false,
    cancelled: () => false,
    onChunk: (level, progress) => chunks.push([level, progress]),
    now: () => clock.ms,
    sleep: async (ms) => {
      sleeps.push(ms);
      clock.ms += ms;
    },
    ...overrides,
  };
  return { done: streamSamples(samples, sink, options), clock, sleeps, chunks };
}

describe("streamSamples", () => {
  it("sends 100 ms PCM chunks, the last one short, reporting level and progress", async () => {
    const samples = new Float32Array(CHUNK_SAMPLES * 2 + 400).fill(0.5);
    samples.fill(-1, CHUNK_SAMPLES * 2);
    const sink = new Sink();
    const { done, sleeps, chunks } = run(samples, sink);
    expect(await done).toBe("sent");
    expect(CHUNK_SAMPLES).toBe(1600);
    expect(sink.sent.map((b) => b.byteLength)).toEqual([3200, 3200, 800]);
    expect(new Int16Array(sink.sent[2])[0]).toBe(-32768);
    expect(chunks).toEqual([
      [0.5, 1600 / 3600],
      [0.5, 3200 / 3600],
      [1, 1],
    ]);
    expect(sleeps).toEqual([]); // as fast as the socket takes it
  });

  it("sends nothing for no samples", async () => {
    const sink = new Sink();
    expect(await run(new Float32Array(0), sink).done).toBe("sent");
    expect(sink.sent).toEqual([]);
  });

  it("paces chunks in real time against the clock", async () => {
    const { done, sleeps } = run(new Float32Array(CHUNK_SAMPLES * 3), new Sink(), { realtime: true });
    expect(await done).toBe("sent");
    expect(sleeps).toEqual([100, 100, 100]);
  });

  function slowClock(msPerLook: number) {
    const clock = { ms: 0 };
    const sleeps: number[] = [];
    const options: FileStreamOptions = {
      realtime: true,
      cancelled: () => false,
      onChunk: () => undefined,
      now: () => (clock.ms += msPerLook), // every look at the clock finds time has passed
      sleep: async (ms) => {
        sleeps.push(ms);
        clock.ms += ms;
      },
    };
    return { options, sleeps };
  }

  it("sleeps only until each chunk is due, measured from the start", async () => {
    const { options, sleeps } = slowClock(40);
    expect(await streamSamples(new Float32Array(CHUNK_SAMPLES * 3), new Sink(), options)).toBe("sent");
    // Started at 40; chunk k is due at 40 + 100 k; each look finds 40 ms more gone.
    expect(sleeps).toEqual([60, 60, 60]);
  });

  it("never sleeps a negative time when behind", async () => {
    const { options, sleeps } = slowClock(150);
    expect(await streamSamples(new Float32Array(CHUNK_SAMPLES * 3), new Sink(), options)).toBe("sent");
    expect(sleeps).toEqual([0, 0, 0]);
  });

  it("waits while connecting and sends once open", async () => {
    const sink = new Sink();
    sink.current = { kind: "connecting", attempt: 1 };
    let polls = 0;
    const sleeps: number[] = [];
    const { done } = run(new Float32Array(10), sink, {
      sleep: async (ms) => {
        sleeps.push(ms);
        if (++polls === 3) sink.current = { kind: "open" };
      },
    });
    expect(await done).toBe("sent");
    expect(sleeps).toEqual([POLL_MS, POLL_MS, POLL_MS]);
    expect(POLL_MS).toBe(10);
    expect(sink.sent).toHaveLength(1);
  });

  it("waits while more than the limit is unsent, not at the limit", async () => {
    const sink = new Sink();
    sink.bufferedAmount = MAX_BUFFERED_BYTES + 1;
    const sleeps: number[] = [];
    const done = run(new Float32Array(10), sink, {
      sleep: async (ms) => {
        sleeps.push(ms);
        sink.bufferedAmount = MAX_BUFFERED_BYTES;
      },
    }).done;
    expect(await done).toBe("sent");
    expect(sleeps).toEqual([POLL_MS]);
    expect(MAX_BUFFERED_BYTES).toBe(256_000);
  });

  it("stops when the connection is no longer open", async () => {
    const sink = new Sink();
    sink.current = { kind: "closed", code: 1011, reason: "x" };
    const { done } = run(new Float32Array(CHUNK_SAMPLES * 2), sink);
    expect(await done).toBe("closed");
    expect(sink.sent).toEqual([]);
  });

  it("stops between chunks when cancelled, and while waiting", async () => {
    const sink = new Sink();
    let sends = 0;
    sink.send = () => (sends += 1);
    let cancel = false;
    const first = run(new Float32Array(CHUNK_SAMPLES * 5), sink, {
      cancelled: () => cancel,
      onChunk: () => (cancel = sends === 2),
    });
    expect(await first.done).toBe("cancelled");
    expect(sends).toBe(2);

    const waiting = new Sink();
    waiting.current = { kind: "connecting", attempt: 1 };
    let polls = 0;
    const second = run(new Float32Array(10), waiting, {
      cancelled: () => polls >= 2,
      sleep: async () => {
        polls += 1;
      },
    });
    expect(await second.done).toBe("cancelled");
    expect(polls).toBe(2);
    expect(waiting.sent).toEqual([]);
  });
});
