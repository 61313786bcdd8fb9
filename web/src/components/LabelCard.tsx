import type { ResultMessage } from "../protocol/messages";
import { minSec } from "../format";
import { AMBIENT, type Answer, type Headline, labelText } from "../state/results";
import { delayText, type FollowDelay } from "../state/timing";

interface Props {
  headline: Headline | null;
  tentative: string | null; // the latest raw label, while it differs from the headline
  current: ResultMessage | null; // the latest window, for the details
  labels: string[];
  live: boolean; // results are arriving now; otherwise what is shown is greyed and dated
  ageMs: number | null; // since the latest result arrived
  why: string; // why it is not live ("stopped", "reconnecting", "file done")
  latencyMs: number | null; // audio end → label on screen
  follow: FollowDelay | null; // how long after a voice the headline shows it (null before ready)
  busy: boolean; // something runs: waiting for a first result rather than for the person
  serverLatencyMs: number | null;
  answer?: Answer | null; // a file's answer: the headline is the whole file's, not its last seconds
  answerOf?: string | null; // what the answer covers ("whole file", "so far: 0:07 of 0:18")
}

function ago(ms: number): string {
  return ms < 1000
    ? "under 1 s ago"
    : ms < 120_000
      ? `${Math.floor(ms / 1000)} s ago`
      : `${Math.floor(ms / 60_000)} min ago`;
}

function seconds(ms: number): string {
  return ms < 10_000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.round(ms / 1000)} s`;
}

/** The label a person should believe, its own confidence and how long it has held; the raw window behind Details. */
export function LabelCard({
  headline,
  tentative,
  current,
  labels,
  live,
  ageMs,
  why,
  latencyMs,
  follow,
  serverLatencyMs,
  busy,
  answer = null,
  answerOf = null,
}: Props) {
  // A file's answer is the headline: the whole file's (or so far), not its last seconds. The live
  // words (a tentative label, how long a label takes to follow a voice, "not live") are a live
  // headline's; the answer says itself what it covers.
  const stale = headline !== null && !live && answer === null;
  const label = answer?.label ?? headline?.label ?? null;
  const quiet = headline?.label === AMBIENT; // no speech: a confidence would mean nothing
  const bars = current && labels.length > 0 && (
    <div className="class-bars" role="group" data-testid="class-bars" aria-label="Latest window, per class">
      {labels.map((l) => {
        const p = current.scores[l] ?? 0;
        return (
          <div className="bar-row small" key={l} data-label={l}>
            <span className="bar-name">{labelText(l)}</span>
            <span className="bar">
              <span className={`bar-fill fill-${l}`} style={{ width: `${(p * 100).toFixed(1)}%` }} />
            </span>
            {/* A gated window was never sent to the model: it has no scores, not 0 % of each. */}
            <span className="bar-value">{current.gated ? "—" : `${(p * 100).toFixed(0)}%`}</span>
          </div>
        );
      })}
    </div>
  );
  return (
    <section
      className={`card label-card ${label ? `label-${label}` : ""} ${stale ? "stale" : ""}`}
      aria-label="Current classification"
      data-testid="label-card"
      data-stale={stale}
    >
      {/* Announced when the label changes, and only then: the text is the label alone. */}
      <p className="visually-hidden" aria-live="polite" data-testid="announce">
        {label !== null ? labelText(label) : ""}
      </p>
      <div className={`label-big ${label ? "" : "muted"}`} data-testid="label" aria-hidden="true">
        {label !== null ? labelText(label) : "—"}
      </div>
      {live && answer === null && tentative !== null && (
        <div
          className="tentative small"
          data-testid="tentative"
          title="the latest window; the headline follows once most recent windows agree"
        >
          → {labelText(tentative)}?
        </div>
      )}
      {answer ? (
        <div className="label-facts" data-testid="answer">
          {answerOf && <span data-testid="answer-of">{answerOf}:</span>}
          {answer.perLabelMs.map(([l, ms]) => (
            <span key={l} data-testid="answer-part" data-label={l}>
              <span className={`swatch swatch-${l}`} aria-hidden="true" /> {labelText(l)} {minSec(ms)} (
              {Math.round((ms / (answer.totalMs || 1)) * 100)}%)
            </span>
          ))}
        </div>
      ) : headline ? (
        <div className="label-facts">
          {!quiet && (
            <>
              <span data-testid="confidence">confidence {(headline.confidence * 100).toFixed(0)}%</span>
              <span className="sep" aria-hidden="true">
                ·
              </span>
            </>
          )}
          <span data-testid="held">for {seconds(headline.heldMs)}</span>
          {live && follow !== null && (
            <>
              <span className="sep" aria-hidden="true">
                ·
              </span>
              <span
                data-testid="latency"
                title="A label covers a window of audio, and the headline changes only once most recent windows agree"
              >
                follows a voice about {delayText(follow)} after it begins
              </span>
            </>
          )}
        </div>
      ) : (
        <div className="label-facts muted">
          {busy ? "Waiting for the first result…" : "Press Start and speak, or choose a file."}
        </div>
      )}
      {stale && (
        <div className="stale-note" data-testid="stale">
          Not live ({why}){ageMs !== null ? ` · last result ${ago(ageMs)}` : ""}
        </div>
      )}
      {answer && !live && (
        <div className="stale-note" data-testid="stale">
          The answer for the file ({why})
        </div>
      )}
      {!answer && bars /* a file's answer is the whole file's: the latest window's bars go to the details */}
      {current && (
        <details className="details" data-testid="details">
          <summary>Window details</summary>
          <p className="small">
            Latest window (raw, before smoothing): <strong data-testid="raw-label">{labelText(current.label)}</strong>
            {current.gated ? " (the speech detector heard none: not sent to the model)" : ""} ·{" "}
            {(current.start_ms / 1000).toFixed(1)}–{(current.end_ms / 1000).toFixed(1)} s
          </p>
          {answer && bars}
          <p className="small muted">
            Server time for this window: {serverLatencyMs !== null ? `${Math.round(serverLatencyMs)} ms` : "—"}
            {latencyMs !== null && (
              <>
                {" "}
                · audio end to screen: <span data-testid="delivery">{Math.round(latencyMs)} ms</span>
              </>
            )}
            . Each label covers {((current.end_ms - current.start_ms) / 1000).toFixed(1)} s of audio, and the headline
            changes only once most recent windows agree, so a new speaker shows up a second or two after they begin.
          </p>
        </details>
      )}
    </section>
  );
}
