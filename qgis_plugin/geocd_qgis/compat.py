"""Names that moved between QGIS 3.22 (Qt5) and QGIS 4 (Qt6), taken from where the running QGIS has them.

The plugin uses these instead of Qt5-only spellings (tests/test_qgis_qt6.py checks the sources).
"""

from __future__ import annotations

from qgis.core import Qgis, QgsProcessing, QgsProcessingParameterNumber

try:
    from qgis.PyQt.QtGui import QAction  # Qt6: QAction lives in QtGui
except ImportError:
    from qgis.PyQt.QtWidgets import QAction  # Qt5

#: A floating-point number parameter (QGIS ≥ 3.36 and 4: Qgis.ProcessingNumberParameterType).
NUMBER_DOUBLE = getattr(Qgis, "ProcessingNumberParameterType", QgsProcessingParameterNumber.Type).Double

#: A polygon layer parameter (QGIS ≥ 3.36 and 4: Qgis.ProcessingSourceType.VectorPolygon).
VECTOR_POLYGON = (Qgis.ProcessingSourceType.VectorPolygon if hasattr(Qgis, "ProcessingSourceType")
                  else QgsProcessing.SourceType.TypeVectorPolygon)

__all__ = ["NUMBER_DOUBLE", "QAction", "VECTOR_POLYGON"]
