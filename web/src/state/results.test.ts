import { describe, expect, it } from "vitest";
import type { ServerMessage } from "../protocol/messages";
import { end as endMessage, ready as readyMessage, result } from "../protocol/test-fixtures";
import {
  BAD_SERVER_MESSAGE,
  answer,
  headline,
  hopMs,
  emptyResults,
  labelText,
  logRows,
  newStreamAt,
  newStreamReason,
  MAX_RESULTS,
  segmentLog,
  resultsReducer,
  type ResultsView,
  summarize,
  tentative,
} from "./results";

describe("resultsReducer", () => {
  it("tracks the current result, both latencies and drops", () => {
    let s = resultsReducer(emptyResults, { type: "message", message: result(0), atMs: 0, latencyMs: 900 });
    s = resultsReducer(s, {
      type: "message",
      message: result(1, "male", { latency_ms: 120, dropped_ms: 500 }),
      atMs: 500,
      latencyMs: 950,
    });
    expect(s.current?.label).toBe("male");
    expect(s.latencyMs).toBe(950); // what the person waited
    expect(s.serverLatencyMs).toBe(120); // the server's part
    expect(s.droppedMs).toBe(500);
    expect(s.results).toHaveLength(2);
    expect(s.lastAtMs).toBe(500);
  });

  it("keeps every window of the session on the timeline (the chart picks what it shows), and for export", () => {
    let s = resultsReducer(emptyResults, { type: "message", message: ready, atMs: 0 });
    for (let i = 0; i < 200; i++) s = resultsReducer(s, { type: "message", message: result(i), atMs: 7 }); // all at once
    expect(s.results).toHaveLength(200);
    expect(s.timeline).toHaveLength(200);
    expect(s.timeline[0].endMs).toBe(1000);
    expect(s.timeline.every((p) => !p.breakBefore && p.streamId === ready.stream_id)).toBe(true);
  });

  it("breaks the timeline where audio is missing", () => {
    let s = resultsReducer(emptyResults, { type: "message", message: result(0), atMs: 0 });
    s = resultsReducer(s, { type: "message", message: result(1), atMs: 0 });
    s = resultsReducer(s, { type: "message", message: result(5), atMs: 0 }); // windows 2-4 never came
    expect(s.timeline.map((p) => p.breakBefore)).toEqual([false, false, true]);
  });

  it("keeps windows a busy server cut further apart together, and still breaks where one is missing", () => {
    const busy = { type: "pace", hop_ms: 2000, normal_hop_ms: 500, reason: "busy" } as const;
    const at = (message: ServerMessage) => ({ type: "message" as const, message, atMs: 0 });
    const win = (seq: number, startMs: number) => result(seq, "female", { start_ms: startMs, end_ms: startMs + 1000 });
    let s = resultsReducer(emptyResults, at(ready));
    s = resultsReducer(s, at(win(0, 0)));
    s = resultsReducer(s, at(win(1, 500)));
    s = resultsReducer(s, at(busy)); // before the first window at the wide hop
    expect(s.pace).toEqual(busy);
    expect(hopMs(s)).toBe(2000);
    s = resultsReducer(s, at(win(2, 2500)));
    s = resultsReducer(s, at(win(3, 4500)));
    s = resultsReducer(s, at(win(4, 8500))); // the window at 6500 never came: that is a gap
    s = resultsReducer(s, at({ ...busy, hop_ms: 500, reason: "normal" }));
    expect(s.pace).toBeNull();
    s = resultsReducer(s, at(win(5, 9000)));
    s = resultsReducer(s, at(win(6, 10_500))); // 1.5 s: a missing window at the normal hop again
    expect(s.timeline.map((p) => p.breakBefore)).toEqual([false, false, false, false, true, false, true]);
    expect(s.gaps).toEqual([]); // windows further apart are not "no data"
  });

  it("forgets the pace at a new ready (the server tells a resumed stream again) and at the end", () => {
    const busy = { type: "pace", hop_ms: 1000, normal_hop_ms: 500, reason: "busy" } as const;
    let s = resultsReducer(emptyResults, { type: "message", message: ready, atMs: 0 });
    s = resultsReducer(s, { type: "message", message: busy, atMs: 0 });
    expect(resultsReducer(s, { type: "message", message: readyMessage({ resumed: true }), atMs: 1 }).pace).toBeNull();
    expect(resultsReducer(s, { type: "message", message: endMessage(), atMs: 1 }).pace).toBeNull();
    expect(hopMs(emptyResults)).toBe(500);
  });

  it("places a restarted stream after the old audio, one outage later, and clears errors on ready", () => {
    let s = resultsReducer(emptyResults, { type: "message", message: ready, atMs: 0 });
    s = resultsReducer(s, { type: "message", message: result(0), atMs: 1000 }); // audio 0-1000
    s = resultsReducer(s, { type: "message", message: { type: "error", code: "not_ready", message: "x" }, atMs: 2000 });
    expect(s.starting).toBe(true);
    expect(s.errors).toEqual([]); // not_ready is "starting", not an error
    s = resultsReducer(s, { type: "message", message: { type: "error", code: "bad_frame", message: "y" }, atMs: 2500 });
    s = resultsReducer(s, { type: "message", message: ready, atMs: 4000 }); // a new stream: 3 s later
    expect(s.errors).toEqual([]);
    expect(s.starting).toBe(false);
    s = resultsReducer(s, { type: "message", message: result(0), atMs: 5000 });
    expect(s.timeline.map((p) => p.startMs)).toEqual([0, 4000]);
    expect(s.timeline[1].breakBefore).toBe(true);
    expect(s.streams.map((x) => x.offsetMs)).toEqual([0, 4000]); // each stream keeps its own time base
  });

  it("tells streams apart: a restart's gap, its own numbering, the old open segment closed", () => {
    const at = (message: ServerMessage, atMs: number, streamStartMs: number | null = null) => ({
      type: "message" as const,
      message,
      atMs,
      streamStartMs,
    });
    let s = resultsReducer(emptyResults, at(readyMessage({ stream_id: "a" }), 0, 2000)); // 2 s unsent first
    expect(s.gaps).toEqual([{ startMs: 0, endMs: 2000, reason: "unreachable" }]);
    expect(newStreamAt(s)).toBeNull(); // the first stream is not news
    s = resultsReducer(s, at(result(0, "male"), 100));
    s = resultsReducer(s, at(result(1, "male", { start_ms: 500, end_ms: 1500 }), 200)); // page 2.5-3.5 s
    s = resultsReducer(s, at(readyMessage({ stream_id: "a", resumed: true }), 300)); // a resume: nothing new
    expect(s.streams).toHaveLength(1);
    s = resultsReducer(s, at(readyMessage({ stream_id: "b" }), 400, 6000));
    s = resultsReducer(s, at(result(0, "female"), 500));
    expect(newStreamAt(s)).toBe(6000);
    expect(s.streams.map((x) => [x.streamId, x.offsetMs, x.firstResult])).toEqual([
      ["a", 2000, 0],
      ["b", 6000, 2],
    ]);
    expect(s.gaps[1]).toEqual({ startMs: 3500, endMs: 6000, reason: "outage" });
    expect(logRows(s).map((r) => [r.gap ? "no data" : r.seg.label, r.seg.start_ms, r.seg.end_ms])).toEqual([
      ["no data", 0, 2000],
      ["male", 2000, 3500], // closed by the page: its server is gone
      ["no data", 3500, 6000],
      ["female", 6000, 7000],
    ]);
    const sum = summarize(s);
    expect(sum?.noDataMs).toBe(4500);
    const ended = summarize(resultsReducer(s, at(endMessage({ windows: 3 }), 600)));
    expect(ended?.windows).toBe(2 + 3); // the first stream's results, then the last one's end
    expect(sum?.perLabelMs).toEqual([
      ["male", 1500],
      ["female", 1000],
    ]);
  });

  it("offers the latest raw label as tentative while it differs from the headline", () => {
    let s = [result(0, "male"), result(1, "male"), result(2, "male")].reduce(
      (state, message) => resultsReducer(state, { type: "message", message, atMs: 0 }),
      emptyResults,
    );
    expect(tentative(s)).toBeNull();
    s = resultsReducer(s, { type: "message", message: result(3, "female", { smoothed: "male" }), atMs: 0 });
    expect(headline(s)?.label).toBe("male");
    expect(tentative(s)).toBe("female");
    expect(tentative(emptyResults)).toBeNull();
  });

  it("calls ambient 'no speech' everywhere", () => {
    expect(labelText("ambient")).toBe("no speech");
    expect(labelText("male")).toBe("male");
  });

  it("keeps the last five errors and resets", () => {
    let s = emptyResults;
    for (let i = 0; i < 7; i++) {
      s = resultsReducer(s, {
        type: "message",
        message: { type: "error", code: "bad_frame", message: `e${i}` },
        atMs: i,
      });
    }
    expect(s.errors.map((e) => e.message)).toEqual(["e2", "e3", "e4", "e5", "e6"]);
    expect(resultsReducer(s, { type: "reset" })).toBe(emptyResults);
  });

  it("shows a server message the page could not read as an error, until the next ready", () => {
    let s = resultsReducer(emptyResults, { type: "unreadable", problem: "result.seq: expected number, got null" });
    expect(s.errors).toEqual([
      {
        code: BAD_SERVER_MESSAGE,
        message: "sent a message the page cannot read (result.seq: expected number, got null)",
      },
    ]);
    s = resultsReducer(s, { type: "message", message: readyMessage(), atMs: 0 });
    expect(s.errors).toEqual([]);
  });

  it("keeps the audio the page could not send, and reports it in the summary", () => {
    let s = resultsReducer(emptyResults, { type: "message", message: result(0), atMs: 0 });
    s = resultsReducer(s, { type: "unsent", totalMs: 1500 });
    s = resultsReducer(s, { type: "unsent", totalMs: 2500 }); // a total, not an increment
    expect(s.unsentMs).toBe(2500);
    expect(s.droppedMs).toBe(0); // the server's count is apart
    expect(summarize(s)?.unsentMs).toBe(2500);
  });
});

