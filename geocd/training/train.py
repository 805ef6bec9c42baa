"""``geocd train``: archive -> split by pair -> statistics -> Lightning Trainer -> geocd checkpoints.

The run folder receives ``last.safetensors`` and ``best.safetensors`` (geocd checkpoints,
best by the validation selection metric), ``lightning/last.ckpt`` (for ``--resume``),
``metrics.csv`` (Lightning's CSV log), ``split.json`` (which pair went where) and, when the
caller gives one, ``config.yaml`` (the run's resolved configuration, also in the checkpoints'
``info.config``).
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import rasterio
import yaml
from lightning.pytorch.callbacks import Callback, Checkpoint, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.utilities import rank_zero_only

from geocd.checkpoint import ModelMetadata, load_checkpoint, read_metadata, save_checkpoint
from geocd.data.archive import PairRecord, manifest_path, read_archive, read_landcover_archive, split_pairs
from geocd.data.rasters import choose_bands, open_raster
from geocd.errors import InputError
from geocd.models.pretrained import load_imagenet_weights
from geocd.models.config import NORMALISATION, ModelConfig
from geocd.options import FREEZABLE, TrainOptions
from geocd.progress import Progress
from geocd.schema import SECOND
from geocd.training.datamodule import ArchiveDataModule, band_statistics
from geocd.training.pseudo import read_provenance
from geocd.training.task import ChangeTask

LIGHTNING_NOISE = ("💡 Tip: ", "Loading `train_dataloader` to estimate number of stepping batches", "`Trainer.fit` stopped: ")
"""Starts of Lightning's info lines that do not help a geocd user (advertisements, internals)."""
LIGHTNING_NOISE_WARNINGS = (r"Experiment logs directory .* exists and is not empty",
                            r"`isinstance\(treespec, LeafSpec\)` is deprecated",
                            r"`ModelCheckpoint\(monitor='val/selection'\)` could not find the monitored key")
"""Lightning warnings that are spurious here: geocd writes split.json into the run folder before
Lightning's logger looks at it; the LeafSpec one is Lightning's own use of a newer torch; epochs
skipped by ``val_every`` have no validation score to monitor."""

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


@dataclass(frozen=True)
class TrainingData:
    """The data module of a run and what the checkpoints record about its data."""

    module: ArchiveDataModule
    train_records: list[PairRecord]
    val_records: list[PairRecord]
    bands: list[int]
    mean: list[float]
    std: list[float]
    pseudo_info: dict[str, Any]


class GeocdExport(Checkpoint):
    """After Lightning's checkpoints of each epoch: ``last.safetensors``, one summary line, and
    ``best.safetensors`` when ``best`` (a monitoring :class:`ModelCheckpoint`) took a new best.

    The checkpoints' metadata gets the network's own normalisation (a frozen encoder keeps its
    starting checkpoint's, also when resumed)."""

    def __init__(
        self, folder: Path, metadata: ModelMetadata, best: ModelCheckpoint, echo  # noqa: ANN001 - a print-like callable
    ) -> None:
        self.folder, self.metadata, self.best, self.echo = folder, metadata, best, echo
        self.exported_score: float | None = None

    def on_train_epoch_end(self, trainer: pl.Trainer, task: ChangeTask) -> None:
        validated = (trainer.current_epoch + 1) % (trainer.check_val_every_n_epoch or 1) == 0
        scores = {k.removeprefix("val/"): float(v) for k, v in trainer.callback_metrics.items()
                  if k.startswith("val/") and validated}
        info = {**self.metadata.info, "epoch": trainer.current_epoch + 1, "validation": scores}
        mean, std = (tuple(getattr(task.model, name).flatten().tolist()) for name in NORMALISATION)
        meta = replace(self.metadata, mean=mean, std=std, trained_classes=task.trained_classes(), info=info)
        best_score = None if self.best.best_model_score is None else float(self.best.best_model_score)
        improved = best_score != self.exported_score
        self.exported_score = best_score
        if not trainer.is_global_zero:
            return
        save_checkpoint(self.folder / "last.safetensors", task.model, meta)
        if improved:
            save_checkpoint(self.folder / "best.safetensors", task.model, meta)
        loss = trainer.callback_metrics.get("train/total")
        shown = " ".join(f"{k} {scores[k]:.3f}" for k in ("f1", "miou", "sek", "score") if k in scores)
        loss_text = f"loss {float(loss):.4f} " if loss is not None else ""
        mark = " (best)" if improved else ""
        result = f"val {shown}{mark}" if validated else "not validated"
        self.echo(f"epoch {trainer.current_epoch + 1}/{trainer.max_epochs}: {loss_text}{result}")

    def state_dict(self) -> dict[str, Any]:
        return {"exported_score": self.exported_score}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.exported_score = state_dict["exported_score"]


