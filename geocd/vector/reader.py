"""Open a geocd change raster, check it is one, and read it in full-width strips."""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import rasterio
from pyproj import CRS
from rasterio.errors import RasterioIOError
from rasterio.windows import Window

from geocd.changemap import BANDS, TAG_PREFIX, ChangeMapInfo
from geocd.errors import InputError

STRIP_PIXELS = 1 << 22
"""Preferred strip size in pixels (4 MP: ~60 MB of working arrays)."""
MAX_STRIP_PIXELS = 1 << 25
"""Largest default strip (32 MP); strips of wider rasters cut the file's blocks."""


@dataclass(frozen=True)
class Strip:
    """Rows ``row_offset .. row_offset + height`` of the three bands."""

    row_offset: int
    probability: np.ndarray
    from_class: np.ndarray
    to_class: np.ndarray


@contextmanager
def open_change_raster(path: str | os.PathLike[str]) -> Iterator[tuple[rasterio.DatasetReader, ChangeMapInfo]]:
    """The open dataset and its :class:`ChangeMapInfo`; :class:`InputError` if it is not a change raster."""
    try:
        dataset = rasterio.open(path)
    except RasterioIOError as error:
        raise InputError(path, f"cannot be read as a raster ({error})") from None
    with dataset:
        if dataset.count != len(BANDS) or set(dataset.dtypes) != {"uint8"}:
            found = f"{dataset.count} band(s) of {', '.join(sorted(set(dataset.dtypes)))}"
            raise InputError(path, f"is not a geocd change raster: expected 3 uint8 bands {BANDS}, found {found}")
        tags = dataset.tags()
        if not any(key.startswith(TAG_PREFIX) for key in tags):
            raise InputError(path, "is not a geocd change raster: it has no GEOCD_* metadata tags")
        if dataset.crs is None:
            raise InputError(path, "has no coordinate reference system")
        if CRS.from_user_input(dataset.crs).geodetic_crs is None:
            raise InputError(path, "has a CRS without an ellipsoid: ground areas cannot be measured")
        try:
            info = ChangeMapInfo.from_tags(tags)
        except ValueError as error:
            raise InputError(path, f"has a bad metadata tag: {error}") from None
        yield dataset, info


def default_strip_rows(dataset: rasterio.DatasetReader) -> int:
    """Whole rows of the file's blocks, about :data:`STRIP_PIXELS` (at least one block row);
    an equal share of a block row only when one block row exceeds :data:`MAX_STRIP_PIXELS`."""
    block = dataset.block_shapes[0][0]
    block_row = block * max(dataset.width, 1)
    if block_row > MAX_STRIP_PIXELS:
        return block // math.ceil(block_row / MAX_STRIP_PIXELS)
    return max(STRIP_PIXELS // block_row, 1) * block


def read_strips(dataset: rasterio.DatasetReader, rows: int) -> Iterator[Strip]:
    """The raster top to bottom in strips of ``rows`` rows (the last may be shorter).

    The next strip is read in a background thread while the caller works on the current
    one. Each strip is read through its own short-lived handle, so GDAL's block cache
    does not keep decompressed blocks of strips already done: memory stays per strip.
    """
    tops = range(0, dataset.height, rows)
    windows = [Window(0, top, dataset.width, min(rows, dataset.height - top)) for top in tops]
    with ThreadPoolExecutor(max_workers=1) as reader:
        upcoming = [reader.submit(_read, dataset.name, w) for w in windows[:1]]
        for index, window in enumerate(windows):
            data = upcoming.pop().result()
            if index + 1 < len(windows):
                upcoming.append(reader.submit(_read, dataset.name, windows[index + 1]))
            yield Strip(int(window.row_off), data[0], data[1], data[2])


def _read(path: str, window: Window) -> np.ndarray:
    try:
        with rasterio.open(path) as dataset:
            return dataset.read(window=window)
    except RasterioIOError as error:
        raise InputError(path, f"cannot read rows {int(window.row_off)}.. ({error})") from None
