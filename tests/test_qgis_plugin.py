"""The QGIS plugin (qgis_plugin/geocd_qgis) inside real QGIS 3.22+.

Each check runs tests/qgis/plugin_checks.py with the Python that imports ``qgis`` (Debian's
/usr/bin/python3), offscreen and with a throwaway profile, and asserts on the JSON it prints.
Skipped only where that Python cannot import ``qgis.core``.
"""

from __future__ import annotations

import configparser
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pyogrio
import pytest
from rasterio.transform import from_origin

from conftest import ORIGIN, planted_pair, smooth_scene, write_raster

ROOT = Path(__file__).resolve().parents[1]
PLUGINS = ROOT / "qgis_plugin"
CHECKS = ROOT / "tests" / "qgis" / "plugin_checks.py"
QGIS_PYTHON = "/usr/bin/python3"
REQUIRED_METADATA = ("name", "description", "version", "qgisMinimumVersion", "author", "email", "about",
                     "tracker", "repository", "hasProcessingProvider", "icon")


def qgis_importable() -> bool:
    """Whether QGIS_PYTHON imports qgis.core."""
    try:
        return subprocess.run([QGIS_PYTHON, "-c", "import qgis.core"], capture_output=True, timeout=60).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


pytestmark = pytest.mark.skipif(not qgis_importable(), reason=f"{QGIS_PYTHON} cannot import qgis.core (apt-get install python3-qgis)")


def qgis_environment(tmp_path: Path) -> dict[str, str]:
    """Offscreen QGIS with a throwaway profile; this interpreter's ``geocd`` first on PATH.

    This interpreter's bin folder leaves PATH (only a link to its ``geocd`` stays): QGIS's
    embedded Python would take the ``python3`` there for its own home and fail to import qgis.
    """
    links = tmp_path / "geocd-bin"
    links.mkdir(exist_ok=True)
    interpreter_bin = Path(sys.executable).parent
    installed = interpreter_bin / "geocd"
    (links / "geocd").symlink_to(installed if installed.is_file() else shutil.which("geocd"))
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "PYTHONHOME")}
    path = [folder for folder in env.get("PATH", "").split(os.pathsep) if folder and Path(folder) != interpreter_bin]
    env.update(QT_QPA_PLATFORM="offscreen", QGIS_CUSTOM_CONFIG_PATH=str(tmp_path / "qgis-config"), TMPDIR=str(tmp_path),
               PYTHONDONTWRITEBYTECODE="1", XDG_RUNTIME_DIR=str(tmp_path), PATH=os.pathsep.join([str(links), *path]))
    return env


def run_check(tmp_path: Path, check: str, script: Path = CHECKS, **spec: object) -> dict:
    """Run one check of ``script`` (plugin_checks.py) in QGIS and return its JSON."""
    spec = {"check": check, "plugins": str(PLUGINS), **spec}
    done = subprocess.run([QGIS_PYTHON, str(script), json.dumps(spec)], capture_output=True, text=True,
                          env=qgis_environment(tmp_path), timeout=600)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def build_zip(output_dir: Path) -> Path:
    """Build the plugin zip with scripts/build_qgis_plugin.py."""
    subprocess.run([sys.executable, str(ROOT / "scripts" / "build_qgis_plugin.py"), "-o", str(output_dir)], check=True)
    return next(output_dir.glob("geocd_qgis-*.zip"))


@pytest.fixture(scope="module")
def plugin_zip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_zip(tmp_path_factory.mktemp("dist"))


