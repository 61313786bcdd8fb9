// Mutation testing of the pure modules (no DOM, no Web Audio, no sockets): `npm run mutation`.
// Not part of `npm test`; the report lands in reports/mutation/ (ignored by git).

/** @type {import('@stryker-mutator/api/core').PartialStrykerOptions} */
export default {
  testRunner: "vitest",
  vitest: { configFile: "vite.config.ts" },
  mutate: [
    "src/audio/pcm.ts",
    "src/audio/resampler.ts",
    "src/net/client.ts",
    "src/protocol/messages.ts",
    "src/state/results.ts",
    "src/format.ts",
    "src/controller/phase.ts",
    "src/controller/file-stream.ts",
    "src/controller/controller.ts",
  ],
  coverageAnalysis: "perTest",
  concurrency: 2,
  reporters: ["clear-text", "progress", "html", "json"],
  jsonReporter: { fileName: "reports/mutation/mutation.json" },
  htmlReporter: { fileName: "reports/mutation/index.html" },
  thresholds: { high: 90, low: 85, break: null },
};
