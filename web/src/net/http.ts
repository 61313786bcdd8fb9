// The server's HTTP side, as the page uses it: /readyz for the model line before Start, and
// POST /classify for files sent "fast" (lossless by construction). Parsing is pure; fetching
// goes through an injected `fetch`.

import type { ResultMessage, SegmentMessage, ErrorMessage } from "../protocol/messages";

/** The HTTP base of a stream URL: ws://host/x/audio → http://host/x/ (wss → https). */
export function httpBase(wsUrl: string): string {
  const url = new URL(wsUrl);
  url.protocol = url.protocol === "wss:" ? "https:" : "http:";
  url.pathname = url.pathname.replace(/[^/]*$/, "");
  url.search = "";
  return url.toString();
}

export interface ServerInfo {
  status: "ready" | "starting" | "unavailable"; // unavailable: /readyz missing, refused or not JSON
  model: string | null;
  backend: string | null;
  labels: string[];
  fallback: string | null;
}

export const UNAVAILABLE: ServerInfo = {
  status: "unavailable",
  model: null,
  backend: null,
  labels: [],
  fallback: null,
};

/** What /readyz said (its HTTP status and JSON body); 503 while loading still carries `status`. */
export function parseReadyz(httpStatus: number, body: unknown): ServerInfo {
  if (typeof body !== "object" || body === null) return UNAVAILABLE;
  const b = body as Record<string, unknown>;
  const str = (v: unknown) => (typeof v === "string" ? v : null);
  const status =
    httpStatus === 200 && b.status === "ready"
      ? "ready"
      : httpStatus === 503 && typeof b.status === "string" && b.status !== "stopping" && b.status !== "failed"
        ? "starting"
        : "unavailable";
  return {
    status,
    model: str(b.model),
    backend: str(b.backend),
    labels: Array.isArray(b.labels) ? b.labels.filter((l): l is string => typeof l === "string") : [],
    fallback: str(b.fallback),
  };
}

export async function fetchServerInfo(
  base: string,
  token: string | undefined,
  doFetch: typeof fetch,
): Promise<ServerInfo> {
  try {
    const response = await doFetch(`${base}readyz`, {
      cache: "no-store",
      headers: token ? { Authorization: `Bearer ${token}` } : {},
    });
    return parseReadyz(response.status, await response.json());
  } catch {
    return UNAVAILABLE; // no /readyz here (a proxy that hides it, a token it wants): no model line
  }
}

export interface ClassifyAnswer {
  model: string;
  backend: string;
  fallback: string | null;
  labels: string[];
  durationMs: number;
  windowMs: number;
  hopMs: number;
  results: (ResultMessage | ErrorMessage)[];
  segments: SegmentMessage[];
}

export class ClassifyError extends Error {}

/** POST a WAV to /classify; rejects with ClassifyError carrying the server's message. */
export async function classifyWav(
  base: string,
  wav: ArrayBuffer,
  token: string | undefined,
  signal: AbortSignal,
  doFetch: typeof fetch,
): Promise<ClassifyAnswer> {
  const response = await doFetch(`${base}classify`, {
    method: "POST",
    body: wav,
    signal,
    headers: { "Content-Type": "audio/wav", ...(token ? { Authorization: `Bearer ${token}` } : {}) },
  });
  const body = (await response.json().catch(() => null)) as Record<string, unknown> | null;
  if (!response.ok || body === null) {
    const err = body?.error as { message?: string } | undefined;
    throw new ClassifyError(err?.message ?? `the server answered ${response.status}`);
  }
  return {
    model: String(body.model),
    backend: String(body.backend),
    fallback: typeof body.fallback === "string" ? body.fallback : null,
    labels: Array.isArray(body.labels) ? body.labels.map(String) : [],
    durationMs: Number(body.duration_ms),
    windowMs: Number(body.window_ms),
    hopMs: Number(body.hop_ms),
    results: (body.results ?? []) as (ResultMessage | ErrorMessage)[],
    segments: (body.segments ?? []) as SegmentMessage[],
  };
}
