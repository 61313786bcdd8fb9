import { memo } from "react";
import { countRender } from "../render-count";

/** The input level as a bar. It changes with every audio frame: only this element re-renders,
 * and the bar moves with a transform, which needs no layout. */
export const LevelMeter = memo(function LevelMeter({ level }: { level: number }) {
  countRender("meter");
  // RMS → dBFS, shown from -60 dB to 0 dB.
  const db = level > 0 ? 20 * Math.log10(level) : -60;
  const fraction = Math.max(0, Math.min(1, (db + 60) / 60));
  return (
    <div
      className="meter"
      role="meter"
      aria-label="Input level"
      aria-valuemin={-60}
      aria-valuemax={0}
      aria-valuenow={Math.round(db)}
    >
      <div className="meter-fill" style={{ transform: `scaleX(${fraction.toFixed(3)})` }} />
    </div>
  );
});
