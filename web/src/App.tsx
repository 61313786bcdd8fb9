import { useEffect, useState } from "react";
import { Controls, ExportButtons } from "./components/Controls";
import { LabelCard } from "./components/LabelCard";
import { LevelMeter } from "./components/LevelMeter";
import { DropNotice, ErrorList, FallbackBanner, ModelInfo } from "./components/Notices";
import { StatusBar } from "./components/StatusBar";
import { Timeline } from "./components/Timeline";
import { loadWsUrl } from "./config";
import { useVoxlive } from "./hooks/useVoxlive";
import { connState, fileProgress, isBusy, micState, phaseErrors } from "./session/phase";
import { resultsToCsv } from "./state/session";

function download(name: string, type: string, text: string): void {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const a = document.createElement("a");
  a.href = url;
  a.download = name;
  a.click();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

export function App() {
  const [wsUrl, setWsUrl] = useState<string | null>(null);
  useEffect(() => {
    void loadWsUrl().then(setWsUrl);
  }, []);
  const v = useVoxlive(wsUrl);
  const mic = micState(v.phase);
  const conn = connState(v.phase);
  const labels = v.session.ready?.labels ?? [];
  const errors = [...phaseErrors(v.phase, wsUrl), ...v.session.errors.map((e) => `Server: ${e.message}`)];
  const stamp = new Date().toISOString().replace(/[:.]/g, "-");
  return (
    <main>
      <header>
        <h1>voxlive</h1>
        <p className="muted">Live audio classification. Press Start and speak.</p>
      </header>
      <FallbackBanner ready={v.session.ready} />
      <StatusBar conn={conn} mic={mic} latencyMs={v.session.latencyMs} />
      <LevelMeter level={v.level} />
      <ErrorList messages={errors} />
      <DropNotice droppedMs={v.session.droppedMs} />
      <Controls
        running={isBusy(v.phase)}
        devices={v.devices}
        onStart={(id) => void v.startMic(id)}
        onStop={() => void v.stop()}
        onFile={(f, rt) => void v.streamFile(f, rt)}
        fileProgress={fileProgress(v.phase)}
      />
      <LabelCard result={v.session.current} />
      <Timeline points={v.session.timeline} labels={labels} />
      <ExportButtons
        disabled={!v.session.results.length}
        onCsv={() => download(`voxlive-${stamp}.csv`, "text/csv", resultsToCsv(v.session.results, labels))}
        onJson={() =>
          download(
            `voxlive-${stamp}.json`,
            "application/json",
            JSON.stringify({ ready: v.session.ready, results: v.session.results, end: v.session.end }, null, 2),
          )
        }
      />
      <ModelInfo ready={v.session.ready} />
    </main>
  );
}
