import { describe, expect, it } from "vitest";
import { pageToken, resolveWsUrl } from "./config";

const loc = { protocol: "https:", host: "example.org:8001" };

describe("resolveWsUrl", () => {
  it("prefers the run-time config, then the build-time variable, then same origin", () => {
    expect(resolveWsUrl({ wsUrl: "ws://a/audio" }, "ws://b/audio", loc)).toBe("ws://a/audio");
    expect(resolveWsUrl(null, "ws://b/audio", loc)).toBe("ws://b/audio");
    expect(resolveWsUrl({}, undefined, loc)).toBe("wss://example.org:8001/audio");
    expect(resolveWsUrl(null, "", { protocol: "http:", host: "127.0.0.1:8000" })).toBe("ws://127.0.0.1:8000/audio");
  });
});

describe("pageToken", () => {
  it("reads ?token= from the page URL", () => {
    expect(pageToken("?token=abc&x=1")).toBe("abc");
    expect(pageToken("")).toBeUndefined();
  });
});
