"""The attribute table of the ``changes`` layer and the style categories it needs."""

from __future__ import annotations

from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import pandas as pd
from pyproj import CRS

from geocd.changemap import PROBABILITY_SCALE, ChangeMapInfo
from geocd.vector.pairs import CHANGE_COLOR, UNTRAINED_TYPE, PairNames, decode_pairs, name_pair

COLUMNS = {
    "change_id": "int32",
    "from_class": "Int32",
    "from_name": "object",
    "to_class": "Int32",
    "to_name": "object",
    "change_type": "object",
    "area_m2": "float64",
    "perimeter_m": "float64",
    "mean_probability": "float64",
    "max_probability": "float64",
}
"""Field names and pandas dtypes, in layer order (``Int32`` and ``object`` columns may hold nulls)."""


def pair_names(labels: np.ndarray, info: ChangeMapInfo) -> dict[int, PairNames]:
    """The names of every distinct pair label present."""
    distinct = np.unique(labels)
    from_class, to_class = decode_pairs(distinct)
    return {int(v): name_pair(int(f), int(t), info) for v, f, t in zip(distinct, from_class, to_class)}


def change_table(
    geometries: np.ndarray,
    labels: np.ndarray,
    pixels: np.ndarray,
    probability_sum: np.ndarray,
    probability_max: np.ndarray,
    area_m2: np.ndarray,
    perimeter_m: np.ndarray,
    info: ChangeMapInfo,
    crs: CRS,
) -> gpd.GeoDataFrame:
    """One row per polygon, numbered 1..N in the given order."""
    names = pair_names(labels, info)
    rows = [names[int(v)] for v in labels]
    data = {
        "change_id": np.arange(1, len(labels) + 1),
        "from_class": [r.from_class for r in rows],
        "from_name": [r.from_name for r in rows],
        "to_class": [r.to_class for r in rows],
        "to_name": [r.to_name for r in rows],
        "change_type": [r.change_type for r in rows],
        "area_m2": area_m2,
        "perimeter_m": perimeter_m,
        "mean_probability": probability_sum / np.maximum(pixels, 1) / PROBABILITY_SCALE,
        "max_probability": probability_max / PROBABILITY_SCALE,
    }
    frame = pd.DataFrame({name: pd.Series(data[name], dtype=dtype) for name, dtype in COLUMNS.items()})
    return gpd.GeoDataFrame(frame, geometry=gpd.GeoSeries(geometries, crs=crs), crs=crs)


def style_categories(labels: np.ndarray, info: ChangeMapInfo) -> list[tuple[str, tuple[int, int, int]]]:
    """``(change_type, colour)`` of every change type present, in (from, to) order.

    Without trained land cover there is exactly one category, "change", even when empty.
    """
    if not info.landcover_trained:
        return [(UNTRAINED_TYPE, CHANGE_COLOR)]
    categories = {n.change_type: n.color for _, n in sorted(pair_names(labels, info).items())}
    return list(categories.items())


@dataclass(frozen=True)
class ChangeTypeSummary:
    """Polygons of one change type: how many, their total area (m²) and the type's display colour."""

    change_type: str
    color: tuple[int, int, int]
    polygons: int
    area_m2: float


def summarize_change_types(
    frame: gpd.GeoDataFrame, categories: list[tuple[str, tuple[int, int, int]]]
) -> tuple[ChangeTypeSummary, ...]:
    """Count and area of the polygons of each style category, from the table that is written."""
    groups = frame.groupby("change_type")["area_m2"]
    counts, areas = groups.count(), groups.sum()
    return tuple(
        ChangeTypeSummary(name, color, int(counts.get(name, 0)), float(areas.get(name, 0.0))) for name, color in categories
    )
