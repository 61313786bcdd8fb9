import react from "@vitejs/plugin-react";
import { readFileSync } from "node:fs";
import { defineConfig } from "vitest/config";

const pkg = JSON.parse(readFileSync(new URL("./package.json", import.meta.url), "utf8")) as { version: string };

export default defineConfig({
  plugins: [react()],
  base: "./",
  // The page's own version, recorded in exports beside the server's.
  define: { __PAGE_VERSION__: JSON.stringify(pkg.version) },
  // REACT_APP_WS_URL is the seed's documented variable; keep it working at build time.
  envPrefix: ["VITE_", "REACT_APP_"],
  server: {
    proxy: {
      "/audio": { target: "ws://127.0.0.1:8000", ws: true },
      "/readyz": "http://127.0.0.1:8000",
      "/classify": "http://127.0.0.1:8000",
    },
  },
  test: { environment: "node", include: ["src/**/*.test.ts"] },
});
