"""``geocd train``: archive -> split by pair -> statistics -> Lightning Trainer -> geocd checkpoints.

The run folder receives ``last.safetensors`` and ``best.safetensors`` (geocd checkpoints,
best by the validation selection metric), ``lightning/last.ckpt`` (for ``--resume``),
``metrics.csv`` (Lightning's CSV log) and ``split.json`` (which pair went where).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import rasterio
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger

from geocd.checkpoint import ModelMetadata, load_checkpoint, read_metadata, save_checkpoint
from geocd.data.archive import LandCoverRecord, PairRecord, manifest_path, read_archive, read_landcover_archive, split_pairs
from geocd.data.rasters import choose_bands, open_raster
from geocd.errors import InputError
from geocd.models.pretrained import load_imagenet_weights
from geocd.models.siamese import ModelConfig
from geocd.schema import SECOND
from geocd.training.datamodule import ArchiveDataModule, band_statistics
from geocd.training.losses import SEED_CLASS_WEIGHTS
from geocd.training.pseudo import read_provenance
from geocd.training.task import ChangeTask


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
    num_workers: int = 0
    resume: bool = False
    pseudo_labels: Path | None = None
    init_from: Path | None = None
    landcover: tuple[Path, ...] = ()
    landcover_share: float = 0.5
    landcover_resolution_m: float | None = 0.5
    extra_info: dict[str, Any] = field(default_factory=dict)

    @property
    def loss_weights(self) -> tuple[float, ...]:
        """The CE class weights: as given, else all 1 with pseudo labels (as the seed) and the seed's otherwise."""
        if self.class_weights is not None:
            return self.class_weights
        return (1.0,) * SECOND.num_landcover if self.pseudo_labels is not None else SEED_CLASS_WEIGHTS


@dataclass(frozen=True)
class TrainResult:
    """Where the checkpoints went and the best validation scores (on the main process of a DDP run)."""

    last: Path
    best: Path
    best_scores: dict[str, float]
    main_process: bool = True


def band_names(record: PairRecord, bands: list[int]) -> tuple[str, ...]:
    """Names of the chosen bands from the first pair's colour interpretation or descriptions."""
    with rasterio.open(record.before) as src:
        names = []
        for b in bands:
            description = src.descriptions[b - 1]
            interp = src.colorinterp[b - 1].name
            names.append(description or (interp if interp not in ("undefined", "gray") else f"band{b}"))
    return tuple(names)


