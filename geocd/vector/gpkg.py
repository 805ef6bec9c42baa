"""Write the ``changes`` layer to a GeoPackage, with its default QGIS style inside the file."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path
from xml.etree import ElementTree

import geopandas as gpd
import pyogrio

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


def write_changes(
    path: Path, frame: gpd.GeoDataFrame, description: str, metadata: dict[str, str], style_qml: str
) -> None:
    """Write ``frame`` as layer ``changes`` (polygons, spatial index) and store ``style_qml`` as its default style.

    ``description`` goes to ``gpkg_contents.description``, ``metadata`` to the layer's GDAL metadata.
    """
    pyogrio.write_dataframe(
        frame,
        path,
        layer=LAYER,
        driver="GPKG",
        geometry_type="Polygon",
        promote_to_multi=False,
        dataset_options={"VERSION": GPKG_VERSION},
        layer_options={"SPATIAL_INDEX": "YES", "DESCRIPTION": description, "IDENTIFIER": LAYER},
        layer_metadata=metadata,
    )
    add_default_style(path, LAYER, style_qml, description="geocd: categorized by change_type")


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


def add_layer_metadata(path: Path, layer: str, items: dict[str, str]) -> None:
    """Add ``items`` to the GDAL metadata (default domain) of ``layer``, keeping the items already there."""
    with contextlib.closing(sqlite3.connect(path)) as db, db:
        md_id, xml = db.execute(
            "SELECT m.id, m.metadata FROM gpkg_metadata m JOIN gpkg_metadata_reference r ON r.md_file_id = m.id"
            " WHERE r.reference_scope = 'table' AND r.table_name = ? AND m.md_standard_uri = 'http://gdal.org'",
            (layer,),
        ).fetchone()
        root = ElementTree.fromstring(xml)
        default = next(m for m in root.iter("Metadata") if "domain" not in m.attrib)
        for key, value in items.items():
            ElementTree.SubElement(default, "MDI", key=key).text = value
        db.execute("UPDATE gpkg_metadata SET metadata = ? WHERE id = ?", (ElementTree.tostring(root, encoding="unicode"), md_id))