def test_plugin_loads_registers_opens_dialog_and_unloads(tmp_path: Path) -> None:
    before, after, _ = planted_pair(tmp_path)
    lowest = shutil.copy(before, tmp_path / "lowest.tif")
    result = run_check(tmp_path, "gui", rasters=[str(lowest), str(before), str(after)])
    assert result["toolbar"] == ["Detect changes (geocd)"] and result["raster_menu"] == ["&geocd"]
    assert result["registered"] and result["display_name"] == "Detect changes" and result["setting"]
    assert result["parameters"] == ["BEFORE", "AFTER", "MODEL", "TTA", "ALIGN", "THRESHOLD", "MIN_AREA", "ONLY", "ZONES",
                                    "ZONE_FIELD", "OUTPUT"]
    assert result["temporary_output"].endswith(".gpkg")
    # the topmost raster (added last) is 'after', the next one 'before'; the vector layer on top is skipped
    assert result["dialog"] == [["geocd:detectchanges", {"AFTER": "after", "BEFORE": "before"}]]
    assert result["toolbar_after_unload"] == [] and result["raster_menu_after_unload"] == 0
    assert not result["registered_after_unload"] and not result["provider_after_unload"]
    assert not result["setting_after_unload"]


def test_run_writes_geopackage_and_loads_it_styled(tmp_path: Path, tiny_checkpoint: Path) -> None:
    before, after, _ = planted_pair(tmp_path)
    output = tmp_path / "changes.gpkg"
    result = run_check(tmp_path, "run", before=str(before), after=str(after), model=str(tiny_checkpoint), output=str(output),
                       executable=str(tmp_path / "geocd-bin" / "geocd"))
    assert result["results"] == {"OUTPUT": str(output)} and result["exists"]
    assert [(layer["source"], layer["valid"], layer["renderer"]) for layer in result["layers"]] == [
        (str(output), True, "categorizedSymbol")]
    assert "predicting tiles" in result["messages"]
    assert 0 < result["progress"][0] < 100 and max(result["progress"]) == 100


def test_zones_reach_geocd_and_their_table_is_loaded(tmp_path: Path, tiny_checkpoint: Path) -> None:
    from test_zones import zones_file

    before, after, _ = planted_pair(tmp_path)
    zones = zones_file(tmp_path / "zones.gpkg", crs=3857)
    this_geocd = tmp_path / "this-geocd"  # this checkout's geocd, whichever geocd is installed
    this_geocd.write_text(f'#!/bin/sh\nPYTHONPATH="{ROOT}" exec "{sys.executable}" -m geocd.cli.main "$@"\n')
    this_geocd.chmod(0o755)
    output = tmp_path / "changes.gpkg"
    result = run_check(tmp_path, "run", before=str(before), after=str(after), model=str(tiny_checkpoint), output=str(output),
                       executable=str(this_geocd), zones=str(zones), zone_field="name")
    table = tmp_path / "changes_zones.csv"
    assert result["results"] == {"OUTPUT": str(output), "ZONES_TABLE": str(table)} and table.is_file()
    assert "--zones" in result["command"] and "--zone-field name" in result["command"]
    layers = {Path(layer["source"].split("?")[0]).name: layer for layer in result["layers"]}
    assert layers.keys() == {"changes.gpkg", "changes_zones.csv"}
    assert layers["changes_zones.csv"]["valid"] and layers["changes_zones.csv"]["features"] == 4  # 3 zones and the scene
    assert "zone" in pyogrio.read_info(output, layer="changes")["fields"]


def test_cancel_stops_geocd_and_leaves_no_output(tmp_path: Path, tiny_checkpoint: Path) -> None:
    pair = tmp_path / "pair"
    pair.mkdir()
    before, after, _ = planted_pair(pair, 512, 512)
    output = pair / "changes.gpkg"
    result = run_check(tmp_path, "cancel", before=str(before), after=str(after), model=str(tiny_checkpoint), output=str(output))
    assert result["error"].startswith("Canceled")
    assert len(result["progress"]) == 1 and result["progress"][0] < 100
    assert result["stop_seconds"] < 10
    assert result["files"] == ["after.tif", "before.tif"]
    assert result["processes"] == []


