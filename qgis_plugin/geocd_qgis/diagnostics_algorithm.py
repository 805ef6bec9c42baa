"""Processing algorithm "Diagnostics": which geocd the plugin runs, and what ``geocd info`` says about it."""

from __future__ import annotations

import subprocess
from typing import Any

from qgis.core import (
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingOutputString,
)

from .base import GeocdAlgorithm
from .environment import clean_environment
from .runner import find_executable
from .settings import configured_executable

DIAGNOSTICS_HELP = ("Shows which geocd executable 'Detect changes' runs and, from that geocd (geocd info): its version and folder, "
        "its Python, PyTorch and CPU runtimes, the runtime and device (CPU or GPU) it will predict with, and the "
        "default model's card. Nothing is changed.")
INFO_TIMEOUT_S = 300


def diagnostics_text(configured: str) -> str:
    """The executable (``configured``, else geocd on PATH) and what its ``geocd info`` prints.

    Raises :class:`QgsProcessingException` when there is no geocd or it fails.
    """
    executable = find_executable(configured)
    origin = "set in the Processing options" if configured else "found on PATH"
    try:
        done = subprocess.run([executable, "info"], stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              encoding="utf-8", errors="replace", env=clean_environment(), timeout=INFO_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise QgsProcessingException(f"cannot run geocd executable '{executable}': {error}") from None
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or [f"exit code {done.returncode}"])[-1]
        hint = "" if "error: no such command" not in last.lower() else " (an older geocd: run 'Install geocd' again)"
        raise QgsProcessingException(f"{executable} info failed: {last}{hint}")
    return f"executable: {executable} ({origin})\n{done.stdout.rstrip()}"


class DiagnosticsAlgorithm(GeocdAlgorithm):
    """``geocd:diagnostics``: no inputs; the report as text in the log and as output REPORT."""

    NAME = "diagnostics"
    DISPLAY_NAME = "Diagnostics"
    HELP = DIAGNOSTICS_HELP
    TAGS = ("diagnostics", "version", "device", "gpu", "cuda", "backend", "model")
    REPORT = "REPORT"

    def initAlgorithm(self, config: Any = None) -> None:
        """No inputs; one text output."""
        self.addOutput(QgsProcessingOutputString(self.REPORT, "Diagnostics"))

    def processAlgorithm(self, parameters: dict[str, Any], context: QgsProcessingContext,
                         feedback: QgsProcessingFeedback) -> dict[str, Any]:
        """Run ``geocd info`` and show its lines."""
        text = diagnostics_text(configured_executable())
        for line in text.splitlines():
            feedback.pushInfo(line)
        return {self.REPORT: text}
