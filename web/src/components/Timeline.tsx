import { memo, useMemo, useState } from "react";
import { minSec } from "../format";
import { countRender } from "../render-count";
import { AMBIENT, type Gap, TIMELINE_MS, type TimelinePoint } from "../state/results";

const W = 1000; // viewBox units; the SVG stretches to its box, text is HTML so it never does
const H = 100;
const BAND = 16; // the label band at the top
const PLOT_TOP = BAND + 6;
const MIN_SPAN_MS = 5_000; // the closest zoom
const NO_GAPS: Gap[] = [];
const MAX_RECTS = 600; // beyond this many windows in view, runs of one label are drawn as one band

/** Tick spacing for a span of `spanMs`: at most five labelled ticks (they must fit a 320 px phone). */
function tickStep(spanMs: number): number {
  for (const step of [1000, 2000, 5000, 10_000, 15_000, 30_000, 60_000, 120_000, 300_000, 600_000]) {
    if (spanMs / step <= 4) return step;
  }
  return 1_800_000;
}

interface Band {
  startMs: number;
  toMs: number;
  label: string;
  key: string;
}

/** The bands to draw for the windows in view: one per window, or one per run of a label when
 * there are too many to draw one by one (a long file seen whole). */
function bands(points: TimelinePoint[]): Band[] {
  const out: Band[] = [];
  const merge = points.length > MAX_RECTS;
  points.forEach((pt, i) => {
    const next = points[i + 1];
    const toMs = next && !next.breakBefore ? next.startMs : pt.endMs;
    const label = pt.result.label;
    const last = out[out.length - 1];
    if (merge && last && last.label === label && !pt.breakBefore) last.toMs = toMs;
    else out.push({ startMs: pt.startMs, toMs, label, key: `${pt.startMs}-${pt.result.seq}` });
  });
  return out;
}

interface Props {
  points: TimelinePoint[]; // every window of the session
  gaps?: Gap[]; // audio no stream classified (unreachable, an outage): a "no data" band
  labels: string[];
  live: boolean;
  fitMs: number | null; // a file's length: the chart fits the whole file; null: follow the last minute
}

/**
 * Audio time on a seconds axis: a band per window coloured (and patterned) by its label, and one
 * line, the probability of `lineLabel`, that breaks where audio is missing or the window held no
 * speech. A file is shown whole; a live stream follows its last minute. Either can be zoomed and
 * scrolled back over the whole session; "Latest"/"Whole file" returns to the default view. Audio
 * that no stream classified (the server unreachable, an outage) is a striped "no data" band.
 */
