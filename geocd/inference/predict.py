"""Predict a change raster for one scene pair: read pair -> tile -> model -> stitch -> write.

Orchestration only: the pair dataset (``geocd.data.pair``), its tiles (``geocd.data.rasters.tile_windows``),
the models with test-time augmentation (``geocd.models.tta``) and the streaming stitcher
(``geocd.inference.stitch``) do the work. The output raster follows ``geocd.changemap``.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sys
import time
import warnings
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from pyproj import CRS
from rasterio.windows import Window

from geocd.atomic import atomic_output, check_output_path, check_outputs
from geocd.changemap import (
    ChangeMapInfo, ChangeRasterResult, ChangeRows, ChangeSink, SinkFactory, encode_landcover, encode_rows, nodata_rows, raster_sink,
    valid_threshold,
)
from geocd.checkpoint import LoadedModel, ModelMetadata, check_ensemble, load_models, model_paths
from geocd.data.alignment import WARN_PIXELS, Alignment, measure_alignment
from geocd.data.pair import PairDataset
from geocd.data.radiometry import check_target, radiometry_tag
from geocd.data.rasters import RASTER_BLOCK, Grid, row_windows, tile_windows
from geocd.data.remote import with_remote_reads
from geocd.errors import GeocdError, GeocdWarning, InputError, OutputError
from geocd.inference.backends import batches_in_flight, build_runners, parallel_tiles, resolved_backend, runtime_line
from geocd.inference.stitch import FinishedRows, RowStreamStitcher
from geocd.models.tta import PendingProbabilities, Runner, predict_logits
from geocd.options import PredictOptions
from geocd.progress import Progress
from geocd.report import REPORT_KEY, build_report, write_report
from geocd.vector.attributes import ChangeTypeSummary
from geocd.vector.measure import pixel_area
from geocd.vector.zones import read_zones, write_zone_table, zone_statistics

if TYPE_CHECKING:
    import torch

RASTER_SUFFIXES = (".tif", ".tiff")


def resolve_device(name: str | torch.device) -> str:
    """The device a name means, as PyTorch names it: ``auto`` is CUDA when available, else ``cpu``;
    ``cpu``/``cuda``/``cuda:N`` (or a ``torch.device``) are checked.

    PyTorch is imported only where a CUDA device may exist (:func:`_cuda_possible`): a prediction by a graph
    runtime on a machine without one never imports it.
    """
    name = str(name)
    if name == "cpu" or (name == "auto" and not _cuda_possible()):
        return "cpu"
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except RuntimeError:
        raise InputError(None, f"device {name!r} is not a device (use auto, cpu, cuda or cuda:N)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InputError(None, f"device {name} asked for CUDA, but no CUDA device is available")
    return "cpu" if device.type == "cpu" else str(device)


def _cuda_possible() -> bool:
    """False where PyTorch cannot see a CUDA device: macOS, and Linux without NVIDIA's driver (``/proc/driver/nvidia``)
    or ROCm's (``/dev/kfd``); True elsewhere, where only PyTorch can tell."""
    if sys.platform == "darwin":
        return False
    if sys.platform.startswith("linux"):
        return os.path.exists("/proc/driver/nvidia") or os.path.exists("/dev/kfd")
    return True