const ready = readyMessage();
const end = endMessage();

describe("resultsReducer lifecycle", () => {
  it("a new session shows nothing yet", () => {
    expect(headline(emptyResults)).toBeNull();
    expect(segmentLog(emptyResults)).toEqual([]);
    expect(summarize(emptyResults)).toBeNull();
    expect(emptyResults.results).toEqual([]);
  });

  it("records ready and end; a later ready (a resumed stream) clears the end", () => {
    let s = resultsReducer(emptyResults, { type: "message", message: ready, atMs: 0 });
    expect(s.ready).toBe(ready);
    s = resultsReducer(s, { type: "message", message: result(0), atMs: 10 });
    s = resultsReducer(s, { type: "message", message: end, atMs: 20 });
    expect(s.end).toBe(end);
    expect(s.results).toHaveLength(1);
    expect(s.ready).toBe(ready);
    s = resultsReducer(s, { type: "message", message: { ...ready, resumed: true }, atMs: 30 });
    expect(s.end).toBeNull();
    expect(s.ready?.resumed).toBe(true);
    expect(s.results).toHaveLength(1);
  });

  it("does not list resume_failed as an error: its reason goes with the new stream that follows", () => {
    let s = resultsReducer(emptyResults, { type: "message", message: ready, atMs: 0 });
    s = resultsReducer(s, {
      type: "message",
      message: { type: "error", code: "resume_failed", message: "gap; starting a new stream", reason: "gap" },
      atMs: 10,
    });
    expect(s.errors).toEqual([]);
    expect(newStreamReason(s)).toBeNull(); // no new stream yet
    s = resultsReducer(s, { type: "message", message: { ...ready, stream_id: "new" }, atMs: 20 });
    expect(newStreamAt(s)).not.toBeNull();
    expect(newStreamReason(s)).toBe("gap");
    expect(s.resumeFailed).toBeNull();
    // A resume that works carries no reason, nor does a new stream the server gave none for.
    s = resultsReducer(s, { type: "message", message: { ...ready, stream_id: "new", resumed: true }, atMs: 30 });
    expect(newStreamReason(s)).toBe("gap");
    s = resultsReducer(s, { type: "message", message: { ...ready, stream_id: "newer" }, atMs: 40 });
    expect(newStreamReason(s)).toBeNull();
  });

  it("ignores an ack (the client keeps it)", () => {
    const ack = { type: "ack" as const, samples: 16000, seq: 0, token: "v1.a.b" };
    expect(resultsReducer(emptyResults, { type: "message", message: ack, atMs: 0 })).toBe(emptyResults);
  });

  it("keeps at most MAX_RESULTS results, dropping the oldest", () => {
    const full: ResultsView = { ...emptyResults, results: Array.from({ length: MAX_RESULTS }, (_, i) => result(i)) };
    const s = resultsReducer(full, { type: "message", message: result(MAX_RESULTS), atMs: 0 });
    expect(s.results).toHaveLength(MAX_RESULTS);
    expect(s.results[0].seq).toBe(1);
    expect(s.results.at(-1)?.seq).toBe(MAX_RESULTS);
    const almost: ResultsView = { ...full, results: full.results.slice(1) };
    const t = resultsReducer(almost, { type: "message", message: result(MAX_RESULTS), atMs: 0 });
    expect(t.results).toHaveLength(MAX_RESULTS);
    expect(t.results[0].seq).toBe(1);
  });
});

