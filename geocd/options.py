"""The options of ``geocd train`` and of prediction, importable without torch so the CLI shows their defaults.

Each default is held here once: the library's and the command line's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from geocd.schema import SECOND, LandCover

if TYPE_CHECKING:
    import torch

    from geocd.data.radiometry import RadiometryMode

Backend = Literal["auto", "torch", "onnx", "openvino"]
"""What runs the network (:func:`geocd.inference.backends.build_runners`)."""
Precision = Literal["auto", "fp32", "bf16"]
"""OpenVINO's inference precision (:func:`geocd.inference.backends.openvino_precision`)."""
SEED_CLASS_WEIGHTS = tuple(weight for _, weight in sorted({
    LandCover.WATER: 2.0, LandCover.GROUND: 1.0, LandCover.LOW_VEGETATION: 2.0, LandCover.TREE: 2.0,
    LandCover.BUILDING: 1.0, LandCover.PLAYGROUND: 1.0}.items()))
"""Weights of the land-cover classes, in class-id order (as ``class_weights`` takes them)."""
FREEZABLE = ("encoder", "semantic", "change")
"""Parts of the network that training can keep as they start: the shared backbone, the land-cover head, the change head."""


@dataclass(frozen=True)
class TrainOptions:
    """Everything ``geocd train`` can be told."""

    backbone: str = "tf_efficientnet_lite0"
    pretrained: bool = True
    backbone_weights: Path | None = None
    lightweight: bool = True
    bands: tuple[int, ...] | None = None
    num_bands: int = 3
    tile_size: int = 256
    batch_size: int = 8
    max_epochs: int = 50
    val_every: int = 1
    epoch_length: int | None = None
    lr: float = 1e-3
    class_weights: tuple[float, ...] | None = None
    jitter: float = 0.1
    val_fraction: float = 0.2
    seed: int = 0
    accelerator: str = "auto"
    devices: str | int = "auto"
    strategy: str = "auto"
    num_nodes: int = 1
    num_workers: int = 2
    resume: bool = False
    pseudo_labels: Path | None = None
    init_from: Path | None = None
    landcover: tuple[Path, ...] = ()
    landcover_share: float = 0.5
    landcover_resolution_m: float | None = 0.5
    synthetic_share: float = 0.0
    invariance: float = 0.0
    freeze: tuple[str, ...] = ()
    extra_info: dict[str, Any] = field(default_factory=dict)

    @property
    def loss_weights(self) -> tuple[float, ...]:
        """The CE class weights: as given, else all 1 with pseudo labels (as the seed) and the seed's otherwise."""
        if self.class_weights is not None:
            return self.class_weights
        return (1.0,) * SECOND.num_landcover if self.pseudo_labels is not None else SEED_CLASS_WEIGHTS


@dataclass(frozen=True)
class PredictOptions:
    """Knobs of one prediction; ``None`` tile size and overlap come from the model.

    ``device`` is a name for :func:`geocd.inference.predict.resolve_device` or a device it
    resolved. ``batch_size`` ``None`` means 2 with ONNX Runtime on CPU, 1 with PyTorch on CPU
    (larger batches are slower per tile there, being memory-bound) and 8 on CUDA.
    ``num_workers`` tile-reading processes are forked (0: read in this process, a thread reading
    the next batch while the network runs; forked workers inherit this process's warning
    filters); ``None`` means 0 on CPU, where workers compete with the network for the cores, and
    2 on CUDA. The CPU defaults were measured on 2 cores (issue 18).
    ``radiometry`` says how stored pixel values become the model's input
    (:data:`geocd.data.radiometry.RadiometryMode`). ``backend`` runs the network
    (:func:`geocd.inference.backends.build_runners`) at ``precision`` (OpenVINO's; ``auto``: bf16 where
    the CPU supports it). ``scales`` are the input resizings whose
    probabilities are averaged (:func:`geocd.models.tta.predict_probabilities`).
    ``only`` keeps the changes whose before or after class is one of these land-cover class names
    (empty: every change); the others count as unchanged in every output. ``bands`` are 1-based
    indexes or band names (:func:`geocd.data.rasters.choose_bands`; of a STAC item, the assets to stack).
    ``align`` undoes the global shift measured between the dates (:mod:`geocd.data.alignment`)
    before the network sees the pair.
    """

    tile_size: int | None = None
    overlap: int | None = None
    tta: bool = False
    threshold: float = 0.5
    device: str | torch.device = "auto"
    batch_size: int | None = None
    num_workers: int | None = None
    bands: tuple[int | str, ...] | None = None
    radiometry: RadiometryMode = "auto"
    backend: Backend = "auto"
    precision: Precision = "auto"
    scales: tuple[float, ...] = (1.0,)
    only: tuple[str, ...] = ()
    align: bool = False
