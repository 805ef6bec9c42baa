"""Install the geocd command line into its own environment, from inside QGIS or anywhere else.

Pure Python (no QGIS imports), so it runs and is tested without QGIS; nothing runs at import.
:func:`install_geocd` creates a virtual environment (with ``uv`` when it is on PATH, else
``python -m venv`` and the environment's pip), installs ``geocd`` with the extras that suit this
machine from a local wheelhouse (a folder, a zip, or any wheel inside the folder: fully offline)
and/or a package index, streams every line of the tools' output to a callback, and returns the
environment's ``geocd`` executable for the plugin to run.

Which Python builds the environment: QGIS's own ``sys.executable`` is the QGIS program on Windows
and macOS, not a Python, so :func:`find_python` tries, in order, ``sys.executable`` when it is a
Python, the interpreter it was made from (``sys._base_executable``), the Python inside QGIS's own
installation (``sys.prefix``: OSGeo4W's ``apps/Python3x/python.exe``, the macOS bundle's
``bin/python3``), then ``python3``/``python`` on PATH and Windows' ``py -3`` launcher; each is run
once and kept only when it is Python 3.11 or newer (geocd's minimum). Without one, ``uv`` (when
present) provides a Python itself.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from .environment import clean_environment

MIN_PYTHON = (3, 11)
CPU_EXTRAS = ("openvino",)
"""geocd's extras for a machine without an NVIDIA GPU (setup.cfg: ``openvino``, the fastest CPU runtime)."""
GPU_EXTRAS: tuple[str, ...] = ()
"""geocd's extras with an NVIDIA GPU: PyTorch runs the network on CUDA, no CPU runtime is needed."""
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"
"""PyTorch's CPU-only wheels: PyPI's Linux torch bundles CUDA (gigabytes) that a machine without a GPU never uses."""
TORCH_CUDA_INDEX = "https://download.pytorch.org/whl/cu126"
"""PyTorch's CUDA 12.6 wheels: PyPI's Windows torch is CPU-only."""
PROBE = "import sys; print(sys.version_info[:2] >= {minimum} and sys.executable or '')"

Log = Callable[[str], None]


class InstallError(Exception):
    """The installation cannot start or a step failed; the message says which and why, in one line."""


@dataclass(frozen=True)
class Machine:
    """What the installation depends on: the operating system, an NVIDIA GPU, ``uv`` and a usable Python."""

    system: str
    nvidia_gpu: bool
    uv: Optional[str]
    python: Optional[str]

    def describe(self) -> str:
        """One line for the log."""
        gpu = "an NVIDIA GPU (CUDA PyTorch)" if self.nvidia_gpu else "no NVIDIA GPU (CPU runtime)"
        tool = f"uv ({self.uv})" if self.uv else "venv + pip"
        return f"{self.system}, {gpu}, Python {self.python or 'provided by uv'}, with {tool}"


@dataclass(frozen=True)
class Installed:
    """The environment made by :func:`install_geocd`, its ``geocd`` executable and what ``geocd --version`` said."""

    environment: Path
    executable: Path
    version: str


def detect_machine() -> Machine:
    """This machine: its system, whether ``nvidia-smi`` lists a GPU, ``uv`` on PATH and :func:`find_python`."""
    return Machine(platform.system(), nvidia_gpu_present(), shutil.which("uv"), find_python())


