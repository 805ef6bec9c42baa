"""What every geocd Processing algorithm says about itself, from four class attributes."""

from __future__ import annotations

from qgis.core import QgsProcessingAlgorithm


class GeocdAlgorithm(QgsProcessingAlgorithm):
    """A Processing algorithm named by ``NAME``, shown as ``DISPLAY_NAME``, explained by ``HELP``, found by ``TAGS``."""

    NAME = ""
    DISPLAY_NAME = ""
    HELP = ""
    TAGS: tuple[str, ...] = ()

    def name(self) -> str:
        return self.NAME

    def displayName(self) -> str:
        return self.DISPLAY_NAME

    def shortHelpString(self) -> str:
        return self.HELP

    def tags(self) -> list[str]:
        return [*self.TAGS, "geocd"]

    def createInstance(self) -> "GeocdAlgorithm":
        return type(self)()
