import type { EngineState } from "../audio/engine";
import type { ConnState } from "../net/client";

export function connectionText(conn: ConnState): string {
  switch (conn.kind) {
    case "idle":
      return "Not connected";
    case "connecting":
      return conn.attempt > 1 ? `Connecting (attempt ${conn.attempt})…` : "Connecting…";
    case "open":
      return "Connected";
    case "stopping":
      return "Finishing…";
    case "reconnecting":
      return /not_ready/.test(conn.reason)
        ? `Server starting; trying again in ${(conn.delayMs / 1000).toFixed(1)} s`
        : `Reconnecting in ${(conn.delayMs / 1000).toFixed(1)} s (${conn.reason})`;
    case "closed":
      if (conn.reason === "classified") return "Done: every window of the file classified";
      return conn.code === 1000 ? "Disconnected" : `Disconnected: ${conn.reason || `code ${conn.code}`}`;
  }
}

function micText(mic: EngineState): string {
  switch (mic.kind) {
    case "idle":
    case "stopped":
      return "Microphone off";
    case "starting":
      return "Starting microphone…";
    case "running":
      return `Microphone on${mic.deviceLabel ? `: ${mic.deviceLabel}` : ""} (${mic.contextRate} Hz)`;
    case "error":
      return "Microphone error";
  }
}

/** Connection and microphone, in a polite live region that changes only when they do. */
export function StatusBar({ conn, mic, onRetry }: { conn: ConnState; mic: EngineState; onRetry: () => void }) {
  return (
    <div className="status">
      <span className={`dot dot-${conn.kind}`} aria-hidden="true" />
      <span role="status" aria-live="polite" className="status-text">
        <span data-testid="connection">{connectionText(conn)}</span>
        <span className="sep"> · </span>
        <span data-testid="mic">{micText(mic)}</span>
      </span>
      {conn.kind === "reconnecting" && (
        <button type="button" className="small-button" onClick={onRetry} data-testid="retry">
          Retry now
        </button>
      )}
    </div>
  );
}
