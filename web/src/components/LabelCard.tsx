import type { ResultMessage } from "../protocol/messages";

export function LabelCard({ result }: { result: ResultMessage | null }) {
  if (!result) {
    return (
      <section className="card label-card" aria-label="Current classification">
        <div className="label-big muted" data-testid="label">
          —
        </div>
        <div className="muted">Waiting for audio…</div>
      </section>
    );
  }
  return (
    <section className={`card label-card label-${result.smoothed}`} aria-label="Current classification">
      <div className="label-big" data-testid="label">
        {result.smoothed}
      </div>
      <div data-testid="raw-label">
        raw <strong>{result.label}</strong> · confidence {(result.confidence * 100).toFixed(0)}%
      </div>
    </section>
  );
}
