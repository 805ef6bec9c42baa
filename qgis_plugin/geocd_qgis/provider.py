"""The geocd Processing provider."""

from __future__ import annotations

from pathlib import Path

from qgis.core import QgsProcessingProvider
from qgis.PyQt.QtGui import QIcon

from .algorithm import DetectChangesAlgorithm
from .diagnostics_algorithm import DiagnosticsAlgorithm
from .install_algorithm import InstallGeocdAlgorithm
from .settings import add_settings, remove_settings

ICON_PATH = str(Path(__file__).with_name("icon.svg"))


class GeocdProvider(QgsProcessingProvider):
    """Provides ``geocd:detectchanges``, ``geocd:installgeocd`` and ``geocd:diagnostics``; writes GeoPackages only."""

    def load(self) -> bool:
        """Add the executable setting, then the algorithms."""
        add_settings(self.name(), self.icon())
        self.refreshAlgorithms()
        return True

    def unload(self) -> None:
        """Remove the executable setting."""
        remove_settings()

    def loadAlgorithms(self) -> None:
        """Register the algorithms."""
        self.addAlgorithm(DetectChangesAlgorithm())
        self.addAlgorithm(InstallGeocdAlgorithm())
        self.addAlgorithm(DiagnosticsAlgorithm())

    def id(self) -> str:
        return "geocd"

    def name(self) -> str:
        return "geocd"

    def longName(self) -> str:
        return "geocd semantic change detection"

    def icon(self) -> QIcon:
        return QIcon(ICON_PATH)

    def svgIconPath(self) -> str:
        return ICON_PATH

    def supportedOutputVectorLayerExtensions(self) -> list[str]:
        return ["gpkg"]

    def defaultVectorFileExtension(self, hasGeometry: bool = True) -> str:
        return "gpkg"
