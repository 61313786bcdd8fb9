import react from "@vitejs/plugin-react";
import { defineConfig } from "vitest/config";

export default defineConfig({
  plugins: [react()],
  base: "./",
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
