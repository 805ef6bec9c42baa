"""Areas and perimeters in metres: geodesic on the CRS's ellipsoid for geographic CRSs,
planar (scaled by the linear unit) for projected ones."""

from __future__ import annotations

import numpy as np
import shapely
from affine import Affine
from pyproj import CRS


def measure(geometries: np.ndarray, crs: CRS) -> tuple[np.ndarray, np.ndarray]:
    """``(area_m2, perimeter_m)`` of polygons in ``crs`` coordinates; perimeters include holes."""
    if crs.is_geographic:
        geod = crs.get_geod()
        oriented = shapely.orient_polygons(geometries, exterior_cw=False)
        area = np.array([abs(geod.geometry_area_perimeter(g)[0]) for g in oriented], dtype=np.float64)
        perimeter = np.array([geod.geometry_length(g.boundary) for g in oriented], dtype=np.float64)
        return area, perimeter
    metres = linear_unit_metres(crs)
    return shapely.area(geometries) * metres**2, shapely.length(geometries) * metres


def linear_unit_metres(crs: CRS) -> float:
    """Metres per unit of a projected CRS's first axis."""
    return float(crs.axis_info[0].unit_conversion_factor)


def largest_pixel_area(transform: Affine, height: int, crs: CRS) -> float:
    """An upper bound of one pixel's area in square metres over the raster."""
    if not crs.is_geographic:
        return abs(transform.determinant) * linear_unit_metres(crs) ** 2
    rows = {0, height - 1}
    top, bottom = (transform @ (0, 0))[1], (transform @ (0, height))[1]
    if min(top, bottom) < 0 < max(top, bottom):
        equator = int((0 - top) / (bottom - top) * height)
        rows.update(min(max(r, 0), height - 1) for r in (equator - 1, equator, equator + 1))
    pixels = [shapely.box(*(transform @ (0, r)), *(transform @ (1, r + 1))) for r in sorted(rows)]
    area, _ = measure(np.array(pixels, dtype=object), crs)
    return float(area.max())
