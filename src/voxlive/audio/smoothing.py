"""Label smoothing: majority vote over the last N labels, with hysteresis."""

from __future__ import annotations

from collections import Counter, deque


class MajoritySmoother:
    """Reports the label that holds a strict majority of the last ``n`` labels.

    Hysteresis: without a strict majority the previous smoothed label is kept, so a single
    odd window between words does not flip the output. ``n = 1`` disables smoothing.
    """

    def __init__(self, n: int) -> None:
        if n < 1:
            raise ValueError(f"n: expected at least 1, got {n}")
        self.n = n
        self._recent: deque[str] = deque(maxlen=n)
        self.current: str | None = None

    def update(self, label: str) -> str:
        """Add the newest raw label; return the smoothed label."""
        self._recent.append(label)
        top, count = Counter(self._recent).most_common(1)[0]
        if self.current is None or count * 2 > len(self._recent):
            self.current = top
        return self.current

    def state(self) -> tuple[tuple[str, ...], str | None]:
        """The last raw labels (oldest first) and the smoothed label: enough to go on elsewhere."""
        return tuple(self._recent), self.current

    def restore(self, recent: tuple[str, ...], current: str | None) -> None:
        """Continue from :meth:`state` (the newest ``n`` labels are kept)."""
        self._recent.clear()
        self._recent.extend(recent)
        self.current = current
