"""Opening and checking input rasters, with one-line errors that name the file."""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.enums import ColorInterp
from rasterio.env import set_gdal_config
from rasterio.errors import NodataShadowWarning, NotGeoreferencedWarning, RasterioIOError
from rasterio.io import DatasetReader
from rasterio.vrt import WarpedVRT
from rasterio.windows import Window

from geocd.data.remote import is_remote, remote_problem, with_remote_reads
from geocd.data.stac import ITEM_TAG, NAMES_TAG, is_stac_item, stac_raster
from geocd.errors import InputError

RASTER_BLOCK = 256
"""Block (tile) size in pixels of the GeoTIFFs geocd writes, and the unit of its strip loops."""

DECIMATED_MAX_SIDE = 1024
"""Longest side, in pixels, of geocd's decimated reads (:func:`decimated_shape`): a pair's validity check and
radiometry fit, the quicklook's panels."""

SPREAD_GRID = 8
"""Rows and columns of the windows of :func:`spread_windows`."""
SPREAD_SIDE = 64
"""Side in pixels of each window of :func:`spread_windows`."""

GDAL_CACHE_MB = 32
"""GDAL's block cache per process (its default, 5% of RAM, would grow with the scene)."""


def limit_gdal_cache() -> None:
    """Cap GDAL's block cache at :data:`GDAL_CACHE_MB`; effective when called before the process's first block read.

    GDAL reads the cap once per process, so it is set process-wide where the inputs are opened
    (:class:`geocd.data.pair.PairDataset`, also in each DataLoader worker), not in a scoped ``rasterio.Env``.
    """
    set_gdal_config("GDAL_CACHEMAX", GDAL_CACHE_MB * 2**20)


