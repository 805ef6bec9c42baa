"""What ``geocd predict`` would run with here (``geocd info``): versions, paths, runtime, device and model card."""

from __future__ import annotations

import os
import platform
import sys
from importlib import metadata
from pathlib import Path

import torch

from geocd import __version__
from geocd.checkpoint import model_card, model_path
from geocd.extras import EXTRAS
from geocd.inference.backends import GRAPH_BACKENDS, runtime_line
from geocd.inference.predict import resolve_device
from geocd.options import Backend, Precision


def diagnostics(model: str | os.PathLike[str] | None = None, device: str = "auto", backend: Backend = "auto",
                precision: Precision = "auto") -> list[str]:
    """Lines naming geocd's version and folder, the Python, PyTorch and the graph runtimes installed,
    the runtime and device ``predict`` would use with these options, and ``model``'s card (none: the default model's)."""
    resolved = resolve_device(device)
    cuda = f"CUDA {torch.version.cuda}, {torch.cuda.device_count()} GPU(s)" if torch.cuda.is_available() else "no CUDA device"
    runtimes = ", ".join(f"{EXTRAS[b][0]} {_installed(EXTRAS[b][0])}" for b in GRAPH_BACKENDS)
    return [f"geocd {__version__} in {Path(__file__).parent}",
            f"python {platform.python_version()} at {sys.executable}",
            f"torch {torch.__version__} ({cuda})",
            f"graph runtimes: {runtimes}",
            f"predict: {runtime_line(model_path(model), resolved, backend, precision)}",
            "model:", *(f"  {line}" for line in model_card(model))]


def _installed(distribution: str) -> str:
    """The installed version of ``distribution``, or ``not installed``."""
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "not installed"