class StepProgress(Callback):
    """Reports each training epoch's steps (tiles' megapixels per second and the step's loss) through a :class:`Progress`."""

    def __init__(self, progress: Progress, step_pixels: int) -> None:
        self.progress, self.step_pixels = progress, step_pixels

    def on_train_epoch_start(self, trainer: pl.Trainer, task: ChangeTask) -> None:
        if trainer.is_global_zero:
            self.progress.start(int(trainer.num_training_batches), f"epoch {trainer.current_epoch + 1}/{trainer.max_epochs}",
                                unit="step")

    def on_train_batch_end(self, trainer: pl.Trainer, task: ChangeTask, outputs: Any, batch: Any, batch_idx: int) -> None:
        if trainer.is_global_zero:
            loss = outputs["loss"] if isinstance(outputs, Mapping) else outputs
            self.progress.advance(1, self.step_pixels, loss=float(loss))

    def on_train_epoch_end(self, trainer: pl.Trainer, task: ChangeTask) -> None:
        self.progress.close()


def train(
    archives: Sequence[str | os.PathLike[str]], output: str | os.PathLike[str], options: TrainOptions = TrainOptions(),
    echo=print, *, progress: Progress | None = None, config: Mapping[str, Any] | None = None,  # noqa: ANN001
) -> TrainResult:
    """Train a change model on the pairs of ``archives`` and write geocd checkpoints into ``output``.

    ``progress`` reports the steps of each epoch (default: none); ``config``, the run's resolved
    configuration as its caller reads it back (the CLI's option names), is written to
    ``output/config.yaml`` and recorded in the checkpoints' ``info.config``.
    """
    if options.batch_size < 2:
        raise InputError(None, "batch_size must be at least 2 for training (batch normalisation needs it)")
    if options.epoch_length is not None and options.epoch_length < options.batch_size:
        raise InputError(None, f"epoch_length {options.epoch_length} is less than one batch of {options.batch_size} tiles: "
                               f"no training step; give at least {options.batch_size}, or leave it out")
    if len(options.loss_weights) != SECOND.num_landcover:
        raise InputError(None, f"class_weights needs {SECOND.num_landcover} numbers, one per land-cover class")
    if options.max_epochs % options.val_every:
        raise InputError(None, f"val_every={options.val_every} must divide max_epochs={options.max_epochs}: "
                               "the last epoch is validated")
    if set(options.freeze) - set(FREEZABLE) or set(options.freeze) == set(FREEZABLE):
        raise InputError(None, f"freeze takes some of {', '.join(FREEZABLE)}, not {', '.join(options.freeze)}")
    if not options.resume and options.init_from is None and set(options.freeze) - ({"encoder"} if options.pretrained else set()):
        raise InputError(None, f"freezing {', '.join(options.freeze)} needs a starting checkpoint (init_from=FILE)"
                               + ("" if options.pretrained else " or, for the encoder, ImageNet weights"))
    if options.synthetic_share > 0 and not options.landcover:
        raise InputError(None, "synthetic_share needs land-cover archives (landcover=ARCHIVE) to make synthetic change pairs from")
    out = Path(output)
    if options.resume and not (out / "lightning" / "last.ckpt").is_file():
        raise InputError(out, "has no lightning/last.ckpt to resume from")
    if not options.resume and (out / "last.safetensors").exists():
        raise InputError(out, "already holds a training run (use resume=True to continue it, or another folder)")
    out.mkdir(parents=True, exist_ok=True)
    if config is not None:
        (out / "config.yaml").write_text(yaml.safe_dump(dict(config), sort_keys=False))
    data = build_datamodule(archives, options, rank_zero_only(echo))
    (out / "split.json").write_text(json.dumps({"seed": options.seed, "train": [r.name for r in data.train_records],
                                                "val": [r.name for r in data.val_records]}, indent=1))
    pl.seed_everything(options.seed, workers=True, verbose=False)
    task, backbone_init = build_task(data, options)
    metadata = ModelMetadata(
        task.model.config, bands=band_names(data.train_records[0], data.bands), mean=tuple(data.mean),
        std=tuple(data.std), schema=SECOND, tile_size=options.tile_size, resolution_m=ground_resolution(data.train_records),
        info={"archives": [os.fspath(a) for a in archives], "landcover_archives": [os.fspath(a) for a in options.landcover],
              "backbone_init": backbone_init, "train_pairs": [r.name for r in data.train_records],
              "val_pairs": [r.name for r in data.val_records],
              "semantic_labels": any(r.semantic for r in data.train_records),
              "class_weights": list(options.loss_weights), "synthetic_share": options.synthetic_share,
              "invariance": options.invariance, "frozen": list(options.freeze),
              **data.pseudo_info, **options.extra_info,
              **({"config": dict(config)} if config is not None else {})},
    )
    return fit(task, data.module, out, metadata, options, echo, progress or Progress("none"))


