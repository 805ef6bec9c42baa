"""The Siamese semantic change network, its heads, and test-time augmentation.

The network's contract (:mod:`geocd.models.config`) is imported at once; the network and test-time
augmentation on first use, so a prediction by a graph runtime never imports PyTorch.
"""

from importlib import import_module
from typing import Any

from geocd.models.config import ChangeLogits, ModelConfig

_LAZY = {"SiameseChangeNet": "geocd.models.siamese", "ChangeProbabilities": "geocd.models.tta",
         "predict_probabilities": "geocd.models.tta"}

__all__ = ["ChangeLogits", "ChangeProbabilities", "ModelConfig", "SiameseChangeNet", "predict_probabilities"]


def __getattr__(name: str) -> Any:  # noqa: ANN401 - a class or function of this package
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(_LAZY[name]), name)
