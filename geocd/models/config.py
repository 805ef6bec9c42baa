"""The network's contract, importable without PyTorch: how to rebuild it (:class:`ModelConfig`), the names of
its normalisation buffers and what it returns (:class:`ChangeLogits`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, NamedTuple

NORMALISATION = ("mean", "std")
"""Names of the per-band normalisation buffers in the network's state dict."""


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild the network's architecture (``backbone``: a ``timm`` model name)."""

    backbone: str
    in_channels: int = 3
    num_classes: int = 6
    lightweight: bool = False

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready dict."""
        return asdict(self)


class ChangeLogits(NamedTuple):
    """Network outputs: ``sem_before``/``sem_after`` ``[B,K,H,W]``, ``change`` ``[B,1,H,W]``; PyTorch tensors
    from the network, numpy arrays from an inference runner (:mod:`geocd.inference.backends`)."""

    sem_before: Any
    sem_after: Any
    change: Any
