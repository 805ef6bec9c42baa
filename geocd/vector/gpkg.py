"""Write a layer (the ``changes`` layer by default) to a GeoPackage, with its default QGIS style inside the file."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

import geopandas as gpd
import pyogrio
from pyogrio.errors import DataLayerError, DataSourceError

from geocd.atomic import write_failure

LAYER = "changes"
STYLE_NAME = "geocd change types"
GPKG_VERSION = "1.2"
"""Readable without warnings by the GDAL of older QGIS releases (GDAL < 3.7 lacks 1.4)."""

# The layer_styles table exactly as QGIS creates it through OGR (QgsOgrProviderMetadata::saveStyle).
_CREATE_STYLES = """
CREATE TABLE "layer_styles" (
  "id" INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
  "f_table_catalog" TEXT(256), "f_table_schema" TEXT(256), "f_table_name" TEXT(256),
  "f_geometry_column" TEXT(256), "styleName" TEXT(30), "styleQML" TEXT, "styleSLD" TEXT,
  "useAsDefault" BOOLEAN, "description" TEXT, "owner" TEXT(30), "ui" TEXT(30),
  "update_time" DATETIME DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')))
"""
_NOW = "strftime('%Y-%m-%dT%H:%M:%fZ','now')"


def write_geopackage(
    path: Path, frame: gpd.GeoDataFrame, description: str, metadata: dict[str, str], style_qml: str | None,
    layer: str = LAYER,
) -> None:
    """Write ``frame`` as ``layer`` (polygons, spatial index) and store ``style_qml`` as its default style (None: none).

    ``description`` goes to ``gpkg_contents.description``, ``metadata`` to the layer's GDAL metadata.
    A failed write (a full disk) is an :class:`~geocd.errors.OutputError`.
    """
    try:
        pyogrio.write_dataframe(
            frame,
            path,
            layer=layer,
            driver="GPKG",
            geometry_type="Polygon",
            promote_to_multi=False,
            dataset_options={"VERSION": GPKG_VERSION},
            layer_options={"SPATIAL_INDEX": "YES", "DESCRIPTION": description, "IDENTIFIER": layer},
            layer_metadata=metadata,
        )
        if style_qml is not None:
            add_default_style(path, layer, style_qml, description="geocd: categorized by change_type")
    except (DataSourceError, DataLayerError, sqlite3.Error, OSError) as error:
        raise write_failure(path, error) from None


def add_default_style(path: Path, layer: str, qml: str, description: str) -> None:
    """Create the ``layer_styles`` table (registered as attributes, like QGIS does) holding ``qml``
    as the default style of ``layer``."""
    with contextlib.closing(sqlite3.connect(path)) as db, db:
        (geometry_column,) = db.execute(
            "SELECT column_name FROM gpkg_geometry_columns WHERE table_name = ?", (layer,)
        ).fetchone()
        db.execute(_CREATE_STYLES)
        db.execute(
            "INSERT INTO layer_styles (f_table_catalog, f_table_schema, f_table_name, f_geometry_column,"
            " styleName, styleQML, styleSLD, useAsDefault, description, owner, ui)"
            " VALUES ('', '', ?, ?, ?, ?, '', 1, ?, '', NULL)",
            (layer, geometry_column, STYLE_NAME, qml, description),
        )
        db.execute(
            "INSERT INTO gpkg_contents (table_name, data_type, identifier, description, last_change)"
            f" VALUES ('layer_styles', 'attributes', 'layer_styles', '', {_NOW})"
        )
        db.execute(
            "INSERT INTO gpkg_ogr_contents (table_name, feature_count)"
            " VALUES ('layer_styles', (SELECT count(*) FROM layer_styles))"
        )
