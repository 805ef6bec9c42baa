"""A bitemporal scene pair on the 'before' grid, read by pixel windows.

The 'before' raster's grid is the reference. When 'after' differs in CRS, resolution or
pixel alignment it is warped on the fly onto that grid (``WarpedVRT``, bilinear). Only
the overlap of the two footprints is read; a pixel is valid when it is valid in both
dates (nodata value, internal mask, alpha band, NaN or infinite values). Each date's values
are brought to the radiometry the network expects (:mod:`geocd.data.radiometry`). Each file is
opened once per process (:attr:`PairDataset.sources`), and every read of the pair, decimated or
not, goes through that handle. Prediction tiles the overlap itself (:func:`~geocd.data.rasters.tile_windows`);
training indexes it with TorchGeo's samplers (:class:`geocd.data.labelled.LabelledPairDataset`), so
prediction never imports TorchGeo.
"""

from __future__ import annotations

import copy
import math
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
from affine import Affine
from rasterio.enums import ColorInterp, Resampling
from rasterio.io import DatasetReader
from rasterio.vrt import WarpedVRT
from rasterio.warp import transform, transform_bounds
from rasterio.windows import Window
from scipy import ndimage

from geocd.data.radiometry import RadiometryMode, Stretch, fit_stretches, fits_samples
from geocd.data.rasters import (
    SPREAD_GRID, SPREAD_SIDE, Grid, choose_bands, decimated_shape, grid_of, limit_gdal_cache, open_raster, read_decimated,
    read_window, source_name, spread_windows,
)
from geocd.errors import InputError


