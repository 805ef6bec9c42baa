"""A pair dataset with its labels, all on the 'before' grid, indexed by TorchGeo for training and evaluation."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import shapely
import torch
from geopandas import GeoDataFrame
from rasterio.enums import Resampling
from rasterio.io import DatasetReader
from rasterio.vrt import WarpedVRT
from rasterio.windows import Window
from torchgeo.datasets import GeoDataset
from torchgeo.datasets.utils import GeoSlice

from geocd.data.archive import PairRecord
from geocd.data.labels import IGNORE
from geocd.data.pair import PairDataset, warp_onto
from geocd.data.rasters import Grid, open_raster, read_window


def open_labels(paths: Sequence[Path], grid: Grid) -> list[DatasetReader | WarpedVRT]:
    """Label rasters aligned to ``grid`` with nearest-neighbour resampling (warped only when on another grid)."""
    return [warp_onto(open_raster(path), grid, Resampling.nearest) for path in paths]


def read_label(src: DatasetReader | WarpedVRT, window: Window) -> np.ndarray:
    """Band 1 of an aligned label raster over ``window`` as int64; ``IGNORE`` outside it or its valid area."""
    data, inside = read_window(src, [1], window)
    return np.where(inside, data[0], IGNORE).astype(np.int64)


def change_mask(labels: np.ndarray) -> np.ndarray:
    """0 unchanged, 1 changed, ``IGNORE`` kept, from a land-cover map or a binary change mask (> 0 = changed)."""
    return np.where(labels == IGNORE, IGNORE, labels > 0).astype(np.int64)


class LabelledPairDataset(PairDataset, GeoDataset):
    """:class:`PairDataset` whose samples also hold labels aligned to the 'before' grid, a TorchGeo
    ``GeoDataset`` indexed by spatial slices (its samplers tile or draw from it).

    Extra sample keys: ``label_before`` and ``label_after`` (int64 ``[h, w]``, 0 = unchanged,
    1..K = class, 255 = ignore; all 255 for binary-only pairs) and ``change`` (int64 ``[h, w]``:
    0, 1 or 255 = ignore). The change mask comes from the record's ``change`` raster when it has
    one (pseudo-label records have both), else from ``label_before > 0``. A record of kind
    ``landcover`` (:attr:`PairRecord.single_date`) gives its map as ``label_before`` and
    ignores ``label_after`` and ``change``; ``single_date`` in the sample carries that kind.
    Pixels invalid in either image, or outside a label raster, are ignored. ``resolution``
    resamples everything onto that pixel size (see :class:`PairDataset`). The index footprint is the
    overlap, enlarged towards the east and south to at least ``min_extent`` pixels so that samplers
    also tile scenes smaller than one tile.
    """

    def __init__(
        self, record: PairRecord, num_bands: int, bands: list[int] | None = None, min_extent: int = 0,
        resolution: float | None = None,
    ) -> None:
        super().__init__(record.before, record.after, num_bands, bands, resolution)
        self.record = record
        xres, yres = self.grid.res
        x0 = self.grid.transform.c + self.overlap.col_off * xres
        y1 = self.grid.transform.f - self.overlap.row_off * yres
        w, h = max(self.overlap.width, min_extent), max(self.overlap.height, min_extent)
        footprint = shapely.box(x0, y1 - h * yres, x0 + w * xres, y1)
        interval = pd.IntervalIndex.from_tuples([(pd.Timestamp.min, pd.Timestamp.max)], closed="both", name="datetime")
        self.index = GeoDataFrame({"filepath": [self.paths[0]]}, index=interval, geometry=[footprint], crs=self.grid.crs)
        for path in self.label_paths:
            with open_raster(path):
                pass
        self._labels: tuple[int, list] | None = None

    @property
    def label_paths(self) -> list[Path]:
        """The label rasters: both dates' land cover (if any), then the change mask (if any)."""
        r = self.record
        return [p for p in (r.label_before, r.label_after, r.change) if p is not None]

    @property
    def res(self) -> tuple[float, float]:
        """Pixel size (x, y) of the 'before' grid in CRS units (TorchGeo's ``GeoDataset.res``, read-only here)."""
        return self.grid.res

    def window_of(self, query: GeoSlice) -> Window:
        """The pixel window of a spatial query on the 'before' grid."""
        x, y = _spatial_slices(query, self.bounds)
        xres, yres = self.grid.res
        left, top = self.grid.transform.c, self.grid.transform.f
        col = round((x.start - left) / xres)
        row = round((top - y.stop) / yres)
        return Window(col, row, round((x.stop - x.start) / xres), round((y.stop - y.start) / yres))

    def __getitem__(self, query: GeoSlice) -> dict[str, Any]:
        """The sample for a spatial slice ``[xmin:xmax, ymin:ymax, tmin:tmax]``."""
        return self.read(self.window_of(query))

    def _open_labels(self) -> list:
        if self._labels is None or self._labels[0] != os.getpid():
            self._labels = (os.getpid(), open_labels(self.label_paths, self.grid))
        return self._labels[1]

    def read(self, window: Window) -> dict[str, Any]:
        """Images, validity and labels over a pixel window of the 'before' grid."""
        sample = super().read(window)
        labels = [np.where(sample["valid"], read_label(src, window), IGNORE) for src in self._open_labels()]
        ignored = np.full_like(labels[0], IGNORE)
        if self.record.single_date:
            label_before, label_after, change = labels[0], ignored, ignored
        else:
            change = change_mask(labels[-1] if self.record.change is not None else labels[0])
            label_before, label_after = labels[:2] if self.record.semantic else (ignored, ignored)
        sample.update(label_before=label_before, label_after=label_after, change=change,
                      single_date=np.array(self.record.single_date))
        return {key: torch.from_numpy(value) for key, value in sample.items()}

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state["_labels"] = None
        return state


def _spatial_slices(query: GeoSlice, bounds: tuple[slice, slice, slice]) -> tuple[slice, slice]:
    """The x and y slices (CRS units) of a TorchGeo 0.8 ``GeoSlice``; a missing start or stop takes ``bounds``'.

    The one adapter to TorchGeo's query type: a slice, or a tuple of up to three slices (x, y, t).
    """
    parts = (query,) if isinstance(query, slice) else tuple(query)
    x, y = (parts[i] if i < len(parts) else slice(None) for i in range(2))
    return tuple(slice(bounds[i].start if q.start is None else q.start, bounds[i].stop if q.stop is None else q.stop)
                 for i, q in enumerate((x, y)))
