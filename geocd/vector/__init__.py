"""Change raster to styled GeoPackage polygons.

:func:`vectorize` reads a change raster (:mod:`geocd.changemap`) in horizontal strips,
polygonizes regions of equal (from, to) class pair, joins the pieces cut at strip seams
and writes layer ``changes`` with a default QGIS style. Memory follows the strip size and
the number of polygons, not the raster size.
"""

from geocd.vector.pipeline import VectorizeResult, vectorize

__all__ = ["VectorizeResult", "vectorize"]
