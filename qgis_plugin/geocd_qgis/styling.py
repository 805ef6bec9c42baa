"""Show the style stored in the GeoPackage when Processing loads the output.

Processing opens result layers without their default style, so a post-processor applies
the ``layer_styles`` default row that geocd writes.
"""

from __future__ import annotations

from qgis.core import (
    QgsMapLayer,
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProcessingLayerPostProcessorInterface,
)


class StoredStyle(QgsProcessingLayerPostProcessorInterface):
    """Applies a loaded layer's default style (for a GeoPackage: its ``layer_styles`` default)."""

    def postProcessLayer(self, layer: QgsMapLayer, context: QgsProcessingContext, feedback: QgsProcessingFeedback) -> None:
        layer.loadDefaultStyle()


#: One shared instance: Processing keeps only a pointer, so Python must keep the object alive.
STORED_STYLE = StoredStyle()


def style_on_load(context: QgsProcessingContext, output: str) -> None:
    """If ``output`` is to be loaded into the project, load it with its stored style."""
    if context.willLoadLayerOnCompletion(output):
        context.layerToLoadOnCompletionDetails(output).setPostProcessor(STORED_STYLE)
