"""True ground areas and perimeters in metres, in any CRS.

One rule for every CRS: vertices are taken to the CRS's own geodetic (longitude, latitude)
CRS and measured as geodesic polygons on its ellipsoid, so projection scale distortion
(Web Mercator, UTM far from its central meridian, ...) never enters the figures. Polygon
edges are taken as geodesics; between pixel-corner vertices this differs from the map's
straight edges by far less than a pixel.
"""

from __future__ import annotations

import numpy as np
import shapely
from affine import Affine
from pyproj import CRS, Transformer

PIXEL_SAMPLES = 33
"""Rows and columns of sample pixels used to bound one pixel's area over a raster."""
PIXEL_AREA_MARGIN = 1.05
"""Factor on the largest sampled pixel area: a pixel's area varies smoothly, and by far less
than 5 % between neighbouring samples on any grid whose pixels are not whole degrees."""


def measure(geometries: np.ndarray, crs: CRS) -> tuple[np.ndarray, np.ndarray]:
    """``(area_m2, perimeter_m)`` of polygons in ``crs`` coordinates (geodesic); perimeters include holes."""
    rings, owner = shapely.get_rings(geometries, return_index=True)
    coords, ring_index = shapely.get_coordinates(_to_geodetic(rings, crs), return_index=True)
    starts = np.searchsorted(ring_index, np.arange(len(rings) + 1))
    geod = crs.get_geod()
    ring_area = np.empty(len(rings))
    ring_length = np.empty(len(rings))
    for i, (start, stop) in enumerate(zip(starts[:-1], starts[1:])):
        area, ring_length[i] = geod.polygon_area_perimeter(coords[start:stop, 0], coords[start:stop, 1])
        ring_area[i] = abs(area)
    exterior = np.ones(len(rings), bool)
    exterior[1:] = owner[1:] != owner[:-1]
    signed = np.where(exterior, ring_area, -ring_area)
    count = len(geometries)
    return np.bincount(owner, signed, count), np.bincount(owner, ring_length, count)


def pixel_area(transform: Affine, row: int, col: int, crs: CRS) -> float:
    """True ground area in m² of the pixel at (``row``, ``col``)."""
    return float(measure(_pixels(transform, np.array([row]), np.array([col])), crs)[0][0])


def largest_pixel_area(transform: Affine, height: int, width: int, crs: CRS) -> float:
    """An upper bound of one pixel's true area in m² over the raster (``inf`` if none can be measured).

    The largest area of a grid of sample pixels, with the rows next to y = 0 (the equator of
    geographic, Mercator and UTM-north grids, where their pixels are largest), times
    :data:`PIXEL_AREA_MARGIN`.
    """
    rows = set(np.linspace(0, height - 1, PIXEL_SAMPLES).round().astype(int).tolist())
    top, bottom = (transform @ (0, 0))[1], (transform @ (0, height))[1]
    if min(top, bottom) < 0 < max(top, bottom):
        equator = int((0 - top) / (bottom - top) * height)
        rows.update(min(max(r, 0), height - 1) for r in (equator - 1, equator, equator + 1))
    grid_rows, grid_cols = np.meshgrid(sorted(rows), np.linspace(0, width - 1, PIXEL_SAMPLES).round())
    with np.errstate(invalid="ignore"):
        areas = measure(_pixels(transform, grid_rows.ravel(), grid_cols.ravel()), crs)[0]
    finite = areas[np.isfinite(areas)]
    return float(finite.max()) * PIXEL_AREA_MARGIN if len(finite) else float("inf")


def _pixels(transform: Affine, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Polygons (map coordinates) of the pixels at ``rows``, ``cols``."""
    corners = [transform * (cols + dc, rows + dr) for dc, dr in ((0, 0), (1, 0), (1, 1), (0, 1), (0, 0))]
    return shapely.polygons(np.transpose(np.array(corners, dtype=np.float64), (2, 0, 1)))


def _to_geodetic(geometries: np.ndarray, crs: CRS) -> np.ndarray:
    """Geometries in (longitude, latitude) degrees of ``crs``'s geodetic CRS (which it must have)."""
    transformer = Transformer.from_crs(crs, crs.geodetic_crs, always_xy=True)
    return shapely.transform(geometries, lambda xy: np.column_stack(transformer.transform(xy[:, 0], xy[:, 1])))
