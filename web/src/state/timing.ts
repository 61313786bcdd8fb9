// How long after a voice the headline follows it: what a person experiences, computed from the
// stream's window, hop and smoothing (all in its `ready`) and the measured delivery time. Pure.
//
// A window is labelled by the voice filling most of it, so the first window that can carry a new
// voice ends about half a window after the voice began, plus up to one hop until a window ends
// there. The smoothed label (a strict majority of the last `smoothing` raw labels) then needs
// floor(smoothing / 2) + 1 such windows, one hop apart. Each label reaches the screen
// `deliveryMs` after its window's audio ended (the server's time plus the network's). While the server
// is busy it cuts windows further apart (a `pace`): the hop in force is the one that counts.

import type { PaceMessage, ReadyMessage } from "../protocol/messages";

export const DEFAULT_DELIVERY_MS = 150; // assumed until a result has been timed

/** Windows of a new label the headline needs before it changes (strict majority of `smoothing`). */
export function windowsToFlip(smoothing: number): number {
  return Math.floor(Math.max(1, smoothing) / 2) + 1;
}

export interface FollowDelay {
  lowMs: number; // the voice began just before a window boundary
  highMs: number; // ... just after one: a hop more
}

/** How long after a voice begins the headline shows it. */
export function followDelay(
  ready: Pick<ReadyMessage, "window_ms" | "hop_ms" | "smoothing">,
  deliveryMs: number | null,
): FollowDelay {
  const lowMs =
    ready.window_ms / 2 + (windowsToFlip(ready.smoothing) - 1) * ready.hop_ms + (deliveryMs ?? DEFAULT_DELIVERY_MS);
  return { lowMs, highMs: lowMs + ready.hop_ms };
}

/** "1.6–2.1 s" (tenths of a second: finer would promise a precision nobody sees). */
export function delayText({ lowMs, highMs }: FollowDelay): string {
  const s = (ms: number) => (ms / 1000).toFixed(1);
  return s(lowMs) === s(highMs) ? `${s(lowMs)} s` : `${s(lowMs)}–${s(highMs)} s`;
}

/** The notice while the server is busy: how often results come now, and how often they normally do. */
export function paceText(pace: Pick<PaceMessage, "hop_ms" | "normal_hop_ms">): string {
  const s = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
  return (
    `Fewer updates: server busy. A result every ${s(pace.hop_ms)} instead of every ${s(pace.normal_hop_ms)}, ` +
    "each as fresh as before."
  );
}
