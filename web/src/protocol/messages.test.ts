import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { encodeClientMessage, parseServerMessage, ProtocolError, type ClientMessage } from "./messages";

/** spec/vectors/<name> in the nearest folder above this file that has it (Stryker runs from a copy of web/). */
function specVector(name: string): string {
  for (let dir = dirname(fileURLToPath(import.meta.url)); ; dir = dirname(dir)) {
    const path = join(dir, "spec", "vectors", name);
    if (existsSync(path)) return path;
    if (dirname(dir) === dir) throw new Error(`expected spec/vectors/${name} above ${import.meta.url}`);
  }
}

// The same golden messages the Python tests read.
const vectors = JSON.parse(readFileSync(specVector("messages.json"), "utf8")) as {
  client: { name: string; message: ClientMessage }[];
  server: { name: string; message: Record<string, unknown> }[];
};

describe("golden server messages", () => {
  for (const v of vectors.server) {
    it(`parses ${v.name}`, () => {
      expect(parseServerMessage(JSON.stringify(v.message))).toEqual(v.message);
    });
  }
});

describe("golden client messages", () => {
  for (const v of vectors.client) {
    it(`encodes ${v.name}`, () => {
      expect(JSON.parse(encodeClientMessage(v.message))).toEqual(v.message);
    });
  }
});

describe("bad server messages", () => {
  it.each([
    ["not json", /expected JSON/],
    ["[1]", /expected a JSON object/],
    ['{"type":"dance"}', /expected type ready\|result\|error\|end, got "dance"/],
    ['{"type":"error","code":5,"message":"x"}', /error.code: expected string, got 5/],
    ['{"type":"ready","stream_id":"a"}', /ready.model: expected string/],
  ])("rejects %s", (text, pattern) => {
    expect(() => parseServerMessage(text)).toThrow(ProtocolError);
    expect(() => parseServerMessage(text)).toThrow(pattern);
  });
});
