"""Polygonize one strip of a label image into pieces with per-piece pixel statistics.

Coordinates are in pixels of the whole raster (x = column, y = row), so pieces from
different strips share exact integer edges along the seams.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import rasterio.features
import shapely
import skimage.measure
from affine import Affine


@dataclass(frozen=True)
class StripPieces:
    """The 4-connected regions of equal nonzero label inside one strip."""

    geometries: np.ndarray
    """Shapely polygons in raster pixel coordinates."""
    labels: np.ndarray
    """int64 label of each piece."""
    pixels: np.ndarray
    """int64 pixel count of each piece."""
    probability_sum: np.ndarray
    """int64 sum of the encoded probability (0..254) over each piece."""
    probability_max: np.ndarray
    """int64 maximum of the encoded probability over each piece."""
    first_row: np.ndarray
    """Piece index (-1: none) of every column in the strip's first row."""
    last_row: np.ndarray
    """Piece index (-1: none) of every column in the strip's last row."""
    neighbours: np.ndarray
    """``(k, 2)`` piece indices that are 4-adjacent (different labels), when asked for."""

    def __len__(self) -> int:
        return len(self.labels)


def polygonize_strip(labels: np.ndarray, probability: np.ndarray, row_offset: int, neighbours: bool) -> StripPieces:
    """Pieces of ``labels`` (int32, 0 = background) for the strip starting at raster row ``row_offset``.

    The 4-connected components of equal label are numbered first (in row-major order of their
    first pixel, which is the pieces' order), then their id image is polygonized once.
    ``probability`` is the encoded change probability of the same pixels; ``neighbours``
    asks for the pairs of touching pieces (needed to group pieces into changed blobs).
    """
    ids, count = skimage.measure.label(labels, background=0, connectivity=1, return_num=True)
    ids = ids.astype(np.int32)
    shapes = sorted(
        rasterio.features.shapes(ids, mask=ids != 0, connectivity=4, transform=Affine.translation(0, row_offset)),
        key=lambda shape: shape[1],
    )
    geometries = _polygons([geometry["coordinates"] for geometry, _ in shapes])
    flat = ids.ravel()
    where = np.flatnonzero(flat)
    owner = flat[where]
    piece_labels = np.zeros(count + 1, np.int64)
    piece_labels[owner] = labels.ravel()[where]
    encoded = probability.ravel()[where]
    pixels = np.bincount(owner, minlength=count + 1)[1:]
    sums = np.bincount(owner, weights=encoded, minlength=count + 1)[1:]
    maxima = np.zeros(count + 1, np.int64)
    np.maximum.at(maxima, owner, encoded)
    return StripPieces(
        geometries=geometries,
        labels=piece_labels[1:],
        pixels=pixels.astype(np.int64),
        probability_sum=np.rint(sums).astype(np.int64),
        probability_max=maxima[1:],
        first_row=ids[0].astype(np.int64) - 1,
        last_row=ids[-1].astype(np.int64) - 1,
        neighbours=_touching(flat, where, owner, labels.shape[1]) if neighbours else np.empty((0, 2), np.int64),
    )


def _polygons(rings_per_polygon: list[list[list[tuple[float, float]]]]) -> np.ndarray:
    """Shapely polygons from GeoJSON coordinate lists, built in one call."""
    rings = [ring for polygon in rings_per_polygon for ring in polygon]
    ring_ends = np.cumsum([len(ring) for ring in rings], dtype=np.int64)
    polygon_ends = np.cumsum([len(polygon) for polygon in rings_per_polygon], dtype=np.int64)
    coords = np.array([xy for ring in rings for xy in ring], dtype=np.float64).reshape(-1, 2)
    offsets = (np.concatenate([[0], ring_ends]), np.concatenate([[0], polygon_ends]))
    return shapely.from_ragged_array(shapely.GeometryType.POLYGON, coords, offsets)


def _touching(flat: np.ndarray, where: np.ndarray, owner: np.ndarray, width: int) -> np.ndarray:
    """Distinct pairs of piece indices that share a pixel edge (right or down neighbours)."""
    pairs = []
    for step, valid in ((1, (where + 1) % width != 0), (width, where + width < flat.size)):
        here = owner[valid]
        there = flat[where[valid] + step]
        touching = (there != 0) & (there != here)
        pairs.append(np.stack([here[touching], there[touching]], axis=1))
    found = np.concatenate(pairs).astype(np.int64) - 1
    return np.unique(np.sort(found, axis=1), axis=0)
