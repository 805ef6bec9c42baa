"""The plugin's installer (qgis_plugin/geocd_qgis/installer.py), without QGIS: a real environment
built offline from a wheelhouse holding a tiny stand-in ``geocd`` package."""

from __future__ import annotations

import configparser
import os
import platform
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "qgis_plugin"))

from geocd_qgis.installer import (  # noqa: E402 - the plugin folder is on sys.path only from here
    CPU_EXTRAS, TORCH_CPU_INDEX, TORCH_CUDA_INDEX, InstallError, Machine, find_python, install_commands,
    install_geocd, nvidia_gpu_present, run_logged,
)

STAND_IN_VERSION = "9.9.9"


def build_stand_in_wheel(folder: Path) -> Path:
    """A wheel of a package named ``geocd`` whose ``geocd`` command prints its version: a wheelhouse in ``folder``."""
    source = folder / "source"
    source.mkdir(parents=True)
    (source / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools"]\nbuild-backend = "setuptools.build_meta"\n'
        f'[project]\nname = "geocd"\nversion = "{STAND_IN_VERSION}"\n'
        '[project.optional-dependencies]\nopenvino = []\n'
        '[project.scripts]\ngeocd = "geocd_stand_in:main"\n')
    (source / "geocd_stand_in.py").write_text(
        f'def main():\n    print("geocd, version {STAND_IN_VERSION}")\n')
    wheels = folder / "wheelhouse"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
                    "-w", str(wheels), str(source)], check=True)
    return wheels


@pytest.fixture(scope="module")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_stand_in_wheel(tmp_path_factory.mktemp("stand-in"))


def venv_machine() -> Machine:
    """This machine without uv (venv + pip) and without a GPU."""
    return Machine(platform.system(), False, None, find_python())


def test_offline_install_from_a_folder_then_again_from_a_zip(tmp_path: Path, wheelhouse: Path) -> None:
    environment = tmp_path / "geocd-env"
    lines: list[str] = []
    done = install_geocd(environment, wheelhouse, log=lines.append, machine=venv_machine())
    bin_folder = "Scripts" if os.name == "nt" else "bin"
    assert done.executable == environment / bin_folder / ("geocd.exe" if os.name == "nt" else "geocd")
    assert done.executable.is_file() and done.version == f"geocd, version {STAND_IN_VERSION}"
    commands = [line for line in lines if line.startswith("$ ")]
    assert len(commands) == 2 and " -m venv " in commands[0]
    assert f"--no-index --find-links {wheelhouse} geocd[openvino]" in commands[1]
    assert any(line.startswith("Successfully installed geocd-9.9.9") for line in lines)
    assert lines[-1] == f"installed geocd, version {STAND_IN_VERSION}: {done.executable}"
    # a zip with the wheel in a sub-folder, into the same environment: reused, not made again
    archive = tmp_path / "wheels.zip"
    with zipfile.ZipFile(archive, "w") as out:
        for wheel in wheelhouse.glob("*.whl"):
            out.write(wheel, f"wheels/{wheel.name}")
    again: list[str] = []
    assert install_geocd(environment, archive, log=again.append, machine=venv_machine()).executable == done.executable
    [command] = [line for line in again if line.startswith("$ ")]
    assert "--no-index --find-links" in command and "-m venv" not in command
    assert not list(Path(tempfile.gettempdir()).glob("geocd-wheels-*"))  # the unpacked zip is removed


def test_bad_sources_and_folders_are_refused_before_anything_runs(tmp_path: Path, wheelhouse: Path) -> None:
    machine = venv_machine()
    with pytest.raises(InstallError, match="give a wheelhouse"):
        install_geocd(tmp_path / "env", machine=machine)
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    with pytest.raises(InstallError) as error:
        install_geocd(busy, wheelhouse, machine=machine)
    assert str(error.value) == f"{busy}: is not empty and not a Python environment; choose a new or empty folder"
    empty = tmp_path / "no-wheels"
    empty.mkdir()
    with pytest.raises(InstallError) as error:
        install_geocd(tmp_path / "env", empty, machine=machine)
    assert str(error.value) == f"{empty}: holds no wheels (.whl files)"
    assert not (tmp_path / "env").exists()