@with_remote_reads
def predict_change_raster(
    before: str | os.PathLike[str],
    after: str | os.PathLike[str],
    models: Sequence[LoadedModel],
    sinks: Sequence[SinkFactory],
    options: PredictOptions = PredictOptions(),
    progress: Progress | None = None,
    warn: bool = False,
) -> ChangeRasterResult:
    """Predict the change map of a pair on the 'before' grid and hand its rows to ``sinks``.

    Each sink (e.g. :func:`geocd.changemap.raster_sink`) is opened on the grid and sees every
    row once, top to bottom, as :class:`geocd.changemap.ChangeRows`. Peak memory is bounded by
    the tile size and the scene width, not by the scene size. With ``warn``, likely mistakes
    (the same date twice, a ground resolution the model is not made for, dates shifted by more
    than a pixel) are warned of (:class:`GeocdWarning`) before any tile is predicted. With
    ``warn`` or ``options.align`` the shift between the dates is measured; ``options.align``
    undoes it in the 'after' date.
    """
    start = time.perf_counter()
    check_ensemble(models)
    meta = models[0].metadata
    progress = progress or Progress("none")
    device = resolve_device(options.device)
    tile = options.tile_size or meta.tile_size
    overlap = options.overlap if options.overlap is not None else tile // 8
    if not 0 <= overlap < tile:
        raise InputError(None, f"overlap {overlap} must be at least 0 and less than the tile size {tile}")
    if not valid_threshold(options.threshold):
        raise InputError(None, f"threshold {options.threshold} must be in (0, 1]")
    only = _kept_classes(options.only, models[0])
    check_target(meta.radiometry, models[0].path)
    dataset = PairDataset(before, after, meta.config.in_channels, options.bands, radiometry=options.radiometry)
    if not dataset.has_valid_pixels():
        raise InputError(after, f"no pixel is valid in both {Path(before).name} and {Path(after).name} where they overlap")
    if warn:
        _warn_of_likely_mistakes(before, after, dataset, meta)
    alignment = measure_alignment(dataset, _pixel_size_m(dataset), options.align) if warn or options.align else None
    if alignment is not None and options.align:
        dataset = dataset.aligned((alignment.shift.dx, alignment.shift.dy))
    elif warn and alignment is not None:
        _warn_of_shift(before, after, alignment)
    windows = tile_windows(dataset.overlap, tile, tile - overlap)  # north to south: the sinks get rows top to bottom
    nets = build_runners(models, device, options.backend, tile, options.scales, options.precision)
    backend = resolved_backend(models[0], device, options.backend)
    batch_size, num_workers = _loader_settings(options, backend, device, max(map(parallel_tiles, nets)))
    batches = _batches(dataset, windows, batch_size, num_workers)
    progress.note(runtime_line(models[0].path, device, options.backend, options.precision))
    trained = list(meta.trained_classes)
    info = ChangeMapInfo(
        threshold=options.threshold, schema=meta.schema, trained_classes=meta.trained_classes,
        only=only,
        models=tuple(str(m.path) for m in models), inputs=(os.fspath(before), os.fspath(after)),
        extra={"tta": str(options.tta).lower(), "scales": ",".join(f"{x:g}" for x in options.scales),
               "radiometry": radiometry_tag(options.radiometry, dataset.stretches)},
    )
    grid, region = dataset.grid, dataset.overlap
    network = _Network(nets, options, min(map(batches_in_flight, nets)))
    with contextlib.ExitStack() as stack:
        opened = [stack.enter_context(factory(grid, info)) for factory in sinks]

        def emit(rows: ChangeRows) -> None:
            for sink in opened:
                sink(rows)

        for window in row_windows(grid, RASTER_BLOCK, 0, int(region.row_off)):
            emit(nodata_rows(window, info))
        stitcher = RowStreamStitcher(windows, region, 1 + 2 * len(trained), overlap, _Placer(grid, region, info, emit))
        progress.start(len(windows), "predicting tiles")
        with _Behind() as stitching:
            for batch, pending in network.run(_read_ahead(batches)):
                stitching.run(_stitch, stitcher, batch, pending, trained, tile)
                tiles = len(batch["window"])
                progress.advance(tiles, tiles * (tile - overlap) ** 2)
        progress.close()
        if not stitcher.complete:
            raise RuntimeError("stitching ended with rows not written")
        for window in row_windows(grid, RASTER_BLOCK, int(region.row_off + region.height)):
            emit(nodata_rows(window, info))
    megapixels = region.width * region.height / 1e6
    return ChangeRasterResult(info, len(windows), megapixels, time.perf_counter() - start, network.busy_seconds(),
                              tile, overlap, device, backend, alignment,
                              dataset)


def _kept_classes(names: Sequence[str], model: LoadedModel) -> tuple[int, ...]:
    """The class ids of ``PredictOptions.only``, among the model's trained classes."""
    if not names:
        return ()
    meta = model.metadata
    if not meta.landcover_trained:
        raise InputError(model.path, "has untrained land-cover heads, so changes cannot be kept by class (only)")
    try:
        return meta.schema.class_ids(names, meta.trained_classes)
    except ValueError as error:
        raise InputError(None, f"only {error}") from None


