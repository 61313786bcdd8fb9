import { describe, expect, it } from "vitest";
import type { ServerMessage } from "../protocol/messages";
import { ready, result } from "../protocol/test-fixtures";
import { csvCell, type ExportMeta, neutralise, resultsToCsv, resultsToJson, segmentsToCsv } from "./export";
import { emptyResults, resultsReducer, type ResultsView } from "./results";

const meta: ExportMeta = {
  model: "pitch",
  backend: "pitch",
  fallback: "hub down",
  source: "talk.wav",
  startedAt: "2026-01-02T03:04:05.000Z",
  serverConfig: { version: "0.1.0", smoothing: 4, gate: "vad", gate_rms: 0.01, vad_threshold: 0.5 },
};

function feed(messages: ServerMessage[], atMs = 0): ResultsView {
  return messages.reduce((s, message) => resultsReducer(s, { type: "message", message, atMs }), emptyResults);
}

/** The data rows of a CSV (after the `#` config lines), split naively on commas. */
function dataLines(csv: string): string[] {
  return csv.split("\n").filter((l) => l && !l.startsWith("#"));
}

describe("CSV cells", () => {
  it("neutralises every formula start with an apostrophe, and only those", () => {
    for (const bad of ["=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx"]) expect(neutralise(bad)).toBe(`'${bad}`);
    for (const fine of ["female", "1-2", "a=b", "'quoted", ""]) expect(neutralise(fine)).toBe(fine);
  });

  it("quotes commas, quotes, newlines and #; numbers stay numbers", () => {
    expect(csvCell('a "b", c')).toBe('"a ""b"", c"');
    expect(csvCell("x\ny")).toBe('"x\ny"');
    expect(csvCell("#tag")).toBe('"#tag"');
    expect(csvCell(-3)).toBe("-3"); // a number, not text a spreadsheet would run
    expect(csvCell('=HYPERLINK("http://x","y")')).toBe(`"'=HYPERLINK(""http://x"",""y"")"`);
    expect(csvCell(null)).toBe("");
  });
});

