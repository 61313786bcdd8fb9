// The server's HTTP side, as the page uses it: /readyz for the model line before Start, and
// POST /classify for files sent "fast" (lossless by construction). Parsing is pure; fetching
// goes through an injected `fetch`.

import {
  checkServerMessage,
  type EndMessage,
  type ErrorMessage,
  ProtocolError,
  type ReadyMessage,
  type ResultMessage,
  type SegmentMessage,
  type ServerMessage,
} from "../protocol/messages";

/** The HTTP base of a stream URL: ws://host/x/audio → http://host/x/ (wss → https). */
export function httpBase(wsUrl: string): string {
  const url = new URL(wsUrl);
  url.protocol = url.protocol === "wss:" ? "https:" : "http:";
  url.pathname = url.pathname.replace(/[^/]*$/, "");
  url.search = "";
  return url.toString();
}

export interface ServerInfo {
  // unavailable: /readyz missing or not JSON (a proxy hides it); unreachable: no answer at all
  // (the server is down, or the network is)
  status: "ready" | "starting" | "unavailable" | "unreachable";
  model: string | null;
  backend: string | null;
  labels: string[];
  fallback: string | null;
  config: Record<string, string | number | boolean | null> | null; // how the server classifies (version, smoothing, gate…), for exports
  hopMs: number | null; // the server's hop: one window per hop of audio
  windowsPerS: number | null; // its capacity gauge: windows it can classify per second now
}

export const UNAVAILABLE: ServerInfo = {
  status: "unavailable",
  model: null,
  backend: null,
  labels: [],
  fallback: null,
  config: null,
  hopMs: null,
  windowsPerS: null,
};

function positive(v: unknown): number | null {
  return typeof v === "number" && Number.isFinite(v) && v > 0 ? v : null;
}

/** /readyz `config`: its scalar values only (anything else is left out). */
function parseConfig(value: unknown): ServerInfo["config"] {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return null;
  const out: NonNullable<ServerInfo["config"]> = {};
  for (const [key, v] of Object.entries(value as Record<string, unknown>)) {
    if (v === null || ["string", "number", "boolean"].includes(typeof v))
      out[key] = v as string | number | boolean | null;
  }
  return out;
}

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
    config: parseConfig(b.config),
    hopMs: positive(b.hop_ms),
    windowsPerS: positive((b.capacity as Record<string, unknown> | undefined)?.windows_per_s),
  };
}

export async function fetchServerInfo(
  base: string,
  token: string | undefined,
  doFetch: typeof fetch,
): Promise<ServerInfo> {
  let response: Response;
  try {
    response = await doFetch(`${base}readyz`, {
      cache: "no-store",
      headers: token ? { Authorization: `Bearer ${token}` } : {},
    });
  } catch {
    return { ...UNAVAILABLE, status: "unreachable" }; // fetch rejects only when nothing answered
  }
  try {
    return parseReadyz(response.status, await response.json());
  } catch {
    return UNAVAILABLE; // no /readyz here (a proxy that hides it, a token it wants): no model line
  }
}

/**
 * What POST /classify said: the file's stream in the wire protocol's own messages, each checked
 * by the parser live messages go through. An item that fails the check is left out and its
 * ProtocolError kept in `problems`, as the stream client reports a bad text frame.
 */
export interface ClassifyAnswer {
  ready: ReadyMessage | null; // null: missing or unreadable (see problems)
  windows: (ResultMessage | ErrorMessage)[]; // one per window, in order
  segments: SegmentMessage[];
  end: EndMessage | null;
  problems: ProtocolError[];
}

export class ClassifyError extends Error {}

/** Check one item of the answer: a server message of one of `types`. */
function item<T extends ServerMessage>(
  where: string,
  value: unknown,
  types: readonly T["type"][],
  problems: ProtocolError[],
): T | null {
  try {
    const message = checkServerMessage(value);
    if ((types as readonly string[]).includes(message.type)) return message as T;
    throw new ProtocolError(`expected type ${types.join("|")}, got ${JSON.stringify(message.type)}`);
  } catch (err) {
    if (!(err instanceof ProtocolError)) throw err;
    problems.push(new ProtocolError(`${where}: ${err.message}`));
    return null;
  }
}

function items<T extends ServerMessage>(
  where: string,
  value: unknown,
  types: readonly T["type"][],
  problems: ProtocolError[],
): T[] {
  if (!Array.isArray(value)) {
    problems.push(new ProtocolError(`${where}: expected a list, got ${JSON.stringify(value)?.slice(0, 40)}`));
    return [];
  }
  return value.map((v, i) => item<T>(`${where}[${i}]`, v, types, problems)).filter((m): m is T => m !== null);
}

/** Check a 200 answer of POST /classify, item by item. Pure. */
export function parseClassifyAnswer(body: Record<string, unknown>): ClassifyAnswer {
  const problems: ProtocolError[] = [];
  return {
    ready: item<ReadyMessage>("ready", body.ready, ["ready"], problems),
    windows: items<ResultMessage | ErrorMessage>("results", body.results, ["result", "error"], problems),
    segments: items<SegmentMessage>("segments", body.segments, ["segment"], problems),
    end: item<EndMessage>("end", body.end, ["end"], problems),
    problems,
  };
}

/**
 * The answer's messages in the order the stream would have sent them: ready, each window, each
 * segment right after the result that closed it (the first one starting where it ends), end.
 */
export function inStreamOrder(answer: ClassifyAnswer): ServerMessage[] {
  const out: ServerMessage[] = answer.ready ? [answer.ready] : [];
  let next = 0;
  for (const message of answer.windows) {
    out.push(message);
    if (message.type !== "result") continue;
    while (next < answer.segments.length && answer.segments[next].end_ms <= message.start_ms) {
      out.push(answer.segments[next++]);
    }
  }
  out.push(...answer.segments.slice(next));
  if (answer.end) out.push(answer.end);
  return out;
}

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
  const body: unknown = await response.json().catch(() => null);
  const record =
    typeof body === "object" && body !== null && !Array.isArray(body) ? (body as Record<string, unknown>) : null;
  if (!response.ok) {
    const err = record?.error as { message?: unknown } | undefined;
    throw new ClassifyError(typeof err?.message === "string" ? err.message : `the server answered ${response.status}`);
  }
  if (record === null) throw new ClassifyError("the server's answer was not a JSON object");
  return parseClassifyAnswer(record);
}
