/// <reference types="vite/client" />

interface ImportMetaEnv {
  readonly REACT_APP_WS_URL?: string;
}

declare module "*?worker&url" {
  const url: string;
  export default url;
}

/** The page's version (web/package.json), set at build time. */
declare const __PAGE_VERSION__: string;
