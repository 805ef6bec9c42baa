"""Changed area by zone and a from→to matrix of areas, from the change polygons and a zones layer.

* Zones are the polygons of a vector file, identified by a field's values or, without one, by
  their feature ids (FID). Features sharing an id form one zone. They are reprojected onto the
  change polygons' CRS (the 'before' grid's): their vertices move, their edges stay straight.
* Change polygons are **cut at zone boundaries**: each piece carries the ``zone`` it lies in
  (null outside every zone) and keeps its region's ``change_id``, classes and probabilities;
  ``area_m2`` and ``perimeter_m`` are re-measured per piece, the same geodesic way as every
  polygon (:func:`geocd.vector.measure.measure`). So the pieces of one zone add up to the
  changed area inside it, and all pieces to the scene's. Where zones overlap, the shared part
  is counted (and written) once for each of them.
* The table has one row per zone and (from, to) pair of the scene, zero where the zone has none
  of it (a zone outside the images' overlap has zero everywhere); rows without a zone are the
  whole scene. A polygon's pair is its region's majority pair, as in the polygon table.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import shapely
from pyogrio.errors import DataLayerError, DataSourceError

from geocd.errors import InputError
from geocd.vector.measure import measure
from geocd.vector.pipeline import ChangePolygons

ZONE = "zone"
"""Name of the zone id, as a polygon attribute and a table column."""
PAIR = ["from_class", "from_name", "to_class", "to_name", "change_type"]
"""The polygon fields that name a (from, to) pair."""
SQUARE_METRES_PER_HECTARE = 1e4
POLYGON = 3
"""Shapely's geometry type id of a polygon."""


@dataclass(frozen=True)
class Zones:
    """Zones read by :func:`read_zones`: ``frame`` has one row per feature, its ``zone`` id and its
    polygon (in the file's CRS); ``field`` is the id field (None: the feature ids)."""

    frame: gpd.GeoDataFrame
    path: Path
    field: str | None

    @property
    def ids(self) -> list[Any]:
        """The distinct zone ids, in file order."""
        return list(pd.unique(self.frame[ZONE]))


