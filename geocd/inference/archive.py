"""Predict every pair of an archive on a Dask distributed cluster, with an index of where the archive stands.

One Dask task per pair calls :func:`geocd.inference.predict.predict`; each worker process loads the
models once. The client writes ``index.gpkg`` in the output folder after every finished pair: one row
per pair with its overlap footprint (EPSG:4326), name, file stem of its outputs (the name made safe by
:mod:`geocd.safe_names`), status, one-line error, outputs, change counts and
areas per change type, seconds and a fingerprint of its inputs and options, so a rerun skips the
pairs already done. Each pair's outputs are a :class:`PredictOutputs` built from the archive's choice of
kinds (:class:`ArchiveOutputs`); the index is written by :func:`geocd.vector.formats.write_vectors`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import geopandas as gpd
import pyogrio
import shapely
from rasterio.warp import transform_geom
from rasterio.windows import bounds as window_bounds

from geocd import __version__
from geocd.atomic import check_output_path
from geocd.checkpoint import LoadedModel, load_models, model_paths, read_metadata
from geocd.data.archive import PairRecord, RasterPath, archive_file_stems, open_archive
from geocd.data.pair import overlap_window
from geocd.data.rasters import grid_of, open_raster
from geocd.data.remote import is_remote, remote_reads
from geocd.errors import GeocdError, InputError, pair_failure
from geocd.extras import require
from geocd.inference.backends import physical_cores
from geocd.inference.predict import PredictOptions, PredictOutputs, predict, resolve_device
from geocd.progress import Progress
from geocd.safe_names import pair_file
from geocd.vector.attributes import ChangeTypeSummary
from geocd.vector.formats import LayerInfo, check_vector_path, write_vectors

if TYPE_CHECKING:
    from distributed import Client

INDEX_NAME = "index.gpkg"
INDEX_CRS = "EPSG:4326"
INDEX_LAYER = LayerInfo("geocd predict-archive: one row per pair of the archive", {}, None, layer="pairs")
"""The index's layer: ``pairs``, no style."""
PAIR_FILES = {"vectors": None, "raster": "_change.tif", "quicklook": ".png", "report": ".json"}
"""The :class:`PredictOutputs` kinds a pair may write, in index column order, and the ending of each one's
file name after the pair's stem (vectors: :attr:`ArchiveOutputs.vector_suffix`)."""
_FOOTPRINT_SEGMENTS = 20
"""Points per side of a footprint before it is projected to EPSG:4326 (edges curve there)."""


@dataclass(frozen=True)
class ArchiveOutputs:
    """What is written per pair in ``folder``: the :class:`PredictOutputs` ``kinds`` (of :data:`PAIR_FILES`,
    vectors always), named after the pair's file stem (its name made safe by :mod:`geocd.safe_names`): ``<stem><vector_suffix>``
    (change polygons), ``<stem>_change.tif``, ``<stem>.png`` and ``<stem>.json``. ``overwrite``
    redoes every pair; ``min_area_m2`` is :class:`PredictOutputs`'."""

    folder: Path
    kinds: frozenset[str] = frozenset({"vectors"})
    vector_suffix: str = ".gpkg"
    overwrite: bool = False
    min_area_m2: float | None = None

    def __post_init__(self) -> None:
        if "vectors" not in self.kinds or not set(self.kinds) <= set(PAIR_FILES):
            raise ValueError(f"kinds must be vectors and any of {', '.join(PAIR_FILES)}, not {sorted(self.kinds)}")

    def for_pair(self, stem: str) -> PredictOutputs:
        """The :class:`PredictOutputs` of the pair of file stem ``stem``; one that would lead outside
        ``folder`` is an :class:`OutputError`."""
        return PredictOutputs(
            **{kind: pair_file(self.folder, stem, PAIR_FILES[kind] or self.vector_suffix) for kind in self.kinds},
            overwrite=self.overwrite, min_area_m2=self.min_area_m2,
        )


@dataclass(frozen=True)
class PairOutcome:
    """What became of one pair: ``status`` ``ok`` or ``failed``, ``skipped`` when an earlier run did it,
    the file stem of its outputs, the error of a failed pair (and the traceback of an unexpected one),
    its overlap footprint (EPSG:4326, None when unknown), the outputs written, polygons and changed
    area (m²) in all and per change type (``{change_type: {polygons, area_m2}}``), seconds and megapixels."""

    name: str
    status: str
    fingerprint: str
    before: str
    after: str
    file_stem: str = ""
    error: GeocdError | None = None
    traceback: str | None = None
    footprint: shapely.Geometry | None = None
    outputs: dict[str, str] = field(default_factory=dict)
    polygons: int | None = None
    area_m2: float | None = None
    change_types: dict[str, dict[str, float]] = field(default_factory=dict)
    seconds: float = 0.0
    megapixels: float = 0.0
    skipped: bool = False


