import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { encodeClientMessage, parseServerMessage, ProtocolError, type ClientMessage } from "./messages";

// The same golden messages the Python tests read.
const vectors = JSON.parse(readFileSync(new URL("../../../spec/vectors/messages.json", import.meta.url), "utf8")) as {
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
