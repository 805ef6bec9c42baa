"""A bitemporal scene pair as a TorchGeo ``GeoDataset`` on the 'before' grid.

The 'before' raster's grid is the reference. When 'after' differs in CRS, resolution or
pixel alignment it is warped on the fly onto that grid (``WarpedVRT``, bilinear). Only
the overlap of the two footprints is indexed; a pixel is valid when it is valid in both
dates (nodata value, internal mask or alpha band).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import shapely
import torch
from affine import Affine
from geopandas import GeoDataFrame
from rasterio.enums import ColorInterp, Resampling
from rasterio.env import set_gdal_config
from rasterio.io import DatasetReader
from rasterio.vrt import WarpedVRT
from rasterio.warp import transform_bounds
from rasterio.windows import Window
from torchgeo.datasets import GeoDataset
from torchgeo.datasets.utils import GeoSlice

from geocd.data.rasters import Grid, choose_bands, grid_of, open_raster, read_window, reading
from geocd.errors import InputError

DECIMATED_CHECK_SIZE = 1024
"""Longest side of the decimated masks read to check that the overlap has valid pixels."""

GDAL_CACHE_MB = 32
"""GDAL's block cache per process (its default, 5% of RAM, would grow with the scene)."""


def limit_gdal_cache() -> None:
    """Cap GDAL's block cache; effective when called before the process's first block read."""
    set_gdal_config("GDAL_CACHEMAX", GDAL_CACHE_MB * 2**20)


def warp_onto(src: DatasetReader, grid: Grid, resampling: Resampling = Resampling.bilinear) -> DatasetReader | WarpedVRT:
    """``src`` itself when already on ``grid``, else a ``WarpedVRT`` of it on ``grid``.

    Sources without a nodata value or alpha band get an alpha band so that pixels outside
    their footprint read as invalid.
    """
    if grid_of(src) == grid:
        return src
    has_alpha = ColorInterp.alpha in src.colorinterp
    return WarpedVRT(
        src,
        crs=grid.crs,
        transform=grid.transform,
        width=grid.width,
        height=grid.height,
        resampling=resampling,
        add_alpha=src.nodata is None and not has_alpha,
    )


def resampled(grid: Grid, resolution: float) -> Grid:
    """``grid`` with square pixels of ``resolution`` CRS units over the same extent (rounded up)."""
    left, bottom, right, top = grid.bounds
    width = max(1, math.ceil((right - left) / resolution - 1e-9))
    height = max(1, math.ceil((top - bottom) / resolution - 1e-9))
    return Grid(grid.crs, Affine(resolution, 0.0, left, 0.0, -resolution, top), width, height)


def overlap_window(grid: Grid, before: DatasetReader, after: DatasetReader) -> Window:
    """The window of ``grid`` (the 'before' grid) covered by both footprints (snapped outwards to pixels)."""
    left, bottom, right, top = grid.bounds
    a_left, a_bottom, a_right, a_top = transform_bounds(after.crs, grid.crs, *after.bounds, densify_pts=21)
    xres, yres = grid.res
    col0 = max(0, math.floor((max(left, a_left) - left) / xres + 1e-9))
    col1 = min(grid.width, math.ceil((min(right, a_right) - left) / xres - 1e-9))
    row0 = max(0, math.floor((top - min(top, a_top)) / yres + 1e-9))
    row1 = min(grid.height, math.ceil((top - max(bottom, a_bottom)) / yres - 1e-9))
    if col1 <= col0 or row1 <= row0:
        raise InputError(after.name, f"does not overlap {before.name}")
    return Window(col0, row0, col1 - col0, row1 - row0)