def ground_resolution(records: list[PairRecord]) -> float | None:
    """Median pixel size in metres of the 'before' rasters (None when in degrees)."""
    sizes = []
    for record in records:
        with rasterio.open(record.before) as src:
            if not src.crs.is_projected:
                return None
            sizes.append(src.res[0] * src.crs.linear_units_factor[1])
    sizes.sort()
    return sizes[len(sizes) // 2]


class GeocdCheckpoints(Callback):
    """After each epoch: write ``last.safetensors``, ``best.safetensors`` when improved, and one summary line."""

    def __init__(self, folder: Path, metadata: ModelMetadata, echo) -> None:  # noqa: ANN001 - a print-like callable
        self.folder, self.metadata, self.echo = folder, metadata, echo
        best = folder / "best.safetensors"
        self.best_scores: dict[str, float] = read_metadata(best).info["validation"] if best.is_file() else {}
        self.best = self.best_scores.get("selection", -math.inf)

    def on_train_epoch_end(self, trainer: pl.Trainer, task: ChangeTask) -> None:
        scores = {k.removeprefix("val/"): float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")}
        info = {**self.metadata.info, "epoch": trainer.current_epoch + 1, "validation": scores}
        meta = replace(self.metadata, trained_classes=task.trained_classes(), info=info)
        if not trainer.is_global_zero:
            return
        save_checkpoint(self.folder / "last.safetensors", task.model, meta)
        improved = scores["selection"] > self.best
        if improved:
            self.best, self.best_scores = scores["selection"], scores
            save_checkpoint(self.folder / "best.safetensors", task.model, meta)
        loss = trainer.callback_metrics.get("train/total")
        shown = " ".join(f"{k} {scores[k]:.3f}" for k in ("f1", "miou", "sek", "score") if k in scores)
        loss_text = f"loss {float(loss):.4f} " if loss is not None else ""
        self.echo(f"epoch {trainer.current_epoch + 1}/{trainer.max_epochs}: {loss_text}val {shown}{' (best)' if improved else ''}")


def train(
    archives: Sequence[str | os.PathLike[str]], output: str | os.PathLike[str], options: TrainOptions = TrainOptions(), echo=print  # noqa: ANN001
) -> TrainResult:
    """Train a change model on the pairs of ``archives`` and write geocd checkpoints into ``output``."""
    if options.batch_size < 2:
        raise InputError(None, "--batch-size must be at least 2 for training (batch normalisation needs it)")
    if len(options.loss_weights) != SECOND.num_landcover:
        raise InputError(None, f"--class-weights needs {SECOND.num_landcover} numbers, one per land-cover class")
    out = Path(output)
    resume_from = out / "lightning" / "last.ckpt"
    if options.resume and not resume_from.is_file():
        raise InputError(out, "has no lightning/last.ckpt to resume from")
    if not options.resume and (out / "last.safetensors").exists():
        raise InputError(out, "already holds a training run (use --resume to continue it, or another folder)")
    out.mkdir(parents=True, exist_ok=True)
    records = [record for archive in archives for record in read_archive(archive)]
    records += [landcover_pair(r) for archive in options.landcover for r in read_landcover_archive(archive)]
    train_records, val_records = split_pairs(records, options.val_fraction, options.seed)
    if not train_records or not val_records:
        raise InputError(archives[0], f"needs at least 2 pairs to split into training and validation (has {len(records)})")
    pseudo_info: dict[str, Any] = {}
    if options.pseudo_labels is not None:
        train_records, pseudo_info = with_pseudo_labels(train_records, val_records, options.pseudo_labels)
    with open_raster(train_records[0].before) as src:
        bands = choose_bands(src, options.bands, options.num_bands)
    mean, std = band_statistics(train_records, bands)
    (out / "split.json").write_text(json.dumps({"seed": options.seed, "train": [r.name for r in train_records],
                                                "val": [r.name for r in val_records]}, indent=1))
    pl.seed_everything(options.seed, workers=True, verbose=False)
    config = ModelConfig(options.backbone, len(bands), SECOND.num_landcover, options.lightweight)
    task = ChangeTask(config, mean, std, options.lr, options.loss_weights, options.jitter, options.seed)
    backbone_init = "random"
    if options.init_from is not None and not options.resume:
        start = load_checkpoint(options.init_from)
        if start.model.config != config:
            raise InputError(options.init_from, f"is a {start.model.config} model, not the {config} being trained")
        task.model.load_state_dict(start.model.state_dict())
        backbone_init = f"checkpoint {options.init_from} ({start.metadata.info.get('backbone_init', 'unknown')})"
    elif options.pretrained and not options.resume:
        backbone_init = load_imagenet_weights(task.model.encoder, options.backbone, len(bands), options.backbone_weights)
    data = ArchiveDataModule(train_records, val_records, len(bands), options.tile_size, options.batch_size,
                             options.num_workers, options.epoch_length, list(bands), options.seed,
                             options.landcover_share, options.landcover_resolution_m)
    metadata = ModelMetadata(
        config, bands=band_names(train_records[0], bands), mean=tuple(mean), std=tuple(std), schema=SECOND,
        tile_size=options.tile_size, resolution_m=ground_resolution(train_records),
        info={"archives": [os.fspath(a) for a in archives], "landcover_archives": [os.fspath(a) for a in options.landcover],
              "backbone_init": backbone_init, "train_pairs": [r.name for r in train_records],
              "val_pairs": [r.name for r in val_records], "semantic_labels": any(r.semantic for r in train_records),
              "class_weights": list(options.loss_weights), **pseudo_info, **options.extra_info},
    )
    checkpoints = GeocdCheckpoints(out, metadata, echo)
    trainer = pl.Trainer(
        accelerator=options.accelerator, devices=options.devices, strategy=options.strategy, num_nodes=options.num_nodes,
        max_epochs=options.max_epochs, precision="16-mixed" if _uses_cuda(options.accelerator) else "32-true",
        logger=CSVLogger(out, name="", version=""), default_root_dir=out, enable_progress_bar=False,
        enable_model_summary=False, log_every_n_steps=1, num_sanity_val_steps=0,
        callbacks=[checkpoints, ModelCheckpoint(dirpath=out / "lightning", save_last=True, save_top_k=0)],
    )
    trainer.fit(task, datamodule=data, ckpt_path=resume_from if options.resume else None)
    return TrainResult(out / "last.safetensors", out / "best.safetensors", checkpoints.best_scores, trainer.is_global_zero)


def with_pseudo_labels(
    train_records: Sequence[PairRecord], val_records: Sequence[PairRecord], folder: str | os.PathLike[str]
) -> tuple[list[PairRecord], dict[str, Any]]:
    """Training records with the pairs of a pseudo-label folder in place of their same-named ones, and its provenance.

    Validation pairs keep their ground truth: their pseudo labels are left unused (and listed
    in the provenance), so a whole archive can be pseudo-labelled before the split is known.
    A pseudo-labelled pair in none of the archives, or whose images differ from the training
    pair's, is an :class:`InputError`.
    """
    provenance = read_provenance(folder)
    manifest = manifest_path(folder)
    pseudo = {r.name: r for r in read_archive(manifest)}
    by_name = {r.name: r for r in train_records}
    validation = {r.name for r in val_records}
    unused = sorted(name for name in pseudo if name in validation)
    for name, record in pseudo.items():
        if name in validation:
            continue
        if name not in by_name:
            raise InputError(manifest, f"pseudo-labels pair {name!r}, which is in none of the training archives")
        if (record.before, record.after) != (by_name[name].before, by_name[name].after):
            raise InputError(manifest, f"pair {name!r} names other images than the training pair of that name")
    info = {"pseudo_labels": {"folder": os.fspath(Path(folder).resolve()), "models": provenance.get("models", []),
                              "tta": provenance.get("tta"), "pairs": sorted(set(pseudo) - set(unused)),
                              "unused_validation_pairs": unused}}
    return [pseudo.get(r.name, r) for r in train_records], info


def landcover_pair(record: LandCoverRecord) -> PairRecord:
    """A single-date land-cover image as a pair record (the image as both dates, labels in ``label_before``)."""
    return PairRecord(name=record.name, before=record.image, after=record.image, label_before=record.landcover,
                      dataset=record.dataset, split=record.split)


def _uses_cuda(accelerator: str) -> bool:
    import torch

    return accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available())
