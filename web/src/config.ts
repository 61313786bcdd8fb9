// Where the WebSocket lives. Order: run-time config.json (one built image fits any deployment),
// then REACT_APP_WS_URL at build time (the seed's variable), then same-origin /audio. The build
// ships an empty config.json (web/public), which a deployment may replace: no 404 on every load.

export interface RuntimeConfig {
  wsUrl?: string;
}

export function sameOriginWsUrl(location: Pick<Location, "protocol" | "host">): string {
  return `${location.protocol === "https:" ? "wss:" : "ws:"}//${location.host}/audio`;
}

export function resolveWsUrl(
  runtime: RuntimeConfig | null,
  buildTime: string | undefined,
  location: Pick<Location, "protocol" | "host">,
): string {
  if (runtime?.wsUrl) return runtime.wsUrl;
  if (buildTime) return buildTime;
  return sameOriginWsUrl(location);
}

export async function loadWsUrl(): Promise<string> {
  let runtime: RuntimeConfig | null = null;
  try {
    const response = await fetch("config.json", { cache: "no-store" });
    if (response.ok) runtime = (await response.json()) as RuntimeConfig;
  } catch {
    runtime = null; // no run-time config: fine
  }
  return resolveWsUrl(runtime, import.meta.env.REACT_APP_WS_URL as string | undefined, window.location);
}

/** A stream token given to the page as ?token=… (for servers started with VOXLIVE_TOKEN). */
export function pageToken(search: string): string | undefined {
  return new URLSearchParams(search).get("token") ?? undefined;
}
