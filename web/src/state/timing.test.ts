import { describe, expect, it } from "vitest";
import { delayText, followDelay, paceText, windowsToFlip } from "./timing";

describe("followDelay", () => {
  it("needs a strict majority of the smoothing windows to flip the headline", () => {
    expect([1, 2, 3, 4, 5, 6].map(windowsToFlip)).toEqual([1, 2, 2, 3, 3, 4]);
  });

  it("is half a window, two more hops and the delivery for the defaults (1000/500/4)", () => {
    const d = followDelay({ window_ms: 1000, hop_ms: 500, smoothing: 4 }, 100);
    expect(d).toEqual({ lowMs: 1600, highMs: 2100 });
    expect(delayText(d)).toBe("1.6–2.1 s");
  });

  it("without smoothing only the window and the hop count", () => {
    expect(followDelay({ window_ms: 1000, hop_ms: 250, smoothing: 1 }, 0)).toEqual({ lowMs: 500, highMs: 750 });
  });

  it("assumes a delivery time until one was measured", () => {
    expect(followDelay({ window_ms: 1000, hop_ms: 500, smoothing: 4 }, null).lowMs).toBe(1650);
  });

  it("writes one figure when the range rounds to it", () => {
    expect(delayText({ lowMs: 1010, highMs: 1040 })).toBe("1.0 s");
  });
});

describe("paceText", () => {
  it("says how often results come while the server is busy, and how often they normally do", () => {
    expect(paceText({ hop_ms: 2000, normal_hop_ms: 500 })).toBe(
      "Fewer updates: server busy. A result every 2.0 s instead of every 0.5 s, each as fresh as before.",
    );
  });

  it("a wider hop delays the headline by as many hops", () => {
    expect(followDelay({ window_ms: 1000, hop_ms: 1000, smoothing: 4 }, 100)).toEqual({ lowMs: 2600, highMs: 3600 });
  });
});
