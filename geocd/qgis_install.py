"""Install the QGIS plugin into a QGIS 3 user profile without the GUI (``geocd qgis-install``).

What QGIS's plugin manager and the Processing options would do by hand: copy ``geocd_qgis``
into ``<profile>/python/plugins``, enable it (``[PythonPlugins] geocd_qgis=true`` in the profile's
``QGIS/QGIS3.ini``) and set the provider's geocd executable (``[Processing]
Configuration\\GEOCD_EXECUTABLE``) to this installation's ``geocd``, so that ``qgis_process``
finds ``geocd:detectchanges`` at once.
"""

from __future__ import annotations

import configparser
import importlib.util
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from geocd.atomic import atomic_output
from geocd.errors import InputError, OutputError

PLUGIN_NAME = "geocd_qgis"
EXECUTABLE_KEY = "Configuration\\GEOCD_EXECUTABLE"
"""The plugin's executable setting (``qgis_plugin/geocd_qgis/settings.py``) as QSettings stores it under [Processing]."""


@dataclass(frozen=True)
class QgisInstall:
    """Where :func:`install_qgis_plugin` put the plugin, which settings file it changed and the geocd it set."""

    plugin: Path
    settings: Path
    executable: Path


def qgis_profile_folder(profile: str = "default") -> Path:
    """The folder of a QGIS 3 user profile: under ``QGIS_CUSTOM_CONFIG_PATH`` when set, else the platform's."""
    custom = os.environ.get("QGIS_CUSTOM_CONFIG_PATH")
    base = Path(custom) if custom else Path(platformdirs.user_data_dir("QGIS", appauthor=False, roaming=True)) / "QGIS3"
    return base / "profiles" / profile


def plugin_source() -> Path:
    """The plugin's files: the source tree's ``qgis_plugin/`` beside this geocd package, else those installed
    with geocd (``geocd.qgis_plugin``; an editable install may map it to another checkout)."""
    source = Path(__file__).resolve().parents[1] / "qgis_plugin" / PLUGIN_NAME
    if (source / "metadata.txt").is_file():
        return source
    spec = importlib.util.find_spec("geocd.qgis_plugin")
    if spec is not None and spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations)))
    raise InputError(source, "the QGIS plugin's files are not part of this geocd installation")


def geocd_executable() -> Path:
    """This installation's ``geocd`` command: beside the running Python, else the first on PATH."""
    beside = Path(sys.executable).parent / ("geocd.exe" if os.name == "nt" else "geocd")
    found = beside if beside.is_file() else shutil.which("geocd")
    if found is None:
        raise InputError("geocd", "command not found beside this Python or on PATH; pass the executable")
    return Path(found).absolute()


def install_qgis_plugin(profile: str = "default", executable: str | os.PathLike[str] | None = None) -> QgisInstall:
    """Copy the plugin into QGIS ``profile``, enable it and point it at ``executable`` (default: this geocd).

    An existing copy of the plugin is replaced; other plugins and settings are kept. QGIS should
    not be running (it rewrites its settings file when it quits).
    """
    folder = qgis_profile_folder(profile)
    geocd = Path(executable).absolute() if executable is not None else geocd_executable()
    if not geocd.is_file():
        raise InputError(geocd, "geocd executable does not exist")
    settings = folder / "QGIS" / "QGIS3.ini"
    ini = _read_settings(settings)
    target = folder / "python" / "plugins" / PLUGIN_NAME
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = target.with_name(f".{PLUGIN_NAME}.installing")
        shutil.rmtree(staging, ignore_errors=True)
        shutil.copytree(plugin_source(), staging, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)
    except OSError as error:
        raise OutputError(target, f"cannot install the plugin there ({error.strerror or error})") from None
    for section, key, value in (("PythonPlugins", PLUGIN_NAME, "true"), ("Processing", EXECUTABLE_KEY, str(geocd))):
        if not ini.has_section(section):
            ini.add_section(section)
        ini[section][key] = value
    settings.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(settings, overwrite=True) as tmp, open(tmp, "w", encoding="utf-8") as out:
        ini.write(out, space_around_delimiters=False)
    return QgisInstall(target, settings, geocd)


def _read_settings(path: Path) -> configparser.ConfigParser:
    """A QSettings INI file (empty when absent), keys kept case-sensitive as QSettings writes them."""
    ini = configparser.ConfigParser(interpolation=None, strict=False, delimiters=("=",))
    ini.optionxform = str  # type: ignore[assignment, method-assign]
    try:
        ini.read(path, encoding="utf-8")
    except configparser.Error as error:
        raise InputError(path, f"is not a QGIS settings file ({error.message.splitlines()[0]})") from None
    return ini