@dataclass(frozen=True)
class Grid:
    """A north-up pixel grid: CRS, float64 affine transform and size. The contract between stages."""

    crs: CRS
    transform: Affine
    width: int
    height: int

    @property
    def res(self) -> tuple[float, float]:
        """Pixel size (x, y) in CRS units, both positive."""
        return self.transform.a, -self.transform.e

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(left, bottom, right, top) in CRS units."""
        left, top = self.transform.c, self.transform.f
        return left, top + self.transform.e * self.height, left + self.transform.a * self.width, top


def row_windows(shape: Grid | DatasetReader, rows: int, start: int = 0, stop: int | None = None) -> list[Window]:
    """Full-width windows of ``rows`` rows (the last may be shorter) covering rows ``start .. stop`` of ``shape``.

    ``shape`` is anything with a ``width`` and ``height`` in pixels (a :class:`Grid`, an open
    raster); ``stop`` defaults to its height. Every strip loop of geocd walks these windows.
    """
    stop = shape.height if stop is None else stop
    return [Window(0, row, shape.width, min(rows, stop - row)) for row in range(start, stop, rows)]


def tile_windows(region: Window, size: int, stride: int) -> list[Window]:
    """Square ``size``-pixel tiles ``stride`` pixels apart covering ``region``, north to south, west to east.

    The grid of TorchGeo's ``GridGeoSampler`` over the region enlarged to at least one tile towards the
    east and south: anchored at its south-west corner, the last row and column reaching past its north and
    east edges where ``stride`` does not divide it. Prediction keeps this grid so that its results are those
    of the samplers' tiles.
    """
    width, height = max(int(region.width), size), max(int(region.height), size)
    rows, cols = (math.ceil((n - size) / stride) + 1 for n in (height, width))
    bottom = int(region.row_off) + height - size
    return [Window(int(region.col_off) + j * stride, bottom - i * stride, size, size)
            for i in reversed(range(rows)) for j in range(cols)]


def geotiff_profile(grid: Grid, count: int, dtype: str | np.dtype, nodata: float | None = None,
                    block: int = RASTER_BLOCK) -> dict:
    """rasterio creation profile of every GeoTIFF geocd writes on ``grid``: tiled in ``block``-pixel
    blocks, deflate-compressed, BigTIFF when the size needs it."""
    return dict(
        driver="GTiff", width=grid.width, height=grid.height, count=count, dtype=dtype, nodata=nodata,
        crs=grid.crs, transform=grid.transform, tiled=True, blockxsize=block, blockysize=block,
        compress="deflate", bigtiff="if_safer",
    )


def open_any_raster(path: str | os.PathLike[str], bands: Sequence[int | str] | None = None) -> DatasetReader:
    """Open a raster GDAL can read, georeferenced or not, or raise :class:`InputError`.

    ``path`` may be a URL or a GDAL ``/vsi...`` path (:mod:`geocd.data.remote`), or a STAC item,
    opened as the stack of the assets ``bands`` names (:func:`geocd.data.stac.stac_raster`).
    """
    remote = is_remote(path)
    if not remote and not os.path.exists(path):
        raise InputError(path, "file does not exist")
    if not remote and (not os.access(path, os.R_OK) or os.path.isdir(path)):
        raise InputError(path, "cannot be read (permission denied or not a file)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            return rasterio.open(stac_raster(path, bands) if is_stac_item(path) else path)
    except RasterioIOError as error:
        raise InputError(path, remote_problem(error) if remote else "is not a raster GDAL can read") from None


def open_raster(path: str | os.PathLike[str], bands: Sequence[int | str] | None = None) -> DatasetReader:
    """Open a georeferenced, north-up raster or raise :class:`InputError` (``bands``: see :func:`open_any_raster`)."""
    src = open_any_raster(path, bands)
    if src.crs is None or src.transform == Affine.identity():
        src.close()
        raise InputError(path, "has no georeferencing (no CRS or geotransform)")
    t = src.transform
    if t.b != 0 or t.d != 0 or t.a <= 0 or t.e >= 0:
        src.close()
        raise InputError(path, "has a rotated or flipped geotransform; warp it to a north-up grid first")
    return src


@with_remote_reads
def check_rasters(*paths: str | os.PathLike[str], bands: Sequence[int | str] | None = None) -> None:
    """Refuse (:class:`InputError`) a path that is not a georeferenced, north-up raster GDAL can open.

    Reads headers only and imports no PyTorch, so a command can refuse bad inputs at once.
    """
    for path in paths:
        open_raster(path, bands).close()


def source_name(src: DatasetReader) -> str:
    """The name errors give an open raster: its file or URL, or the STAC item it stacks."""
    return src.tags().get(ITEM_TAG, src.name)


def grid_of(src: DatasetReader) -> Grid:
    """The pixel grid of an open raster."""
    return Grid(src.crs, src.transform, src.width, src.height)


def image_bands(src: DatasetReader) -> list[int]:
    """1-based indexes of the bands that hold image data (alpha bands excluded)."""
    return [i for i, ci in zip(src.indexes, src.colorinterp) if ci != ColorInterp.alpha]


def choose_bands(src: DatasetReader, requested: Sequence[int | str] | None, needed: int) -> list[int]:
    """The band indexes to feed the model: ``requested`` (1-based indexes or band names) or the first ``needed`` image bands."""
    available = image_bands(src)
    if requested is None:
        if len(available) < needed:
            raise InputError(source_name(src), f"has {len(available)} image band(s), the model needs {needed}")
        return available[:needed]
    if len(requested) != needed:
        raise InputError(source_name(src), f"bands lists {len(requested)} band(s), the model needs {needed}")
    return [_band_index(src, band) for band in requested]


def _band_index(src: DatasetReader, band: int | str) -> int:
    """The index of ``band``: an index, or a name (case-insensitive) of the band's description or of a stacked
    STAC asset (:data:`geocd.data.stac.NAMES_TAG`)."""
    if isinstance(band, int):
        if band not in src.indexes:
            raise InputError(source_name(src), f"has no band {band} (it has {src.count})")
        return band
    for index, description in zip(src.indexes, src.descriptions):
        names = [description or "", *src.tags(index).get(NAMES_TAG, "").split(",")]
        if band.lower() in (name.lower() for name in names if name):
            return index
    named = ", ".join(d for d in src.descriptions if d) or "none is named"
    raise InputError(source_name(src), f"has no band named {band!r} (its bands: {named})")


def read_window(src: DatasetReader | WarpedVRT, indexes: Sequence[int], window: Window) -> tuple[np.ndarray, np.ndarray]:
    """Read ``window`` (may reach outside the raster) as float32 bands and a boolean validity mask.

    Pixels outside the raster are 0 and invalid. Works on WarpedVRTs, which refuse boundless reads.
    """
    data = np.zeros((len(indexes), int(window.height), int(window.width)), np.float32)
    valid = np.zeros((int(window.height), int(window.width)), bool)
    inside = window.intersection(Window(0, 0, src.width, src.height)) if _overlaps(window, src) else None
    if inside is None:
        return data, valid
    rows = slice(int(inside.row_off - window.row_off), int(inside.row_off - window.row_off + inside.height))
    cols = slice(int(inside.col_off - window.col_off), int(inside.col_off - window.col_off + inside.width))
    with reading(src):
        data[:, rows, cols] = src.read(list(indexes), window=inside)
        valid[rows, cols] = read_mask(src, inside)
    return data, valid


def read_mask(src: DatasetReader | WarpedVRT, window: Window | None, out_shape: tuple[int, int] | None = None) -> np.ndarray:
    """GDAL's dataset mask over ``window`` (nodata value, internal mask or alpha band) as booleans.

    ``out_shape`` reads it decimated. rasterio's warning that a nodata value shadows an alpha
    band is silenced: the nodata value is what geocd, like GDAL, uses then.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NodataShadowWarning)
        return src.dataset_mask(window=window, out_shape=out_shape) > 0


