"""The attribute table of the ``changes`` layer and the style categories it needs."""

from __future__ import annotations

from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import pandas as pd
from pyproj import CRS

from geocd.changemap import PROBABILITY_SCALE, ChangeMapInfo
from geocd.vector.pairs import CHANGE_COLOR, UNTRAINED_TYPE, PairNames, decode_pairs, name_pair
from geocd.vector.stitch import Regions

COLUMNS = {
    "change_id": "int32",
    "from_class": "Int32",
    "from_name": "object",
    "to_class": "Int32",
    "to_name": "object",
    "change_type": "object",
    "type_share": "float64",
    "from_share": "float64",
    "to_share": "float64",
    "area_m2": "float64",
    "perimeter_m": "float64",
    "mean_probability": "float64",
    "max_probability": "float64",
}
"""Field names and pandas dtypes, in layer order (``Int32`` and ``object`` columns may hold nulls).

A polygon is one change region; its classes are the region's majority (from, to) pair, and the
shares (0..1) say how many of its pixels have that pair, that from class and that to class."""


def pair_names(labels: np.ndarray, info: ChangeMapInfo) -> dict[int, PairNames]:
    """The names of every distinct pair label present."""
    distinct = np.unique(labels)
    from_class, to_class = decode_pairs(distinct)
    return {int(v): name_pair(int(f), int(t), info) for v, f, t in zip(distinct, from_class, to_class)}


def change_table(
    geometries: np.ndarray, regions: Regions, area_m2: np.ndarray, perimeter_m: np.ndarray, info: ChangeMapInfo, crs: CRS,
) -> gpd.GeoDataFrame:
    """One row per region (``geometries`` are their polygons in map coordinates), numbered 1..N in the given order."""
    names = pair_names(regions.labels, info)
    rows = [names[int(v)] for v in regions.labels]
    pixels = np.maximum(regions.pixels, 1)
    data = {
        "change_id": np.arange(1, len(regions.labels) + 1),
        "from_class": [r.from_class for r in rows],
        "from_name": [r.from_name for r in rows],
        "to_class": [r.to_class for r in rows],
        "to_name": [r.to_name for r in rows],
        "change_type": [r.change_type for r in rows],
        "type_share": regions.type_pixels / pixels,
        "from_share": regions.from_pixels / pixels,
        "to_share": regions.to_pixels / pixels,
        "area_m2": area_m2,
        "perimeter_m": perimeter_m,
        "mean_probability": regions.probability_sum / pixels / PROBABILITY_SCALE,
        "max_probability": regions.probability_max / PROBABILITY_SCALE,
    }
    frame = pd.DataFrame({name: pd.Series(data[name], dtype=dtype) for name, dtype in COLUMNS.items()})
    return gpd.GeoDataFrame(frame, geometry=gpd.GeoSeries(geometries, crs=crs), crs=crs)


Category = tuple[str, tuple[int, int, int], tuple[int, int, int]]
"""A style category: ``(change_type, fill colour, outline colour)``."""


def style_categories(labels: np.ndarray, info: ChangeMapInfo) -> list[Category]:
    """``(change_type, fill, outline)`` of every change type present, in (from, to) order: filled with
    the to class's colour, outlined with the from class's, so every type looks different.

    Without trained land cover there is exactly one category, "change", even when empty.
    """
    if not info.landcover_trained:
        return [(UNTRAINED_TYPE, CHANGE_COLOR, CHANGE_COLOR)]
    categories = {n.change_type: (n.color, n.outline) for _, n in sorted(pair_names(labels, info).items())}
    return [(name, fill, outline) for name, (fill, outline) in categories.items()]


@dataclass(frozen=True)
class ChangeTypeSummary:
    """Polygons of one change type: how many, their total area (m²) and the type's display colours
    (fill: the to class's, outline: the from class's)."""

    change_type: str
    color: tuple[int, int, int]
    outline: tuple[int, int, int]
    polygons: int
    area_m2: float


def summarize_change_types(frame: gpd.GeoDataFrame, categories: list[Category]) -> tuple[ChangeTypeSummary, ...]:
    """Count and area of the polygons of each style category, from the table that is written."""
    groups = frame.groupby("change_type")["area_m2"]
    counts, areas = groups.count(), groups.sum()
    return tuple(
        ChangeTypeSummary(name, fill, outline, int(counts.get(name, 0)), float(areas.get(name, 0.0)))
        for name, fill, outline in categories
    )
