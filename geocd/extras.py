"""The optional parts of geocd: each is an install extra (``setup.cfg``), and its absence one line naming it.

``predict`` needs none of them: without a graph runtime the network runs in PyTorch. The extras add
ONNX Runtime (``onnx``) or OpenVINO (``openvino``), both running the ONNX graph that ``onnx`` lets
PyTorch export, and Dask's distributed scheduler (``cluster``) for ``predict-archive``.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from types import ModuleType

from geocd.errors import InputError

EXTRAS = {"onnx": ("onnxruntime", "onnx"), "openvino": ("openvino", "onnx"), "cluster": ("distributed",)}
"""The modules each extra brings, the first one the extra is for."""


def missing(extra: str) -> str | None:
    """The first module of ``extra`` that is not installed, or None when the extra is; nothing is imported
    (a present runtime that a run does not use costs no import time)."""
    return next((name for name in EXTRAS[extra] if not _installed(name)), None)


def _installed(name: str) -> bool:
    """Whether top-level module ``name`` can be found (one already imported, or marked unimportable by a
    ``None`` in ``sys.modules``, answers for itself)."""
    if name in sys.modules:
        return sys.modules[name] is not None
    return importlib.util.find_spec(name) is not None


def install_hint(extra: str) -> str:
    """How to install ``extra``: ``pip install "geocd[EXTRA]"``."""
    return f'pip install "geocd[{extra}]"'


def require(extra: str, purpose: str) -> ModuleType:
    """The main module of ``extra`` (its first); a missing module of it is an :class:`InputError`
    ``PURPOSE needs MODULE, which is not installed (pip install "geocd[EXTRA]")``."""
    absent = missing(extra)
    if absent is not None:
        raise InputError(None, f"{purpose} needs {absent}, which is not installed ({install_hint(extra)})")
    return importlib.import_module(EXTRAS[extra][0])
