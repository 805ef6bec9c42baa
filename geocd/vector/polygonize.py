"""Polygonize the changed pixels of one strip into pieces with per-piece pixel statistics.

Coordinates are in pixels of the whole raster (x = column, y = row), so pieces from
different strips share exact integer edges along the seams.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import rasterio.features
import shapely
from affine import Affine
from scipy import ndimage


@dataclass(frozen=True)
class StripPieces:
    """The 4-connected regions of changed pixels inside one strip."""

    geometries: np.ndarray
    """Shapely polygons in raster pixel coordinates."""
    pair_counts: np.ndarray
    """int64 ``[pieces, pairs]``: how many pixels of each piece have each (from, to) pair index."""
    probability_sum: np.ndarray
    """int64 sum of the encoded probability (0..254) over each piece."""
    probability_max: np.ndarray
    """int64 maximum of the encoded probability over each piece."""
    first_row: np.ndarray
    """Piece index (-1: none) of every column in the strip's first row."""
    last_row: np.ndarray
    """Piece index (-1: none) of every column in the strip's last row."""

    def __len__(self) -> int:
        return len(self.geometries)


def polygonize_strip(changed: np.ndarray, pairs: np.ndarray, num_pairs: int, probability: np.ndarray,
                     row_offset: int) -> StripPieces:
    """Pieces of the ``changed`` mask for the strip starting at raster row ``row_offset``.

    The 4-connected components are numbered first (in row-major order of their first pixel,
    which is the pieces' order), then their id image is polygonized once. ``pairs`` are the
    pixels' (from, to) pair indices below ``num_pairs`` (:func:`geocd.vector.pairs.pair_indices`),
    ``probability`` their encoded change probability.
    """
    ids, count = ndimage.label(changed)  # int32; SciPy's default structure is 4-connected
    shapes = sorted(
        rasterio.features.shapes(ids, mask=ids != 0, connectivity=4, transform=Affine.translation(0, row_offset)),
        key=lambda shape: shape[1],
    )
    geometries = _polygons([geometry["coordinates"] for geometry, _ in shapes])
    flat = ids.ravel()
    where = np.flatnonzero(flat)
    owner = flat[where].astype(np.int64) - 1
    counts = np.bincount(owner * num_pairs + pairs.ravel()[where], minlength=count * num_pairs)
    encoded = probability.ravel()[where]
    sums = np.bincount(owner, weights=encoded, minlength=count)
    maxima = np.zeros(count, encoded.dtype)
    np.maximum.at(maxima, owner, encoded)  # in the probability's own dtype: a cast makes ufunc.at 10x slower
    return StripPieces(
        geometries=geometries,
        pair_counts=counts.reshape(count, num_pairs).astype(np.int64),
        probability_sum=np.rint(sums).astype(np.int64),
        probability_max=maxima.astype(np.int64),
        first_row=ids[0].astype(np.int64) - 1,
        last_row=ids[-1].astype(np.int64) - 1,
    )


def _polygons(rings_per_polygon: list[list[list[tuple[float, float]]]]) -> np.ndarray:
    """Shapely polygons from GeoJSON coordinate lists, built in one call."""
    rings = [ring for polygon in rings_per_polygon for ring in polygon]
    ring_ends = np.cumsum([len(ring) for ring in rings], dtype=np.int64)
    polygon_ends = np.cumsum([len(polygon) for polygon in rings_per_polygon], dtype=np.int64)
    coords = np.array([xy for ring in rings for xy in ring], dtype=np.float64).reshape(-1, 2)
    offsets = (np.concatenate([[0], ring_ends]), np.concatenate([[0], polygon_ends]))
    return shapely.from_ragged_array(shapely.GeometryType.POLYGON, coords, offsets)
