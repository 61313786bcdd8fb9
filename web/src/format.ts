// How the page writes times. Pure; the one m:ss formatter of the web code.

/** m:ss of an audio time or duration in ms, rounded down to the second ("1:05"); negative reads 0:00. */
export function minSec(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
}
