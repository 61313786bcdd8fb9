// A clock for components that show an age or a countdown. No sockets, no controller.

import { useEffect, useState } from "react";

/** performance.now(), refreshed every `everyMs` while `running` (for "3 s ago"). */
export function useNow(everyMs: number, running: boolean): number {
  const [now, setNow] = useState(() => performance.now());
  useEffect(() => {
    if (!running) return;
    setNow(performance.now());
    const id = setInterval(() => setNow(performance.now()), everyMs);
    return () => clearInterval(id);
  }, [everyMs, running]);
  return now;
}