export const Timeline = memo(function Timeline({ points, gaps = NO_GAPS, labels, live, fitMs }: Props) {
  countRender("timeline");
  const [zoomMs, setZoomMs] = useState<number | null>(null); // null: the default span
  const [pinnedStartMs, setPinnedStartMs] = useState<number | null>(null); // null: follow the end
  const lastGap = gaps.length ? gaps[gaps.length - 1].endMs : 0;
  const dataEnd = Math.max(points.length ? points[points.length - 1].endMs : 0, fitMs ?? 0, lastGap);
  const dataStart = points.length ? Math.min(points[0].startMs, 0) : 0;
  const whole = Math.max(dataEnd - dataStart, 10_000);
  const defaultSpan = fitMs !== null ? whole : Math.min(whole, TIMELINE_MS);
  const spanMs = Math.min(Math.max(zoomMs ?? defaultSpan, MIN_SPAN_MS), Math.max(whole, MIN_SPAN_MS));
  const maxStart = Math.max(dataStart, dataEnd - spanMs);
  const startMs = pinnedStartMs === null ? maxStart : Math.min(Math.max(pinnedStartMs, dataStart), maxStart);
  const endMs = startMs + spanMs;
  const x = (ms: number) => ((ms - startMs) / spanMs) * W;
  const y = (p: number) => H - 2 - p * (H - 2 - PLOT_TOP);
  const lineLabel = labels.find((l) => l !== AMBIENT) ?? null;
  const visible = useMemo(
    () => points.filter((p) => p.endMs >= startMs && p.startMs <= endMs),
    [points, startMs, endMs],
  );
  const drawn = useMemo(() => bands(visible), [visible]);
  const shownGaps = gaps.filter((g) => g.endMs >= startMs && g.startMs <= endMs);
  const noDataMs = gaps.reduce((sum, g) => sum + g.endMs - g.startMs, 0);
  const every = Math.max(1, Math.ceil(visible.length / (MAX_RECTS * 2))); // thin the line, never the bands
  let path = "";
  let pen = false;
  visible.forEach((pt, i) => {
    // No line through windows without speech: their scores say nothing about the speaker.
    const p = lineLabel !== null && pt.result.label !== AMBIENT ? pt.result.scores[lineLabel] : undefined;
    if (p === undefined || pt.breakBefore) pen = false;
    if (p === undefined || (i % every !== 0 && pen)) return;
    const cx = x((pt.startMs + pt.endMs) / 2);
    path += `${pen ? "L" : "M"}${cx.toFixed(1)},${y(p).toFixed(1)}`;
    pen = true;
  });
  const step = tickStep(spanMs);
  const ticks: number[] = [];
  for (let t = Math.ceil(startMs / step) * step; t <= endMs; t += step) ticks.push(t);
  const zoom = (factor: number) => setZoomMs(Math.max(MIN_SPAN_MS, spanMs * factor));
  const reset = () => {
    setZoomMs(null);
    setPinnedStartMs(null);
  };
  const scrollable = maxStart > dataStart;
  const following = pinnedStartMs === null || startMs >= maxStart;
  const defaultView = zoomMs === null && following;
  return (
    <section className={`card ${live || !points.length ? "" : "stale-card"}`} aria-label="Timeline">
      <div className="card-head">
        <h2>Timeline (audio time)</h2>
        <div className="timeline-tools small" role="group" aria-label="Timeline view">
          <button type="button" onClick={() => zoom(0.5)} disabled={spanMs <= MIN_SPAN_MS} data-testid="zoom-in">
            Zoom in
          </button>
          <button type="button" onClick={() => zoom(2)} disabled={spanMs >= whole} data-testid="zoom-out">
            Zoom out
          </button>
          <button type="button" onClick={reset} disabled={defaultView} data-testid="zoom-reset">
            {fitMs !== null ? "Whole file" : "Latest"}
          </button>
        </div>
      </div>
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
            data-view-start={Math.round(startMs)}
            data-view-end={Math.round(endMs)}
            role="img"
            aria-label={`${points.length} windows from ${minSec(startMs)} to ${minSec(endMs)}${
              noDataMs > 0 ? `; no data for ${(noDataMs / 1000).toFixed(1)} s` : ""
            }`}
          >
            <defs>
              <pattern id="hatch" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)">
                <rect width="6" height="6" className="fill-female" />
                <line x1="0" y1="0" x2="0" y2="6" stroke="#fff" strokeWidth="2" />
              </pattern>
              <pattern id="nodata" width="4" height="4" patternUnits="userSpaceOnUse" patternTransform="rotate(-45)">
                <line x1="0" y1="0" x2="0" y2="4" className="nodata-stripe" strokeWidth="2" />
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
            {drawn.map(({ startMs: from, toMs: to, label, key }) => {
              const fill = label === AMBIENT ? "url(#dots)" : label === "female" ? "url(#hatch)" : undefined;
              return (
                <rect
                  key={key}
                  x={x(from)}
                  y={0}
                  width={Math.max(0.5, x(to) - x(from))}
                  height={BAND}
                  className={`band fill-${label}`}
                  style={fill ? { fill } : undefined}
                  data-label={label}
                />
              );
            })}
            {shownGaps.map((g) => (
              <rect
                key={`gap-${g.startMs}`}
                x={x(g.startMs)}
                y={0}
                width={Math.max(0.5, x(g.endMs) - x(g.startMs))}
                height={H}
                className="gap"
                style={{ fill: "url(#nodata)" }}
                data-label="no-data"
                data-testid="timeline-gap"
              />
            ))}
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
      {scrollable && (
        <input
          type="range"
          className="timeline-scroll"
          min={Math.floor(dataStart / 1000)}
          max={Math.ceil(maxStart / 1000)}
          step={1}
          value={Math.round(startMs / 1000)}
          onChange={(e) => {
            const s = Number(e.target.value) * 1000;
            setPinnedStartMs(s >= maxStart - 500 ? null : s); // at the end: follow again
          }}
          aria-label="Scroll the timeline"
          aria-valuetext={`${minSec(startMs)} to ${minSec(endMs)}`}
          data-testid="timeline-scroll"
        />
      )}
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
        {gaps.length > 0 && (
          <span>
            <span className="swatch swatch-gap" /> no data
          </span>
        )}
        {lineLabel && (
          <span>
            <span className="line-key" /> probability of {lineLabel}
          </span>
        )}
      </div>
    </section>
  );
});