def _warn_of_likely_mistakes(before: str | os.PathLike[str], after: str | os.PathLike[str], dataset: PairDataset,
                             meta: ModelMetadata) -> None:
    """Warn (:class:`GeocdWarning`) of a pair that cannot show change, and of a ground resolution
    far outside the one the model is made for (:attr:`ModelMetadata.resolution_range_m`)."""
    if _same_file(before, after):
        warnings.warn(GeocdWarning(after, f"is the same file as {before}: nothing can have changed"), stacklevel=4)
    elif dataset.same_pixels:
        warnings.warn(GeocdWarning(after, f"has the same pixels as {before} where they overlap: nothing can have changed"),
                      stacklevel=4)
    made_for = meta.resolution_range_m
    if made_for is None:
        return
    metres = _pixel_size_m(dataset)
    if not made_for[0] <= metres <= made_for[1]:
        warnings.warn(GeocdWarning(before, f"has {metres:.3g} m pixels, far from the {made_for[0]:g}-{made_for[1]:g} m "
                                           f"the model is made for: expect poor results"), stacklevel=4)


def _warn_of_shift(before: str | os.PathLike[str], after: str | os.PathLike[str], alignment: Alignment) -> None:
    """Warn (:class:`GeocdWarning`) of dates shifted by more than :data:`~geocd.data.alignment.WARN_PIXELS`."""
    s = alignment.shift
    if s.length > WARN_PIXELS:
        warnings.warn(GeocdWarning(after, f"is shifted by {s.length:.1f} px ({s.length * alignment.pixel_size_m:.2g} m; "
                                          f"dx {s.dx:+.1f}, dy {s.dy:+.1f}) from {before}: unchanged edges may be "
                                          f"flagged as change (--align corrects it)"), stacklevel=4)


