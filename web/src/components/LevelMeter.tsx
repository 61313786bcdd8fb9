export function LevelMeter({ level }: { level: number }) {
  // RMS → dBFS, shown from -60 dB to 0 dB.
  const db = level > 0 ? 20 * Math.log10(level) : -60;
  const pct = Math.max(0, Math.min(100, ((db + 60) / 60) * 100));
  return (
    <div
      className="meter"
      role="meter"
      aria-label="Input level"
      aria-valuemin={-60}
      aria-valuemax={0}
      aria-valuenow={Math.round(db)}
    >
      <div className="meter-fill" style={{ width: `${pct}%` }} />
    </div>
  );
}