def test_a_failing_step_reports_its_last_line(tmp_path: Path) -> None:
    lines: list[str] = []
    script = "print('Looking in links'); print('ERROR: No matching distribution found for geocd'); raise SystemExit(1)"
    with pytest.raises(InstallError) as error:
        run_logged([sys.executable, "-c", script], lines.append)
    assert str(error.value) == f"{Path(sys.executable).name} failed with exit code 1: ERROR: No matching distribution found for geocd"
    assert lines[1:] == ["Looking in links", "ERROR: No matching distribution found for geocd"]


def test_commands_suit_the_machine(tmp_path: Path) -> None:
    env, wheels = tmp_path / "env", [tmp_path / "wheels"]
    python = str(env / ("Scripts/python.exe" if os.name == "nt" else "bin/python"))
    linux_cpu = Machine("Linux", False, None, "/usr/bin/python3")
    pip = [python, "-m", "pip", "install", "--disable-pip-version-check", "--no-input", "--progress-bar", "off"]
    assert install_commands(env, wheels, None, linux_cpu, create=True) == [
        ["/usr/bin/python3", "-m", "venv", str(env)],
        [*pip, "--upgrade", "--no-index", "--find-links", str(wheels[0]), "geocd[openvino]"]]
    # from an index: CPU-only PyTorch first on Linux without a GPU, CUDA PyTorch on Windows with one
    assert install_commands(env, [], "https://index.invalid/simple", linux_cpu, create=False) == [
        [*pip, "--index-url", TORCH_CPU_INDEX, "torch"],
        [*pip, "--upgrade", "--index-url", "https://index.invalid/simple", "geocd[openvino]"]]
    windows_gpu = Machine("Windows", True, "C:/uv/uv.exe", None)
    uv_pip = ["C:/uv/uv.exe", "pip", "install", "--python", python]
    assert install_commands(env, wheels, "https://index.invalid/simple", windows_gpu, create=True) == [
        ["C:/uv/uv.exe", "venv", "--python", ">=3.11", str(env)],
        [*uv_pip, "--index-url", TORCH_CUDA_INDEX, "torch"],
        [*uv_pip, "--upgrade", "--find-links", str(wheels[0]), "--index-url", "https://index.invalid/simple", "geocd"]]
    # PyPI's torch already suits Linux with a GPU and macOS
    assert len(install_commands(env, [], "https://index.invalid/simple", Machine("Linux", True, None, "python3"), False)) == 1
    assert len(install_commands(env, [], "https://index.invalid/simple", Machine("Darwin", False, None, "python3"), False)) == 1
    with pytest.raises(InstallError, match="no Python 3.11 or newer found"):
        install_commands(env, wheels, None, Machine("Windows", False, None, None), create=True)


def test_find_python_skips_what_does_not_run(tmp_path: Path) -> None:
    not_python = tmp_path / "qgis-bin"
    not_python.write_text("#!/bin/sh\nexit 1\n")
    not_python.chmod(0o755)
    assert find_python([[str(tmp_path / "missing")], [str(not_python)], [sys.executable]]) == sys.executable
    assert find_python([[str(not_python)]]) is None


def test_cpu_extras_exist_in_the_package() -> None:
    setup = configparser.ConfigParser(interpolation=None)
    setup.read(ROOT / "setup.cfg", encoding="utf-8")
    assert set(CPU_EXTRAS) <= set(setup["options.extras_require"])


@pytest.mark.skipif(os.name == "nt", reason="POSIX shell stand-in")
@pytest.mark.parametrize("script, found", [('echo "GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-0)"', True),
                                           ('echo "NVIDIA-SMI has failed" >&2; exit 9', False)])
def test_an_nvidia_gpu_is_what_nvidia_smi_lists(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, script: str,
                                                found: bool) -> None:
    smi = tmp_path / "nvidia-smi"
    smi.write_text(f"#!/bin/sh\n{script}\n")
    smi.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert nvidia_gpu_present() is found
    monkeypatch.setenv("PATH", str(tmp_path / "nowhere"))
    assert nvidia_gpu_present() is False
