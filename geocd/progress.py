"""One progress reporter: a bar for people, plain periodic lines for logs, JSON lines for programs
(the QGIS plugin), or silence."""

from __future__ import annotations

import json
import sys
import time
from typing import Literal, TextIO

from tqdm import tqdm

ProgressMode = Literal["bar", "lines", "json", "none"]
LINE_INTERVAL_S = 10.0
"""Seconds between two lines of the ``lines`` mode (the last step of a stage always gets one)."""


class Progress:
    """Report tiles done out of a total, with megapixels per second, on ``stream`` (stderr)."""

    def __init__(self, mode: ProgressMode = "bar", stream: TextIO | None = None) -> None:
        self.mode = mode
        self.stream = stream or sys.stderr
        self._bar: tqdm | None = None
        self._total = 0
        self._done = 0
        self._pixels = 0
        self._start = time.perf_counter()
        self._description, self._unit = "", "tile"
        self._last_line = self._start

    def start(self, total: int, description: str, unit: str = "tile") -> None:
        """Begin a stage of ``total`` steps of ``unit``."""
        self._total, self._done, self._pixels, self._start = total, 0, 0, time.perf_counter()
        self._description, self._unit, self._last_line = description, unit, self._start
        if self.mode == "bar":
            self._bar = tqdm(total=total, desc=description, unit=unit, file=self.stream, dynamic_ncols=True)
        self.message(description)

    def advance(self, steps: int, pixels: int, **values: float) -> None:
        """``steps`` more done, covering ``pixels`` pixels; ``values`` (e.g. ``loss``) are shown with the rate."""
        self._done += steps
        self._pixels += pixels
        now = time.perf_counter()
        rate = self._pixels / 1e6 / max(now - self._start, 1e-9)
        shown = ", ".join([f"{rate:.2f} MP/s", *(f"{k} {v:.4g}" for k, v in values.items())])
        percent = 100.0 * self._done / max(self._total, 1)
        remaining = (now - self._start) / max(self._done, 1) * max(self._total - self._done, 0)
        if self._bar is not None:
            self._bar.set_postfix_str(shown, refresh=False)
            self._bar.update(steps)
        elif self.mode == "json":
            self._emit({"event": "progress", "done": self._done, "total": self._total, "percent": round(percent, 2),
                        "mp_per_s": round(rate, 3), "seconds_left": round(remaining, 1),
                        **{k: round(v, 6) for k, v in values.items()}})
        elif self.mode == "lines" and (now - self._last_line >= LINE_INTERVAL_S or self._done >= self._total):
            self._last_line = now
            self.stream.write(f"{self._description}: {self._done}/{self._total} {self._unit}s ({percent:.0f} %), "
                              f"{shown}, {remaining:.0f} s left\n")
            self.stream.flush()

    def message(self, text: str) -> None:
        """A status line (JSON mode only; the bar shows its description)."""
        if self.mode == "json":
            self._emit({"event": "message", "text": text})

    def note(self, text: str) -> None:
        """A line people and programs both see: plain on ``stream`` (a JSON message in JSON mode; nothing when silent)."""
        if self.mode == "json":
            self.message(text)
        elif self.mode != "none":
            self.stream.write(text + "\n")
            self.stream.flush()

    def done(self, text: str, **values: object) -> None:
        """The run's last report, a ``done`` event with ``text`` and ``values`` (JSON mode only; the
        command line prints ``text`` itself in the other modes)."""
        if self.mode == "json":
            self._emit({"event": "done", "text": text, **values})

    def close(self) -> None:
        """End the current stage."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def _emit(self, record: dict[str, object]) -> None:
        self.stream.write(json.dumps(record) + "\n")
        self.stream.flush()
