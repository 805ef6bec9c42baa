"""The plugin's "Install geocd" and "Diagnostics" algorithms, the toolbar button without geocd, and the
runtime and time left in the feedback, inside real QGIS (tests/qgis/tool_checks.py, as test_qgis_plugin.py does)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from conftest import planted_pair
from test_qgis_installer import STAND_IN_VERSION, build_stand_in_wheel
from test_qgis_plugin import ROOT, qgis_importable, run_check

TOOL_CHECKS = ROOT / "tests" / "qgis" / "tool_checks.py"

pytestmark = [pytest.mark.skipif(not qgis_importable(), reason="/usr/bin/python3 cannot import qgis.core"),
              pytest.mark.skipif(os.name == "nt", reason="POSIX shell stand-ins")]


def this_geocd(folder: Path) -> Path:
    """An executable running this checkout's geocd with this interpreter (the plugin clears PYTHONPATH itself)."""
    script = folder / "geocd-here"
    script.write_text(f'#!/bin/sh\nPYTHONPATH="{ROOT}" exec "{sys.executable}" -m geocd.cli.main "$@"\n')
    script.chmod(0o755)
    return script


def path_without_geocd() -> str:
    """PATH without any folder holding a ``geocd``."""
    folders = os.environ.get("PATH", "").split(os.pathsep)
    return os.pathsep.join(f for f in folders if f and not (Path(f) / "geocd").exists())


def test_install_algorithm_builds_the_environment_offline_and_sets_the_executable(tmp_path: Path) -> None:
    [wheel] = build_stand_in_wheel(tmp_path / "stand-in").glob("*.whl")
    environment = tmp_path / "geocd-env"
    result = run_check(tmp_path, "install", TOOL_CHECKS, wheelhouse=str(wheel), environment=str(environment))
    assert result["algorithms"] == ["geocd:detectchanges", "geocd:diagnostics", "geocd:installgeocd"]
    assert result["parameters"] == ["WHEELHOUSE", "INDEX_URL", "ENVIRONMENT"]
    assert result["default_environment"] == str(Path(result["settings_dir"]) / "geocd-env")
    executable = str(environment / "bin" / "geocd")
    assert result["results"] == {"ENVIRONMENT": str(environment), "EXECUTABLE": executable}
    assert result["setting"] == executable
    assert any(line.startswith(f"Successfully installed geocd-{STAND_IN_VERSION}") for line in result["console"])
    assert result["logged"] == result["console"]  # the same lines in the message log, tab geocd
    assert f"geocd, version {STAND_IN_VERSION} installed; 'Detect changes' now runs {executable}" in result["messages"]
    assert result["progress"][-1] == 100 and len(result["progress"]) == 3  # venv, pip, check


def test_diagnostics_reports_the_geocd_that_runs(tmp_path: Path) -> None:
    from geocd import __version__

    executable = this_geocd(tmp_path)
    result = run_check(tmp_path, "diagnostics", TOOL_CHECKS, executable=str(executable))
    lines = result["report"].splitlines()
    assert lines[0] == f"executable: {executable} (set in the Processing options)"
    assert lines[1] == f"geocd {__version__} in {ROOT / 'geocd'}"
    assert lines[2] == f"python {sys.version.split()[0]} at {sys.executable}"
    assert [line for line in lines if line.startswith("predict: running ")]
    assert "model:" in lines and "(the bundled default model: --model default)" in result["report"]
    assert result["messages"][:len(lines)] == lines


def test_diagnostics_without_geocd_or_with_an_old_one(tmp_path: Path) -> None:
    (tmp_path / "missing").mkdir()
    missing = run_check(tmp_path / "missing", "diagnostics", TOOL_CHECKS, path=path_without_geocd())
    assert missing["error"].startswith("geocd executable not found on PATH: install it with the algorithm geocd > Install geocd")
    old = tmp_path / "old-geocd"
    old.write_text("#!/bin/sh\necho \"Error: No such command 'info'.\" >&2\nexit 2\n")
    old.chmod(0o755)
    (tmp_path / "old").mkdir()
    failed = run_check(tmp_path / "old", "diagnostics", TOOL_CHECKS, executable=str(old))
    assert failed["error"] == f"{old} info failed: Error: No such command 'info'. (an older geocd: run 'Install geocd' again)"


def test_the_button_offers_the_installer_while_there_is_no_geocd(tmp_path: Path) -> None:
    result = run_check(tmp_path, "button_without_geocd", TOOL_CHECKS, path=path_without_geocd())
    assert result["opened"] == ["geocd:installgeocd"]


def test_detect_changes_shows_runtime_device_and_time_left(tmp_path: Path, tiny_checkpoint: Path) -> None:
    before, after, _ = planted_pair(tmp_path)
    result = run_check(tmp_path, "run", before=str(before), after=str(after), model=str(tiny_checkpoint),
                       output=str(tmp_path / "changes.gpkg"), executable=str(this_geocd(tmp_path)))
    messages = result["messages"]
    runtime = [m for m in messages if m.startswith("running ") and " on cpu, " in m]
    told = [m for m in messages if " tiles, about " in m and m.endswith(" left")]
    assert len(runtime) == 1 and len(told) == 1
    assert messages.index(runtime[0]) < messages.index(told[0])
