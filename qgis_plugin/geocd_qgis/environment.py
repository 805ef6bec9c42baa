"""The environment a child process of the plugin (geocd, pip, uv) starts with: QGIS's own settings removed.

Pure Python (no QGIS imports), shared by the runner and the installer.
"""

from __future__ import annotations

import os

#: Variables QGIS sets for its own Python, PROJ and GDAL; the CLI must use its own.
QGIS_ONLY_VARIABLES = ("PYTHONPATH", "PYTHONHOME", "QGIS_PREFIX_PATH", "PROJ_LIB", "PROJ_DATA", "GDAL_DATA", "GDAL_DRIVER_PATH")


def clean_environment() -> dict[str, str]:
    """This process's environment without QGIS's Python, PROJ and GDAL settings."""
    return {key: value for key, value in os.environ.items() if key not in QGIS_ONLY_VARIABLES}
