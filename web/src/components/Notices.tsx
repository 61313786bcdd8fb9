import type { ReadyMessage } from "../protocol/messages";

export function FallbackBanner({ ready }: { ready: ReadyMessage | null }) {
  if (!ready) return null;
  if (ready.fallback) {
    return (
      <div className="banner warn" role="alert" data-testid="fallback">
        <strong>Fallback model in use:</strong> the server is classifying with its built-in pitch classifier.{" "}
        {ready.fallback}
      </div>
    );
  }
  return null;
}

export function ModelInfo({ ready }: { ready: ReadyMessage | null }) {
  if (!ready) return null;
  return (
    <p className="muted small" data-testid="model">
      Model <code>{ready.model}</code> ({ready.backend}) · labels {ready.labels.join(", ")} · window {ready.window_ms}{" "}
      ms, hop {ready.hop_ms} ms
    </p>
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

export function DropNotice({ droppedMs }: { droppedMs: number }) {
  if (droppedMs <= 0) return null;
  return (
    <div className="banner warn" role="status" data-testid="dropped">
      The server is behind: {(droppedMs / 1000).toFixed(1)} s of audio were skipped to keep results live.
    </div>
  );
}