def nvidia_gpu_present() -> bool:
    """Whether ``nvidia-smi -L`` (the NVIDIA driver's tool) lists at least one GPU."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return False
    try:
        listed = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=30, **_no_window())
    except (OSError, subprocess.TimeoutExpired):
        return False
    return listed.returncode == 0 and "GPU" in listed.stdout


def python_candidates() -> list[list[str]]:
    """Commands that may start a real Python, most specific first (see the module's docstring)."""
    windows = os.name == "nt"
    found: list[list[str]] = []
    if Path(sys.executable).name.lower().startswith("python"):
        found.append([sys.executable])
    base = getattr(sys, "_base_executable", "")
    if base and Path(base).name.lower().startswith("python"):
        found.append([base])
    for prefix in dict.fromkeys((sys.prefix, sys.exec_prefix)):
        names = ["python.exe", "python3.exe"] if windows else [f"bin/python3.{sys.version_info.minor}", "bin/python3"]
        found += [[str(Path(prefix) / name)] for name in names if (Path(prefix) / name).is_file()]
    found += [[path] for path in (shutil.which("python3"), shutil.which("python")) if path]
    if windows and shutil.which("py"):
        found.append(["py", "-3"])
    return [command for i, command in enumerate(found) if command not in found[:i]]


def find_python(candidates: Optional[Sequence[Sequence[str]]] = None) -> Optional[str]:
    """The path of the first candidate (default: :func:`python_candidates`) that runs as Python ≥ 3.11, or None."""
    probe = PROBE.format(minimum=MIN_PYTHON)
    for command in python_candidates() if candidates is None else candidates:
        try:
            ran = subprocess.run([*command, "-c", probe], capture_output=True, text=True, timeout=60,
                                 env=clean_environment(), **_no_window())
        except (OSError, subprocess.TimeoutExpired):
            continue
        path = ran.stdout.strip()
        if ran.returncode == 0 and path:
            return path
    return None


def environment_executable(environment: Path, name: str) -> Path:
    """Program ``name`` (``python``, ``geocd``) inside virtual environment ``environment``."""
    return environment / "Scripts" / f"{name}.exe" if os.name == "nt" else environment / "bin" / name


def requirement(machine: Machine) -> str:
    """``geocd`` with the extras that suit ``machine``."""
    extras = GPU_EXTRAS if machine.nvidia_gpu else CPU_EXTRAS
    return f"geocd[{','.join(extras)}]" if extras else "geocd"


def torch_index(machine: Machine) -> Optional[str]:
    """Where PyTorch should come from when installing from an index, when not from the index itself."""
    if machine.system == "Linux" and not machine.nvidia_gpu:
        return TORCH_CPU_INDEX
    if machine.system == "Windows" and machine.nvidia_gpu:
        return TORCH_CUDA_INDEX
    return None


def install_commands(environment: Path, wheel_folders: Sequence[Path], index_url: Optional[str], machine: Machine,
                     create: bool) -> list[list[str]]:
    """The commands that make ``environment`` (when ``create``) and install geocd into it.

    With wheel folders and no index nothing is downloaded (``--no-index``); with an index, PyTorch
    first comes from :func:`torch_index` when that names one.
    """
    python = str(environment_executable(environment, "python"))
    if machine.uv:
        make = [machine.uv, "venv", "--python", machine.python or ">=3.11", str(environment)]
        pip = [machine.uv, "pip", "install", "--python", python]
    elif machine.python:
        make = [machine.python, "-m", "venv", str(environment)]
        pip = [python, "-m", "pip", "install", "--disable-pip-version-check", "--no-input", "--progress-bar", "off"]
    else:
        raise InstallError("no Python 3.11 or newer found (install one from python.org, or uv) to build geocd's environment")
    sources = [option for folder in wheel_folders for option in ("--find-links", str(folder))]
    commands = [make] if create else []
    if index_url:
        sources += ["--index-url", index_url]
        torch = torch_index(machine)
        if torch:
            commands.append([*pip, "--index-url", torch, "torch"])
    else:
        sources.insert(0, "--no-index")
    commands.append([*pip, "--upgrade", *sources, requirement(machine)])
    return commands


def install_geocd(environment: str | os.PathLike[str], wheelhouse: str | os.PathLike[str] | None = None,
                  index_url: Optional[str] = None, log: Log = print, canceled: Callable[[], bool] = lambda: False,
                  machine: Optional[Machine] = None, step: Callable[[int, int], None] = lambda done, steps: None) -> Installed:
    """Install geocd into virtual environment ``environment`` (made unless it is one already).

    ``wheelhouse``: a folder of wheels (geocd's and its dependencies'), a wheel inside one, or a
    zip of them; ``index_url``: a package index serving geocd (pip's ``--index-url``). At least one
    is needed. Every line the tools print goes to ``log``; ``canceled`` is polled between lines;
    ``step(done, steps)`` is called as each step ends. Raises :class:`InstallError`.
    """
    if not wheelhouse and not index_url:
        raise InstallError("give a wheelhouse (folder or zip of geocd's wheels) or a package index URL serving geocd")
    target = Path(environment).expanduser().absolute()
    create = not (target / "pyvenv.cfg").is_file()
    if create and target.is_dir() and any(target.iterdir()):
        raise InstallError(f"{target}: is not empty and not a Python environment; choose a new or empty folder")
    machine = machine or detect_machine()
    log(f"this machine: {machine.describe()}")
    with tempfile.TemporaryDirectory(prefix="geocd-wheels-") as scratch:
        folders = wheel_folders(Path(wheelhouse), Path(scratch)) if wheelhouse else []
        commands = install_commands(target, folders, index_url, machine, create)
        for done, command in enumerate(commands, 1):
            run_logged(command, log, canceled)
            step(done, len(commands) + 1)
    executable = environment_executable(target, "geocd")
    if not executable.is_file():
        raise InstallError(f"{executable}: was not created: the installed package has no geocd command")
    version = subprocess.run([str(executable), "--version"], capture_output=True, text=True, timeout=300,
                             env=clean_environment(), **_no_window())
    if version.returncode != 0:
        raise InstallError(f"{executable}: does not run ({(version.stderr.strip().splitlines() or ['no output'])[-1]})")
    log(f"installed {version.stdout.strip()}: {executable}")
    step(len(commands) + 1, len(commands) + 1)
    return Installed(target, executable, version.stdout.strip())


def wheel_folders(wheelhouse: Path, scratch: Path) -> list[Path]:
    """The folders holding the wheels of ``wheelhouse`` (a folder, a wheel in one, or a zip unpacked into ``scratch``)."""
    if wheelhouse.suffix.lower() == ".whl" and wheelhouse.is_file():
        wheelhouse = wheelhouse.parent
    elif wheelhouse.suffix.lower() == ".zip" and wheelhouse.is_file():
        try:
            with zipfile.ZipFile(wheelhouse) as archive:
                archive.extractall(scratch)
        except (OSError, zipfile.BadZipFile) as error:
            raise InstallError(f"{wheelhouse}: cannot be unpacked ({error})") from None
        wheelhouse = scratch
    elif not wheelhouse.is_dir():
        raise InstallError(f"{wheelhouse}: is neither a folder of wheels, a wheel nor a zip of wheels")
    folders = sorted({wheel.parent for wheel in wheelhouse.rglob("*.whl")})
    if not folders:
        raise InstallError(f"{wheelhouse}: holds no wheels (.whl files)")
    return folders


def run_logged(command: Sequence[str], log: Log, canceled: Callable[[], bool] = lambda: False) -> None:
    """Run ``command``, passing each line of its output to ``log``; raise :class:`InstallError` when it fails."""
    log("$ " + subprocess.list2cmdline(list(command)))
    try:
        process = subprocess.Popen(list(command), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True, encoding="utf-8", errors="replace",
                                   env=clean_environment() | {"PYTHONUNBUFFERED": "1"}, **_no_window())
    except OSError as error:
        raise InstallError(f"cannot run {command[0]}: {error.strerror or error}") from None
    last = ""
    with process:
        for line in process.stdout:
            line = line.rstrip()
            if line:
                log(line)
                last = line
            if canceled():
                process.kill()
                raise InstallError("canceled: the environment may be incomplete; run the installation again to finish it")
    if process.returncode != 0:
        raise InstallError(f"{Path(command[0]).name} failed with exit code {process.returncode}: {last}")


def _no_window() -> dict:
    """No console window flashing up on Windows for each child process."""
    return {"creationflags": subprocess.CREATE_NO_WINDOW} if os.name == "nt" else {}
