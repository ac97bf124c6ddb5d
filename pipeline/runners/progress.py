"""The replay progress bar every runner shows: seconds of recorded data done out of the total."""
from __future__ import annotations

import time
from typing import Callable, Iterable

from pipeline.node import Source

Progress = tuple[float, float]
"""(seconds of data done, seconds of data in all)."""


def merge_progress(values: Iterable[Progress | None]) -> Progress | None:
    """The furthest done and the longest total over ``values`` (None entries: sources with no end)."""
    known = [v for v in values if v is not None]
    if not known:
        return None
    return max(v[0] for v in known), max(v[1] for v in known)


def sources_progress(sources: list[Source]) -> Progress | None:
    """Progress over ``sources`` with a finite length, or None if none has one."""
    return merge_progress(s.progress() for s in sources)


class ReplayProgress:
    """A tqdm bar over seconds of data, drawn on the first finite progress and at most at 10 Hz."""

    def __init__(self, enabled: bool) -> None:
        self.enabled, self.bar = enabled, None
        self._last = 0.0

    def update(self, read: Callable[[], Progress | None]) -> None:
        """Redraw from ``read()``; it is called only when a redraw is due (runners call this in
        their loops, where asking every source for its progress each time would cost)."""
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self._last < 0.1:
            return
        self._last = now
        done_total = read()
        if done_total is None:
            return
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=round(done_total[1], 1), unit="s", desc="replay", leave=False,
                            bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.1f}/{total:.1f} s data [{elapsed}<{remaining}]")
        self.bar.n = round(min(done_total[0], self.bar.total), 1)
        self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
