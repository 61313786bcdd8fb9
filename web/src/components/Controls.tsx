import { useState } from "react";

interface Props {
  running: boolean;
  devices: MediaDeviceInfo[];
  onStart: (deviceId?: string) => void;
  onStop: () => void;
  onFile: (file: File, realtime: boolean) => void;
  fileProgress: number | null;
  fileProgressText: string | null;
}

export function Controls({ running, devices, onStart, onStop, onFile, fileProgress, fileProgressText }: Props) {
  const [deviceId, setDeviceId] = useState<string>("");
  const [realtime, setRealtime] = useState(false); // fast is lossless: every window is classified
  const [dragging, setDragging] = useState(false);
  return (
    <section className="card controls" aria-label="Controls">
      <div className="row">
        {running ? (
          <button type="button" className="primary start-stop" onClick={onStop} data-testid="stop">
            Stop
          </button>
        ) : (
          <button
            type="button"
            className="primary start-stop"
            onClick={() => onStart(deviceId || undefined)}
            data-testid="start"
          >
            Start microphone
          </button>
        )}
        {devices.length > 1 && (
          <label>
            Microphone{" "}
            <select
              value={deviceId}
              onChange={(e) => setDeviceId(e.target.value)}
              disabled={running}
              data-testid="device"
            >
              <option value="">Default</option>
              {devices.map((d, i) => (
                <option key={d.deviceId || i} value={d.deviceId}>
                  {d.label || `Microphone ${i + 1}`}
                </option>
              ))}
            </select>
          </label>
        )}
      </div>
      <div
        className={`drop ${dragging ? "dragging" : ""}`}
        onDragOver={(e) => {
          e.preventDefault();
          setDragging(true);
        }}
        onDragLeave={() => setDragging(false)}
        onDrop={(e) => {
          e.preventDefault();
          setDragging(false);
          const file = e.dataTransfer.files[0];
          if (file && !running) onFile(file, realtime);
        }}
      >
        <label>
          Or classify a file:{" "}
          <input
            type="file"
            accept="audio/*"
            disabled={running}
            data-testid="file"
            onChange={(e) => {
              const f = e.target.files?.[0];
              if (f) onFile(f, realtime);
              e.target.value = "";
            }}
          />
        </label>
        <label title="Stream the file over the WebSocket at its own speed, as if it were a live microphone (nothing is played aloud). Otherwise the whole file is classified at once, every window.">
          <input
            type="checkbox"
            checked={realtime}
            onChange={(e) => setRealtime(e.target.checked)}
            disabled={running}
            data-testid="realtime"
          />{" "}
          stream at its own speed, as if live (silent)
        </label>
        <span className="muted small">(or drop an audio file here)</span>
        {fileProgressText !== null && (
          <span className="file-progress small" data-testid="file-progress">
            {fileProgress !== null && <progress value={fileProgress} max={1} aria-label="File progress" />}{" "}
            {fileProgressText}
          </span>
        )}
      </div>
    </section>
  );
}

export function ExportButtons({
  disabled,
  onCsv,
  onSegmentsCsv,
  onJson,
}: {
  disabled: boolean;
  onCsv: () => void;
  onSegmentsCsv: () => void;
  onJson: () => void;
}) {
  return (
    <div className="row">
      <button type="button" onClick={onCsv} disabled={disabled} data-testid="export-csv">
        Export CSV
      </button>
      <button type="button" onClick={onSegmentsCsv} disabled={disabled} data-testid="export-segments-csv">
        Export segments CSV
      </button>
      <button type="button" onClick={onJson} disabled={disabled} data-testid="export-json">
        Export JSON
      </button>
    </div>
  );
}
