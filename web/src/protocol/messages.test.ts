import { describe, expect, it } from "vitest";
import {
  checkServerMessage,
  encodeClientMessage,
  isUnknown,
  parseServerMessage,
  ProtocolError,
  type ClientMessage,
} from "./messages";
import { specVector } from "./test-fixtures";

// The same golden messages the Python tests read.
const vectors = specVector("messages.json") as {
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

describe("decoded server messages (the items of a /classify answer)", () => {
  it("are checked by the same rules as text frames", () => {
    for (const v of vectors.server) expect(checkServerMessage(structuredClone(v.message))).toEqual(v.message);
    for (const bad of [null, [1], "ready", { type: "ready", stream_id: "a" }]) {
      expect(() => checkServerMessage(bad)).toThrow(ProtocolError);
      if (typeof bad !== "string") expect(() => checkServerMessage(bad)).toThrow(parseError(JSON.stringify(bad)));
    }
  });
});

/** The message parseServerMessage gives for `text`. */
function parseError(text: string): string {
  try {
    parseServerMessage(text);
  } catch (err) {
    return (err as Error).message;
  }
  throw new Error(`expected ${text} to fail`);
}

describe("bad server messages", () => {
  it.each([
    ["not json", /expected JSON/],
    ["[1]", /expected a JSON object/],
    ['{"type":"error","code":5,"message":"x"}', /error.code: expected string, got 5/],
    ['{"type":"ready","stream_id":"a"}', /ready.model: expected string/],
  ])("rejects %s", (text, pattern) => {
    expect(() => parseServerMessage(text)).toThrow(ProtocolError);
    expect(() => parseServerMessage(text)).toThrow(pattern);
  });
});

describe("field checks", () => {
  const base = (name: string) => structuredClone(vectors.server.find((v) => v.name === name)!.message);
  const withField = (name: string, key: string, value: unknown) => JSON.stringify({ ...base(name), [key]: value });

  it.each([
    ["ready", "fallback", 5, "ready.fallback: expected string|null, got 5"],
    ["ready", "labels", "male", 'ready.labels: expected string[], got "male"'],
    ["ready", "labels", ["male", 1], 'ready.labels: expected string[], got ["male",1]'],
    ["ready", "resumed", "no", 'ready.resumed: expected boolean, got "no"'],
    ["ready", "window_ms", "1000", 'ready.window_ms: expected number, got "1000"'],
    ["result", "scores", null, "result.scores: expected object, got null"],
    ["result", "scores", [0.5], "result.scores: expected object, got [0.5]"],
    ["result", "scores", "x", 'result.scores: expected object, got "x"'],
    ["end", "windows", null, "end.windows: expected number, got null"],
    ["pace-busy", "hop_ms", "1000", 'pace.hop_ms: expected number, got "1000"'],
    ["pace-busy", "normal_hop_ms", null, "pace.normal_hop_ms: expected number, got null"],
    ["pace-normal", "reason", 1, "pace.reason: expected string, got 1"],
  ])("%s with %s = %j is refused", (name, key, value, message) => {
    expect(() => parseServerMessage(withField(name, key, value))).toThrow(new ProtocolError(message));
  });

  it("accepts no labels and empty scores", () => {
    expect(parseServerMessage(withField("ready", "labels", []))).toMatchObject({ labels: [] });
    expect(parseServerMessage(withField("result", "scores", {}))).toMatchObject({ scores: {} });
  });

  it.each([
    ["null", "expected a JSON object, got object"],
    ['"ready"', "expected a JSON object, got string"],
    ["[]", "expected a JSON object, got object"],
    ['{"type":5}', "expected type ready|result|error|segment|end|ack|moving|pace, got 5"],
    ["{}", "expected type ready|result|error|segment|end|ack|moving|pace, got undefined"],
  ])("refuses %s", (text, message) => {
    expect(() => parseServerMessage(text)).toThrow(new ProtocolError(message));
  });

  it.each(['{"type":"dance"}', '{"type":"toString"}', '{"type":"constructor"}', '{"type":"hint","text":5}'])(
    "skips %s: a type this page does not know (a newer server's) is not an error",
    (text) => {
      const message = parseServerMessage(text);
      expect(isUnknown(message)).toBe(true);
      expect(message).toEqual({ type: JSON.parse(text).type, unknown: true });
    },
  );

  it("keeps at most 40 characters of an unknown type's name (it is logged)", () => {
    expect(parseServerMessage(JSON.stringify({ type: "y".repeat(100) })).type).toBe("y".repeat(40));
  });

  it("still checks the fields of an ack, and of a /classify item of unknown type", () => {
    expect(() => parseServerMessage('{"type":"ack","samples":"1","seq":0,"token":"t"}')).toThrow(
      new ProtocolError('ack.samples: expected number, got "1"'),
    );
    expect(() => checkServerMessage({ type: "dance" })).toThrow(ProtocolError);
  });

  it("refuses a type that is not a string, even one whose text is a known type", () => {
    const text = JSON.stringify({ ...base("end"), type: ["end"] }); // ["end"] would work as a key
    expect(() => parseServerMessage(text)).toThrow(
      new ProtocolError('expected type ready|result|error|segment|end|ack|moving|pace, got ["end"]'),
    );
  });

  it("quotes at most 40 characters of text that is not JSON", () => {
    const text = "x".repeat(100);
    expect(() => parseServerMessage(text)).toThrow(new ProtocolError(`expected JSON, got ${"x".repeat(40)}`));
  });
});
