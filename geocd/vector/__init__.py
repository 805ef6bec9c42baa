"""Change raster to styled change polygons (GeoPackage and other vector formats).

:func:`change_polygons` reads a change raster (:mod:`geocd.changemap`) in horizontal strips,
polygonizes regions of equal (from, to) class pair, joins the pieces cut at strip seams
into layer ``changes``; :func:`vectorize` also writes it (with a default QGIS style in a GeoPackage);
:class:`PolygonSink` makes the same polygons from a prediction's rows, without a raster file. Memory
follows the strip size and the number of polygons, not the raster size.
"""

from geocd.vector.pipeline import ChangePolygons, PolygonSink, VectorizeResult, change_polygons, vectorize

__all__ = ["ChangePolygons", "PolygonSink", "VectorizeResult", "change_polygons", "vectorize"]