def decimated_shape(height: int, width: int, max_side: int = DECIMATED_MAX_SIDE) -> tuple[int, int]:
    """``(height, width)`` divided by the smallest whole factor that brings the longest side to at most ``max_side``."""
    factor = max(1, math.ceil(max(height, width) / max_side))
    return max(1, height // factor), max(1, width // factor)


def read_decimated(src: DatasetReader | WarpedVRT, indexes: Sequence[int], shape: tuple[int, int],
                   window: Window | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``window`` (None: the whole raster) of ``src`` read at ``shape`` ``(height, width)`` (GDAL's nearest):
    float32 bands ``[C, h, w]`` and the validity mask (:func:`read_mask`). geocd's one decimated reader;
    for another resampling, read a ``WarpedVRT`` on a coarser grid at its own size."""
    with reading(src):
        data = src.read(list(indexes), window=window, out_shape=(len(indexes), *shape))
        return data.astype(np.float32), read_mask(src, window, shape)


def spread_windows(region: Window, grid: int = SPREAD_GRID, side: int = SPREAD_SIDE) -> list[Window]:
    """``grid`` x ``grid`` windows of ``side`` pixels, one at the centre of each cell of ``region`` (at least
    ``grid * side`` pixels each way) cut in ``grid`` rows and columns: a sample of the region that reads a few of
    its blocks, where a decimated read of a file without overviews decodes all of them."""
    rows, cols = ([int(offset + (i + 0.5) * length / grid) - side // 2 for i in range(grid)]
                  for offset, length in ((region.row_off, region.height), (region.col_off, region.width)))
    return [Window(col, row, side, side) for row in rows for col in cols]


@contextmanager
def reading(src: DatasetReader | WarpedVRT) -> Iterator[None]:
    """Turn a failed pixel or mask read of ``src`` into an :class:`InputError` naming its file.

    A ``WarpedVRT`` is reported by its source file; the message is GDAL's innermost error.
    """
    try:
        yield
    except RasterioIOError as error:
        cause: BaseException = error
        while cause.__cause__ is not None:
            cause = cause.__cause__
        path = source_name(src.src_dataset if isinstance(src, WarpedVRT) else src)
        hint = "" if is_remote(path) else " (truncated or corrupt file?)"
        raise InputError(path, f"cannot be read: {cause}{hint}") from None


def _overlaps(window: Window, src: DatasetReader) -> bool:
    return (
        window.col_off < src.width
        and window.row_off < src.height
        and window.col_off + window.width > 0
        and window.row_off + window.height > 0
    )
