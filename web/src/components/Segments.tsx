import { memo, useEffect, useRef } from "react";
import { countRender } from "../render-count";
import type { SegmentMessage } from "../protocol/messages";
import { minSec } from "../format";
import type { Playing } from "../controller/playback";
import { AMBIENT, labelText, type LogEntry, type Summary } from "../state/results";

/** The segment log: "0:01–0:05 female 87%", oldest first, scrolled to the newest, with "no data"
 * rows where no stream classified the audio. The open segment ends "now" only while results are
 * live. */
export const SegmentLog = memo(function SegmentLog({
  entries,
  live,
  onListen = null,
  onStopListening = null,
  playing = null,
}: {
  entries: LogEntry[];
  live: boolean;
  onListen?: ((startMs: number, endMs: number) => void) | null; // listen back (a file's own audio); null: no audio held
  onStopListening?: (() => void) | null;
  playing?: Playing | null;
}) {
  countRender("segments");
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
                {onListen && !(open && live) && (
                  <ListenButton
                    seg={seg}
                    playing={playing?.startMs === seg.start_ms && playing.endMs === seg.end_ms}
                    onListen={onListen}
                    onStop={onStopListening}
                  />
                )}
              </li>
            ),
          )}
        </ol>
      )}
    </section>
  );
});

function ListenButton({
  seg,
  playing,
  onListen,
  onStop,
}: {
  seg: SegmentMessage;
  playing: boolean;
  onListen: (startMs: number, endMs: number) => void;
  onStop: (() => void) | null;
}) {
  const what = `${minSec(seg.start_ms)} to ${minSec(seg.end_ms)}, ${labelText(seg.label)}`;
  return (
    <button
      type="button"
      className="small-button listen"
      onClick={() => (playing ? onStop?.() : onListen(seg.start_ms, seg.end_ms))}
      aria-label={playing ? `Stop playing ${what}` : `Listen to ${what}`}
      aria-pressed={playing}
      data-testid="listen"
    >
      {playing ? "■ Stop" : "▶ Listen"}
    </button>
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
