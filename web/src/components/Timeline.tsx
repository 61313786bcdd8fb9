import { minSec } from "../format";
import { AMBIENT, TIMELINE_MS, type TimelinePoint } from "../state/results";

const W = 1000; // viewBox units; the SVG stretches to its box, text is HTML so it never does
const H = 100;
const BAND = 16; // the label band at the top
const PLOT_TOP = BAND + 6;

/** Tick spacing for a span of `spanMs`: at most five labelled ticks (they must fit a 320 px phone). */
function tickStep(spanMs: number): number {
  for (const step of [1000, 2000, 5000, 10_000, 15_000, 30_000]) if (spanMs / step <= 4) return step;
  return 60_000;
}

/**
 * The last minute of audio: a band per window coloured (and patterned) by its label, and one line,
 * the probability of `lineLabel`, that breaks where audio is missing or the window held no speech.
 */
export function Timeline({ points, labels, live }: { points: TimelinePoint[]; labels: string[]; live: boolean }) {
  const endMs = points.length ? points[points.length - 1].endMs : 0;
  const startMs = Math.max(0, endMs - TIMELINE_MS);
  const spanMs = Math.max(endMs - startMs, 10_000);
  const x = (ms: number) => ((ms - startMs) / spanMs) * W;
  const y = (p: number) => H - 2 - p * (H - 2 - PLOT_TOP);
  const lineLabel = labels.find((l) => l !== AMBIENT) ?? null;
  let path = "";
  let pen = false;
  points.forEach((pt) => {
    // No line through windows without speech: their scores say nothing about the speaker.
    const p = lineLabel !== null && pt.result.label !== AMBIENT ? pt.result.scores[lineLabel] : undefined;
    if (p === undefined || pt.breakBefore) pen = false;
    if (p === undefined) return;
    const cx = x((pt.startMs + pt.endMs) / 2);
    path += `${pen ? "L" : "M"}${cx.toFixed(1)},${y(p).toFixed(1)}`;
    pen = true;
  });
  const step = tickStep(spanMs);
  const ticks: number[] = [];
  for (let t = Math.ceil(startMs / step) * step; t <= startMs + spanMs; t += step) ticks.push(t);
  return (
    <section className={`card ${live || !points.length ? "" : "stale-card"}`} aria-label="Timeline">
      <h2>Timeline (audio time)</h2>
      <div className="chart">
        <div className="y-axis small" aria-hidden="true">
          {[1, 0.5, 0].map((p) => (
            <span key={p} style={{ top: `${(y(p) / H) * 100}%` }}>
              {p * 100}%
            </span>
          ))}
        </div>
        <div className="plot">
          <svg
            viewBox={`0 0 ${W} ${H}`}
            preserveAspectRatio="none"
            className="timeline"
            data-testid="timeline"
            data-points={points.length}
            role="img"
            aria-label={`${points.length} windows from ${minSec(startMs)} to ${minSec(endMs)}`}
          >
            <defs>
              <pattern id="hatch" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)">
                <rect width="6" height="6" className="fill-female" />
                <line x1="0" y1="0" x2="0" y2="6" stroke="#fff" strokeWidth="2" />
              </pattern>
              <pattern id="dots" width="6" height="6" patternUnits="userSpaceOnUse">
                <rect width="6" height="6" fill="#e5e7eb" />
                <circle cx="3" cy="3" r="1.2" fill="#6b7280" />
              </pattern>
            </defs>
            {[0, 0.5, 1].map((p) => (
              <line key={p} x1={0} x2={W} y1={y(p)} y2={y(p)} className="grid" vectorEffect="non-scaling-stroke" />
            ))}
            {ticks.map((t) => (
              <line key={t} x1={x(t)} x2={x(t)} y1={0} y2={H} className="grid" vectorEffect="non-scaling-stroke" />
            ))}
            {points.map((pt, i) => {
              const next = points[i + 1];
              const to = next && !next.breakBefore ? next.startMs : pt.endMs;
              const label = pt.result.label;
              const fill = label === AMBIENT ? "url(#dots)" : label === "female" ? "url(#hatch)" : undefined;
              return (
                <rect
                  key={`${pt.startMs}-${pt.result.seq}`}
                  x={x(pt.startMs)}
                  y={0}
                  width={Math.max(0.5, x(to) - x(pt.startMs))}
                  height={BAND}
                  className={`band fill-${label}`}
                  style={fill ? { fill } : undefined}
                  data-label={label}
                />
              );
            })}
            {path && <path d={path} className="prob" vectorEffect="non-scaling-stroke" data-testid="prob-line" />}
          </svg>
          <div className="x-axis small" aria-hidden="true">
            {ticks.map((t) => (
              <span key={t} className={x(t) > W * 0.92 ? "at-end" : ""} style={{ left: `${(x(t) / W) * 100}%` }}>
                {minSec(t)}
              </span>
            ))}
          </div>
        </div>
      </div>
      <div className="legend small">
        {labels
          .filter((l) => l !== AMBIENT)
          .map((l) => (
            <span key={l}>
              <span className={`swatch swatch-${l}`} /> {l}
            </span>
          ))}
        <span>
          <span className="swatch swatch-ambient" /> no speech
        </span>
        {lineLabel && (
          <span>
            <span className="line-key" /> probability of {lineLabel}
          </span>
        )}
      </div>
    </section>
  );
}
