import { TIMELINE_MS, type TimelinePoint } from "../state/session";

const COLORS = ["#2563eb", "#db2777", "#16a34a", "#ea580c", "#7c3aed", "#0891b2"];
const W = 600;
const H = 160;

/** Scores of each label over the last minute; quiet (ambient) windows are shaded. */
export function Timeline({ points, labels }: { points: TimelinePoint[]; labels: string[] }) {
  const now = points.length ? points[points.length - 1].atMs : 0;
  const x = (atMs: number) => W - ((now - atMs) / TIMELINE_MS) * W;
  const y = (p: number) => H - p * (H - 8) - 4;
  return (
    <section className="card" aria-label="Timeline of scores over the last minute">
      <h2>Last minute</h2>
      <svg
        viewBox={`0 0 ${W} ${H}`}
        className="timeline"
        data-testid="timeline"
        data-points={points.length}
        role="img"
        aria-label={`${points.length} results in the last minute`}
      >
        <line x1={0} x2={W} y1={y(0.5)} y2={y(0.5)} className="grid" />
        {points
          .filter((p) => p.result.label === "ambient")
          .map((p) => (
            <rect key={`a${p.result.seq}-${p.atMs}`} x={x(p.atMs) - 4} y={0} width={8} height={H} className="ambient" />
          ))}
        {labels.map((label, i) => {
          const scored = points.filter((p) => p.result.label !== "ambient" && label in p.result.scores);
          const color = COLORS[i % COLORS.length];
          return (
            <g key={label}>
              <polyline
                fill="none"
                stroke={color}
                strokeWidth={2}
                points={scored.map((p) => `${x(p.atMs).toFixed(1)},${y(p.result.scores[label]).toFixed(1)}`).join(" ")}
              />
              {scored.map((p) => (
                <circle
                  key={`${p.result.seq}-${p.atMs}`}
                  cx={x(p.atMs)}
                  cy={y(p.result.scores[label])}
                  r={2.5}
                  fill={color}
                />
              ))}
            </g>
          );
        })}
      </svg>
      <div className="legend">
        {labels.map((label, i) => (
          <span key={label}>
            <span className="swatch" style={{ background: COLORS[i % COLORS.length] }} /> {label}
          </span>
        ))}
        <span>
          <span className="swatch ambient-swatch" /> ambient
        </span>
      </div>
    </section>
  );
}
