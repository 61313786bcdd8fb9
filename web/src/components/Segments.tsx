import { useEffect, useRef } from "react";
import { minSec } from "../format";
import { AMBIENT, labelText, type LogEntry, type Summary } from "../state/results";

/** The segment log: "0:01–0:05 female 87%", oldest first, scrolled to the newest. The open
 * segment ends "now" only while results are live. */
export function SegmentLog({ entries, live }: { entries: LogEntry[]; live: boolean }) {
  const list = useRef<HTMLOListElement>(null);
  useEffect(() => {
    if (list.current) list.current.scrollTop = list.current.scrollHeight;
  }, [entries.length]);
  return (
    <section className={`card ${live ? "" : "stale-card"}`} aria-label="Segments">
      <h2>Segments</h2>
      {entries.length === 0 ? (
        <p className="muted small">Each stretch of one label appears here.</p>
      ) : (
        <ol className="segments" ref={list} data-testid="segments" tabIndex={0} aria-label="Segments, oldest first">
          {entries.map(({ seg, open, gap }) =>
            gap ? (
              <li key={`${seg.start_ms}-gap`} className="seg seg-gap" data-label="no-data">
                <span className="seg-time">
                  {minSec(seg.start_ms)}–{minSec(seg.end_ms)}
                </span>
                <span className="swatch swatch-gap" aria-hidden="true" />
                <strong className="seg-label">no data</strong>
                <span className="muted">{gap.reason === "unreachable" ? "server unreachable" : "connection lost"}</span>
              </li>
            ) : (
              <li key={`${seg.start_ms}-${seg.label}`} className={`seg seg-${seg.label}`} data-label={seg.label}>
                <span className="seg-time">
                  {minSec(seg.start_ms)}–{open && live ? "now" : minSec(seg.end_ms)}
                </span>
                <span className={`swatch swatch-${seg.label}`} aria-hidden="true" />
                <strong className="seg-label">{labelText(seg.label)}</strong>
                {seg.label !== AMBIENT && <span className="muted">{(seg.confidence * 100).toFixed(0)}%</span>}
              </li>
            ),
          )}
        </ol>
      )}
    </section>
  );
}

/** Totals after a run ends: time under each label, windows, what was dropped. */
export function SummaryCard({ summary }: { summary: Summary }) {
  const total = summary.perLabelMs.reduce((a, [, ms]) => a + ms, 0) || 1;
  const dropped = summary.droppedWindows + summary.droppedResults;
  return (
    <section className="card" aria-label="Summary" data-testid="summary">
      <h2>Summary</h2>
      <p className="small">
        {minSec(summary.durationMs)} of audio · <span data-testid="summary-windows">{summary.windows} windows</span> ·{" "}
        <span data-testid="summary-dropped" className={dropped ? "warn-text" : ""}>
          {dropped} dropped
        </span>
        {summary.noDataMs > 0 && (
          <>
            {" "}
            ·{" "}
            <span data-testid="summary-no-data" className="warn-text">
              no data for {(summary.noDataMs / 1000).toFixed(1)} s
            </span>
          </>
        )}
        {summary.unsentMs > 0 && summary.noDataMs === 0 && (
          <>
            {" "}
            ·{" "}
            <span data-testid="summary-unsent" className="warn-text">
              {(summary.unsentMs / 1000).toFixed(1)} s never sent
            </span>
          </>
        )}
      </p>
      <ul className="summary-labels">
        {summary.perLabelMs.map(([label, ms]) => (
          <li key={label}>
            <span className={`swatch swatch-${label}`} aria-hidden="true" /> <strong>{labelText(label)}</strong>{" "}
            {minSec(ms)} ({Math.round((ms / total) * 100)}%)
          </li>
        ))}
      </ul>
    </section>
  );
}