@dataclass(frozen=True)
class ArchiveResult:
    """Every pair's :class:`PairOutcome`, in manifest order, and the index written."""

    index: Path
    pairs: list[PairOutcome]

    @property
    def failed(self) -> list[PairOutcome]:
        """The pairs that failed."""
        return [p for p in self.pairs if p.status == "failed"]

    @property
    def skipped(self) -> int:
        """How many pairs an earlier run had done."""
        return sum(p.skipped for p in self.pairs)


@contextlib.contextmanager
def dask_client(scheduler: str | os.PathLike[str] | None = None, workers: int | None = None,
                gpu: bool = False) -> Iterator[Client]:
    """A client of the cluster at ``scheduler`` (``tcp://host:port`` or a scheduler file), or, without
    it, of a local cluster of ``workers`` processes (default: one per physical core) of one thread each.

    ``gpu`` gives each local worker one ``GPU`` resource, as tasks on CUDA ask for (see :func:`predict_archive`).
    Without the ``cluster`` extra (Dask's ``distributed``) it is a one-line :class:`InputError` naming it.
    """
    distributed = require("cluster", "a Dask cluster")
    if scheduler is not None:
        is_file = Path(scheduler).is_file()
        try:
            client = (distributed.Client(scheduler_file=os.fspath(scheduler)) if is_file
                      else distributed.Client(os.fspath(scheduler), timeout=30))
        except OSError as error:
            raise InputError(scheduler, f"cannot reach the Dask scheduler ({error})") from None
        with client:
            yield client
        return
    count = workers or physical_cores()
    threads = str(max(1, physical_cores() // count))
    with distributed.LocalCluster(n_workers=count, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=":0", scheduler_kwargs={"dashboard": False},
                                  silence_logs=logging.ERROR, resources={"GPU": 1} if gpu else None,
                                  env={"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}) as cluster, \
            distributed.Client(cluster) as client:
        yield client


def predict_archive(
    archive: str | os.PathLike[str],
    client: Client,
    *,
    models: Sequence[str | os.PathLike[str]] | None = None,
    outputs: ArchiveOutputs,
    options: PredictOptions = PredictOptions(),
    progress: Progress | None = None,
) -> ArchiveResult:
    """Predict each pair of a change ``archive`` (labels ignored) on ``client``'s cluster, one task per pair.

    ``models`` are checkpoint paths every worker can read (none or ``"default"``: the bundled model); ``options``
    apply to every pair, their ``device`` resolved on each worker. On CUDA each task asks for one
    ``GPU`` worker resource. Outputs are named by :func:`geocd.data.archive.archive_file_stems`. A pair
    failing in any way while its outputs are prepared or written (an exception other than a
    :class:`GeocdError` becomes a one-line one, its traceback kept in the outcome), or whose worker died
    (after Dask's ``allowed-failures`` retries), is recorded as failed and the others go on. Pairs
    recorded as done in an existing index with the same inputs, models and options, whose outputs
    all exist, are skipped unless ``outputs.overwrite``. Pairs are the parallelism: each task reads
    its tiles in its own worker process (``options.num_workers`` is set to 0; Dask's worker
    processes are daemons, which cannot start reading workers).
    """
    from distributed import as_completed
    from distributed.scheduler import KilledWorker

    options = replace(options, num_workers=0)
    opened = open_archive(archive, "change", inference=True)
    records = list(opened.records)
    stems = archive_file_stems(opened, taken=[Path(INDEX_NAME).stem])
    check_vector_path(Path(f"pair{outputs.vector_suffix}"))
    paths = [p.absolute() for p in model_paths(models)]
    for path in paths:
        read_metadata(path)
    outputs = replace(outputs, folder=outputs.folder.absolute())
    outputs.folder.mkdir(parents=True, exist_ok=True)
    index = check_output_path(outputs.folder / INDEX_NAME, overwrite=True)
    outcomes, todo = _plan(records, stems, index, paths, outputs, options)
    progress = progress or Progress("none")
    progress.start(len(todo), "predicting pairs", unit="pair")
    resources = {"GPU": 1} if str(options.device).startswith("cuda") else None
    futures = {client.submit(_predict_pair, record, stems[record.name], pair_outputs, tuple(map(str, paths)), options,
                             fingerprint, key=f"geocd-pair-{stems[record.name]}-{fingerprint[:12]}", resources=resources):
               (record, fingerprint) for record, pair_outputs, fingerprint in todo}
    for future in as_completed(futures):
        record, fingerprint = futures[future]
        try:
            outcome = future.result()
        except KilledWorker as error:
            outcome = PairOutcome(record.name, "failed", fingerprint, str(record.before), str(record.after), stems[record.name],
                                  error=InputError(record.before, f"its worker died while predicting pair {record.name!r} "
                                                                  f"({type(error).__name__})"))
        except Exception as error:  # noqa: BLE001 - whatever a task raised fails its pair alone
            outcome = _failed(record, stems[record.name], fingerprint, error)
        outcomes[record.name] = outcome
        _write_index(index, [outcomes[r.name] for r in records if r.name in outcomes])
        progress.advance(1, int(outcome.megapixels * 1e6))
    progress.close()
    pairs = [outcomes[r.name] for r in records]
    _write_index(index, pairs)
    return ArchiveResult(index, pairs)


def _plan(records: Sequence[PairRecord], stems: dict[str, str], index: Path, models: Sequence[Path],
          outputs: ArchiveOutputs, options: PredictOptions
          ) -> tuple[dict[str, PairOutcome], list[tuple[PairRecord, PredictOutputs, str]]]:
    """The outcomes of the pairs done by an earlier run under the same file stem or failed already (by name),
    and the pairs to do with their outputs and fingerprints."""
    done = {} if outputs.overwrite else _finished(index)
    outcomes: dict[str, PairOutcome] = {}
    todo: list[tuple[PairRecord, PredictOutputs, str]] = []
    for record in records:
        fingerprint = ""
        try:
            fingerprint = _fingerprint(record, models, outputs, options)
            pair_outputs = outputs.for_pair(stems[record.name])
        except Exception as error:  # noqa: BLE001 - a pair that cannot be prepared fails alone
            outcomes[record.name] = _failed(record, stems[record.name], fingerprint, error)
            continue
        previous = done.get(record.name)
        if previous is not None and previous.fingerprint == fingerprint and previous.file_stem == stems[record.name]:
            outcomes[record.name] = replace(previous, skipped=True)
        else:
            todo.append((record, pair_outputs, fingerprint))
    return outcomes, todo


def _failed(record: PairRecord, stem: str, fingerprint: str, error: Exception, **found: Any) -> PairOutcome:
    """The outcome of a pair that failed with ``error`` (see :func:`geocd.errors.pair_failure`)."""
    line, trace = pair_failure(error, record.before, record.name)
    return PairOutcome(record.name, "failed", fingerprint, str(record.before), str(record.after), stem, error=line,
                       traceback=trace, **found)


_LOADED: dict[tuple[tuple[str, ...], str], list[LoadedModel]] = {}
"""Models loaded in this worker process, by checkpoint paths and device."""


def _worker_models(paths: tuple[str, ...], device: str) -> list[LoadedModel]:
    """The models of ``paths`` on ``device``, loaded once per process."""
    key = (paths, device)
    if key not in _LOADED:
        _LOADED[key] = load_models(list(paths), device)
    return _LOADED[key]


def _predict_pair(record: PairRecord, stem: str, outputs: PredictOutputs, models: tuple[str, ...], options: PredictOptions,
                  fingerprint: str) -> PairOutcome:
    """The task of one pair (on a worker): its footprint, then :func:`predict`; any exception fails the pair."""
    start = time.perf_counter()
    footprint = None
    try:
        with remote_reads():
            footprint = _footprint(record.before, record.after, options.bands)
            device = resolve_device(options.device)
            result = predict(record.before, record.after, models=_worker_models(models, str(device)), outputs=outputs,
                             options=replace(options, device=device))
    except Exception as error:  # noqa: BLE001 - one pair's failure, whatever it is, is that pair's alone
        return _failed(record, stem, fingerprint, error, footprint=footprint, seconds=time.perf_counter() - start)
    return PairOutcome(
        record.name, "ok", fingerprint, str(record.before), str(record.after), stem, footprint=footprint,
        outputs={kind: os.fspath(path) for kind, path in outputs.paths.items() if path is not None},
        polygons=sum(t.polygons for t in result.change_types), area_m2=sum(t.area_m2 for t in result.change_types),
        change_types=_change_type_areas(result.change_types),
        seconds=time.perf_counter() - start, megapixels=result.change_raster.megapixels,
    )


def _change_type_areas(change_types: Sequence[ChangeTypeSummary]) -> dict[str, dict[str, float]]:
    """``{change_type: {"polygons": n, "area_m2": a}}``, as a pair's outcome and its index row hold them."""
    return {t.change_type: {"polygons": t.polygons, "area_m2": t.area_m2} for t in change_types}


def _footprint(before: RasterPath, after: RasterPath, bands: Sequence[int | str] | None) -> shapely.Geometry:
    """The overlap of a pair (as :func:`geocd.data.pair.overlap_window` finds it) as an EPSG:4326 polygon
    (``bands``: of a STAC item, see :func:`geocd.data.rasters.open_raster`)."""
    with open_raster(before, bands) as b, open_raster(after, bands) as a:
        grid = grid_of(b)
        window = overlap_window(grid, b, a)
    left, bottom, right, top = window_bounds(window, grid.transform)
    box = shapely.box(left, bottom, right, top)
    box = shapely.segmentize(box, max(right - left, top - bottom) / _FOOTPRINT_SEGMENTS)
    return shapely.geometry.shape(transform_geom(grid.crs, INDEX_CRS, shapely.geometry.mapping(box)))


def _fingerprint(record: PairRecord, models: Sequence[Path], outputs: ArchiveOutputs, options: PredictOptions) -> str:
    """A digest of what a pair's outputs depend on: input and model files (path, size, mtime), options, outputs, geocd."""
    def stamp(path: RasterPath) -> list[Any]:
        if is_remote(path):  # read where it is: its URL stands for it
            return [str(path), None, None]
        if not path.is_file():  # the pair will fail on it; a file that appears later changes the digest
            return [str(path.resolve()), None, None]
        stat = path.stat()
        return [str(path.resolve()), stat.st_size, stat.st_mtime_ns]

    what = {
        "files": [stamp(record.before), stamp(record.after), *map(stamp, models)],
        "options": {k: str(v) for k, v in asdict(options).items()},
        "outputs": {"kinds": sorted(outputs.kinds), "vector_suffix": outputs.vector_suffix,
                    "min_area_m2": outputs.min_area_m2},
        "geocd": __version__,
    }
    return hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()


def _finished(index: Path) -> dict[str, PairOutcome]:
    """Pairs an existing index records as ``ok`` whose outputs all exist, by name (an index from before
    ``file_stem`` was recorded named the outputs after the pair)."""
    if not index.exists():
        return {}
    frame = pyogrio.read_dataframe(index)
    finished = {}
    for row in frame.itertuples():
        written = {kind: getattr(row, kind) for kind in PAIR_FILES if getattr(row, kind)}
        if row.status == "ok" and all(Path(p).exists() for p in written.values()):
            finished[row.name] = PairOutcome(
                row.name, "ok", row.fingerprint, row.before, row.after, getattr(row, "file_stem", None) or row.name,
                footprint=row.geometry, outputs=written,
                polygons=row.polygons, area_m2=row.area_m2, change_types=json.loads(row.change_types),
                seconds=row.seconds,
            )
    return finished


def _write_index(index: Path, pairs: Sequence[PairOutcome]) -> None:
    """Write the index GeoPackage (:data:`INDEX_LAYER`) atomically; ``change_types`` is a JSON column."""
    frame = gpd.GeoDataFrame({
        "name": [p.name for p in pairs],
        "file_stem": [p.file_stem for p in pairs],
        "status": [p.status for p in pairs],
        "error": [None if p.error is None else str(p.error) for p in pairs],
        "before": [p.before for p in pairs],
        "after": [p.after for p in pairs],
        **{kind: [p.outputs.get(kind) for p in pairs] for kind in PAIR_FILES},
        "polygons": [p.polygons for p in pairs],
        "area_m2": [p.area_m2 for p in pairs],
        "change_types": [json.dumps(p.change_types, ensure_ascii=False) for p in pairs],
        "seconds": [round(p.seconds, 3) for p in pairs],
        "fingerprint": [p.fingerprint for p in pairs],
    }, geometry=[p.footprint for p in pairs], crs=INDEX_CRS)
    write_vectors(index, frame, INDEX_LAYER, overwrite=True)