def read_zones(path: str | os.PathLike[str], field: str | None = None) -> Zones:
    """The zones of vector file ``path`` (its first layer), identified by ``field`` (None: feature ids).

    Raises :class:`InputError` for a missing or unreadable file, no features, geometries that
    are not polygons, no CRS, an unknown ``field`` or a zone without an id.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(path, "zones file does not exist")
    try:
        frame = pyogrio.read_dataframe(path, fid_as_index=True)
    except (DataSourceError, DataLayerError):
        raise InputError(path, "is not a vector file GDAL can read") from None
    if not isinstance(frame, gpd.GeoDataFrame) or len(frame) == 0:
        raise InputError(path, "has no zones (no features with a geometry)")
    kinds = set(frame.geom_type.dropna()) - {"Polygon", "MultiPolygon"}
    if kinds:
        raise InputError(path, f"has {', '.join(sorted(kinds))} geometries: zones must be polygons")
    if frame.crs is None:
        raise InputError(path, "has no coordinate reference system: zones must say where they are")
    if field is None:
        ids = frame.index.to_series()
    elif field not in frame.columns or field == frame.geometry.name:
        fields = ", ".join(str(c) for c in frame.columns if c != frame.geometry.name) or "none"
        raise InputError(path, f"has no field {field!r} (its fields: {fields})")
    else:
        ids = frame[field]
        if ids.isna().any():
            raise InputError(path, f"field {field!r} is empty for feature {ids.index[ids.isna()][0]}: every zone needs an id")
    ids = ids.astype("Int64") if pd.api.types.is_integer_dtype(ids.dtype) else ids
    polygons = shapely.make_valid(frame.geometry.to_numpy(), method="structure", keep_collapsed=False)
    return Zones(gpd.GeoDataFrame({ZONE: ids.array}, geometry=polygons, crs=frame.crs), path, field)


@dataclass(frozen=True)
class ZoneStatistics:
    """What :func:`zone_statistics` found: the change polygons cut at zone boundaries (``frame``,
    with ``zone``) and ``table``, the area (m²) of each zone and pair of the scene (see the module docstring)."""

    frame: gpd.GeoDataFrame
    table: pd.DataFrame
    zones: Zones


def zone_statistics(polygons: ChangePolygons, zones: Zones) -> ZoneStatistics:
    """Cut ``polygons`` at the boundaries of ``zones`` and sum their areas by zone and (from, to) pair."""
    frame = polygons.frame
    areas = zones.frame[~zones.frame.geometry.is_empty & zones.frame.geometry.notna()].to_crs(frame.crs)
    pieces = _cut(frame, areas, zones.ids)
    pair = pd.Series(frame.groupby(PAIR, dropna=False).ngroup().to_numpy(), index=frame["change_id"].to_numpy())
    pairs = frame[PAIR].set_index(pair.to_numpy()).groupby(level=0).first()  # by (from, to, type), nulls last
    if pairs.empty:  # no change: the layer's change types (plain "change" without land cover), else none
        names = [t.change_type for t in polygons.change_types] or [None]
        pairs = pd.DataFrame({"change_type": names}).reindex(columns=PAIR).astype(frame[PAIR].dtypes.to_dict())
    inside = pieces[pieces[ZONE].notna()]
    sums = inside.groupby([inside[ZONE], inside["change_id"].map(pair)])["area_m2"].sum()
    cells = pd.MultiIndex.from_product([zones.ids, pairs.index], names=[ZONE, "pair"])
    by_zone = sums.reindex(cells, fill_value=0.0).reset_index()
    scene = frame.groupby(pair.to_numpy())["area_m2"].sum().reindex(pairs.index, fill_value=0.0).rename_axis("pair").reset_index()
    table = pd.concat([by_zone, scene], ignore_index=True)
    table = pd.concat([table[[ZONE]].astype({ZONE: zones.frame[ZONE].dtype}),
                       pairs.loc[table["pair"]].reset_index(drop=True), table[["area_m2"]]], axis=1)
    table["area_ha"] = table["area_m2"] / SQUARE_METRES_PER_HECTARE
    return ZoneStatistics(pieces, table, zones)


def _cut(frame: gpd.GeoDataFrame, zones: gpd.GeoDataFrame, ids: list[Any]) -> gpd.GeoDataFrame:
    """``frame``'s polygons cut at ``zones``' boundaries, one piece per region, zone and part, re-measured;
    in ``change_id`` order, then zone order (pieces outside every zone last)."""
    polygons, areas = frame.geometry.to_numpy(), zones.geometry.to_numpy()
    row, zone = shapely.STRtree(areas).query(polygons, predicate="intersects")
    inside, part_of = shapely.get_parts(shapely.intersection(polygons[row], areas[zone]), return_index=True)
    kept = _polygons(inside)
    inside, row, zone = inside[kept], row[part_of][kept], zone[part_of][kept]
    cut, owner = np.unique(row, return_inverse=True)
    covered = shapely.make_valid(shapely.multipolygons(inside, indices=owner), method="structure", keep_collapsed=False)
    outside = polygons.copy()
    outside[cut] = shapely.difference(polygons[cut], covered)
    rest, rest_of = shapely.get_parts(outside, return_index=True)
    kept = _polygons(rest)
    rows = np.concatenate([row, rest_of[kept]])
    zone_of = np.concatenate([zone, np.full(kept.sum(), len(areas))])
    rank = np.append(zones[ZONE].map({z: i for i, z in enumerate(ids)}).to_numpy(), len(ids))[zone_of]
    order = np.lexsort((rank, rows))
    geometries = shapely.normalize(np.concatenate([inside, rest[kept]])[order])
    area, perimeter = measure(geometries, frame.crs)
    pieces = pd.DataFrame(frame.drop(columns=frame.geometry.name).iloc[rows[order]]).reset_index(drop=True)
    labels = pd.concat([zones[ZONE], pd.Series([pd.NA], dtype=zones[ZONE].dtype)], ignore_index=True)
    pieces.insert(pieces.columns.get_loc("change_id") + 1, ZONE, labels.iloc[zone_of[order]].to_numpy())
    pieces = pieces.assign(area_m2=area, perimeter_m=perimeter).astype({ZONE: zones[ZONE].dtype})
    return gpd.GeoDataFrame(pieces, geometry=gpd.GeoSeries(geometries, crs=frame.crs), crs=frame.crs)


def _polygons(parts: np.ndarray) -> np.ndarray:
    """Which ``parts`` are non-empty polygons (not the lines and points where edges only touch)."""
    return (shapely.get_type_id(parts) == POLYGON) & ~shapely.is_empty(parts)


def write_zone_table(path: Path, statistics: ZoneStatistics) -> None:
    """Write the zone table as UTF-8 CSV (empty cells for nulls; a row without a zone is the whole scene)."""
    statistics.table.to_csv(path, index=False, encoding="utf-8")


def zones_report(statistics: ZoneStatistics) -> dict[str, Any]:
    """The ``zones`` section of the run report: the source, the changed area inside the zones, the
    scene-wide from→to matrix, and per zone its area per change type and its matrix (m² and ha)."""
    table = statistics.table
    zoned = table[table[ZONE].notna()]
    return {
        "source": os.fspath(statistics.zones.path),
        "field": statistics.zones.field,
        **_areas(zoned["area_m2"].sum()),
        "matrix": _matrix(table[table[ZONE].isna()]),
        "by_zone": [
            {ZONE: _plain(zone), **_areas(rows["area_m2"].sum()),
             "by_type": [{"change_type": name, **_areas(area)}
                         for name, area in rows.groupby("change_type", sort=False)["area_m2"].sum().items()],
             "matrix": _matrix(rows)}
            for zone, rows in zoned.groupby(ZONE, sort=False)
        ],
    }


def _matrix(rows: pd.DataFrame) -> list[dict[str, Any]]:
    """The from→to cells of ``rows`` (pairs with a change type)."""
    return [{"from_class": _plain(r.from_class), "from_name": _plain(r.from_name), "to_class": _plain(r.to_class),
             "to_name": _plain(r.to_name), **_areas(r.area_m2)}
            for r in rows[rows["change_type"].notna()].itertuples()]


def _areas(area_m2: float) -> dict[str, float]:
    return {"area_m2": float(area_m2), "area_ha": float(area_m2) / SQUARE_METRES_PER_HECTARE}


def _plain(value: Any) -> Any:
    """A table value as JSON knows it (None for nulls, Python numbers for numpy's)."""
    if value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value)):
        return None
    return value.item() if isinstance(value, np.generic) else value