def build_datamodule(archives: Sequence[str | os.PathLike[str]], options: TrainOptions,
                     echo=print) -> TrainingData:  # noqa: ANN001 - a print-like callable
    """Read the archives, split them by pair, apply pseudo labels, and measure band statistics (pixel units).

    ``echo`` gets one line on the pseudo labels left unused, if any, and one on the tiles and steps of an epoch.
    """
    records = [record for archive in archives for record in read_archive(archive)]
    records += [r.as_pair() for archive in options.landcover for r in read_landcover_archive(archive)]
    train_records, val_records = split_pairs(records, options.val_fraction, options.seed)
    if not train_records or not val_records:
        raise InputError(archives[0], f"needs at least 2 pairs to split into training and validation (has {len(records)})")
    pseudo_info: dict[str, Any] = {}
    if options.pseudo_labels is not None:
        train_records, pseudo_info = with_pseudo_labels(records, train_records, val_records, options.pseudo_labels)
        unused = pseudo_info["pseudo_labels"]["unused_pairs"]
        if unused:
            echo(f"pseudo labels of {len(unused)} pair{'s' if len(unused) > 1 else ''} not trained on are left unused: "
                 + ", ".join(f"{name} ({where})" for name, where in unused.items()))
    with open_raster(train_records[0].before) as src:
        bands = list(choose_bands(src, options.bands, options.num_bands))
    module = ArchiveDataModule(train_records, val_records, len(bands), options.tile_size, options.batch_size,
                               options.num_workers, options.epoch_length, bands, options.seed,
                               options.landcover_share, options.landcover_resolution, options.synthetic_share,
                               options.invariance)
    mean, std = band_statistics(module.train_pairs)
    echo(f"{len(train_records)} training and {len(val_records)} validation pairs; each epoch {module.epoch_tiles} random "
         f"{options.tile_size}-pixel tiles: {module.epoch_tiles // options.batch_size} steps of {options.batch_size} "
         "(shared among devices)")
    return TrainingData(module, train_records, val_records, bands, mean, std, pseudo_info)


def build_task(data: TrainingData, options: TrainOptions) -> tuple[ChangeTask, str]:
    """The task with its starting weights (unless resuming), and how its backbone was initialised.

    A checkpoint's frozen encoder keeps the checkpoint's input normalisation, the features it was trained on.
    """
    config = ModelConfig(options.backbone, len(data.bands), SECOND.num_landcover, options.lightweight)
    task = ChangeTask(config, data.mean, data.std, options.lr, options.loss_weights, options.jitter, options.seed,
                      options.freeze)
    if options.resume:
        return task, "random"
    if options.init_from is not None:
        start = load_checkpoint(options.init_from)
        if start.model.config != config:
            raise InputError(options.init_from, f"is a {start.model.config} model, not the {config} being trained")
        task.model.load_state_dict(start.model.state_dict())
        if "encoder" not in options.freeze:
            task.model.set_normalisation(data.mean, data.std)
        return task, f"checkpoint {start.path} ({start.metadata.info.get('backbone_init', 'unknown')})"
    if options.pretrained:
        return task, load_imagenet_weights(task.model.encoder, options.backbone, len(data.bands), options.backbone_weights)
    return task, "random"