def test_geocd_errors_surface_as_processing_exceptions(tmp_path: Path, tiny_checkpoint: Path) -> None:
    before, after, _ = planted_pair(tmp_path)
    far = write_raster(tmp_path / "far.tif", smooth_scene(32, 32).astype(np.uint8), transform=from_origin(ORIGIN[0] + 1e5, ORIGIN[1], 1, 1))
    missing = tmp_path / "missing.safetensors"
    not_executable = tmp_path / "not-executable"
    not_executable.write_text("")
    cases = [
        {"before": str(before), "after": str(after), "model": str(missing), "output": str(tmp_path / "a.gpkg")},
        {"before": str(before), "after": str(far), "model": str(tiny_checkpoint), "output": str(tmp_path / "b.gpkg")},
        {"before": str(before), "after": str(tmp_path / "gone.tif"), "output": str(tmp_path / "c.gpkg")},
        {"before": str(before), "after": str(after), "output": str(tmp_path / "d.gpkg"), "executable": str(not_executable)},
        {"before": str(before), "after": str(after), "model": str(tiny_checkpoint), "output": str(tmp_path / "e.gpkg"),
         "only": " building,low vegetation "},
    ]
    model_error, overlap_error, missing_after, no_executable, only = run_check(tmp_path, "errors", cases=cases)["outcomes"]
    assert model_error == {"error": f"geocd: error: {missing}: model file does not exist", "exists": False}
    assert overlap_error == {"error": f"geocd: error: {far}: does not overlap {before}", "exists": False}
    # QGIS itself refuses a raster parameter it cannot open, before geocd runs
    assert "gone.tif" in missing_after["error"] and not missing_after["exists"]
    assert no_executable == {"error": f"cannot run geocd executable '{not_executable}': Permission denied", "exists": False}
    # the classes reach geocd predict --only (the tiny model's land cover is untrained, so geocd refuses them)
    assert only == {"error": f"geocd: error: {tiny_checkpoint}: has untrained land-cover heads, so changes cannot be kept "
                             "by class (only)", "exists": False}


def test_geocd_runs_without_qgis_python_gdal_and_proj_settings(tmp_path: Path) -> None:
    before, after, _ = planted_pair(tmp_path)
    fake = tmp_path / "fake-geocd"
    fake.write_text('#!/bin/sh\necho "geocd: error: env:${PYTHONPATH-}:${GDAL_DATA-}:${PROJ_LIB-}:${KEEP_ME-}" >&2\nexit 2\n')
    fake.chmod(0o755)
    environ = {"PYTHONPATH": "/qgis/python", "GDAL_DATA": "/qgis/gdal", "PROJ_LIB": "/qgis/proj", "KEEP_ME": "kept"}
    case = {"before": str(before), "after": str(after), "output": str(tmp_path / "x.gpkg"), "executable": str(fake), "environ": environ}
    [outcome] = run_check(tmp_path, "errors", cases=[case])["outcomes"]
    assert outcome["error"] == "geocd: error: env::::kept"


def test_zip_is_a_valid_plugin_package(plugin_zip: Path) -> None:
    version = configparser.ConfigParser(interpolation=None)
    version.read(PLUGINS / "geocd_qgis" / "metadata.txt", encoding="utf-8")
    assert plugin_zip.name == f"geocd_qgis-{version['general']['version']}.zip"
    assert plugin_zip.stat().st_size <= 25 * 1024 * 1024
    with zipfile.ZipFile(plugin_zip) as archive:
        names = archive.namelist()
        metadata = configparser.ConfigParser(interpolation=None)
        metadata.read_string(archive.read("geocd_qgis/metadata.txt").decode("utf-8"))
    assert {name.split("/")[0] for name in names} == {"geocd_qgis"}
    assert not [name for name in names if "__pycache__" in name or name.endswith(".pyc")]
    assert {"geocd_qgis/__init__.py", "geocd_qgis/LICENSE", "geocd_qgis/icon.svg"} <= set(names)
    general = metadata["general"]
    assert all(general.get(field, "").strip() for field in REQUIRED_METADATA)
    assert not [value for value in general.values() if "example." in value or "github.com/geocd" in value]  # no made-up contacts
    assert general["qgisMinimumVersion"] == "3.22" and general["hasProcessingProvider"] == "yes"
    assert f"geocd_qgis/{general['icon']}" in names


