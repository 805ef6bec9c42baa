"""The plugin object: registers the Processing provider and adds the toolbar button."""

from __future__ import annotations

from typing import Any, Optional

from qgis.core import QgsApplication, QgsProject
from qgis.PyQt.QtGui import QIcon

from .compat import QAction
from .layers import dialog_parameters
from .provider import ICON_PATH, GeocdProvider
from .runner import geocd_available
from .settings import configured_executable

ALGORITHM_ID = "geocd:detectchanges"
INSTALL_ID = "geocd:installgeocd"
MENU = "&geocd"


class GeocdPlugin:
    """Registers ``geocd:detectchanges``; in the desktop app also a toolbar button and a Raster menu entry."""

    def __init__(self, iface: Any) -> None:
        self.iface = iface
        self.provider: Optional[GeocdProvider] = None
        self.action: Optional[QAction] = None

    def initProcessing(self) -> None:
        """Register the provider (called alone by qgis_process, where there is no iface)."""
        if self.provider is None:
            self.provider = GeocdProvider()
            QgsApplication.processingRegistry().addProvider(self.provider)

    def initGui(self) -> None:
        """Register the provider and add the button that opens the algorithm's dialog."""
        self.initProcessing()
        self.action = QAction(QIcon(ICON_PATH), "Detect changes (geocd)", self.iface.mainWindow())
        self.action.setToolTip("Detect changes between the two topmost raster layers with geocd")
        self.action.triggered.connect(self.open_dialog)
        self.iface.addToolBarIcon(self.action)
        self.iface.addPluginToRasterMenu(MENU, self.action)

    def unload(self) -> None:
        """Remove the button, the menu entry and the provider."""
        if self.action is not None:
            self.iface.removeToolBarIcon(self.action)
            self.iface.removePluginRasterMenu(MENU, self.action)
            self.action.deleteLater()
            self.action = None
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None

    def open_dialog(self) -> None:
        """Open "Detect changes" with the two topmost raster layers preselected ("Install geocd" while there is no geocd)."""
        import processing

        if not geocd_available(configured_executable()):
            processing.execAlgorithmDialog(INSTALL_ID, {})
            return
        processing.execAlgorithmDialog(ALGORITHM_ID, dialog_parameters(QgsProject.instance().layerTreeRoot()))