def fit(
    task: ChangeTask, data: ArchiveDataModule, output: Path, metadata: ModelMetadata, options: TrainOptions, echo,  # noqa: ANN001
    progress: Progress,
) -> TrainResult:
    """Run Lightning's Trainer, resuming from ``output/lightning/last.ckpt`` with ``options.resume``.

    Lightning's :class:`ModelCheckpoint` keeps ``lightning/last.ckpt`` and the best epoch by
    the validation selection metric (``lightning/best.ckpt``, weights only); each epoch
    :class:`StepProgress` reports its steps through ``progress`` and :class:`GeocdExport` writes
    the geocd checkpoints and one summary line through ``echo``. Lightning's
    :data:`LIGHTNING_NOISE` lines and :data:`LIGHTNING_NOISE_WARNINGS` are left out.
    """
    lightning = output / "lightning"
    best = ModelCheckpoint(dirpath=lightning, filename="best", monitor="val/selection", mode="max", save_top_k=1,
                           save_weights_only=True, save_on_train_epoch_end=True)
    with _without_lightning_noise():
        trainer = pl.Trainer(
            accelerator=options.accelerator, devices=options.devices, strategy=options.strategy, num_nodes=options.num_nodes,
            max_epochs=options.max_epochs, precision="16-mixed" if _uses_cuda(options.accelerator) else "32-true",
            logger=CSVLogger(output, name="", version=""), default_root_dir=output, enable_progress_bar=False,
            enable_model_summary=False, log_every_n_steps=1, num_sanity_val_steps=0,
            check_val_every_n_epoch=options.val_every,
            callbacks=[StepProgress(progress, options.batch_size * options.tile_size**2),
                       ModelCheckpoint(dirpath=lightning, save_last=True, save_top_k=0), best,
                       GeocdExport(output, metadata, best, echo)],
        )
        trainer.fit(task, datamodule=data, ckpt_path=lightning / "last.ckpt" if options.resume else None)
    scores = read_metadata(output / "best.safetensors").info["validation"] if trainer.is_global_zero else {}
    return TrainResult(output / "last.safetensors", output / "best.safetensors", scores, trainer.is_global_zero)


def with_pseudo_labels(
    records: Sequence[PairRecord], train_records: Sequence[PairRecord], val_records: Sequence[PairRecord],
    folder: str | os.PathLike[str],
) -> tuple[list[PairRecord], dict[str, Any]]:
    """Training records with the pairs of a pseudo-label folder in place of their same-named ones, and its provenance.

    Only training pairs take pseudo labels: those of validation pairs (which keep their ground
    truth, so a whole archive can be pseudo-labelled before the split is known), of test pairs of
    ``records`` and of pairs in none of them are left unused, listed in the provenance's
    ``unused_pairs`` (name: where it is). A training pair whose pseudo-labelled images differ
    is an :class:`InputError`.
    """
    provenance = read_provenance(folder)
    manifest = manifest_path(folder)
    pseudo = {r.name: r for r in read_archive(manifest)}
    where = ({r.name: "test split" for r in records}
             | {r.name: "validation split" for r in val_records} | {r.name: "training split" for r in train_records})
    by_name = {r.name: r for r in train_records}
    unused = {name: where.get(name, "in none of the training archives") for name in sorted(pseudo) if name not in by_name}
    for name in by_name.keys() & pseudo.keys():
        if (pseudo[name].before, pseudo[name].after) != (by_name[name].before, by_name[name].after):
            raise InputError(manifest, f"pair {name!r} ({where[name]}) names other images than the training pair of that name")
    info = {"pseudo_labels": {"folder": os.fspath(Path(folder).resolve()), "models": provenance.get("models", []),
                              "tta": provenance.get("tta"), "pairs": sorted(by_name.keys() & pseudo.keys()),
                              "unused_pairs": unused}}
    return [pseudo.get(r.name, r) for r in train_records], info


class _NoiseFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(LIGHTNING_NOISE)


@contextmanager
def _without_lightning_noise() -> Iterator[None]:
    """Leave out Lightning's :data:`LIGHTNING_NOISE` info lines and :data:`LIGHTNING_NOISE_WARNINGS` meanwhile."""
    loggers = [logging.getLogger(name) for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero")]
    noise = _NoiseFilter()
    for logger in loggers:
        logger.addFilter(noise)
    try:
        with warnings.catch_warnings():
            for message in LIGHTNING_NOISE_WARNINGS:
                warnings.filterwarnings("ignore", message=message)
            yield
    finally:
        for logger in loggers:
            logger.removeFilter(noise)


def _uses_cuda(accelerator: str) -> bool:
    import torch

    return accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available())