def _pixel_size_m(dataset: PairDataset) -> float:
    """Side in metres of a square of the area of the grid's pixel at the centre of the overlap."""
    region, grid = dataset.overlap, dataset.grid
    row, col = int(region.row_off + region.height // 2), int(region.col_off + region.width // 2)
    return math.sqrt(pixel_area(grid.transform, row, col, CRS.from_user_input(grid.crs)))


class _Placer:
    """Sink of the stitcher: encode its finished rows of ``region`` and pass them on full grid width."""

    def __init__(self, grid: Grid, region: Window, info: ChangeMapInfo, emit: ChangeSink) -> None:
        self.grid, self.info, self.emit = grid, info, emit
        self.row0 = int(region.row_off)
        self.columns = slice(int(region.col_off), int(region.col_off + region.width))

    def __call__(self, rows: FinishedRows) -> None:
        window = Window(0, self.row0 + rows.row_off, self.grid.width, rows.valid.shape[0])
        blank = nodata_rows(window, self.info)
        blank.bands[:, :, self.columns] = encode_rows(rows.probabilities, rows.valid, self.info)
        self.emit(ChangeRows(window, blank.bands, partial(self._landcover, blank.landcover, rows)))

    def _landcover(self, cover: np.ndarray | None, rows: FinishedRows) -> np.ndarray | None:
        """``cover`` (full width, nodata) with the land cover of ``rows`` in the region's columns."""
        if cover is not None:
            cover[:, :, self.columns] = encode_landcover(rows.probabilities, rows.valid, self.info)
        return cover


class _ErrorsAsSamples:
    """The pair read by pixel windows (``dataset[window]``), a :class:`GeocdError` returned as the sample instead
    of raised.

    PyTorch re-raises a reading worker's exception as a new one built from its traceback text, which
    loses the error's file and problem; a returned error is pickled whole to the main process.
    """

    def __init__(self, dataset: PairDataset) -> None:
        self.dataset = dataset

    def __getitem__(self, window: Window) -> dict | GeocdError:
        try:
            return self.dataset.read(window)
        except GeocdError as error:
            return error


def _batches(dataset: PairDataset, windows: list[Window], batch_size: int, num_workers: int) -> Iterable[dict | GeocdError]:
    """The samples of ``windows`` stacked ``batch_size`` at a time (:func:`_collate_or_error`), read here, or by
    ``num_workers`` processes of PyTorch's DataLoader."""
    samples = _ErrorsAsSamples(dataset)
    if num_workers:
        from torch.utils.data import DataLoader

        return DataLoader(samples, batch_size=batch_size, sampler=windows, num_workers=num_workers,
                          collate_fn=_collate_or_error)
    return (_collate_or_error([samples[w] for w in windows[i : i + batch_size]]) for i in range(0, len(windows), batch_size))


def _loader_settings(options: PredictOptions, backend: str, device: str, parallel: int) -> tuple[int, int]:
    """Tiles per batch and reading worker processes: as given, else the fastest measured (see PredictOptions),
    and at least one tile for each of the ``parallel`` tiles the runtime (``backend``, resolved) infers at once."""
    cuda = device != "cpu"
    batch_size = 8 if cuda else 1 if backend == "torch" else max(2, parallel)
    num_workers = 2 if cuda else 0
    return options.batch_size or batch_size, num_workers if options.num_workers is None else options.num_workers


def _read_ahead(batches: Iterable[dict | GeocdError]) -> Iterator[dict | GeocdError]:
    """``batches``, the next one read in a thread while the caller runs the network on this one."""
    iterator = iter(batches)
    with ThreadPoolExecutor(max_workers=1) as reader:
        pending = reader.submit(next, iterator, None)
        while (batch := pending.result()) is not None:
            pending = reader.submit(next, iterator, None)
            yield batch


class _Network:
    """The networks run on batches, ``in_flight`` started before the first is collected
    (:func:`geocd.inference.backends.batches_in_flight`): while one batch finishes, the next is already queued
    in the runtime, so none of its streams waits for another's part of a batch, nor for the caller. Every call
    to the runtime is made from the caller's thread; results come in the batches' order."""

    def __init__(self, nets: Sequence[Runner], options: PredictOptions, in_flight: int) -> None:
        self.nets, self.options, self.in_flight = nets, options, in_flight
        self.spans: list[tuple[float, float]] = []

    def run(self, batches: Iterable[dict | GeocdError]) -> Iterator[tuple[dict, PendingProbabilities]]:
        """Each batch with the networks' collected outputs on it, in order; a batch that is an error is raised."""
        running: deque[tuple[dict, PendingProbabilities, float]] = deque()
        for batch in batches:
            if isinstance(batch, GeocdError):
                raise batch
            running.append(self._started(batch))
            if len(running) == self.in_flight:
                yield self._collected(*running.popleft())
        while running:
            yield self._collected(*running.popleft())

    def _started(self, batch: dict) -> tuple[dict, PendingProbabilities, float]:
        start, options = time.perf_counter(), self.options
        return batch, predict_logits(self.nets, batch["image_before"], batch["image_after"], options.tta, options.scales), start

    def _collected(self, batch: dict, pending: PendingProbabilities, start: float) -> tuple[dict, PendingProbabilities]:
        pending.collect()
        self.spans.append((start, time.perf_counter()))
        return batch, pending

    def busy_seconds(self) -> float:
        """Wall-clock seconds during which at least one batch was in the networks."""
        busy, reached = 0.0, -math.inf
        for start, stop in sorted(self.spans):
            busy += max(0.0, stop - max(start, reached))
            reached = max(reached, stop)
        return busy


class _Behind:
    """Runs one call at a time in a thread, one call behind the caller: the stitching and the sinks of a
    batch overlap the network on the next one. A failed call raises at the next :meth:`run` or at the end."""

    def __enter__(self) -> _Behind:
        self.executor = ThreadPoolExecutor(max_workers=1)
        self.pending: Future | None = None
        return self

    def run(self, function: Callable[..., None], *args: Any) -> None:
        """Wait for the previous call, then start ``function(*args)``."""
        self.wait()
        self.pending = self.executor.submit(function, *args)

    def wait(self) -> None:
        """Wait for the call in flight, raising its exception."""
        if self.pending is not None:
            pending, self.pending = self.pending, None
            pending.result()

    def __exit__(self, *exc: object) -> None:
        try:
            if exc[0] is None:
                self.wait()
        finally:
            self.executor.shutdown(wait=True)


def _stitch(stitcher: RowStreamStitcher, batch: dict, pending: PendingProbabilities, trained: list[int], tile: int) -> None:
    """Average a batch's probabilities and add its tiles to the stitcher (which hands finished rows to the sinks):
    ``[1 + 2T, h, w]`` per tile, the change then the trained classes of each date."""
    probs = pending.stacked([c - 1 for c in trained])
    for i, (row, col) in enumerate(batch["window"].tolist()):
        stitcher.add(Window(col, row, tile, tile), probs[i], batch["valid"][i])


def _collate_or_error(samples: list[dict | GeocdError]) -> dict | GeocdError:
    """The batch of ``samples`` (each entry stacked), or the first error among them."""
    errors = [s for s in samples if isinstance(s, GeocdError)]
    return errors[0] if errors else {key: np.stack([s[key] for s in samples]) for key in samples[0]}


def _same_file(before: str | os.PathLike[str], after: str | os.PathLike[str]) -> bool:
    """Whether both paths name one file (False for paths that are no local file, e.g. GDAL's /vsi paths)."""
    try:
        return os.path.samefile(before, after)
    except OSError:
        return False


@dataclass(frozen=True)
class PredictOutputs:
    """What :func:`predict` writes, and its output policy.

    ``vectors``: change polygons (format by extension); ``raster``: the change raster;
    ``landcover``: both dates' land-cover maps; ``quicklook``: a PNG; ``report``: a JSON run
    report. ``overwrite`` replaces existing outputs; ``min_area_m2`` is
    :func:`geocd.vector.vectorize`'s (None: its grid-based default). ``zones``: a polygon
    vector file whose zones (ids from ``zone_field``, None: feature ids) cut the polygons and get
    the changed area per change type and from→to pair (:mod:`geocd.vector.zones`), in the
    report and in :attr:`zones_table`.
    """

    vectors: str | os.PathLike[str] | None = None
    raster: str | os.PathLike[str] | None = None
    landcover: str | os.PathLike[str] | None = None
    quicklook: str | os.PathLike[str] | None = None
    report: str | os.PathLike[str] | None = None
    overwrite: bool = False
    min_area_m2: float | None = None
    zones: str | os.PathLike[str] | None = None
    zone_field: str | None = None

    @property
    def zones_table(self) -> Path | None:
        """The zone table's CSV with ``zones``: ``STEM_zones.csv`` beside the first of vectors, report,
        raster, quicklook and land-cover map that is written."""
        first = next((p for p in (self.vectors, self.report, self.raster, self.quicklook, self.landcover) if p), None)
        if self.zones is None or first is None:
            return None
        return Path(first).with_name(f"{Path(first).stem}_zones.csv")

    @property
    def paths(self) -> dict[str, str | os.PathLike[str] | None]:
        """Every output path by kind (None where not written)."""
        return {"vectors": self.vectors, "raster": self.raster, "landcover": self.landcover,
                "quicklook": self.quicklook, "report": self.report, "zones": self.zones_table}


def _checked_outputs(before: str | os.PathLike[str], after: str | os.PathLike[str],
                     models: Sequence[str | os.PathLike[str]], outputs: PredictOutputs) -> PredictOutputs:
    """The checks of :func:`predict`'s outputs that need no compute: known formats, no clashes with each other or
    with the inputs (``models``: checkpoint files), writable. Returns ``outputs`` with ``vectors`` as it will be
    written (:func:`geocd.vector.formats.check_vector_path`)."""
    from geocd.vector.formats import check_vector_path

    outputs = replace(outputs, vectors=None if outputs.vectors is None else check_vector_path(outputs.vectors))
    for path in (outputs.raster, outputs.landcover):
        if path is not None and Path(path).suffix.lower() not in RASTER_SUFFIXES:
            raise OutputError(path, f"is written as a GeoTIFF, so its name must end in {' or '.join(RASTER_SUFFIXES)}")
    for path, suffix in ((outputs.quicklook, ".png"), (outputs.report, ".json")):
        if path is not None:
            check_output_path(path, outputs.overwrite, suffix)
    zones = [outputs.zones] if outputs.zones is not None else []
    check_outputs(list(outputs.paths.values()), [before, after, *models, *zones], outputs.overwrite)
    return outputs


@dataclass(frozen=True)
class PredictResult:
    """Outputs of :func:`predict` and the figures of the run (``change_raster.pair`` is None: the inputs are closed)."""

    raster: Path | None
    vectors: Path | None
    change_raster: ChangeRasterResult
    polygons: int | None
    landcover: Path | None = None
    quicklook: Path | None = None
    report: Path | None = None
    summary: dict[str, Any] | None = None
    """The run report (:func:`geocd.report.build_report`), when polygons were computed."""
    zones_table: Path | None = None
    change_types: tuple[ChangeTypeSummary, ...] = ()
    """Polygons and area per change type, when polygons were computed."""


@with_remote_reads
def predict(
    before: str | os.PathLike[str],
    after: str | os.PathLike[str],
    *,
    models: Sequence[LoadedModel | str | os.PathLike[str]] | None = None,
    outputs: PredictOutputs,
    options: PredictOptions = PredictOptions(),
    progress: Progress | None = None,
) -> PredictResult:
    """Change polygons, the change raster, land-cover maps, a quicklook PNG and/or a JSON run report
    of a pair, as ``outputs`` asks.

    Each input is opened once: the quicklook and the report draw on the pair as the prediction read it.
    The quicklook and the report summarise the change polygons, which are computed (in memory)
    even without ``outputs.vectors``; a GeoPackage carries the report in its layer metadata
    (``GEOCD_REPORT``). Every output is written under a temporary name
    and renamed only when all succeeded; an existing output, or a quicklook not named .png or
    a report not named .json, is refused before any computation (existing ones unless
    ``outputs.overwrite``). With ``outputs.zones``, the polygons are cut at the zones' boundaries and
    the areas by zone go to the report and :attr:`PredictOutputs.zones_table`. ``models`` are loaded models or checkpoint paths (:func:`geocd.checkpoint.load_models`;
    none or ``"default"``: the bundled model).
    """
    if not any(outputs.paths.values()):
        raise InputError(None, "nothing to write: give an output GeoPackage, a change raster, a land-cover map, "
                               "a quicklook or a report")
    files = model_paths([m.path if isinstance(m, LoadedModel) else m for m in models or []])
    zones = None if outputs.zones is None else read_zones(outputs.zones, outputs.zone_field)
    outputs = _checked_outputs(before, after, files, outputs)
    models = load_models(models, resolve_device(options.device))
    output, raster, landcover, quicklook, report, table = outputs.paths.values()
    overwrite, min_area_m2 = outputs.overwrite, outputs.min_area_m2
    if landcover is not None and not models[0].metadata.landcover_trained:
        raise InputError(models[0].path, "has untrained land-cover heads, so it cannot write a land-cover map")
    start = time.perf_counter()
    with contextlib.ExitStack() as stack:
        raster_tmp = stack.enter_context(atomic_output(raster, overwrite)) if raster else None
        landcover_tmp = stack.enter_context(atomic_output(landcover, overwrite)) if landcover else None
        sinks = ([raster_sink(raster_tmp)] if raster_tmp else []) + (
            [raster_sink(landcover_tmp, landcover=True)] if landcover else [])
        polygon_sink = None
        if output is not None or quicklook is not None or report is not None or table is not None:
            from geocd.vector import PolygonSink

            polygon_sink = PolygonSink(min_area_m2)
            sinks.append(polygon_sink)
        result = predict_change_raster(before, after, models, sinks, options, progress, warn=True)
        stack.callback(result.pair.close)
        polygons = summary = None
        change_types: tuple[ChangeTypeSummary, ...] = ()
        if polygon_sink is not None:
            from geocd.vector.formats import write_vectors

            changes = polygon_sink.polygons
            seconds = {"predict": result.seconds - polygon_sink.seconds, "vectorize": polygon_sink.seconds}
            polygons, change_types = len(changes.frame), changes.change_types
            if quicklook is not None:
                from geocd.quicklook import render_quicklook

                t0 = time.perf_counter()
                render_quicklook(result.pair, result.info, changes, stack.enter_context(atomic_output(quicklook, overwrite)))
                seconds["quicklook"] = time.perf_counter() - t0
            zoned = None if zones is None else zone_statistics(changes, zones)
            summary = build_report(models, options, changes.min_area_m2, result, changes.change_types,
                                   seconds | {"total": time.perf_counter() - start}, outputs.paths, zoned)
            if report is not None:
                write_report(stack.enter_context(atomic_output(report, overwrite)), summary)
            if zoned is not None:
                write_zone_table(stack.enter_context(atomic_output(table, overwrite)), zoned)
            if output is not None:  # last: its own atomic write renames at once
                metadata = changes.layer.metadata | {REPORT_KEY: json.dumps(summary, ensure_ascii=False)}
                frame = changes.frame if zoned is None else zoned.frame
                write_vectors(output, frame, replace(changes.layer, metadata=metadata), overwrite)
    return PredictResult(*(None if p is None else Path(p) for p in (raster, output)), replace(result, pair=None), polygons,
                         *(None if p is None else Path(p) for p in (landcover, quicklook, report)), summary, table,
                         change_types)
