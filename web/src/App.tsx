import { useEffect, useMemo, useState } from "react";
import { Controls, ExportButtons } from "./components/Controls";
import { LabelCard } from "./components/LabelCard";
import { LevelMeter } from "./components/LevelMeter";
import {
  ConfirmDiscard,
  DropNotice,
  ErrorList,
  NewStreamNotice,
  PaceNotice,
  ServerLine,
  StartingNotice,
} from "./components/Notices";
import { SegmentLog, SummaryCard } from "./components/Segments";
import { StatusBar } from "./components/StatusBar";
import { Timeline } from "./components/Timeline";
import { loadWsUrl } from "./config";
import { type LevelSource, useLevel, useNow, useVoxlive } from "./hooks/useVoxlive";
import { countRender } from "./render-count";
import {
  connState,
  fileProgress,
  fileProgressText,
  isBusy,
  isLive,
  micState,
  phaseErrors,
  serverStarting,
  type Phase,
} from "./controller/phase";
import { type ExportMeta, resultsToCsv, resultsToJson, segmentsToCsv } from "./state/export";
import { answer, headline, hopMs, logRows, newStreamAt, newStreamReason, summarize, tentative } from "./state/results";
import { followDelay } from "./state/timing";
import { minSec } from "./format";

function download(name: string, type: string, text: string): void {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const a = document.createElement("a");
  a.href = url;
  a.download = name;
  a.click();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

/** Why results are not live, in a few words. */
function notLiveReason(phase: Phase): string {
  const conn = connState(phase);
  if (conn.kind === "reconnecting") {
    return serverStarting(phase) ? "server starting" : conn.unreachable ? "server unreachable" : "connection lost";
  }
  if (conn.kind === "connecting") return "connecting";
  if (phase.kind === "file" && phase.progress >= 1) return "file finished";
  if (phase.kind === "mic" && phase.mic.kind === "error") return "microphone error";
  return "stopped";
}

/** The meter, subscribed to the level by itself: 20 updates a second re-render this alone. */
function LiveLevelMeter({ source }: { source: LevelSource }) {
  return <LevelMeter level={useLevel(source)} />;
}

export function App() {
  countRender("app");
  // The server's address comes from config.json; Start or a file chosen before it arrived waits for it.
  const [urlReady] = useState(loadWsUrl);
  const [wsUrl, setWsUrl] = useState<string | null>(null);
  useEffect(() => {
    void urlReady.then(setWsUrl);
  }, [urlReady]);
  const v = useVoxlive(wsUrl, urlReady);
  const [pending, setPending] = useState<(() => void) | null>(null);
  const mic = micState(v.phase);
  const conn = connState(v.phase);
  const live = isLive(v.phase);
  const busy = isBusy(v.phase);
  const view = v.view;
  const waiting = v.phase.kind === "decoding" || v.phase.kind === "classifying"; // elapsed time ticks
  const now = useNow(1000, (!live && view.lastAtMs !== null) || waiting);
  const labels = view.ready?.labels ?? v.server?.labels ?? [];
  const starting = !view.ready && (serverStarting(v.phase) || view.starting);
  const errors = [...phaseErrors(v.phase, wsUrl), ...view.errors.map((e) => `Server: ${e.message}`)];
  const summary = !busy ? summarize(view) : null;
  const { segments, open, streams, gaps } = view;
  const log = useMemo(() => logRows({ segments, open, streams, gaps }), [segments, open, streams, gaps]);
  // A file's headline is its answer (time per label, the dominant one), not its last seconds.
  const file = v.phase.kind === "file" ? v.phase : null;
  const fileAnswer = useMemo(
    () => (file ? answer({ segments, open, streams }) : null),
    [file, segments, open, streams],
  );
  const answerOf = file
    ? file.stoppedMs !== undefined
      ? `first ${minSec(file.stoppedMs)} of "${file.fileName}"`
      : file.progress >= 1
        ? `whole file "${file.fileName}"`
        : `so far, ${minSec(file.progress * file.durationMs)} of "${file.fileName}"`
    : null;
  const restartAt = newStreamAt(view);
  const host = wsUrl ? new URL(wsUrl).host : null;
  const stamp = (v.startedAt ?? new Date().toISOString()).replace(/[:.]/g, "-");
  const meta: ExportMeta = {
    model: view.ready?.model ?? v.server?.model ?? null,
    backend: view.ready?.backend ?? v.server?.backend ?? null,
    fallback: view.ready ? view.ready.fallback : (v.server?.fallback ?? null),
    source: v.source ?? "unknown",
    startedAt: v.startedAt ?? "",
    serverConfig: v.server?.config ?? null,
  };
  const exportJson = () => {
    download(`voxlive-${stamp}.json`, "application/json", resultsToJson(view, meta));
    v.markExported();
  };
  const exportCsv = () => {
    download(`voxlive-${stamp}.csv`, "text/csv", resultsToCsv(view, labels, meta));
    v.markExported();
  };
  const exportSegmentsCsv = () => {
    download(`voxlive-${stamp}-segments.csv`, "text/csv", segmentsToCsv(view, meta));
    v.markExported();
  };
  /** Run `start` now, or once the person agreed to discard results nobody exported. */
  const guarded = (start: () => void) => {
    if (v.unexported) setPending(() => start);
    else start();
  };
  return (
    <main>
      <header>
        <h1>voxlive</h1>
        <p className="small muted" data-testid="about">
          Says live whether the voice at your microphone, or in an audio file, is male or female, or that there is no
          speech. The audio is sent to the server{host ? ` at ${host}` : ""} to be classified.
        </p>
        <ServerLine server={v.server} ready={view.ready} url={wsUrl} />
      </header>
      <LabelCard
        headline={headline(view)}
        tentative={tentative(view)}
        current={view.current}
        labels={labels}
        live={live}
        ageMs={view.lastAtMs !== null && v.phase.kind !== "file" ? Math.max(0, now - view.lastAtMs) : null}
        why={notLiveReason(v.phase)}
        latencyMs={view.latencyMs}
        follow={view.ready ? followDelay({ ...view.ready, hop_ms: hopMs(view) }, view.latencyMs) : null}
        busy={busy}
        serverLatencyMs={view.serverLatencyMs}
        answer={fileAnswer}
        answerOf={answerOf}
      />
      <StatusBar conn={conn} mic={mic} onRetry={v.retryNow} />
      <LiveLevelMeter source={v.level} />
      {starting && <StartingNotice />}
      {view.pace && <PaceNotice pace={view.pace} />}
      <ErrorList messages={errors} />
      {restartAt !== null && <NewStreamNotice atMs={restartAt} reason={newStreamReason(view)} />}
      <DropNotice droppedMs={view.droppedMs} unsentMs={view.unsentMs} gaps={view.gaps} />
      {pending && (
        <ConfirmDiscard
          results={view.results.length}
          onExport={exportJson}
          onDiscard={() => {
            const start = pending;
            setPending(null);
            start();
          }}
          onCancel={() => setPending(null)}
        />
      )}
      <Controls
        running={busy}
        devices={v.devices}
        onStart={(id) => guarded(() => void v.startMic(id))}
        onStop={() => void v.stop()}
        onFile={(f, rt) => guarded(() => void v.streamFile(f, rt))}
        fileProgress={fileProgress(v.phase)}
        fileProgressText={fileProgressText(v.phase, now)}
      />
      {summary && view.end && <SummaryCard summary={summary} />}
      <SegmentLog
        entries={log}
        live={live}
        onListen={v.recording ? v.listen : null}
        onStopListening={v.stopListening}
        playing={v.playing}
      />
      <Timeline
        points={view.timeline}
        gaps={gaps}
        labels={labels}
        live={live}
        fitMs={v.phase.kind === "file" ? v.phase.durationMs : null}
      />
      <ExportButtons
        disabled={!view.results.length}
        onCsv={exportCsv}
        onSegmentsCsv={exportSegmentsCsv}
        onJson={exportJson}
      />
    </main>
  );
}