class PairDataset(GeoDataset):
    """Both dates of a pair on the 'before' grid, indexed by TorchGeo spatial slices.

    Each sample holds ``image_before`` and ``image_after`` (float32 ``[C, h, w]``, raw pixel
    values of the chosen bands), ``valid`` (bool ``[h, w]``: valid in both dates and inside
    the overlap) and ``window`` (int64 ``[row_off, col_off]`` on the 'before' grid).
    Queries may reach past the overlap (scene edges): those pixels are zero and invalid.

    The index footprint is the overlap, enlarged towards the east and south to at least
    ``min_extent`` pixels so that samplers also tile scenes smaller than one tile. With
    ``resolution`` (CRS units) both dates are resampled onto a grid of that pixel size over the
    'before' extent (training on sources of different ground resolution).
    """

    def __init__(
        self,
        before: str | os.PathLike[str],
        after: str | os.PathLike[str],
        num_bands: int,
        bands: Sequence[int] | None = None,
        min_extent: int = 0,
        resolution: float | None = None,
    ) -> None:
        self.paths = [os.fspath(before), os.fspath(after)]
        limit_gdal_cache()
        with open_raster(before) as b, open_raster(after) as a:
            self.grid = grid_of(b) if resolution is None else resampled(grid_of(b), resolution)
            self.bands_before = choose_bands(b, bands, num_bands)
            self.bands_after = choose_bands(a, bands, num_bands)
            self.overlap = overlap_window(self.grid, b, a)
        self._res = self.grid.res
        self._sources: tuple[int, DatasetReader, DatasetReader | WarpedVRT] | None = None
        xres, yres = self.grid.res
        left, top = self.grid.transform.c, self.grid.transform.f
        w = max(self.overlap.width, min_extent)
        h = max(self.overlap.height, min_extent)
        x0 = left + self.overlap.col_off * xres
        y1 = top - self.overlap.row_off * yres
        footprint = shapely.box(x0, y1 - h * yres, x0 + w * xres, y1)
        interval = pd.IntervalIndex.from_tuples([(pd.Timestamp.min, pd.Timestamp.max)], closed="both", name="datetime")
        self.index = GeoDataFrame({"filepath": [self.paths[0]]}, index=interval, geometry=[footprint], crs=self.grid.crs)

    def window_of(self, query: GeoSlice) -> Window:
        """The pixel window of a spatial query on the 'before' grid."""
        x, y, _ = self._disambiguate_slice(query)
        xres, yres = self.grid.res
        left, top = self.grid.transform.c, self.grid.transform.f
        col = round((x.start - left) / xres)
        row = round((top - y.stop) / yres)
        return Window(col, row, round((x.stop - x.start) / xres), round((y.stop - y.start) / yres))

    def read(self, window: Window) -> dict[str, Any]:
        """Both dates and the joint validity over a pixel window of the 'before' grid."""
        before, after = self._open()
        image_before, valid_before = read_window(before, self.bands_before, window)
        image_after, valid_after = read_window(after, self.bands_after, window)
        valid = valid_before & valid_after & _inside(window, self.overlap)
        return {
            "image_before": torch.from_numpy(image_before),
            "image_after": torch.from_numpy(image_after),
            "valid": torch.from_numpy(valid),
            "window": torch.tensor([int(window.row_off), int(window.col_off)]),
        }

    def __getitem__(self, query: GeoSlice) -> dict[str, Any]:
        """The sample for a spatial slice ``[xmin:xmax, ymin:ymax, tmin:tmax]``."""
        return self.read(self.window_of(query))

    def has_valid_pixels(self) -> bool:
        """Whether any pixel of the overlap is valid in both dates (checked on decimated masks)."""
        before, after = self._open()
        scale = max(1, math.ceil(max(self.overlap.width, self.overlap.height) / DECIMATED_CHECK_SIZE))
        shape = (max(1, int(self.overlap.height) // scale), max(1, int(self.overlap.width) // scale))
        masks = []
        for src in (before, after):
            with reading(src):
                masks.append(src.dataset_mask(window=self.overlap, out_shape=shape))
        return bool(np.any((masks[0] > 0) & (masks[1] > 0)))

    def _open(self) -> tuple[DatasetReader, DatasetReader | WarpedVRT]:
        """File handles of this process (DataLoader workers each open their own)."""
        if self._sources is None or self._sources[0] != os.getpid():
            limit_gdal_cache()
            before = warp_onto(open_raster(self.paths[0]), self.grid)
            after = warp_onto(open_raster(self.paths[1]), self.grid)
            self._sources = (os.getpid(), before, after)
        return self._sources[1], self._sources[2]

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_sources"] = None
        return state


def _inside(window: Window, region: Window) -> np.ndarray:
    rows = np.arange(window.row_off, window.row_off + window.height)
    cols = np.arange(window.col_off, window.col_off + window.width)
    in_rows = (rows >= region.row_off) & (rows < region.row_off + region.height)
    in_cols = (cols >= region.col_off) & (cols < region.col_off + region.width)
    return in_rows[:, None] & in_cols[None, :]
