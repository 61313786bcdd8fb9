import { minSec } from "../format";
import type { ServerInfo } from "../net/http";
import type { PaceMessage, ReadyMessage } from "../protocol/messages";
import type { Gap } from "../state/results";
import { paceText } from "../state/timing";

/** One short line about the model, before Start: from /readyz, then from the stream's ready. */
export function ServerLine({
  server,
  ready,
  url,
}: {
  server: ServerInfo | null;
  ready: ReadyMessage | null;
  url: string | null;
}) {
  const model = ready?.model ?? server?.model ?? null;
  const fallback = ready ? ready.fallback : (server?.fallback ?? null);
  if (server?.status === "unreachable" && !ready) {
    return (
      <p className="server-line small warn-line" role="status" data-testid="server-unreachable">
        Server unreachable at {url}, retrying every 2 s. You can press Start now: the page connects as soon as it
        answers.
      </p>
    );
  }
  if (server?.status === "starting" && !ready) {
    return (
      <p className="server-line small" role="status" data-testid="server-starting">
        Server starting: the model is loading. Start works as soon as it is ready.
      </p>
    );
  }
  if (!model) return null;
  const backend = ready?.backend ?? server?.backend;
  return (
    <div className={`server-line small ${fallback ? "warn-line" : ""}`}>
      <span data-testid="model">
        Model <code>{model}</code>
        {backend && backend !== model ? ` (${backend})` : ""}
      </span>
      {fallback && (
        <details className="inline-details" data-testid="fallback">
          <summary>built-in fallback, not the configured model</summary>
          <span className="small">{fallback}</span>
        </details>
      )}
    </div>
  );
}

export function ErrorList({ messages }: { messages: string[] }) {
  if (!messages.length) return null;
  return (
    <div className="banner error" role="alert" data-testid="errors">
      {messages.map((m, i) => (
        <div key={i}>{m}</div>
      ))}
    </div>
  );
}

export function StartingNotice() {
  return (
    <div className="banner info" role="status" data-testid="server-starting">
      Server starting: results resume as soon as its model is loaded.
    </div>
  );
}

/** The server is busy: it sends fewer results (their windows further apart) until it is not. */
export function PaceNotice({ pace }: { pace: PaceMessage }) {
  return (
    <div className="banner info" role="status" data-testid="pace" data-hop-ms={pace.hop_ms}>
      {paceText(pace)}
    </div>
  );
}

function gapText(gap: Gap): string {
  const s = `${((gap.endMs - gap.startMs) / 1000).toFixed(1)} s`;
  return gap.reason === "unreachable"
    ? `The first ${s} were not classified: the server could not be reached yet.`
    : `${s} from ${minSec(gap.startMs)} were not classified: the connection or the server was down.`;
}

/** Why a resume was refused, by the `reason` of the server's resume_failed, as a person reads it. */
const RESUME_FAILED: Record<string, string> = {
  unknown: "the server no longer knew the earlier one (it restarted, or the stream expired)",
  gap: "the connection was down longer than the page keeps audio, so the earlier one could not go on",
  forged: "the server could not verify the earlier one (it restarted, or it has another cluster secret)",
  malformed: "the server could not read the earlier one's resume token",
  expired: "the earlier one had expired",
  mismatch: "the server that took over cuts the audio differently",
  replayed: "the server had already resumed the earlier one",
  live: "the earlier one is still open elsewhere",
  busy: "the server was too busy resuming streams",
};

/** The server began a new stream mid-run: it did not go on with the old one (`reason`: why, from its resume_failed). */
export function NewStreamNotice({ atMs, reason = null }: { atMs: number; reason?: string | null }) {
  const why =
    reason === null
      ? "the server no longer knew the earlier one (it restarted)"
      : (RESUME_FAILED[reason] ?? `the server could not resume the earlier one (${reason})`);
  return (
    <div className="banner info" role="status" data-testid="new-stream" data-reason={reason ?? ""}>
      A new stream began at {minSec(atMs)}: {why}. Results go on from there.
    </div>
  );
}

/** Audio that was never classified: dropped by the server (it fell behind), lost while no stream
 * held it (a gap), or dropped by the page within a resumed stream (the connection was down longer
 * than the page holds audio for). */
export function DropNotice({ droppedMs, unsentMs, gaps }: { droppedMs: number; unsentMs: number; gaps: Gap[] }) {
  if (gaps.length) unsentMs = 0; // counted in the gaps
  if (droppedMs <= 0 && unsentMs <= 0 && !gaps.length) return null;
  return (
    <div className="banner warn" role="status">
      {droppedMs > 0 && (
        <div data-testid="dropped">
          The server fell behind: {(droppedMs / 1000).toFixed(1)} s of audio were not classified.
        </div>
      )}
      {gaps.map((gap) => (
        <div data-testid="no-data" key={gap.startMs}>
          {gapText(gap)}
        </div>
      ))}
      {unsentMs > 0 && (
        <div data-testid="unsent">
          The connection was down: {(unsentMs / 1000).toFixed(1)} s of audio could not be sent and were not classified.
        </div>
      )}
    </div>
  );
}

export function ConfirmDiscard({
  results,
  onExport,
  onDiscard,
  onCancel,
}: {
  results: number;
  onExport: () => void;
  onDiscard: () => void;
  onCancel: () => void;
}) {
  return (
    <div
      className="banner warn"
      role="alertdialog"
      aria-label="Discard the last session?"
      data-testid="confirm-discard"
    >
      <p>The last session ({results} results) has not been exported. A new one replaces it.</p>
      <div className="row">
        <button type="button" onClick={onExport}>
          Export JSON first
        </button>
        <button type="button" onClick={onDiscard} data-testid="discard">
          Discard and start
        </button>
        <button type="button" onClick={onCancel}>
          Cancel
        </button>
      </div>
    </div>
  );
}
