"""Pick the project's topmost raster layers to preselect as the 'after' and 'before' images."""

from __future__ import annotations

from qgis.core import QgsLayerTree, QgsRasterLayer


def topmost_rasters(root: QgsLayerTree, count: int = 2) -> list[QgsRasterLayer]:
    """The first ``count`` valid file-based raster layers in drawing order, topmost first."""
    rasters = [layer for layer in root.layerOrder()
               if isinstance(layer, QgsRasterLayer) and layer.isValid() and layer.providerType() == "gdal"]
    return rasters[:count]


def dialog_parameters(root: QgsLayerTree) -> dict[str, str]:
    """Dialog presets: the topmost raster as 'after', the one below it as 'before'."""
    names = ("AFTER", "BEFORE")
    return {name: layer.id() for name, layer in zip(names, topmost_rasters(root))}
