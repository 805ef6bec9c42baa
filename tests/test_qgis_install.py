"""``geocd qgis-install`` without QGIS: the files and settings it leaves in a profile.

That real ``qgis_process`` then lists the algorithm is checked in test_qgis_plugin.py.
"""

from __future__ import annotations

import configparser
import subprocess
import sys
from pathlib import Path

import pytest

from geocd.errors import InputError
from geocd.qgis_install import install_qgis_plugin, qgis_profile_folder

ROOT = Path(__file__).resolve().parents[1]


def settings(path: Path) -> configparser.ConfigParser:
    ini = configparser.ConfigParser(interpolation=None)
    ini.optionxform = str
    ini.read(path)
    return ini


def test_installs_enables_and_points_at_geocd_keeping_other_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QGIS_CUSTOM_CONFIG_PATH", str(tmp_path / "qgis"))
    profile = qgis_profile_folder("work")
    assert profile == tmp_path / "qgis" / "profiles" / "work"
    ini_path = profile / "QGIS" / "QGIS3.ini"
    ini_path.parent.mkdir(parents=True)
    ini_path.write_text("[PythonPlugins]\nOtherPlugin=true\n\n[qgis]\nstylesheet\\fontPointSize=10\nformat=%1 of %2\n")
    stale = profile / "python" / "plugins" / "geocd_qgis" / "old.py"
    stale.parent.mkdir(parents=True)
    stale.write_text("")
    executable = tmp_path / "venv" / "bin" / "geocd"
    executable.parent.mkdir(parents=True)
    executable.write_text("#!/bin/sh\n")
    done = install_qgis_plugin("work", executable)
    assert done.plugin == profile / "python" / "plugins" / "geocd_qgis" and done.settings == ini_path
    shipped = {p.name for p in (ROOT / "qgis_plugin" / "geocd_qgis").iterdir() if p.name != "__pycache__"}
    assert {p.name for p in done.plugin.iterdir()} == shipped  # old copy replaced, no caches
    ini = settings(ini_path)
    assert dict(ini["PythonPlugins"]) == {"OtherPlugin": "true", "geocd_qgis": "true"}
    assert ini["Processing"]["Configuration\\GEOCD_EXECUTABLE"] == str(executable)
    assert dict(ini["qgis"]) == {"stylesheet\\fontPointSize": "10", "format": "%1 of %2"}
    assert "OtherPlugin=true" in ini_path.read_text()  # QSettings' own key=value form


def test_cli_refuses_a_missing_executable_in_one_line(tmp_path: Path) -> None:
    env = {"QGIS_CUSTOM_CONFIG_PATH": str(tmp_path / "qgis"), "PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "geocd.cli.main", "qgis-install", "--executable", str(tmp_path / "nope")],
                          capture_output=True, text=True, env=env)
    assert done.returncode == 2
    assert done.stderr == f"geocd: error: {tmp_path / 'nope'}: geocd executable does not exist\n"
    assert not (tmp_path / "qgis").exists()


def test_unreadable_settings_file_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QGIS_CUSTOM_CONFIG_PATH", str(tmp_path))
    ini_path = qgis_profile_folder() / "QGIS" / "QGIS3.ini"
    ini_path.parent.mkdir(parents=True)
    ini_path.write_text("no section header\n")
    with pytest.raises(InputError, match="is not a QGIS settings file"):
        install_qgis_plugin(executable=sys.executable)
    assert not (ini_path.parents[1] / "python").exists()  # nothing installed
