"""vectorize(): change raster in, change polygons out (styled GeoPackage or another vector format).

Rules, applied identically whatever the strip height:

* A pixel is changed when :func:`geocd.changemap.changed_pixels` says so (the raster's threshold
  unless overridden). Each 4-connected region of changed pixels becomes ONE polygon, whatever
  the (from, to) pairs of its pixels: its change type is the region's majority pair (the most
  frequent; a tie goes to the lower from, then to class id), with the shares of its pixels that
  have that pair (``type_share``), that from class (``from_share``) and that to class
  (``to_share``). Pair counts are summed over the whole region before the majority is chosen,
  also for regions crossing strip seams.
* ``min_area_m2`` applies to regions: a region smaller than ``min_area_m2`` disappears entirely.
  Unchanged pixels never become changed: small unchanged holes stay holes.
* Region areas are judged after joining the pieces cut at strip seams, so regions crossing
  seams are measured whole; GDAL sieve only pre-removes specks lying wholly inside a strip.
  Areas are true ground square metres (geodesic on the CRS's ellipsoid, whatever its
  projection; see :mod:`geocd.vector.measure`), so ``min_area_m2`` means the same on any grid.
* Class fields come from the raster's schema; a class id outside it (0 = unknown) is null
  and named "unknown" in ``change_type``. Without trained land cover every class field is
  null and ``change_type`` is "change".
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, replace
from pathlib import Path

import geopandas as gpd
import numpy as np
import rasterio
import shapely
from affine import Affine
from pyproj import CRS

from geocd import __version__
from geocd.atomic import check_output_path
from geocd.changemap import ChangeMapInfo, changed_pixels, valid_threshold
from geocd.errors import InputError
from geocd.progress import Progress
from geocd.vector.attributes import ChangeTypeSummary, change_table, style_categories, summarize_change_types
from geocd.vector.formats import LayerInfo, check_vector_path, write_vectors
from geocd.vector.measure import largest_pixel_area, measure, pixel_area
from geocd.vector.pairs import pair_indices
from geocd.vector.polygonize import polygonize_strip
from geocd.changemap import default_strip_rows, open_change_raster, read_strips
from geocd.vector.sieve import sieve_specks
from geocd.vector.stitch import Regions, SeamStitcher
from geocd.vector.style import categorized_qml

DEFAULT_MIN_PIXELS = 3.5
"""Default minimum area, in pixels' ground area at the raster's centre: regions of 1-3 pixels are
dropped as noise, 4-pixel regions kept (the half pixel absorbs area variation over the raster)."""
AREA_TOLERANCE = 1e-9
"""Relative slack when comparing a region's area with ``min_area_m2`` (float rounding)."""


@dataclass(frozen=True)
class ChangePolygons:
    """The ``changes`` layer in memory: its table, what goes with it, its sum per change type and the
    minimum region area applied (m²)."""

    frame: gpd.GeoDataFrame
    layer: LayerInfo
    change_types: tuple[ChangeTypeSummary, ...]
    min_area_m2: float

    @property
    def changed_area_m2(self) -> float:
        """Total ground area of the polygons (m²)."""
        return float(self.frame["area_m2"].sum())


@dataclass(frozen=True)
class VectorizeResult:
    """What :func:`vectorize` wrote; ``change_types`` sums up the written table per change type."""

    path: Path
    polygons: int
    changed_area_m2: float
    change_types: tuple[ChangeTypeSummary, ...] = ()


def vectorize(
    raster: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    min_area_m2: float | None = None,
    simplify: float | None = None,
    threshold: float | None = None,
    overwrite: bool = False,
    strip_rows: int | None = None,
    progress: Progress | None = None,
) -> VectorizeResult:
    """Write the change polygons of change raster ``raster`` to ``output`` (layer ``changes``), in the
    vector format of its extension (:mod:`geocd.vector.formats`).

    The options are :func:`change_polygons`'. The file is written under a temporary name and
    renamed on success; an existing ``output`` is refused unless ``overwrite``.
    """
    output = check_vector_path(output)
    check_output_path(output, overwrite)
    polygons = change_polygons(raster, min_area_m2=min_area_m2, simplify=simplify, threshold=threshold,
                               strip_rows=strip_rows, progress=progress)
    write_vectors(output, polygons.frame, polygons.layer, overwrite)
    return VectorizeResult(output, len(polygons.frame), polygons.changed_area_m2, polygons.change_types)


