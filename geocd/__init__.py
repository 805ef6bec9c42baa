"""geocd: semantic change detection between two georeferenced images.

The public functions are loaded on first use (:func:`__getattr__`), so importing :mod:`geocd`
itself stays cheap: torch and torchgeo are imported by the submodules that need them.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "predict": "geocd.inference.predict",
    "vectorize": "geocd.vector.pipeline",
    "train": "geocd.training.train",
    "evaluate": "geocd.evaluation",
}
__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    """``geocd.predict``, ``geocd.vectorize``, ``geocd.train`` and ``geocd.evaluate``, imported when first asked for."""
    if name not in _EXPORTS:
        raise AttributeError(f"module 'geocd' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
