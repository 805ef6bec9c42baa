"""A pair dataset with its labels, all on the 'before' grid, for training and evaluation."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rasterio.enums import Resampling
from rasterio.windows import Window

from geocd.data.archive import IGNORE, PairRecord
from geocd.data.pair import PairDataset, warp_onto
from geocd.data.rasters import open_raster, read_window


class LabelledPairDataset(PairDataset):
    """:class:`PairDataset` whose samples also hold labels aligned to the 'before' grid.

    Extra sample keys: ``label_before`` and ``label_after`` (int64 ``[h, w]``, 0 = unchanged,
    1..K = class, 255 = ignore; all 255 for binary-only pairs) and ``change`` (int64 ``[h, w]``:
    0, 1 or 255 = ignore). For semantic pairs the change mask is ``label_before > 0``.
    Pixels invalid in either image, or outside a label raster, are ignored.
    """

    def __init__(self, record: PairRecord, num_bands: int, bands: list[int] | None = None, min_extent: int = 0) -> None:
        super().__init__(record.before, record.after, num_bands, bands, min_extent)
        self.record = record
        for path in self.label_paths:
            with open_raster(path):
                pass
        self._labels: tuple[int, list] | None = None

    @property
    def label_paths(self) -> list[Path]:
        """The label rasters: both dates' land cover, or the change mask."""
        r = self.record
        return [r.label_before, r.label_after] if r.semantic else [r.change]

    def _open_labels(self) -> list:
        if self._labels is None or self._labels[0] != os.getpid():
            self._labels = (os.getpid(), [warp_onto(open_raster(p), self.grid, Resampling.nearest) for p in self.label_paths])
        return self._labels[1]

    def read(self, window: Window) -> dict[str, Any]:
        """Images, validity and labels over a pixel window of the 'before' grid."""
        sample = super().read(window)
        valid = sample["valid"].numpy()
        labels = []
        for src in self._open_labels():
            data, inside = read_window(src, [1], window)
            labels.append(np.where(valid & inside, data[0], IGNORE).astype(np.int64))
        if self.record.semantic:
            label_before, label_after = labels
            change = np.where(label_before == IGNORE, IGNORE, label_before > 0).astype(np.int64)
        else:
            raw = labels[0]
            change = np.where(raw == IGNORE, IGNORE, raw > 0).astype(np.int64)
            label_before = label_after = np.full_like(raw, IGNORE)
        sample.update(
            label_before=torch.from_numpy(label_before),
            label_after=torch.from_numpy(label_after),
            change=torch.from_numpy(change),
        )
        return sample

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state["_labels"] = None
        return state
