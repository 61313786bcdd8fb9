import { describe, expect, it } from "vitest";
import { Playback, type Playing } from "./playback";

function setup() {
  const plays: { samples: Float32Array; onEnded: () => void; stopped: boolean }[] = [];
  const changes: (Playing | null)[] = [];
  const playback = new Playback(
    (samples, onEnded) => {
      const play = { samples, onEnded, stopped: false };
      plays.push(play);
      return () => {
        play.stopped = true;
        onEnded();
      };
    },
    (playing) => changes.push(playing),
  );
  return { playback, plays, changes };
}

describe("Playback", () => {
  it("plays the held audio's stretch, clipped to it, and says when it ends", () => {
    const { playback, plays, changes } = setup();
    playback.listen(0, 1000);
    expect(plays).toHaveLength(0); // nothing held
    playback.hold(Float32Array.from({ length: 16_000 }, (_, i) => i));
    playback.listen(500, 9000);
    expect(plays[0].samples.length).toBe(8000); // 0.5 s to the end of the 1 s held
    expect(plays[0].samples[0]).toBe(8000);
    plays[0].onEnded();
    expect(changes).toEqual([{ startMs: 500, endMs: 9000 }, null]);
    playback.listen(2000, 3000); // wholly past the audio: nothing
    expect(plays).toHaveLength(1);
  });

  it("one stretch at a time: a new one stops the last; hold and stop end it", () => {
    const { playback, plays, changes } = setup();
    playback.hold(new Float32Array(16_000));
    playback.listen(0, 100);
    playback.listen(100, 200);
    expect(plays[0].stopped).toBe(true);
    expect(changes).toEqual([{ startMs: 0, endMs: 100 }, null, { startMs: 100, endMs: 200 }]);
    playback.hold(null);
    expect(plays[1].stopped).toBe(true);
    expect(changes.at(-1)).toBeNull();
    expect(playback.holding).toBe(false);
    playback.stop(); // idempotent
    expect(changes).toHaveLength(4);
  });
});
