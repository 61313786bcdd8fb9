import { memo, useEffect, useRef, useState } from "react";
import { countRender } from "../render-count";
import type { SegmentMessage } from "../protocol/messages";
import { minSec } from "../format";
import type { Playing } from "../controller/playback";
import { AMBIENT, labelText, type LogEntry, type Summary } from "../state/results";

/** The segment log: "0:01–0:05 female 87%", oldest first, with "no data" rows where no stream
 * classified the audio. It follows the newest row while the reader is at the bottom; a reader who
 * scrolled back stays where they are, and "Jump to latest" says how many rows came since. The open
 * segment ends "now" only while results are live. */
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
  const [heldAt, setHeldAt] = useState<number | null>(null); // rows when the reader scrolled back
  useEffect(() => {
    if (heldAt === null && list.current) list.current.scrollTop = list.current.scrollHeight;
  }, [entries.length, heldAt]);
  const onScroll = () => {
    const el = list.current;
    if (!el) return;
    const atBottom = el.scrollHeight - el.scrollTop - el.clientHeight < 8;
    setHeldAt(atBottom ? null : (held) => held ?? entries.length);
  };
  const newRows = heldAt === null ? 0 : entries.length - heldAt;
  return (
    <section className={`card ${live ? "" : "stale-card"}`} aria-label="Segments">
      <h2>Segments</h2>
      {entries.length === 0 ? (
        <p className="muted small">Each stretch of one label appears here.</p>
      ) : (
        <ol
          className="segments"
          ref={list}
          data-testid="segments"
          tabIndex={0}
          aria-label="Segments, oldest first"
          onScroll={onScroll}
        >
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
      {heldAt !== null && (
        <button
          type="button"
          className="small-button jump-latest"
          data-testid="jump-latest"
          onClick={() => setHeldAt(null)}
        >
          Jump to latest{newRows > 0 ? ` (${newRows} new)` : ""} ↓
        </button>
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