def change_polygons(
    raster: str | os.PathLike[str],
    *,
    min_area_m2: float | None = None,
    simplify: float | None = None,
    threshold: float | None = None,
    strip_rows: int | None = None,
    progress: Progress | None = None,
) -> ChangePolygons:
    """The change polygons of change raster ``raster``, in memory.

    ``min_area_m2`` removes change regions smaller than that (see the module docstring); None
    means :data:`DEFAULT_MIN_PIXELS` pixels' ground area at the raster's centre, 0 keeps all;
    ``simplify`` is a coverage-simplification tolerance in map units (shared edges stay
    shared; areas and perimeters are then those of the simplified polygons); ``threshold``
    overrides the raster's change threshold; ``strip_rows`` sets the strip height (the
    result does not depend on it).
    """
    _check_options(min_area_m2, simplify, threshold, strip_rows)
    with open_change_raster(raster) as (dataset, info):
        if threshold is not None:
            info = replace(info, threshold=threshold)
        crs = CRS.from_user_input(dataset.crs)
        transform = dataset.transform
        if min_area_m2 is None:
            centre = pixel_area(transform, dataset.height // 2, dataset.width // 2, crs)
            min_area_m2 = DEFAULT_MIN_PIXELS * centre
        specks = _speck_pixels(min_area_m2, largest_pixel_area(transform, dataset.height, dataset.width, crs))
        rows = strip_rows or default_strip_rows(dataset)
        regions = _regions(dataset, info, specks, rows, progress or Progress("none"))

    regions = regions.take(_scan_order(regions.geometries))
    geometries = shapely.normalize(_to_map(regions.geometries, transform))  # vertex order fixed: exact figures do not depend on strips
    area, perimeter = measure(geometries, crs)
    if min_area_m2 > 0:
        keep = area >= min_area_m2 * (1 - AREA_TOLERANCE)
        regions, geometries, area, perimeter = regions.take(keep), geometries[keep], area[keep], perimeter[keep]
    if simplify is not None and len(geometries):
        geometries = shapely.normalize(shapely.coverage_simplify(geometries, simplify))
        area, perimeter = measure(geometries, crs)

    frame = change_table(geometries, regions, area, perimeter, info, crs)
    categories = style_categories(regions.labels, info)
    layer = LayerInfo(_description(info, min_area_m2), _metadata(info, min_area_m2, simplify), categorized_qml(categories))
    return ChangePolygons(frame, layer, summarize_change_types(frame, categories), min_area_m2)


def _check_options(min_area_m2: float | None, simplify: float | None, threshold: float | None, strip_rows: int | None) -> None:
    if min_area_m2 is not None and not (min_area_m2 >= 0 and math.isfinite(min_area_m2)):
        raise InputError(None, f"minimum area must be a finite number >= 0, got {min_area_m2}")
    if simplify is not None and not (simplify > 0 and math.isfinite(simplify)):
        raise InputError(None, f"simplification tolerance must be > 0, got {simplify}")
    if threshold is not None and not valid_threshold(threshold):
        raise InputError(None, f"threshold must be in (0, 1], got {threshold}")
    if strip_rows is not None and strip_rows < 1:
        raise InputError(None, f"strip height must be at least 1 row, got {strip_rows}")


def _speck_pixels(min_area_m2: float, pixel_area_m2: float) -> int:
    """Blobs with fewer pixels than this are surely below ``min_area_m2`` (sieve pre-filter size)."""
    if min_area_m2 <= 0:
        return 0
    return max(math.ceil(min_area_m2 / (pixel_area_m2 * (1 + 1e-6))) - 1, 0)


def _regions(dataset: rasterio.DatasetReader, info: ChangeMapInfo, specks: int, rows: int, progress: Progress) -> Regions:
    """Polygonize the raster strip by strip and join the pieces across seams."""
    classes = info.schema.num_landcover
    stitcher = SeamStitcher(classes)
    progress.start(math.ceil(dataset.height / rows), "vectorizing", unit="strip")
    for strip in read_strips(dataset, rows):
        changed = sieve_specks(changed_pixels(strip.probability, strip.from_class, info), specks)
        if changed.any():
            pairs = pair_indices(strip.from_class, strip.to_class, classes)
            stitcher.add(polygonize_strip(changed, pairs, (classes + 1) ** 2, strip.probability, strip.row_offset))
        else:
            stitcher.close()
        progress.advance(1, changed.size)
    progress.close()
    stitcher.close()
    return stitcher.regions()


def _scan_order(geometries: np.ndarray) -> np.ndarray:
    """Indices ordering pixel-coordinate polygons by their first pixel in row-major order.

    Every region has a distinct first pixel, so the order (and hence ``change_id``) does not
    depend on how the raster was cut into strips.
    """
    if len(geometries) == 0:
        return np.empty(0, np.int64)
    coords, owner = shapely.get_coordinates(geometries, return_index=True)
    top = shapely.bounds(geometries)[:, 1]
    on_top = coords[:, 1] == top[owner]
    left = np.full(len(geometries), np.inf)
    np.minimum.at(left, owner[on_top], coords[on_top, 0])
    return np.lexsort((left, top))


def _to_map(geometries: np.ndarray, transform: Affine) -> np.ndarray:
    """Pixel coordinates (column, row) to the raster's map coordinates."""
    matrix = np.array([[transform.a, transform.d], [transform.b, transform.e]])
    offset = np.array([transform.c, transform.f])
    return shapely.transform(geometries, lambda xy: xy @ matrix + offset)


def _description(info: ChangeMapInfo, min_area_m2: float) -> str:
    models = ", ".join(info.models) or "unknown model"
    inputs = ", ".join(info.inputs) or "unknown inputs"
    only = f"; only changes from or to {', '.join(info.schema.name(c) for c in info.only)}" if info.only else ""
    return (
        f"geocd change polygons of {inputs}; model {models}; threshold {info.threshold:g}; "
        f"minimum area {min_area_m2:g} m²; land cover {'trained' if info.landcover_trained else 'not trained'}{only}"
    )


def _metadata(info: ChangeMapInfo, min_area_m2: float, simplify: float | None) -> dict[str, str]:
    return {
        **info.to_tags(),
        "GEOCD_MIN_AREA_M2": repr(min_area_m2),
        "GEOCD_SIMPLIFY": "" if simplify is None else repr(simplify),
        "GEOCD_VERSION": __version__,
    }
