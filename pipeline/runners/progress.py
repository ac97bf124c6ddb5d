"""The replay progress bar every runner shows: seconds of recorded data done out of the total."""
from __future__ import annotations

import time

from pipeline.node import Source


def sources_progress(sources: list[Source]) -> tuple[float, float] | None:
    """(seconds done, seconds in all) over ``sources`` with a finite length, or None if none has one."""
    values = [p for s in sources if (p := s.progress()) is not None]
    if not values:
        return None
    return max(v[0] for v in values), max(v[1] for v in values)


class ReplayProgress:
    """A tqdm bar over seconds of data, drawn on the first finite ``update`` and at most at 10 Hz."""

    def __init__(self, enabled: bool) -> None:
        self.enabled, self.bar = enabled, None
        self._last = 0.0

    def update(self, done_total: tuple[float, float] | None) -> None:
        if not self.enabled or done_total is None:
            return
        now = time.monotonic()
        if now - self._last < 0.1:
            return
        self._last = now
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=round(done_total[1], 1), unit="s", desc="replay", leave=False,
                            bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.1f}/{total:.1f} s data [{elapsed}<{remaining}]")
        self.bar.n = round(min(done_total[0], self.bar.total), 1)
        self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