describe("exports", () => {
  const hostile = '=HYPERLINK("http://evil","click")';

  it("windows CSV: a config block of # lines, then a row per window with stream, both times, class", () => {
    const s = feed([ready(), result(0, "female", { start_ms: 0.1 + 0.2, latency_ms: 80.4999 })]);
    const csv = resultsToCsv(s, ["male", "female"], meta);
    const lines = csv.split("\n");
    const config = lines.filter((l) => l.startsWith("#"));
    expect(config).toContain("# model,m"); // what the stream's ready said
    expect(config).toContain("# window_ms,1000");
    expect(config).toContain("# hop_ms,500");
    expect(config).toContain("# smoothing_windows,4");
    expect(config).toContain("# gate,vad");
    expect(config).toContain("# voxlive_version,0.1.0");
    expect(config).toContain(`# page_version,${__PAGE_VERSION__}`);
    expect(config).toContain("# segment_boundary_resolution_ms,250");
    expect(config).toContain("# streams,s1@0");
    expect(lines.findIndex((l) => !l.startsWith("#"))).toBe(config.length); // config first, then data
    expect(dataLines(csv)).toEqual([
      "stream_id,seq,start_ms,end_ms,page_start_ms,page_end_ms,label,class,confidence,smoothed,gated,latency_ms,dropped_ms,score_male,score_female",
      "s1,0,0,1000,0,1000,female,female,0.9000,female,false,80,0,0.1000,0.9000", // no 0.30000000000000004
    ]);
    expect(csv.endsWith("\n")).toBe(true);
  });

  it("a server restart: each row says its stream, so two time bases never mix", () => {
    const s = feed([ready(), result(0), ready({ stream_id: "s2" }), result(0)], 0);
    const rows = dataLines(resultsToCsv(s, [], meta)).slice(1);
    expect(rows.map((r) => r.split(",").slice(0, 6).join(","))).toEqual([
      "s1,0,0,1000,0,1000",
      "s2,0,0,1000,1000,2000",
    ]);
    const json = JSON.parse(resultsToJson(s, meta)) as { streams: { stream_id: string; page_offset_ms: number }[] };
    expect(json.streams.map((x) => [x.stream_id, x.page_offset_ms])).toEqual([
      ["s1", 0],
      ["s2", 1000],
    ]);
  });

  it("segments CSV: closed segments then the open one, in both times", () => {
    const seg = { type: "segment" as const, label: "female", start_ms: 0, end_ms: 1250, confidence: 0.9, windows: 2 };
    const s = feed([ready(), result(0), result(1), result(2, "male"), seg]);
    expect(dataLines(segmentsToCsv(s, meta))).toEqual([
      "stream_id,start_ms,end_ms,page_start_ms,page_end_ms,label,confidence,windows,open,no_data",
      "s1,0,1250,0,1250,female,0.9000,2,false,",
      "s1,1250,2000,1250,2000,male,0.9000,1,true,", // starts where the server's boundary put it
    ]);
  });

  it("a restart after an unreachable start: no-data rows among the segments, grouped by stream", () => {
    const at = (message: ServerMessage, atMs: number, streamStartMs: number | null = null) => ({
      type: "message" as const,
      message,
      atMs,
      streamStartMs,
    });
    const seg = { type: "segment" as const, label: "male", start_ms: 0, end_ms: 1000, confidence: 0.8, windows: 2 };
    const s = [
      at(ready({ stream_id: "s1" }), 0, 2000), // the first 2 s: the server was unreachable
      at(result(0, "male"), 100),
      at(result(1, "male", { start_ms: 500, end_ms: 1500 }), 200),
      at(seg, 250),
      at(result(2, "female", { start_ms: 1000, end_ms: 2000 }), 300), // open when the server went away
      at(ready({ stream_id: "s2" }), 400, 7000), // a restart: s2's time 0 is page 7 s
      at(result(0, "female"), 500),
    ].reduce(resultsReducer, emptyResults);
    expect(dataLines(segmentsToCsv(s, meta)).slice(1)).toEqual([
      ",,,0,2000,no data,,0,false,unreachable",
      "s1,0,1000,2000,3000,male,0.8000,2,false,",
      "s1,1000,2000,3000,4000,female,0.9000,1,false,", // closed by the restart, in s1's own time
      ",,,4000,7000,no data,,0,false,outage",
      "s2,0,1000,7000,8000,female,0.9000,1,true,",
    ]);
    const csv = resultsToCsv(s, [], meta);
    expect(csv).toContain("\n# streams,s1@2000 s2@7000\n");
    expect(csv).toContain("\n# gaps,0-2000:unreachable 4000-7000:outage\n");
    expect(csv).toContain("\n# no_data_ms,5000\n");
    const rows = dataLines(csv)
      .slice(1)
      .map((r) => r.split(",").slice(0, 6).join(","));
    expect(rows).toEqual(["s1,0,0,1000,2000,3000", "s1,1,500,1500,2500,3500", "s1,2,1000,2000,3000,4000", "s2,0,0,1000,7000,8000"]); // prettier-ignore
    const json = JSON.parse(resultsToJson(s, meta)) as {
      streams: { stream_id: string; page_offset_ms: number; windows: number }[];
      gaps: unknown[];
      segments: { label: string; stream_id: string | null; no_data: string | null }[];
      summary: { noDataMs: number };
    };
    expect(json.streams.map((x) => [x.stream_id, x.page_offset_ms, x.windows])).toEqual([
      ["s1", 2000, 3],
      ["s2", 7000, 1],
    ]);
    expect(json.gaps).toEqual([
      { page_start_ms: 0, page_end_ms: 2000, reason: "unreachable" },
      { page_start_ms: 4000, page_end_ms: 7000, reason: "outage" },
    ]);
    expect(json.segments.map((x) => [x.label, x.stream_id, x.no_data])).toEqual([
      ["no data", null, "unreachable"],
      ["male", "s1", null],
      ["female", "s1", null],
      ["no data", null, "outage"],
      ["female", "s2", null],
    ]);
    expect(json.summary.noDataMs).toBe(5000);
  });

  it("hostile labels and file names cannot run as formulas, in any cell or # line", () => {
    const evil = { ...meta, source: `${hostile},\n=cmd|' /C calc'!A0` };
    const labels = [hostile, "+male", "@female"];
    const s = feed([
      ready({ labels, stream_id: "-1+1" }),
      result(0, hostile, { smoothed: "-2+3", scores: { [hostile]: 0.5, "+male": 0.3, "@female": 0.2 } }),
      { type: "segment", label: "@SUM(1)", start_ms: 0, end_ms: 500, confidence: 1, windows: 1 },
    ]);
    const window = parseCsv(resultsToCsv(s, labels, evil)).find((row) => row[0] === "'-1+1"); // its stream id, neutralised
    expect(window).toContain(`'${hostile}`); // its label
    for (const csv of [resultsToCsv(s, labels, evil), segmentsToCsv(s, evil)]) {
      const cells = parseCsv(csv);
      for (const row of cells) {
        for (const cell of row) expect(cell, JSON.stringify(row)).not.toMatch(/^[=+\-@\t\r]/);
      }
      expect(cells.flat().filter((cell) => cell.startsWith("'")).length).toBeGreaterThan(2);
      const source = cells.find((row) => row[0] === "# source");
      expect(source).toEqual(["# source", `'${hostile}, =cmd|' /C calc'!A0`]); // one cell, one line of metadata
    }
  });

  it("JSON: config, streams, segments and windows with stream id and rounded page time; earlier keys kept", () => {
    const s = feed([ready(), result(0, "female", { latency_ms: 80.123456, confidence: 0.123456789 })]);
    const out = JSON.parse(resultsToJson(s, meta)) as Record<string, unknown>;
    expect(out).toMatchObject({
      model: "pitch",
      fallback: true,
      fallback_reason: "hub down",
      source: "talk.wav",
      startedAt: "2026-01-02T03:04:05.000Z",
      config: { model: "m", smoothing_windows: 4, gate: "vad", window_ms: 1000, hop_ms: 500 },
    });
    expect(out.segments).toEqual([
      { stream_id: "s1", start_ms: 0, end_ms: 1000, page_start_ms: 0, page_end_ms: 1000, label: "female", confidence: 0.1235, windows: 1, open: true, no_data: null },
    ]); // prettier-ignore
    expect(out.results).toEqual([
      expect.objectContaining({
        stream_id: "s1",
        seq: 0,
        page_start_ms: 0,
        latency_ms: 80,
        confidence: 0.1235,
        class: "female",
      }),
    ]);
  });
});

/** A strict RFC 4180 reader (quotes, doubled quotes, newlines inside quotes), as spreadsheets read. */
function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let cell = "";
  let quoted = false;
  const endCell = () => {
    row.push(cell);
    cell = "";
  };
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') {
        cell += '"';
        i++;
      } else if (c === '"') quoted = false;
      else cell += c;
    } else if (c === '"' && cell === "") quoted = true;
    else if (c === ",") endCell();
    else if (c === "\n") {
      endCell();
      rows.push(row);
      row = [];
    } else cell += c;
  }
  if (cell || row.length) {
    endCell();
    rows.push(row);
  }
  return rows;
}
