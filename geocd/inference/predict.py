"""Predict a change raster for one scene pair: read pair -> tile -> model -> stitch -> write.

Orchestration only: the pair dataset (``geocd.data.pair``), TorchGeo's ``GridGeoSampler``,
the models with test-time augmentation (``geocd.models.tta``) and the streaming stitcher
(``geocd.inference.stitch``) do the work. The output raster follows ``geocd.changemap``.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import rasterio
import torch
from rasterio.errors import RasterioIOError
from rasterio.windows import Window
from torch.utils.data import DataLoader, Dataset, default_collate
from torchgeo.samplers import GridGeoSampler

from geocd.atomic import atomic_output, check_output_path, check_outputs, write_failure
from geocd.changemap import (
    BANDS, NODATA, PROBABILITY_SCALE, ChangeMapInfo, encode_probability, is_changed, valid_threshold,
)
from geocd.checkpoint import LoadedModel
from geocd.data.pair import PairDataset
from geocd.data.radiometry import RadiometryMode, check_target
from geocd.data.rasters import Grid
from geocd.errors import GeocdError, InputError, OutputError
from geocd.inference.backends import Backend, Runner, build_runners
from geocd.inference.stitch import FinishedRows, RowStreamStitcher
from geocd.models.tta import predict_probabilities
from geocd.progress import Progress
from geocd.report import REPORT_KEY, build_report, write_report

RASTER_BLOCK = 256
RASTER_SUFFIXES = (".tif", ".tiff")
LANDCOVER_BANDS = ("landcover_before", "landcover_after")


@dataclass(frozen=True)
class PredictOptions:
    """Knobs of one prediction; ``None`` tile size and overlap come from the model.

    ``batch_size`` ``None`` means 1 on CPU (larger batches are slower per tile there, being
    memory-bound) and 8 on CUDA. ``radiometry`` says how stored pixel values become the
    model's input (:data:`geocd.data.radiometry.RadiometryMode`). ``backend`` runs the
    network (:func:`geocd.inference.backends.build_runners`).
    """

    tile_size: int | None = None
    overlap: int | None = None
    tta: bool = False
    threshold: float = 0.5
    device: str = "auto"
    batch_size: int | None = None
    num_workers: int = 0
    bands: tuple[int, ...] | None = None
    radiometry: RadiometryMode = "auto"
    overwrite: bool = False
    backend: Backend = "auto"


@dataclass(frozen=True)
class ChangeRasterResult:
    """What :func:`predict_change_raster` did, and the tile size, overlap (pixels) and device it used."""

    path: Path
    tiles: int
    megapixels: float
    seconds: float
    model_seconds: float
    tile_size: int
    overlap: int
    device: str


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when available; ``cpu``/``cuda``/``cuda:N`` are checked."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise InputError(None, f"--device {name!r} is not a device (use auto, cpu, cuda or cuda:N)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InputError(None, f"--device {name} asked for CUDA, but no CUDA device is available")
    return device


def check_ensemble(models: Sequence[LoadedModel]) -> None:
    """Members of an ensemble must agree on bands, classes and trained classes."""
    first = models[0].metadata
    for other in models[1:]:
        meta = other.metadata
        for what, a, b in (
            ("input bands", first.config.in_channels, meta.config.in_channels),
            ("input radiometry", first.radiometry, meta.radiometry),
            ("class schema", first.schema, meta.schema),
            ("trained land-cover classes", first.trained_classes, meta.trained_classes),
        ):
            if a != b:
                raise InputError(other.path, f"{what} differ from those of {models[0].path}; cannot ensemble them")


def predict_change_raster(
    before: str | os.PathLike[str],
    after: str | os.PathLike[str],
    models: Sequence[LoadedModel],
    raster: str | os.PathLike[str],
    options: PredictOptions = PredictOptions(),
    progress: Progress | None = None,
    landcover: str | os.PathLike[str] | None = None,
) -> ChangeRasterResult:
    """Write the change raster of a pair to ``raster`` (which must not exist; the caller makes it atomic).

    With ``landcover``, also write both dates' land-cover maps there (2 uint8 bands, trained
    classes only, nodata 255 outside the valid area). Peak memory is bounded by the tile size
    and the scene width, not by the scene size.
    """
    start = time.perf_counter()
    check_ensemble(models)
    meta = models[0].metadata
    if landcover is not None and not meta.landcover_trained:
        raise InputError(models[0].path, "has untrained land-cover heads, so it cannot write a land-cover map")
    progress = progress or Progress("none")
    device = resolve_device(options.device)
    tile = options.tile_size or meta.tile_size
    overlap = options.overlap if options.overlap is not None else tile // 8
    if not 0 <= overlap < tile:
        raise InputError(None, f"--overlap {overlap} must be at least 0 and less than the tile size {tile}")
    if not valid_threshold(options.threshold):
        raise InputError(None, f"--threshold {options.threshold} must be in (0, 1]")
    check_target(meta.radiometry, models[0].path)
    dataset = PairDataset(before, after, meta.config.in_channels, options.bands, min_extent=tile,
                          radiometry=options.radiometry)
    if not dataset.has_valid_pixels():
        raise InputError(after, f"no pixel is valid in both {Path(before).name} and {Path(after).name} where they overlap")
    sampler = GridGeoSampler(dataset, tile, tile - overlap)
    windows = [dataset.window_of(query) for query in sampler]
    loader = DataLoader(
        _ErrorsAsSamples(dataset), batch_size=options.batch_size or (8 if device.type == "cuda" else 1), sampler=sampler,
        num_workers=options.num_workers, collate_fn=_collate_or_error, pin_memory=device.type == "cuda",
    )
    nets = build_runners(models, device, options.backend, tile)
    trained = list(meta.trained_classes)
    channels = 1 + 2 * len(trained)
    info = ChangeMapInfo(
        threshold=options.threshold, schema=meta.schema, trained_classes=meta.trained_classes,
        models=tuple(str(m.path) for m in models), inputs=(os.fspath(before), os.fspath(after)),
        extra={"tta": str(options.tta).lower(), "radiometry": _radiometry_tag(options.radiometry, dataset)},
    )
    model_seconds = 0.0
    with contextlib.ExitStack() as outputs:
        dst = outputs.enter_context(open_output_raster(raster, dataset.grid, BANDS, info))
        cover = outputs.enter_context(open_output_raster(landcover, dataset.grid, LANDCOVER_BANDS, info)) if landcover else None
        for out in filter(None, (dst, cover)):
            write_nodata_outside(out, dataset.overlap)
        sink = _RowWriter(dst, dataset.overlap, trained, options.threshold, cover)
        stitcher = RowStreamStitcher(windows, dataset.overlap, channels, overlap, sink)
        progress.start(len(windows), "predicting tiles")
        for batch in loader:
            if isinstance(batch, GeocdError):
                raise batch
            t0 = time.perf_counter()
            probs = _forward(nets, batch, device, options.tta, trained)
            model_seconds += time.perf_counter() - t0
            for i, (row, col) in enumerate(batch["window"].tolist()):
                stitcher.add(Window(col, row, tile, tile), probs[i], batch["valid"][i].numpy())
            progress.advance(len(probs), len(probs) * (tile - overlap) ** 2)
        progress.close()
    if not stitcher.complete:
        raise RuntimeError("stitching ended with rows not written")
    megapixels = dataset.overlap.width * dataset.overlap.height / 1e6
    return ChangeRasterResult(Path(raster), len(windows), megapixels, time.perf_counter() - start, model_seconds,
                              tile, overlap, str(device))


def _radiometry_tag(mode: RadiometryMode, dataset: PairDataset) -> str:
    """JSON of the radiometry applied to each date (the ``GEOCD_RADIOMETRY`` tag)."""
    before, after = (s.to_dict() for s in dataset.stretches)
    return json.dumps({"mode": mode if isinstance(mode, str) else list(mode), "before": before, "after": after})


class _ErrorsAsSamples(Dataset):
    """A dataset whose :class:`GeocdError` is returned as the sample instead of raised.

    PyTorch re-raises a worker's exception as a new one built from its traceback text, which
    loses the error's file and problem; a returned error is pickled whole to the main process.
    """

    def __init__(self, dataset: PairDataset) -> None:
        self.dataset = dataset

    def __getitem__(self, query: object) -> dict | GeocdError:
        try:
            return self.dataset[query]
        except GeocdError as error:
            return error


def _collate_or_error(samples: list[dict | GeocdError]) -> dict | GeocdError:
    """The batch of ``samples``, or the first error among them."""
    errors = [s for s in samples if isinstance(s, GeocdError)]
    return errors[0] if errors else default_collate(samples)


def _forward(nets: Sequence[Runner], batch: dict, device: torch.device, tta: bool, trained: list[int]) -> np.ndarray:
    """Stacked probabilities ``[B, 1 + 2T, h, w]``: change, then the trained classes of each date."""
    before = batch["image_before"].to(device, non_blocking=True)
    after = batch["image_after"].to(device, non_blocking=True)
    amp = torch.autocast("cuda", dtype=torch.float16) if device.type == "cuda" else contextlib.nullcontext()
    with amp:
        out = predict_probabilities(nets, before, after, tta=tta)
    channels = [out.change]
    if trained:
        heads = [c - 1 for c in trained]
        channels += [out.sem_before[:, heads], out.sem_after[:, heads]]
    return torch.cat(channels, dim=1).float().cpu().numpy()


@contextlib.contextmanager
def open_output_raster(path: str | os.PathLike[str], grid: Grid, bands: Sequence[str], info: ChangeMapInfo):  # noqa: ANN201
    """Create a tiled, compressed uint8 GeoTIFF on ``grid`` with nodata 255 and geocd tags.

    A ``change_probability`` band gets the GDAL scale 1/254 (see :mod:`geocd.changemap`).
    """
    profile = dict(
        driver="GTiff", width=grid.width, height=grid.height, count=len(bands), dtype="uint8", nodata=NODATA,
        crs=grid.crs, transform=grid.transform, tiled=True, blockxsize=RASTER_BLOCK, blockysize=RASTER_BLOCK,
        compress="deflate", bigtiff="if_safer",
    )
    try:
        dst = rasterio.open(path, "w", **profile)
    except RasterioIOError as error:
        raise write_failure(path, error) from None
    with dst:
        dst.descriptions = tuple(bands)
        dst.scales = tuple(1.0 / PROBABILITY_SCALE if b == "change_probability" else 1.0 for b in bands)
        dst.update_tags(**info.to_tags())
        yield dst
    _check_written(path)


def _check_written(path: str | os.PathLike[str]) -> None:
    """Read back every block of a closed raster: GDAL only logs write errors at closing (a full disk)."""
    try:
        with rasterio.open(path) as src:
            for _, window in src.block_windows(1):
                src.read(window=window)
    except RasterioIOError as error:
        raise write_failure(path, error) from None


def _write(dst: rasterio.io.DatasetWriter, data: np.ndarray, window: Window) -> None:
    """Write ``data`` ``[bands, rows, columns]`` into ``window`` of ``dst``; a failure is an :class:`OutputError`."""
    try:
        dst.write(data, window=window)
    except RasterioIOError as error:
        raise write_failure(dst.name, error) from None


def write_nodata_outside(dst: rasterio.io.DatasetWriter, region: Window) -> None:
    """Fill the rows above and below ``region`` with nodata (the columns beside it are filled per row)."""
    bands = dst.count
    for start, stop in ((0, int(region.row_off)), (int(region.row_off + region.height), dst.height)):
        for row in range(start, stop, RASTER_BLOCK):
            n = min(RASTER_BLOCK, stop - row)
            _write(dst, np.full((bands, n, dst.width), NODATA, np.uint8), Window(0, row, dst.width, n))


class _RowWriter:
    """Sink of the stitcher: encode finished rows and write them full-width (and the land-cover map)."""

    def __init__(self, dst: rasterio.io.DatasetWriter, region: Window, trained: list[int], threshold: float,
                 landcover: rasterio.io.DatasetWriter | None = None) -> None:
        self.dst, self.region, self.threshold, self.landcover = dst, region, threshold, landcover
        self.trained = np.asarray(trained, np.uint8)

    def __call__(self, rows: FinishedRows) -> None:
        n = rows.valid.shape[0]
        columns = slice(int(self.region.col_off), int(self.region.col_off + self.region.width))
        window = Window(0, int(self.region.row_off) + rows.row_off, self.dst.width, n)
        out = np.full((len(BANDS), n, self.dst.width), NODATA, np.uint8)
        probability = encode_probability(rows.probabilities[0])
        changed = is_changed(probability, self.threshold) & rows.valid
        region = out[:, :, columns]
        region[0] = np.where(rows.valid, probability, NODATA)
        region[1:] = np.where(rows.valid, 0, NODATA)
        if self.trained.size:
            t = self.trained.size
            classes = [self.trained[probs.argmax(0)] for probs in (rows.probabilities[1 : 1 + t], rows.probabilities[1 + t :])]
            for band, date_classes in zip((1, 2), classes):
                region[band][changed] = date_classes[changed]
            if self.landcover is not None:
                cover = np.full((2, n, self.dst.width), NODATA, np.uint8)
                cover[:, :, columns] = np.where(rows.valid, np.stack(classes), NODATA)
                _write(self.landcover, cover, window)
        _write(self.dst, out, window)


def check_predict_outputs(
    before: str | os.PathLike[str],
    after: str | os.PathLike[str],
    models: Sequence[str | os.PathLike[str]],
    output: str | os.PathLike[str] | None,
    raster: str | os.PathLike[str] | None,
    landcover: str | os.PathLike[str] | None,
    overwrite: bool,
    *,
    quicklook: str | os.PathLike[str] | None = None,
    report: str | os.PathLike[str] | None = None,
) -> Path | None:
    """The checks of :func:`predict`'s outputs that need no compute: known formats, no clashes, writable.

    Returns ``output`` as it will be written (:func:`geocd.vector.formats.check_vector_path`).
    """
    from geocd.vector.formats import check_vector_path

    output = None if output is None else check_vector_path(output)
    for path in (raster, landcover):
        if path is not None and Path(path).suffix.lower() not in RASTER_SUFFIXES:
            raise OutputError(path, f"is written as a GeoTIFF, so its name must end in {' or '.join(RASTER_SUFFIXES)}")
    for path, suffix in ((quicklook, ".png"), (report, ".json")):
        if path is not None:
            check_output_path(path, overwrite, suffix)
    check_outputs([output, raster, landcover, quicklook, report], [before, after, *models], overwrite)
    return output


@dataclass(frozen=True)
class PredictResult:
    """Outputs of :func:`predict` and the figures of the run."""

    raster: Path | None
    vectors: Path | None
    change_raster: ChangeRasterResult
    polygons: int | None
    landcover: Path | None = None
    quicklook: Path | None = None
    report: Path | None = None


def predict(
    before: str | os.PathLike[str],
    after: str | os.PathLike[str],
    models: Sequence[LoadedModel],
    output: str | os.PathLike[str] | None = None,
    raster: str | os.PathLike[str] | None = None,
    options: PredictOptions = PredictOptions(),
    min_area_m2: float | None = None,
    progress: Progress | None = None,
    landcover: str | os.PathLike[str] | None = None,
    *,
    quicklook: str | os.PathLike[str] | None = None,
    report: str | os.PathLike[str] | None = None,
) -> PredictResult:
    """Change polygons (``output``, format by extension), the change raster (``raster``), land-cover
    maps, a quicklook PNG (``quicklook``) and/or a JSON run report (``report``) of a pair.

    ``min_area_m2`` is :func:`geocd.vector.vectorize`'s (None: its grid-based default).

    The quicklook and the report summarise the change polygons, which are computed (in a
    temporary GeoPackage) even without ``output``; a GeoPackage ``output`` carries the report
    in its layer metadata (``GEOCD_REPORT``). Every output is written under a temporary name
    and renamed only when all succeeded; an existing output, or a quicklook not named .png or
    a report not named .json, is refused before any computation (existing ones unless
    ``options.overwrite``).
    """
    if output is None and raster is None and landcover is None and quicklook is None and report is None:
        raise InputError(None, "nothing to write: give an output GeoPackage, a change raster, a land-cover map, "
                               "a quicklook or a report")
    output = check_predict_outputs(before, after, [m.path for m in models], output, raster, landcover, options.overwrite,
                                   quicklook=quicklook, report=report)
    start = time.perf_counter()
    with contextlib.ExitStack() as stack:
        scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="geocd-")))
        raster_tmp = stack.enter_context(atomic_output(raster, options.overwrite)) if raster else scratch / "change.tif"
        landcover_tmp = stack.enter_context(atomic_output(landcover, options.overwrite)) if landcover else None
        result = predict_change_raster(before, after, models, raster_tmp, options, progress, landcover_tmp)
        polygons = None
        if output is not None or quicklook is not None or report is not None:
            from geocd.vector import change_polygons
            from geocd.vector.formats import write_vectors

            t0 = time.perf_counter()
            changes = change_polygons(raster_tmp, min_area_m2=min_area_m2, progress=progress)
            seconds = {"predict": result.seconds, "vectorize": time.perf_counter() - t0}
            polygons = len(changes.frame)
            if quicklook is not None:
                from geocd.quicklook import render_quicklook

                t0 = time.perf_counter()
                render_quicklook(before, after, raster_tmp, stack.enter_context(atomic_output(quicklook, options.overwrite)),
                                 changes.change_types, options.bands, models[0].metadata.config.in_channels)
                seconds["quicklook"] = time.perf_counter() - t0
            summary = build_report(before, after, models, options, min_area_m2, result, changes.change_types,
                                   seconds | {"total": time.perf_counter() - start},
                                   {"vectors": output, "raster": raster, "landcover": landcover, "quicklook": quicklook, "report": report})
            if output is not None:
                metadata = changes.layer.metadata | {REPORT_KEY: json.dumps(summary, ensure_ascii=False)}
                write_vectors(output, changes.frame, replace(changes.layer, metadata=metadata), options.overwrite)
            if report is not None:
                write_report(stack.enter_context(atomic_output(report, options.overwrite)), summary)
    return PredictResult(Path(raster) if raster else None, Path(output) if output else None, result, polygons,
                         Path(landcover) if landcover else None, Path(quicklook) if quicklook else None,
                         Path(report) if report else None)
