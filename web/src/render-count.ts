// Render counters, read by the end-to-end tests (window.__voxliveRenders) to bound how often each
// part of the page renders: the page must not re-render with every audio frame. A counter is one
// increment per render; nothing else reads them.

declare global {
  interface Window {
    __voxliveRenders?: Record<string, number>;
  }
}

/** Count one render of `part` ("app", "timeline", "segments", "meter"). */
export function countRender(part: string): void {
  if (typeof window === "undefined") return;
  const counts = (window.__voxliveRenders ??= {});
  counts[part] = (counts[part] ?? 0) + 1;
}
