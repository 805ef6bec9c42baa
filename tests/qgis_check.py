"""Open a geocd GeoPackage in real QGIS and print what QGIS sees, as JSON.

Run with a Python that imports ``qgis`` (Debian's /usr/bin/python3 with python3-qgis):
``QT_QPA_PLATFORM=offscreen /usr/bin/python3 tests/qgis_check.py changes.gpkg``.
"""

import json
import sys

from qgis.core import QgsApplication, QgsVectorLayer


def describe(path: str) -> dict:
    """Validity, feature count, CRS, renderer and categories of layer ``changes`` as QGIS loads it."""
    layer = QgsVectorLayer(path + "|layername=changes", "changes", "ogr")
    renderer = layer.renderer() if layer.isValid() else None
    return {
        "isValid": layer.isValid(),
        "featureCount": layer.featureCount(),
        "crs": layer.crs().authid(),
        "renderer": renderer.type() if renderer else None,
        "attribute": renderer.classAttribute() if renderer and renderer.type() == "categorizedSymbol" else None,
        "categories": [
            {
                "value": category.value(),
                "fill": list(category.symbol().symbolLayer(0).color().getRgb()),
                "outline": list(category.symbol().symbolLayer(0).strokeColor().getRgb()),
            }
            for category in (renderer.categories() if renderer and renderer.type() == "categorizedSymbol" else [])
        ],
        "fields": [field.name() for field in layer.fields()],
    }


if __name__ == "__main__":
    app = QgsApplication([], False)
    app.initQgis()
    print(json.dumps(describe(sys.argv[1])))
    app.exitQgis()
