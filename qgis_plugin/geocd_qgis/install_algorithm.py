"""Processing algorithm "Install geocd": geocd's own environment, made from inside QGIS (:mod:`.installer`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from qgis.core import (
    QgsApplication,
    QgsMessageLog,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingOutputFile,
    QgsProcessingParameterFile,
    QgsProcessingParameterFolderDestination,
    QgsProcessingParameterString,
)

from .base import GeocdAlgorithm
from .installer import InstallError, install_geocd
from .settings import set_configured_executable

LOG_TAG = "geocd"
INSTALL_HELP = (
    "Installs the geocd command line that 'Detect changes' runs, in its own Python environment (never into QGIS's "
    "Python), then sets it under Settings > Options > Processing > Providers > geocd.\n\n"
    "Wheelhouse: a zip of geocd's wheels and its dependencies' (or any wheel inside a folder of them): the "
    "installation then needs no network. Package index URL: an index serving geocd (pip's --index-url); with a "
    "wheelhouse too, both are used. On a machine with an NVIDIA GPU PyTorch runs on CUDA; elsewhere geocd gets "
    "its fast CPU runtime (OpenVINO) and, from an index on Linux, the CPU-only PyTorch.\n\n"
    "Uses uv when it is on PATH, else a Python 3.11+ found on this machine (venv and pip). The log shows every "
    "line of the installation, also in the message log (tab geocd). Running it again updates the environment."
)


def default_environment() -> str:
    """geocd's environment folder in the QGIS user profile."""
    return str(Path(QgsApplication.qgisSettingsDirPath()) / "geocd-env")


class InstallGeocdAlgorithm(GeocdAlgorithm):
    """``geocd:installgeocd``: wheelhouse and/or index in, the installed geocd executable out (and set)."""

    NAME = "installgeocd"
    DISPLAY_NAME = "Install geocd"
    HELP = INSTALL_HELP
    TAGS = ("install", "setup", "environment", "wheel", "pip", "uv")
    WHEELHOUSE = "WHEELHOUSE"
    INDEX_URL = "INDEX_URL"
    ENVIRONMENT = "ENVIRONMENT"
    EXECUTABLE = "EXECUTABLE"

    def initAlgorithm(self, config: Any = None) -> None:
        """Declare the sources, the environment folder and the executable output."""
        self.addParameter(QgsProcessingParameterFile(
            self.WHEELHOUSE, "Wheelhouse: zip of wheels, or a wheel in a folder of them (offline)", optional=True,
            fileFilter="Wheelhouse (*.zip *.whl);;All files (*.*)"))
        self.addParameter(QgsProcessingParameterString(self.INDEX_URL, "Package index URL serving geocd", optional=True))
        self.addParameter(QgsProcessingParameterFolderDestination(
            self.ENVIRONMENT, "Environment folder", defaultValue=default_environment()))
        self.addOutput(QgsProcessingOutputFile(self.EXECUTABLE, "geocd executable"))

    def processAlgorithm(self, parameters: dict[str, Any], context: QgsProcessingContext,
                         feedback: QgsProcessingFeedback) -> dict[str, Any]:
        """Install, log each line, set the executable the algorithms run."""
        def log(line: str) -> None:
            feedback.pushConsoleInfo(line)
            QgsMessageLog.logMessage(line, LOG_TAG)

        def step(done: int, steps: int) -> None:
            feedback.setProgress(100.0 * done / steps)

        environment = self.parameterAsFileOutput(parameters, self.ENVIRONMENT, context)
        try:
            installed = install_geocd(
                environment,
                self.parameterAsFile(parameters, self.WHEELHOUSE, context) or None,
                self.parameterAsString(parameters, self.INDEX_URL, context).strip() or None,
                log=log, canceled=feedback.isCanceled, step=step)
        except InstallError as error:
            QgsMessageLog.logMessage(str(error), LOG_TAG)
            raise QgsProcessingException(str(error)) from None
        set_configured_executable(str(installed.executable))
        feedback.pushInfo(f"{installed.version} installed; 'Detect changes' now runs {installed.executable}")
        return {self.ENVIRONMENT: environment, self.EXECUTABLE: str(installed.executable)}
