"""Residual misregistration between the dates of a pair: a global shift, measured on the overlap.

geocd puts both dates on the 'before' grid exactly, but the images themselves may not line up
(orthorectification, different sensors): a shift of a few pixels makes every unchanged edge look
like change. :func:`estimate_shift` measures the global shift between two arrays by
cross-correlation upsampled to 1/:data:`UPSAMPLE` pixel (:func:`skimage.registration.phase_cross_correlation`
without its phase normalisation, which measured 0.1 pixel biased on sub-pixel shifts);
:func:`measure_alignment` runs it on a full-resolution window at the centre of a
:class:`~geocd.data.pair.PairDataset`'s overlap (at most :data:`WINDOW` pixels a side, the
luminance of both dates after their radiometric stretches).
:meth:`~geocd.data.pair.PairDataset.aligned` corrects the shift by moving the 'after' date's
geotransform, so that the warp onto the 'before' grid resamples it.

Shifts are ``(dx, dy)`` in pixels of the 'before' grid, x to the right (east) and y down
(south): the 'after' content lies ``(dx, dy)`` from where the same content lies in 'before'
(``after[y, x] == before[y - dy, x - dx]``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from rasterio.windows import Window
from scipy import ndimage
from skimage.registration import phase_cross_correlation

if TYPE_CHECKING:
    from geocd.data.pair import PairDataset

WINDOW = 1024
"""Longest side in pixels of the full-resolution window the shift is measured on (bounds its memory)."""
MIN_WINDOW = 32
"""Shortest side in pixels of an overlap on which a shift is measured."""
MIN_VALID_SHARE = 0.5
"""Share of the window that must be valid in both dates for a shift to be measured."""
UPSAMPLE = 20
"""The shift is resolved to 1/UPSAMPLE pixel."""
MIN_CORRELATION = 0.2
"""Pearson's r, once the shift is undone, below which two images share too little content for a
shift to mean anything (measured: 0.45-0.55 on SZTAKI's real pairs 5-23 years apart, 0.54-0.92 on
OSCD's Sentinel-2 pairs, below 0.05 between unrelated scenes)."""
WARN_PIXELS = 1.0
"""A shift longer than this (pixels) is worth a warning: unchanged edges start to read as change."""


@dataclass(frozen=True)
class Shift:
    """A global shift ``(dx, dy)`` in pixels (see the module) and ``correlation``: Pearson's r of the
    two images once the shift is undone (1: identical content; near 0: the estimate means little)."""

    dx: float
    dy: float
    correlation: float

    @property
    def length(self) -> float:
        """Length of the shift in pixels."""
        return math.hypot(self.dx, self.dy)


@dataclass(frozen=True)
class Alignment:
    """The shift measured between the dates of a pair, the pixel size (m) of the 'before' grid there,
    and whether the shift was corrected before prediction."""

    shift: Shift
    pixel_size_m: float
    applied: bool

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description (the run report's ``alignment``)."""
        s, m = self.shift, self.pixel_size_m
        return {
            "shift_px": [round(s.dx, 3), round(s.dy, 3)],
            "shift_m": [round(s.dx * m, 3), round(s.dy * m, 3)],
            "length_px": round(s.length, 3),
            "length_m": round(s.length * m, 3),
            "correlation": round(s.correlation, 3),
            "applied": self.applied,
        }


def estimate_shift(before: np.ndarray, after: np.ndarray, valid: np.ndarray | None = None) -> Shift | None:
    """The global shift of ``after`` relative to ``before`` (2-D arrays of one shape), to 1/:data:`UPSAMPLE` pixel.

    Only pixels where ``valid`` holds count; both images are tapered by a (separable) Hann window so that
    their borders do not pull the estimate towards no shift. None when either image has no texture
    where valid, or when the two correlate less than :data:`MIN_CORRELATION` once shifted.
    """
    valid = np.ones(before.shape, bool) if valid is None else valid
    weight = np.outer(np.hanning(before.shape[0]), np.hanning(before.shape[1])).astype(np.float32)
    images = []
    for image in (before, after):
        values = image[valid]
        if values.size == 0 or values.std() == 0:
            return None
        images.append(np.where(valid, image - values.mean(), 0.0).astype(np.float32) * weight)
    found, _, _ = phase_cross_correlation(*images, upsample_factor=UPSAMPLE, normalization=None)
    dy, dx = (round(-float(v) * UPSAMPLE) / UPSAMPLE + 0.0 for v in found)
    undone = ndimage.shift(after.astype(np.float32), (-dy, -dx), order=1, mode="nearest")
    margin = math.ceil(max(abs(dx), abs(dy))) + 1
    inner = np.zeros_like(valid)
    inner[margin:-margin, margin:-margin] = True
    inner &= valid
    correlation = float(np.nan_to_num(np.corrcoef(before[inner], undone[inner])[0, 1])) if inner.sum() > 1 else 0.0
    return Shift(dx, dy, correlation) if correlation >= MIN_CORRELATION else None


def measure_alignment(dataset: PairDataset, pixel_size_m: float, apply: bool) -> Alignment | None:
    """The shift between the dates of ``dataset`` on a central window of its overlap (``apply``:
    whether it will be corrected). None when the overlap is too small, too little of the window is
    valid in both dates, or no shift can be measured there (:func:`estimate_shift`)."""
    region = dataset.overlap
    width, height = min(WINDOW, int(region.width)), min(WINDOW, int(region.height))
    if min(width, height) < MIN_WINDOW:
        return None
    window = Window(int(region.col_off + (region.width - width) // 2), int(region.row_off + (region.height - height) // 2),
                    width, height)
    sample = dataset.read(window)
    valid = sample["valid"]
    if valid.mean() < MIN_VALID_SHARE:
        return None
    before, after = (sample[key].mean(axis=0) for key in ("image_before", "image_after"))
    shift = estimate_shift(before, after, valid)
    return None if shift is None else Alignment(shift, pixel_size_m, apply)