def warp_onto(src: DatasetReader, grid: Grid, resampling: Resampling = Resampling.bilinear,
              src_transform: Affine | None = None) -> DatasetReader | WarpedVRT:
    """``src`` itself when already on ``grid``, else a ``WarpedVRT`` of it on ``grid``.

    Sources without a nodata value or alpha band get an alpha band so that pixels outside
    their footprint read as invalid. ``src_transform`` replaces the source's own geotransform.
    """
    if grid_of(src) == grid and src_transform is None:
        return src
    has_alpha = ColorInterp.alpha in src.colorinterp
    return WarpedVRT(
        src,
        src_transform=src_transform,
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
        raise InputError(source_name(after), f"does not overlap {source_name(before)}")
    return Window(col0, row0, col1 - col0, row1 - row0)


class PairDataset:
    """Both dates of a pair on the 'before' grid, read by pixel windows of that grid (:meth:`read`).

    Each sample holds ``image_before`` and ``image_after`` (float32 ``[C, h, w]``, the chosen
    bands after each date's :class:`~geocd.data.radiometry.Stretch`), ``valid`` (bool ``[h, w]``:
    valid in both dates and inside the overlap) and ``window`` (int64 ``[row_off, col_off]`` on
    the 'before' grid). A pixel not valid in both dates holds, in each date, that date's values at
    the nearest pixel valid in both: each date continues its own texture, so a partial overlap, a
    cropped or warped footprint, a nodata collar or a NaN block shows the network no seam and
    creates no change along its edge (benchmarks/edges.py). Windows may reach past the overlap
    (scene edges): those pixels are filled the same way and invalid.

    With ``resolution`` (CRS units) both dates are resampled onto a grid of that pixel size over the
    'before' extent (training on sources of different ground resolution). ``radiometry`` is a
    :data:`~geocd.data.radiometry.RadiometryMode`; the fitted stretches are in ``stretches``.
    ``same_pixels`` says whether both dates store the same values over the overlap (on its
    decimated read, unless a sample of windows already differs): such a pair cannot show change.
    ``after_shift`` is the shift ``(dx, dy)`` (pixels of the grid, :mod:`geocd.data.alignment`) undone in
    the 'after' date as it is read (:meth:`aligned`). The files stay open, once per process, until
    :meth:`close` (or the pair is dropped).
    """

    def __init__(
        self,
        before: str | os.PathLike[str],
        after: str | os.PathLike[str],
        num_bands: int,
        bands: Sequence[int | str] | None = None,
        resolution: float | None = None,
        radiometry: RadiometryMode = "auto",
    ) -> None:
        self.paths = [os.fspath(before), os.fspath(after)]
        self.requested_bands = bands
        self._files: tuple[int, DatasetReader, DatasetReader] | None = None
        self._views: tuple[int, DatasetReader | WarpedVRT, DatasetReader | WarpedVRT] | None = None
        self.after_shift = (0.0, 0.0)
        b, a = self.sources
        self.grid = grid_of(b) if resolution is None else resampled(grid_of(b), resolution)
        self.bands_before = choose_bands(b, bands, num_bands)
        self.bands_after = choose_bands(a, bands, num_bands)
        self.overlap = overlap_window(self.grid, b, a)
        dates = ((b, self.bands_before), (a, self.bands_after))
        calibration = [([src.scales[i - 1] for i in idx], [src.offsets[i - 1] for i in idx]) for src, idx in dates]
        dtypes = [src.dtypes[idx[0] - 1] for src, idx in dates]
        samples = None if fits_samples(radiometry, dtypes, calibration) else self._spread_sample()
        if samples is None or not samples[0].shape[1] or np.array_equal(*samples):  # the whole overlap decides
            samples = self._overlap_sample()
        self._any_valid = samples[0].shape[1] > 0
        self.same_pixels = self._any_valid and np.array_equal(*samples)
        self.stretches = fit_stretches(radiometry, dtypes, calibration, samples)

    def read(self, window: Window) -> dict[str, Any]:
        """Both dates (``image_before``/``image_after``, float32 ``[C, h, w]``), their joint validity (``valid``,
        bool ``[h, w]``) and the window's ``[row, col]`` (``window``) over a pixel window of the 'before' grid."""
        (image_before, valid_before), (image_after, valid_after) = (
            self._read_date(src, bands, stretch, window)
            for src, bands, stretch in zip(self._open(), (self.bands_before, self.bands_after), self.stretches)
        )
        valid = valid_before & valid_after & _inside(window, self.overlap)
        image_before, image_after = _filled(valid, image_before, image_after)
        return {"image_before": image_before, "image_after": image_after, "valid": valid,
                "window": np.array([int(window.row_off), int(window.col_off)])}

    def has_valid_pixels(self) -> bool:
        """Whether any pixel of the overlap is valid in both dates (on a sample of windows, else a decimated read)."""
        return self._any_valid

    @staticmethod
    def _read_date(src: DatasetReader | WarpedVRT, bands: list[int], stretch: Stretch,
                   window: Window) -> tuple[np.ndarray, np.ndarray]:
        data, valid = read_window(src, bands, window)
        values, finite = stretch.apply(data)
        return values, valid & finite

    def _overlap_sample(self) -> tuple[np.ndarray, np.ndarray]:
        """Stored values ``[C, n]`` of each date at the pixels valid in both, from a decimated read of the overlap."""
        shape = decimated_shape(int(self.overlap.height), int(self.overlap.width))
        return self._joint_sample(lambda src, bands: read_decimated(src, bands, shape, self.overlap))

    def _spread_sample(self) -> tuple[np.ndarray, np.ndarray] | None:
        """Stored values ``[C, n]`` of each date at the pixels valid in both, from the overlap's
        :func:`~geocd.data.rasters.spread_windows`; None where a decimated read costs no more: an overlap under
        twice the sample's span each way, or files that both have overviews. On a 16 MP pair of tiled GeoTIFFs
        without overviews, 0.07 s against 0.45 s."""
        span = 2 * SPREAD_GRID * SPREAD_SIDE
        if min(self.overlap.height, self.overlap.width) < span or all(src.overviews(1) for src in self.sources):
            return None
        windows = spread_windows(self.overlap)

        def read(src: DatasetReader | WarpedVRT, bands: list[int]) -> tuple[np.ndarray, np.ndarray]:
            data, valid = zip(*(read_window(src, bands, window) for window in windows))
            return np.stack(data, axis=1), np.stack(valid)

        return self._joint_sample(read)

    def _joint_sample(self, read: Callable[[DatasetReader | WarpedVRT, list[int]], tuple[np.ndarray, np.ndarray]]
                      ) -> tuple[np.ndarray, np.ndarray]:
        """Each date's values ``[C, n]`` where ``read`` (of a date's view and bands: values ``[C, ...]`` and validity
        ``[...]``) finds both valid; both dates at once (GDAL decodes each file's blocks in its own thread)."""
        with ThreadPoolExecutor(max_workers=2) as pool:
            reads = list(pool.map(read, self._open(), (self.bands_before, self.bands_after)))
        valid = reads[0][1] & reads[1][1]
        return tuple(data[:, valid] for data, _ in reads)  # type: ignore[return-value]

    def aligned(self, shift: tuple[float, float]) -> PairDataset:
        """This pair with the 'after' content moved back by ``shift`` (see :attr:`after_shift`).

        The 'after' geotransform is moved by the shift, measured at the centre of the overlap in the
        'after' raster's own pixels, and the warp onto the grid resamples it (bilinear). The moved pair
        shares this pair's open files (:attr:`sources`): closing one closes both.
        """
        moved = copy.copy(self)
        moved._views = None
        moved.after_shift = (float(shift[0]), float(shift[1]))
        return moved

    @property
    def sources(self) -> tuple[DatasetReader, DatasetReader]:
        """Both files as opened, once per process (DataLoader workers each open their own), on their own grids.

        Every read of the pair goes through these handles: its samples, its decimated reads, the
        quicklook's panels and the run report's description of the inputs.
        """
        if self._files is None or self._files[0] != os.getpid():
            limit_gdal_cache()
            before = open_raster(self.paths[0], self.requested_bands)
            try:
                self._files = (os.getpid(), before, open_raster(self.paths[1], self.requested_bands))
            except InputError:
                before.close()
                raise
        return self._files[1], self._files[2]

    def close(self) -> None:
        """Close this process's file handles (a later read opens them again)."""
        for handles in (self._views, self._files):
            if handles is not None and handles[0] == os.getpid():
                for handle in handles[1:]:
                    handle.close()
        self._files = self._views = None

    def _open(self) -> tuple[DatasetReader | WarpedVRT, DatasetReader | WarpedVRT]:
        """Both dates on the grid: :attr:`sources`, or ``WarpedVRT`` views of them."""
        if self._views is None or self._views[0] != os.getpid():
            before, source = self.sources
            moved = None if self.after_shift == (0.0, 0.0) else self._moved_transform(source)
            self._views = (os.getpid(), warp_onto(before, self.grid), warp_onto(source, self.grid, src_transform=moved))
        return self._views[1], self._views[2]

    def _moved_transform(self, src: DatasetReader) -> Affine:
        """``src``'s geotransform moved so that its content lies :attr:`after_shift` back on the grid."""
        region = self.overlap
        col, row = region.col_off + region.width / 2, region.row_off + region.height / 2
        dx, dy = self.after_shift
        xs, ys = zip(self.grid.transform @ (col, row), self.grid.transform @ (col + dx, row + dy))
        (x0, x1), (y0, y1) = transform(self.grid.crs, src.crs, xs, ys)
        (c0, r0), (c1, r1) = ~src.transform @ (x0, y0), ~src.transform @ (x1, y1)
        return src.transform @ Affine.translation(c0 - c1, r0 - r1)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_files"] = state["_views"] = None
        return state


def _filled(valid: np.ndarray, before: np.ndarray, after: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both dates with each pixel outside ``valid`` taking the values of the nearest pixel inside it (zeros when none is).

    Each date continues its own texture past the edge of the joint footprint (edge replication), so
    the network meets no seam between one date and the other there, and the fill agrees between the dates
    as far as the nearest valid pixels do.
    """
    if valid.all():
        return before, after
    if not valid.any():
        return np.zeros_like(before), np.zeros_like(after)
    rows, cols = ndimage.distance_transform_edt(~valid, return_distances=False, return_indices=True)
    return before[:, rows, cols], after[:, rows, cols]


def _inside(window: Window, region: Window) -> np.ndarray:
    rows = np.arange(window.row_off, window.row_off + window.height)
    cols = np.arange(window.col_off, window.col_off + window.width)
    in_rows = (rows >= region.row_off) & (rows < region.row_off + region.height)
    in_cols = (cols >= region.col_off) & (cols < region.col_off + region.width)
    return in_rows[:, None] & in_cols[None, :]
