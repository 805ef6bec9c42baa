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
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import geopandas as gpd
import numpy as np
import shapely
from affine import Affine
from pyproj import CRS

from geocd import __version__
from geocd.atomic import check_output_path
from geocd.changemap import (
    STRIP_PIXELS, ChangeMapInfo, ChangeRows, ChangeSink, Strip, changed_pixels, default_strip_rows, open_change_raster, read_strips,
    valid_threshold,
)
from geocd.data.rasters import Grid
from geocd.data.remote import with_remote_reads
from geocd.errors import InputError
from geocd.progress import Progress
from geocd.vector.attributes import ChangeTypeSummary, change_table, style_categories, summarize_change_types
from geocd.vector.formats import LayerInfo, check_vector_path, write_vectors
from geocd.vector.measure import largest_pixel_area, measure, pixel_area
from geocd.vector.pairs import pair_indices
from geocd.vector.polygonize import polygonize_strip
from geocd.vector.sieve import sieve_specks
from geocd.vector.stitch import SeamStitcher
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


@with_remote_reads
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
    progress = progress or Progress("none")
    with open_change_raster(raster) as (dataset, info):
        if threshold is not None:
            info = replace(info, threshold=threshold)
        grid = Grid(dataset.crs, dataset.transform, dataset.width, dataset.height)
        builder = _PolygonBuilder(grid, info, min_area_m2, simplify)
        rows = strip_rows or default_strip_rows(dataset)
        progress.start(math.ceil(dataset.height / rows), "vectorizing", unit="strip")
        for strip in read_strips(dataset, rows):
            builder.add(strip)
            progress.advance(1, strip.probability.size)
        progress.close()
    return builder.polygons()


class PolygonSink:
    """A change-map sink (:data:`geocd.changemap.SinkFactory`) that makes the change polygons from the rows
    as they are predicted, exactly as :func:`change_polygons` makes them from the written raster (in strips of
    about :data:`~geocd.changemap.STRIP_PIXELS` pixels, as it reads them: every seam costs a join).

    A strip is polygonized in a thread of its own while the next one gathers (at most one strip in
    flight), so the rows' producer never waits the half second a strip takes: in a prediction, the
    network went idle for those waits (1 s of a 16 MP scene, docs/benchmarks.md). The strip before the
    scene's last rows ends a quarter strip early: what is left to polygonize after the last rows, while
    nothing else runs, is a quarter strip.

    After the run, :attr:`polygons` holds them and :attr:`seconds` the time spent on them.
    """

    def __init__(self, min_area_m2: float | None = None, simplify: float | None = None) -> None:
        _check_options(min_area_m2, simplify, None, None)
        self.min_area_m2, self.simplify = min_area_m2, simplify
        self.polygons: ChangePolygons | None = None
        self.seconds = 0.0

    @contextmanager
    def __call__(self, grid: Grid, info: ChangeMapInfo) -> Iterator[ChangeSink]:
        builder = _PolygonBuilder(grid, info, self.min_area_m2, self.simplify)
        strip_rows = max(STRIP_PIXELS // max(grid.width, 1), 1)  # vectorize's strips: fewer seams to join
        last_strip = grid.height - max(strip_rows // 4, 1)  # the rows below are left to polygonize after the last tile
        held: list[tuple[int, np.ndarray]] = []  # (first row, bands) of the rows not polygonized yet
        in_flight: list[Future] = []

        def polygonize(strip: Strip) -> None:
            start = time.perf_counter()
            builder.add(strip)
            self.seconds += time.perf_counter() - start

        def polygonize_held() -> None:
            strip = Strip(held[0][0], *np.concatenate([bands for _, bands in held], axis=1))
            held.clear()
            if in_flight:
                in_flight.pop().result()
            in_flight.append(worker.submit(polygonize, strip))

        def add(rows: ChangeRows) -> None:
            held.append((int(rows.window.row_off), rows.bands))
            end = int(rows.window.row_off) + rows.bands.shape[1]
            if sum(bands.shape[1] for _, bands in held) >= strip_rows or held[0][0] < last_strip <= end:
                polygonize_held()

        with ThreadPoolExecutor(max_workers=1) as worker:
            yield add
            if held:
                polygonize_held()
            if in_flight:
                in_flight.pop().result()
        start = time.perf_counter()
        self.polygons = builder.polygons()
        self.seconds += time.perf_counter() - start


class _PolygonBuilder:
    """Strips of a change map on ``grid`` in, top to bottom; its change polygons out (the module docstring's rules)."""

    def __init__(self, grid: Grid, info: ChangeMapInfo, min_area_m2: float | None, simplify: float | None) -> None:
        self.grid, self.info, self.simplify = grid, info, simplify
        self.crs = CRS.from_user_input(grid.crs)
        if min_area_m2 is None:
            min_area_m2 = DEFAULT_MIN_PIXELS * pixel_area(grid.transform, grid.height // 2, grid.width // 2, self.crs)
        self.min_area_m2 = min_area_m2
        self.specks = _speck_pixels(min_area_m2, largest_pixel_area(grid.transform, grid.height, grid.width, self.crs))
        self.stitcher = SeamStitcher(info.schema.num_landcover)

    def add(self, strip: Strip) -> None:
        """Polygonize the next strip and join its pieces to the regions crossing the seam above."""
        changed = sieve_specks(changed_pixels(strip.probability, strip.from_class, self.info), self.specks)
        if changed.any():
            classes = self.info.schema.num_landcover
            pairs = pair_indices(strip.from_class, strip.to_class, classes)
            self.stitcher.add(polygonize_strip(changed, pairs, (classes + 1) ** 2, strip.probability, strip.row_offset))
        else:
            self.stitcher.close()

    def polygons(self) -> ChangePolygons:
        """The change polygons of every strip added, measured, filtered by area and tabled."""
        self.stitcher.close()
        regions = self.stitcher.regions()
        regions = regions.take(_scan_order(regions.geometries))
        geometries = shapely.normalize(_to_map(regions.geometries, self.grid.transform))  # vertex order fixed: exact figures do not depend on strips
        area, perimeter = measure(geometries, self.crs)
        min_area_m2, info = self.min_area_m2, self.info
        if min_area_m2 > 0:
            keep = area >= min_area_m2 * (1 - AREA_TOLERANCE)
            regions, geometries, area, perimeter = regions.take(keep), geometries[keep], area[keep], perimeter[keep]
        if self.simplify is not None and len(geometries):
            geometries = shapely.normalize(shapely.coverage_simplify(geometries, self.simplify))
            area, perimeter = measure(geometries, self.crs)
        frame = change_table(geometries, regions, area, perimeter, info, self.crs)
        categories = style_categories(regions.labels, info)
        layer = LayerInfo(_description(info, min_area_m2), _metadata(info, min_area_m2, self.simplify),
                          categorized_qml(categories))
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
