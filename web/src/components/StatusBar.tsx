import type { EngineState } from "../audio/engine";
import { useNow } from "../hooks/useNow";
import type { ConnState } from "../net/client";

export function connectionText(conn: ConnState): string {
  switch (conn.kind) {
    case "idle":
      return "Not connected";
    case "connecting":
      // Between two tries at a server never reached the words stay the same: a live region
      // that changed with every try would be read out every second or two.
      if (conn.unreachable) return "Server unreachable";
      return conn.attempt > 1 ? `Connecting (attempt ${conn.attempt})…` : "Connecting…";
    case "open":
      return "Connected";
    case "stopping":
      return "Finishing…";
    case "reconnecting":
      if (/not_ready/.test(conn.reason)) return "Server starting";
      return conn.unreachable ? "Server unreachable" : `Reconnecting (${conn.reason})`;
    case "closed":
      if (conn.reason === "classified") return "Done: every window of the file classified";
      return conn.code === 1000 ? "Stopped" : `Disconnected: ${conn.reason || `code ${conn.code}`}`;
  }
}

/** "next try in 1.4 s": the wait before the next attempt, from the connection's own deadline. */
export function countdownText(retryAtMs: number, nowMs: number): string {
  return `next try in ${(Math.max(0, retryAtMs - nowMs) / 1000).toFixed(1)} s`;
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

/** Connection and microphone, in a polite live region that changes only when they do; the
 * reconnect countdown ticks outside it (announcing every tick would be noise). */
export function StatusBar({ conn, mic, onRetry }: { conn: ConnState; mic: EngineState; onRetry: () => void }) {
  const now = useNow(200, conn.kind === "reconnecting");
  return (
    <div className="status">
      <span className={`dot dot-${conn.kind}`} aria-hidden="true" />
      <span role="status" aria-live="polite" className="status-text">
        <span data-testid="connection">{connectionText(conn)}</span>
        <span className="sep"> · </span>
        <span data-testid="mic">{micText(mic)}</span>
      </span>
      {(conn.kind === "reconnecting" || (conn.kind === "connecting" && conn.unreachable)) && (
        <span className="small muted" data-testid="countdown">
          {conn.kind === "reconnecting" ? countdownText(conn.retryAtMs, now) : "trying now…"}
        </span>
      )}
      {conn.kind === "reconnecting" && (
        <button type="button" className="small-button" onClick={onRetry} data-testid="retry">
          Retry now
        </button>
      )}
    </div>
  );
}