describe("headline, segments and summary", () => {
  const feed = (messages: ServerMessage[]) =>
    messages.reduce((s, message) => resultsReducer(s, { type: "message", message, atMs: 0 }), emptyResults);

  it("shows the smoothed label with its own confidence and how long it held, not the raw window's", () => {
    const s = feed([
      result(0, "male", { confidence: 0.8, scores: { male: 0.8, female: 0.2 } }),
      result(1, "ambient", { smoothed: "male", confidence: 1, scores: {}, gated: true }), // raw ambient
    ]);
    expect(s.current?.label).toBe("ambient");
    expect(headline(s)).toEqual({ label: "male", confidence: 0.4, heldMs: 1500 });
  });

  it("logs closed segments, then the open one up to now", () => {
    const seg = { type: "segment" as const, label: "female", start_ms: 0, end_ms: 1000, confidence: 0.9, windows: 2 };
    const s = feed([result(0), result(1), result(2, "male"), seg]);
    const page = { stream_id: "", offset_ms: 0 };
    expect(segmentLog(s)).toEqual([
      { seg: { ...seg, ...page }, open: false, gap: null },
      { seg: { ...seg, ...page, label: "male", start_ms: 1000, end_ms: 2000, windows: 1 }, open: true, gap: null },
    ]);
    const done = resultsReducer(s, { type: "message", message: end, atMs: 0 });
    expect(done.open).toBeNull();
    expect(headline(done)?.label).toBe("female"); // the last closed segment, until the server closes "male"
    const closed = resultsReducer(done, {
      type: "message",
      message: { ...seg, label: "male", start_ms: 1000, end_ms: 2000, windows: 1 },
      atMs: 0,
    });
    expect(headline(closed)).toEqual({ label: "male", confidence: 0.9, heldMs: 1000 });
  });

  it("sums time per label and takes the totals from end", () => {
    const seg = (label: string, a: number, b: number) =>
      ({ type: "segment", label, start_ms: a, end_ms: b, confidence: 1, windows: 1 }) as const;
    const s = feed([result(0), seg("female", 0, 3000), seg("male", 3000, 4000), { ...end, dropped_windows: 2 }]);
    expect(summarize(s)).toEqual({
      perLabelMs: [
        ["female", 3000],
        ["male", 1000],
      ],
      windows: 3,
      droppedWindows: 2,
      droppedResults: 0,
      unsentMs: 0,
      noDataMs: 0,
      durationMs: 2000,
    });
  });
});

describe("a file's answer", () => {
  const seg = (label: string, a: number, b: number) =>
    ({ type: "segment", label, start_ms: a, end_ms: b, confidence: 1, windows: 1 }) as const;

  it("is the speech label held longest, with the time under each label, not the last seconds", () => {
    const s = [result(0), seg("female", 0, 6000), seg("male", 6000, 8000), seg("ambient", 8000, 20_000)].reduce(
      (v, message) => resultsReducer(v, { type: "message", message, atMs: 0 }),
      emptyResults,
    );
    expect(answer(s)).toEqual({
      label: "female", // ambient lasted longer, but there was speech
      perLabelMs: [
        ["ambient", 12_000],
        ["female", 6000],
        ["male", 2000],
      ],
      totalMs: 20_000,
    });
  });

  it("is ambient only when no speech was found, and null before any segment", () => {
    expect(answer(emptyResults)).toBeNull();
    const s = resultsReducer(emptyResults, { type: "message", message: seg("ambient", 0, 3000), atMs: 0 });
    expect(answer(s)?.label).toBe("ambient");
  });
});
