"""Blend overlapping tile predictions with a smooth window and stream finished rows out.

Every tile's probabilities are multiplied by a window that is 1 in the tile's interior
and falls off with a cosine ramp over the overlap, then added into a buffer of rows.
A row is finished once the last tile covering it has been added (known in advance from
the tile windows); finished rows are normalised by the summed weights and handed to the
sink at once, in chunks of ``FLUSH_ROWS``, so the buffer spans about one tile row plus the
overlap, never the scene. Sums are float32: adding a tile into a float16 buffer cost 8x as much
(numpy converts every element), most of the stitching time, for half of a buffer that grows with the
scene's width only (about 13 KB per column for the default model).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from rasterio.windows import Window

FLUSH_ROWS = 64
"""Finished rows are normalised and handed to the sink this many at a time (bounds temporaries)."""


def blend_window(length: int, overlap: int) -> np.ndarray:
    """1-D weights: a sin² ramp over ``overlap`` pixels at both ends, 1 in between (never 0)."""
    weights = np.ones(length, np.float32)
    if overlap > 0:
        ramp = np.sin(0.5 * np.pi * (np.arange(overlap) + 0.5) / overlap) ** 2
        n = min(overlap, length)
        weights[:n] = np.minimum(weights[:n], ramp[:n])
        weights[length - n :] = np.minimum(weights[length - n :], ramp[:n][::-1])
    return weights


@dataclass
class FinishedRows:
    """Blended results for rows ``row_off .. row_off + height`` of the region, full region width."""

    row_off: int
    probabilities: np.ndarray
    valid: np.ndarray


Sink = Callable[[FinishedRows], None]


class RowStreamStitcher:
    """Accumulate weighted tile probabilities inside ``region`` and emit rows as they finish.

    ``windows`` are all tile windows in the order they will be added; ``region`` is the
    window of the output grid that is kept (tiles may reach past it: that part is cropped).
    """

    def __init__(self, windows: Sequence[Window], region: Window, channels: int, overlap: int, sink: Sink) -> None:
        self.region = region
        self.channels = channels
        self.sink = sink
        self.row0 = int(region.row_off)
        self.height = int(region.height)
        self.width = int(region.width)
        size = (int(windows[0].height), int(windows[0].width)) if windows else (0, 0)
        self.weights = np.outer(blend_window(size[0], overlap), blend_window(size[1], overlap))
        self.weighted = np.empty((channels, *size), np.float32)  # a tile's weighted probabilities, reused
        self.total = len(windows)
        self.last_tile = np.full(self.height, -1)
        for i, w in enumerate(windows):
            top, bottom = self._rows_in_region(w)
            self.last_tile[top:bottom] = i
        self.added = 0
        self.buffer_top = 0
        self.held = 0  # rows of the region held, from buffer_top; the buffers have room for a tile's rows
        self.sums = np.zeros((channels, size[0], self.width), np.float32)
        self.weight_sums = np.zeros((size[0], self.width), np.float32)
        self.valid = np.zeros((size[0], self.width), bool)

    def _rows_in_region(self, window: Window) -> tuple[int, int]:
        top = max(0, int(window.row_off) - self.row0)
        bottom = min(self.height, int(window.row_off + window.height) - self.row0)
        return top, max(top, bottom)

    def add(self, window: Window, probabilities: np.ndarray, valid: np.ndarray) -> None:
        """Add one tile (``probabilities`` ``[C, h, w]``, ``valid`` ``[h, w]``), then flush finished rows."""
        top, bottom = self._rows_in_region(window)
        left = max(0, int(window.col_off) - int(self.region.col_off))
        right = min(self.width, int(window.col_off + window.width) - int(self.region.col_off))
        if bottom > top and right > left:
            self._ensure_rows(top, bottom)
            tile_rows = slice(top + self.row0 - int(window.row_off), bottom + self.row0 - int(window.row_off))
            tile_cols = slice(left + int(self.region.col_off) - int(window.col_off), right + int(self.region.col_off) - int(window.col_off))
            rows = slice(top - self.buffer_top, bottom - self.buffer_top)
            w = self.weights[tile_rows, tile_cols]
            weighted = self.weighted[:, : w.shape[0], : w.shape[1]]
            np.multiply(probabilities[:, tile_rows, tile_cols], w, out=weighted)
            self.sums[:, rows, left:right] += weighted
            self.weight_sums[rows, left:right] += w
            self.valid[rows, left:right] |= valid[tile_rows, tile_cols]
        self.added += 1
        self._flush()

    def _ensure_rows(self, top: int, bottom: int) -> None:
        """Hold region rows ``top .. bottom`` too: rows below are zeroed in place, rows above (or more than the
        buffers' room, neither of which row-major tiles need) reallocate them."""
        if self.held == 0:
            self.buffer_top = top
        new_top = min(self.buffer_top, top)
        rows = max(self.buffer_top + self.held, bottom) - new_top
        if new_top == self.buffer_top and rows <= self.held:
            return
        if new_top == self.buffer_top and rows <= self.weight_sums.shape[0]:
            for buffer in (self.sums[:, self.held : rows], self.weight_sums[self.held : rows], self.valid[self.held : rows]):
                buffer[...] = 0
        else:
            before = self.buffer_top - new_top
            self.sums, self.weight_sums, self.valid = (
                _moved(buffer, before, self.held, rows) for buffer in (self.sums, self.weight_sums, self.valid))
        self.held, self.buffer_top = rows, new_top

    def _flush(self) -> None:
        if self.held == 0:
            return
        done = self.last_tile[self.buffer_top : self.buffer_top + self.held] < self.added
        if not done.any():
            return
        for run_start, run_stop in _runs_at_ends(done):
            for start in range(run_start, run_stop, FLUSH_ROWS):
                stop = min(start + FLUSH_ROWS, run_stop)
                weights = np.maximum(self.weight_sums[start:stop], np.finfo(np.float32).tiny)
                probabilities = self.sums[:, start:stop] / weights
                self.sink(FinishedRows(self.buffer_top + start, probabilities, self.valid[start:stop].copy()))
        pending = np.flatnonzero(~done)
        first, count = (int(pending[0]), int(pending[-1]) + 1 - int(pending[0])) if pending.size else (self.held, 0)
        if count and first:  # the unfinished rows move to the top of the buffers (numpy copies overlapping rows safely)
            self.sums[:, :count] = self.sums[:, first : first + count]
            self.weight_sums[:count] = self.weight_sums[first : first + count]
            self.valid[:count] = self.valid[first : first + count]
        self.held, self.buffer_top = count, self.buffer_top + first

    @property
    def complete(self) -> bool:
        """Whether every tile was added and every row of the region reached the sink."""
        return self.added == self.total and self.held == 0 and bool((self.last_tile >= 0).all())


def _moved(buffer: np.ndarray, before: int, held: int, rows: int) -> np.ndarray:
    """A zeroed buffer like ``buffer`` (rows on its second-last axis) of at least ``rows`` rows, with the ``held``
    rows of ``buffer`` copied ``before`` rows down."""
    moved = np.zeros((*buffer.shape[:-2], max(rows, buffer.shape[-2]), buffer.shape[-1]), buffer.dtype)
    moved[..., before : before + held, :] = buffer[..., :held, :]
    return moved


def _runs(indices: np.ndarray) -> list[tuple[int, int]]:
    """Contiguous runs ``[start, stop)`` of sorted integer indices."""
    if indices.size == 0:
        return []
    breaks = np.flatnonzero(np.diff(indices) > 1)
    starts = np.concatenate([[indices[0]], indices[breaks + 1]])
    stops = np.concatenate([indices[breaks] + 1, [indices[-1] + 1]])
    return list(zip(starts.tolist(), stops.tolist()))


def _runs_at_ends(done: np.ndarray) -> list[tuple[int, int]]:
    """Runs of finished rows in the buffer; in row-major tiling they lie at its top or bottom."""
    runs = _runs(np.flatnonzero(done))
    if any(0 < start and stop < done.size for start, stop in runs):
        raise RuntimeError("finished rows in the middle of the stitching buffer: tiles out of row order")
    return runs
