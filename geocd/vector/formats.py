"""The vector formats of the ``changes`` layer, chosen by the output's extension (any case; the
file is written with it in lower case, as GDAL writes shapefiles anyway).

* ``.gpkg``: GeoPackage with spatial index, layer metadata and its default QGIS style.
* ``.fgb``: FlatGeobuf with spatial index.
* ``.geojson``: RFC 7946 GeoJSON, reprojected to WGS84 longitude/latitude (what web tools expect).
* ``.parquet``: GeoParquet (geopandas + pyarrow).
* ``.shp``: ESRI Shapefile (UTF-8 ``.cpg``, ``.prj``), fields renamed by :data:`SHAPEFILE_FIELDS`
  to fit its 10-character limit.

All carry the same fields and values, in the raster's CRS (GeoJSON: WGS84). Every file of an
output, sidecars included, is written under a temporary name and moved into place on success.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import pyogrio

from geocd.atomic import atomic_output
from geocd.errors import OutputError
from geocd.vector.gpkg import LAYER, write_geopackage

SHAPEFILE_FIELDS = {
    "change_type": "chg_type",
    "perimeter_m": "perim_m",
    "mean_probability": "mean_prob",
    "max_probability": "max_prob",
}
"""Shapefile field names of the fields longer than 10 characters; the others keep their names."""


@dataclass(frozen=True)
class LayerInfo:
    """What goes with the features: a one-line description, GDAL metadata, a QGIS style (QML; None: none)
    and the layer's name."""

    description: str
    metadata: dict[str, str]
    style_qml: str | None
    layer: str = LAYER


def _write_gpkg(path: Path, frame: gpd.GeoDataFrame, info: LayerInfo) -> None:
    write_geopackage(path, frame, info.description, info.metadata, info.style_qml, info.layer)


def _write_fgb(path: Path, frame: gpd.GeoDataFrame, info: LayerInfo) -> None:
    pyogrio.write_dataframe(frame, path, layer=info.layer, driver="FlatGeobuf", geometry_type="Polygon",
                            promote_to_multi=False, layer_options={"SPATIAL_INDEX": "YES"})


def _write_geojson(path: Path, frame: gpd.GeoDataFrame, info: LayerInfo) -> None:
    pyogrio.write_dataframe(frame, path, layer=info.layer, driver="GeoJSON", geometry_type="Polygon",
                            promote_to_multi=False, layer_options={"RFC7946": "YES", "DESCRIPTION": info.description})


def _write_parquet(path: Path, frame: gpd.GeoDataFrame, info: LayerInfo) -> None:
    frame.to_parquet(path, index=False)


def _write_shp(path: Path, frame: gpd.GeoDataFrame, info: LayerInfo) -> None:
    pyogrio.write_dataframe(frame.rename(columns=SHAPEFILE_FIELDS), path, driver="ESRI Shapefile",
                            geometry_type="Polygon", promote_to_multi=False, encoding="UTF-8")


@dataclass(frozen=True)
class _Format:
    write: Callable[[Path, gpd.GeoDataFrame, LayerInfo], None]
    sidecars: tuple[str, ...] = ()


_FORMATS = {
    ".gpkg": _Format(_write_gpkg),
    ".fgb": _Format(_write_fgb),
    ".geojson": _Format(_write_geojson),
    ".parquet": _Format(_write_parquet),
    ".shp": _Format(_write_shp, sidecars=(".shx", ".dbf", ".prj", ".cpg")),
}


def check_vector_path(path: str | os.PathLike[str]) -> Path:
    """``path`` with its extension in lower case; :class:`OutputError` unless it names a vector format."""
    _format(path)
    return Path(path).with_suffix(Path(path).suffix.lower())


def write_vectors(
    path: str | os.PathLike[str], frame: gpd.GeoDataFrame, info: LayerInfo, overwrite: bool = False
) -> None:
    """Write ``frame`` to :func:`check_vector_path` of ``path``, atomically (sidecars included)."""
    spec = _format(path)
    with atomic_output(check_vector_path(path), overwrite, spec.sidecars) as tmp:
        spec.write(tmp, frame, info)


def _format(path: str | os.PathLike[str]) -> _Format:
    suffix = Path(path).suffix
    spec = _FORMATS.get(suffix.lower())
    if spec is None:
        known = ", ".join(list(_FORMATS)[:-1]) + f" or {list(_FORMATS)[-1]}"
        problem = f"unknown vector format '{suffix}'" if suffix else "has no extension to tell the vector format"
        raise OutputError(path, f"{problem} (use {known})")
    return spec
