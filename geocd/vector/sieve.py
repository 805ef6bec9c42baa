"""Raster pre-filter of specks: GDAL sieve on one strip, never touching blobs that may continue.

This is a speed-up only: it removes 4-connected changed blobs lying wholly inside the strip
with fewer than ``min_pixels`` pixels, so they are never polygonized. Blobs that reach the
strip's first or last row might continue in the next strip; padding rows of "changed" glue
them to a blob of at least ``min_pixels`` pixels, so the sieve leaves them alone. The exact
minimum-area rule is applied later to whole merged blobs (see :mod:`geocd.vector.pipeline`).
"""

from __future__ import annotations

import numpy as np
import rasterio.features


def sieve_specks(changed: np.ndarray, min_pixels: int) -> np.ndarray:
    """``changed`` without the blobs inside the strip smaller than ``min_pixels`` pixels.

    Unchanged pixels stay unchanged: GDAL's filling of small holes is discarded.
    """
    if min_pixels < 2 or not changed.any():
        return changed
    height, width = changed.shape
    pad = -(-min_pixels // width)
    padded = np.ones((height + 2 * pad, width), np.uint8)
    padded[pad : pad + height] = changed
    sieved = rasterio.features.sieve(padded, min_pixels, connectivity=4)
    return changed & (sieved[pad : pad + height] != 0)