def test_zip_installs_into_a_fresh_profile_and_starts(tmp_path: Path, plugin_zip: Path) -> None:
    profile = tmp_path / "qgis-config" / "profiles" / "default"
    result = run_check(tmp_path, "install", plugins="", zip=str(plugin_zip), profile=str(profile))
    assert result["available"] and result["loaded"] and result["metadata_name"] == "geocd Change Detection"
    assert result["module"].startswith(str(profile / "python" / "plugins" / "geocd_qgis"))
    assert result["registered"] and result["toolbar"] == ["Detect changes (geocd)"]
    assert result["unloaded"] and not result["registered_after_unload"] and result["toolbar_after_unload"] == []


def qgis_process() -> str | None:
    """The qgis_process binary (Debian's wrapper script passes an option 3.22 rejects, so prefer .bin)."""
    return shutil.which("qgis_process.bin") or shutil.which("qgis_process")


@pytest.mark.skipif(qgis_process() is None, reason="qgis_process not installed (apt-get install qgis)")
def test_qgis_process_runs_the_algorithm(tmp_path: Path, plugin_zip: Path, tiny_checkpoint: Path) -> None:
    plugins = tmp_path / "qgis-config" / "profiles" / "default" / "python" / "plugins"
    plugins.mkdir(parents=True)
    with zipfile.ZipFile(plugin_zip) as archive:
        archive.extractall(plugins)
    env = qgis_environment(tmp_path)
    enabled = subprocess.run([qgis_process(), "plugins", "enable", "geocd_qgis"], capture_output=True, text=True, env=env, timeout=120)
    assert enabled.returncode == 0, enabled.stderr
    before, after, _ = planted_pair(tmp_path)
    output = tmp_path / "changes.gpkg"
    done = subprocess.run(
        [qgis_process(), "--json", "run", "geocd:detectchanges", "--", f"BEFORE={before}", f"AFTER={after}",
         f"MODEL={tiny_checkpoint}", "THRESHOLD=0.6", "TTA=false", "ALIGN=true", f"OUTPUT={output}"],
        capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["results"]["OUTPUT"] == str(output) and output.is_file()
    assert "predicting tiles" in report["log"]["info"]
    assert "--threshold 0.6" in report["log"]["info"][0] and "--align" in report["log"]["info"][0].split()


@pytest.mark.skipif(qgis_process() is None, reason="qgis_process not installed (apt-get install qgis)")
def test_qgis_install_makes_the_algorithm_available_to_qgis_process(tmp_path: Path, tiny_checkpoint: Path) -> None:
    env = qgis_environment(tmp_path)
    env["PATH"] = os.pathsep.join(p for p in env["PATH"].split(os.pathsep) if p != str(tmp_path / "geocd-bin"))  # found only by the setting
    geocd = Path(sys.executable).parent / "geocd"
    installed = subprocess.run([sys.executable, "-m", "geocd.cli.main", "qgis-install", "--profile", "default",
                                "--executable", str(geocd if geocd.is_file() else shutil.which("geocd"))],
                               capture_output=True, text=True, env=os.environ | {"QGIS_CUSTOM_CONFIG_PATH": env["QGIS_CUSTOM_CONFIG_PATH"]})
    assert installed.returncode == 0, installed.stderr
    listed = subprocess.run([qgis_process(), "list"], capture_output=True, text=True, env=env, timeout=120)
    assert "geocd:detectchanges" in listed.stdout, listed.stdout + listed.stderr
    before, after, _ = planted_pair(tmp_path)
    output = tmp_path / "changes.gpkg"
    done = subprocess.run([qgis_process(), "run", "geocd:detectchanges", "--", f"BEFORE={before}", f"AFTER={after}",
                           f"MODEL={tiny_checkpoint}", "TTA=false", f"OUTPUT={output}"],
                          capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0 and output.is_file(), done.stdout + done.stderr
