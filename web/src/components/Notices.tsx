import type { ServerInfo } from "../net/http";
import type { ReadyMessage } from "../protocol/messages";

/** One short line about the model, before Start: from /readyz, then from the stream's ready. */
export function ServerLine({ server, ready }: { server: ServerInfo | null; ready: ReadyMessage | null }) {
  const model = ready?.model ?? server?.model ?? null;
  const fallback = ready ? ready.fallback : (server?.fallback ?? null);
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

/** Audio that was never classified: dropped by the server (it fell behind), or by the page (the
 * connection was down longer than the page holds audio for). */
export function DropNotice({ droppedMs, unsentMs }: { droppedMs: number; unsentMs: number }) {
  if (droppedMs <= 0 && unsentMs <= 0) return null;
  return (
    <div className="banner warn" role="status">
      {droppedMs > 0 && (
        <div data-testid="dropped">
          The server fell behind: {(droppedMs / 1000).toFixed(1)} s of audio were not classified.
        </div>
      )}
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
