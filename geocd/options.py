"""The options of ``geocd train`` and of prediction, importable without torch so the CLI shows their defaults.

Each option is held here once, as a field: its default, its help, and so its flag, its ``--config`` key and its
key in a saved configuration (:func:`option`).
"""

from __future__ import annotations

from dataclasses import MISSING, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args

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
Freezable = Literal["encoder", "semantic", "change"]
FREEZABLE: tuple[str, ...] = get_args(Freezable)
"""Parts of the network that training can keep as they start: the shared backbone, the land-cover head, the change head."""


def option(default: Any = MISSING, help: str = "", **spoken: Any) -> Any:  # noqa: A002 - the flag's help
    """A field of an options dataclass: its default and how the command line speaks it.

    The field's name is its flag (``--tile-size``), its ``--config`` key and its key in a saved
    configuration; its type and ``help`` make the flag (``geocd.cli.options.options_from_fields``).
    ``spoken`` says more where the type does not: ``off`` the name of a boolean's negative flag
    (``full-heads``); ``min``, ``max`` and ``min_open`` a number's range; ``path`` ``"file"`` or
    ``"dir"`` for a path; ``syntax`` the comma-separated text the flag takes (``bands``, ``numbers``,
    ``scales``, ``radiometry``, ``devices``); ``metavar``; ``flag=False`` for an option of the
    library only. A ``dict`` default is copied for each instance.
    """
    metadata = {"help": help, **spoken}
    if isinstance(default, dict):
        return field(default_factory=lambda: dict(default), metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass(frozen=True)
class TrainOptions:
    """Everything ``geocd train`` can be told; each field is also its flag and ``--config`` key (:func:`option`)."""

    backbone: str = option("tf_efficientnet_lite0", "Any timm backbone with features_only (e.g. hrnet_w18, resnet50).")
    pretrained: bool = option(True, "Start from ImageNet weights (offline package, --backbone-weights, or timm's hub).",
                              off="no-pretrained")
    backbone_weights: Path | None = option(None, "ImageNet weights file with timm key names.", path="file")
    init_from: Path | None = option(
        None, "Start from a geocd checkpoint of the same architecture (fine-tuning; 'default': the bundled model), "
              "instead of ImageNet weights.", path="file")
    lightweight: bool = option(True, "Depthwise-separable convolutions in the heads.", off="full-heads")
    bands: tuple[int, ...] | None = option(None, "Bands to use, 1-based, comma-separated. Default: the first 3.",
                                           syntax="bands")
    tile_size: int = option(256, "Training tile size in pixels.", min=32)
    batch_size: int = option(8, "Tiles per step (per device).", min=2)
    max_epochs: int = option(50, "Epochs to train.", min=1)
    epoch_length: int | None = option(
        None, "Random tiles per epoch (at least --batch-size). Default: as many as fit side by side, at least 4 "
              "steps' worth.", min=1)
    lr: float = option(1e-3, "Backbone learning rate (heads get 10x).")
    class_weights: tuple[float, ...] | None = option(
        None, f"CE weights of classes 1..6. Default: {','.join(f'{w:g}' for w in SEED_CLASS_WEIGHTS)} "
              "(1 for all with --pseudo-labels).", syntax="numbers")
    pseudo_labels: Path | None = option(None, "Folder from geocd pseudo-label for the land-cover loss.", path="dir")
    landcover: tuple[Path, ...] = option(
        (), "Land-cover archive (from geocd import-landcover) training the land-cover head; repeatable.")
    landcover_share: float = option(0.5, "Share of training tiles drawn from land-cover archives.", min=0, max=1)
    landcover_resolution: float | None = option(0.5, "Land-cover images finer than this (m) are resampled to it.",
                                                min=0, min_open=True)
    synthetic_share: float = option(
        0.0, "Share of land-cover tiles made into synthetic change pairs (objects pasted, removed or destroyed; "
             "unpaired images).", min=0, max=1)
    invariance: float = option(
        0.0, "Share of change tiles whose one date gets differences that are not change (colour, haze, "
             "JPEG, 1-2 px misregistration...); with --synthetic-share also adds unchanged pairs.", min=0, max=1)
    freeze: tuple[Freezable, ...] = option(
        (), "Keep this part as --init-from (or ImageNet, for the encoder) gave it: encoder, semantic (the "
            "land-cover head) or change (the change head); repeatable. E.g. --freeze encoder --freeze change "
            "retrains only the land-cover head and leaves every change map exactly as it was.")
    jitter: float = option(0.1, "Brightness/contrast jitter per date.", min=0)
    val_every: int = option(
        1, "Validate every N epochs (N must divide --max-epochs); best.safetensors is the best validated epoch.", min=1)
    val_fraction: float = option(0.2, "Pairs held out per dataset.", min=0, max=1)
    seed: int = option(0, "Seed of the split, the tiles drawn and the initial weights.")
    accelerator: str = option("auto", "Lightning accelerator: auto, cpu, gpu.")
    devices: str | int = option("auto", "Lightning devices: auto, N, or a list like 0,1.", syntax="devices")
    strategy: str = option("auto", "Lightning strategy, e.g. ddp for several GPUs or nodes.")
    num_nodes: int = option(1, "Machines to train on.", min=1)
    num_workers: int = option(2, "Tile-reading worker processes.", min=0)
    resume: bool = option(False, "Continue the run in OUTPUT from its last epoch.")
    extra_info: dict[str, Any] = option({}, "Entries added to the checkpoints' info.", flag=False)

    @property
    def num_bands(self) -> int:
        """The number of input bands: as many as ``bands`` lists, else 3."""
        return len(self.bands) if self.bands else 3

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
    resolved. ``batch_size`` ``None`` means 2 with ONNX Runtime or OpenVINO on CPU (OpenVINO: at least one
    tile per stream it runs in parallel), 1 with PyTorch on CPU
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
    before the network sees the pair. Each field is also a flag of ``predict``, ``predict-archive``,
    ``evaluate`` and ``pseudo-label`` (:func:`option`).
    """

    tta: bool = option(False, "Average over the 6 dihedral flips/rotations (6x slower).")
    only: tuple[str, ...] = option(
        (), "Keep only the changes from or to this land-cover class (repeatable; e.g. --only building); "
            "the others count as unchanged.", metavar="CLASS")
    threshold: float = option(0.5, "Change probability cut-off.", min=0, max=1)
    bands: tuple[int | str, ...] | None = option(
        None, "Bands to use, 1-based, comma-separated, in the model's order (red,green,blue for the default "
              "model; 3,2,1 on a B02,B03,B04,B08 Sentinel-2 stack), or band names: of a STAC item, asset keys "
              "or eo:bands names (red,green,blue or B04,B03,B02). Default: the first the model needs.",
        syntax="band_names")
    radiometry: RadiometryMode = option(
        "auto", "How pixel values become model input: auto (8-bit pairs as they are, anything else stretched "
                "linearly from its 2-98 % percentiles, one range for dates stored alike), stretch (always), "
                "none (values as stored), or LOW,HIGH (this range of scaled values -> 0-255 in both dates, "
                "e.g. 0,3000 for Sentinel-2 L1C).", syntax="radiometry")
    scales: tuple[float, ...] = option(
        (1.0,), "Also run the network on each tile resized by these factors and average the probabilities, "
                "e.g. 1,0.5 (measured worse than 1 alone on the default model's validation set). Default: 1.",
        syntax="scales")
    tile_size: int | None = option(None, "Tile size in pixels. Default: the model's training tile size.", min=32)
    overlap: int | None = option(None, "Tile overlap in pixels. Default: 1/8 of the tile.", min=0)
    device: str | torch.device = option("auto", "auto, cpu, cuda or cuda:N.")
    backend: Backend = option(
        "auto", "Network runtime: openvino (OpenVINO, CPU) or onnx (ONNX Runtime, CPU), both running the ONNX "
                "graph exported once per model and cached; torch; or auto (openvino, else onnx, on CPU when "
                "installed; torch on CUDA).")
    precision: Precision = option(
        "auto", "OpenVINO's precision: bf16 needs a CPU with AMX or AVX-512 BF16; auto is bf16 there, fp32 "
                "elsewhere. The other backends run fp32.")
    batch_size: int | None = option(
        None, "Tiles per forward pass. Default: 2 with openvino (or one per OpenVINO stream where it runs more) or "
              "onnx on CPU, 1 with torch on CPU, 8 on CUDA.", min=1)
    num_workers: int | None = option(None, "Tile-reading worker processes. Default: 0 on CPU, 2 on CUDA.", min=0)
    align: bool = option(
        False, "Measure the global shift between the dates and undo it, to a fraction of a pixel, before "
               "predicting (predict always measures it, and warns above one pixel).")
