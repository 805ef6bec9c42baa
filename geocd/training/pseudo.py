"""Pseudo-label self-distillation: an ensemble labels the unchanged areas of change pairs.

SECOND-style labels name a land-cover class only where something changed, binary labels
none at all. The SenseEarth 2020 winner let an ensemble of trained models label the
*unchanged* pixels too and retrained on ground truth plus these pseudo labels. For each pair
:func:`pseudo_label` runs the full predict path (tiling, blending, optional TTA) for both
dates' land-cover maps and writes their finished rows straight into, on the pair's 'before' grid:

* ``label_before/STEM.tif`` and ``label_after/STEM.tif`` (``STEM``: the pair's name made a safe file name
  by :mod:`geocd.safe_names`): the ground-truth class where it
  has one (never overwritten); where the ground truth says unchanged and the ensemble's
  before and after predictions agree, that class in both dates; 255 (ignore) elsewhere,
  so the changed pixels of a binary pair are ignored by the land-cover loss;
* ``change/STEM.tif``: the ground-truth change mask (0, 1, 255; from ``label_before > 0``
  for SECOND-style pairs, the pair's change raster for binary ones);
* ``manifest.csv`` (an archive ``geocd train --pseudo-labels`` accepts; the pairs done) and
  ``pseudo_labels.json`` (models, TTA, source archive, per pair the share of unchanged
  pixels that received a pseudo label, and the pairs that failed with their errors).

A pair failing in any way fails alone: the others are still labelled.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import rasterio

from geocd.atomic import atomic_output, check_output_path
from geocd.changemap import ChangeMapInfo, ChangeRows, ChangeSink, write_rows
from geocd.checkpoint import LoadedModel, check_ensemble, load_models
from geocd.data.archive import PairRecord, archive_file_stems, manifest_path, open_archive, write_manifest
from geocd.data.labelled import change_mask, open_labels, read_label
from geocd.data.labels import IGNORE
from geocd.data.rasters import Grid, geotiff_profile
from geocd.data.remote import with_remote_reads
from geocd.errors import GeocdError, InputError, pair_failure
from geocd.inference.predict import PredictOptions, predict_change_raster, resolve_device
from geocd.progress import Progress
from geocd.safe_names import pair_file

PROVENANCE = "pseudo_labels.json"
LABEL_FOLDERS = ("label_before", "label_after", "change")


@dataclass(frozen=True)
class PairPseudoLabels:
    """How much of one pair's unchanged area received a pseudo label."""

    name: str
    unchanged_pixels: int
    pseudo_labelled_pixels: int
    split: str = ""

    @property
    def fraction(self) -> float:
        """Share of ground-truth unchanged pixels that received a pseudo label (0 when none is unchanged)."""
        return self.pseudo_labelled_pixels / self.unchanged_pixels if self.unchanged_pixels else 0.0


@dataclass(frozen=True)
class PairFailure:
    """A pair that could not be pseudo-labelled: its one-line error and, when unexpected, its traceback."""

    name: str
    error: GeocdError
    traceback: str | None = None


@dataclass(frozen=True)
class PseudoLabelReport:
    """What :func:`pseudo_label` wrote, and from what."""

    output: Path
    archive: Path
    models: tuple[str, ...]
    tta: bool
    pairs: tuple[PairPseudoLabels, ...]
    failed: tuple[PairFailure, ...] = ()
    test_pairs_left_out: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        """JSON-ready provenance: source archive, models, TTA, per-pair split and counts, the failed pairs and
        the test pairs left out."""
        pairs = [{"name": p.name, "split": p.split, "unchanged_pixels": p.unchanged_pixels,
                  "pseudo_labelled_pixels": p.pseudo_labelled_pixels, "fraction": p.fraction} for p in self.pairs]
        failed = [{"name": f.name, "error": str(f.error)} for f in self.failed]
        return {"archive": os.fspath(self.archive), "models": list(self.models), "tta": self.tta, "pairs": pairs,
                "failed": failed, "test_pairs_left_out": list(self.test_pairs_left_out)}

    def table(self) -> str:
        """A plain-text table: per pair its split, the unchanged pixels and the share that got a pseudo label;
        then the test pairs left out, if any."""
        lines = [f"{'pair':28} {'split':6} {'unchanged px':>12} {'pseudo px':>12} {'fraction':>8}"]
        for p in self.pairs:
            lines.append(f"{p.name[:28]:28} {split_name(p.split):6} {p.unchanged_pixels:12d} {p.pseudo_labelled_pixels:12d} "
                         f"{p.fraction:8.4f}")
        if self.test_pairs_left_out:
            n = len(self.test_pairs_left_out)
            lines.append(f"left out {n} pair{'s' if n > 1 else ''} of the test split ("
                         f"{', '.join(self.test_pairs_left_out)}): never trained on (--include-test labels them too)")
        return "\n".join(lines)


def split_name(split: str) -> str:
    """A manifest ``split`` value as messages name it (empty: ``drawn``, the split ``geocd train`` draws)."""
    return split or "drawn"


@with_remote_reads
def pseudo_label(
    archive: str | os.PathLike[str],
    models: Sequence[LoadedModel | str | os.PathLike[str]] | None,
    output_dir: str | os.PathLike[str],
    options: PredictOptions = PredictOptions(),
    overwrite: bool = False,
    pairs: Sequence[str] | None = None,
    progress: Progress | None = None,
    include_test: bool = False,
) -> PseudoLabelReport:
    """Write pseudo labels for every pair of ``archive`` (or the ``pairs`` named), SECOND-style or binary,
    into ``output_dir``, with ``models`` (loaded, checkpoint paths, or none / ``"default"``: the bundled model).

    Pairs of the archive's test split are never trained on, so they are left out (and listed in the
    report) unless ``include_test``. A model without trained land-cover heads is an :class:`InputError`.
    An existing manifest or provenance is refused unless ``overwrite``; a pair whose outputs exist
    (without ``overwrite``), or that fails in any other way, is the report's failure, not the run's.
    """
    models = load_models(models, resolve_device(options.device))
    check_models(models)
    source = manifest_path(archive).resolve()
    opened = open_archive(source, "change")
    stems = archive_file_stems(opened)
    records = select_pairs(source, list(opened.records), pairs)
    left_out = tuple(r.name for r in records if r.split == "test" and not include_test)
    records = [r for r in records if r.name not in left_out]
    if not records:
        raise InputError(source, f"has no pair to pseudo-label: {', '.join(left_out)} in the test split, never trained on "
                                 "(include_test=True labels test pairs too)")
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    for folder in LABEL_FOLDERS:
        (out / folder).mkdir(exist_ok=True)
    for path in (out / "manifest.csv", out / PROVENANCE):
        check_output_path(path, overwrite)
    counts, written, failed = [], [], []
    for record in records:
        try:
            outputs = pair_outputs(out, stems[record.name])
            counts.append(pseudo_label_pair(record, models, outputs, options, overwrite, progress))
        except Exception as error:  # noqa: BLE001 - one pair's failure, whatever it is, is that pair's alone
            failed.append(PairFailure(record.name, *pair_failure(error, record.before, record.name)))
            continue
        label_before, label_after, change = (path.resolve() for path in outputs)
        written.append(replace(record, label_before=label_before, label_after=label_after, change=change))
    report = PseudoLabelReport(out, source, tuple(str(m.path) for m in models), options.tta, tuple(counts), tuple(failed),
                               left_out)
    with atomic_output(out / "manifest.csv", overwrite) as tmp:
        write_manifest(written, tmp)
    with atomic_output(out / PROVENANCE, overwrite) as tmp:
        tmp.write_text(json.dumps(report.to_dict(), indent=1))
    return report


def check_models(models: Sequence[LoadedModel]) -> None:
    """An ensemble for pseudo labels: at least one model, all with trained land-cover heads, compatible."""
    if not models:
        raise InputError(None, "pseudo labels need at least one model")
    for model in models:
        if not model.metadata.landcover_trained:
            raise InputError(model.path, "has untrained land-cover heads, so it cannot give pseudo labels")
    check_ensemble(models)


def select_pairs(manifest: Path, records: list[PairRecord], names: Sequence[str] | None) -> list[PairRecord]:
    """The records named (all when ``names`` is None); an unknown name is an :class:`InputError`."""
    if names is None:
        return records
    known = {r.name for r in records}
    missing = [n for n in names if n not in known]
    if missing:
        raise InputError(manifest, f"has no pair named {missing[0]!r}")
    return [r for r in records if r.name in set(names)]


def pair_outputs(output_dir: Path, stem: str) -> tuple[Path, Path, Path]:
    """Where the pseudo ``label_before``, ``label_after`` and ground-truth ``change`` rasters of the pair of
    file stem ``stem`` go; one leading outside ``output_dir`` is an :class:`OutputError`."""
    before, after, change = (pair_file(output_dir / folder, stem, ".tif", root=output_dir) for folder in LABEL_FOLDERS)
    return before, after, change


def pseudo_label_pair(
    record: PairRecord, models: Sequence[LoadedModel], outputs: tuple[Path, Path, Path], options: PredictOptions,
    overwrite: bool, progress: Progress | None = None,
) -> PairPseudoLabels:
    """Predict both dates' land cover for one pair through the full predict path and write its pseudo labels
    from the finished rows (no temporary land-cover map)."""
    labels = _PseudoLabels(record)
    with contextlib.ExitStack() as stack:
        targets = [stack.enter_context(atomic_output(path, overwrite)) for path in outputs]
        predict_change_raster(record.before, record.after, models, [functools.partial(labels.sink, targets)], options,
                              progress)
    return PairPseudoLabels(record.name, labels.unchanged, labels.labelled, record.split)


class _PseudoLabels:
    """Writes the three label rasters of a pair from rows of its predicted land cover, counting as it goes.

    ``unchanged`` counts the ground-truth unchanged pixels, ``labelled`` those that got a pseudo label.
    """

    def __init__(self, record: PairRecord) -> None:
        self.record = record
        self.unchanged = self.labelled = 0

    @contextlib.contextmanager
    def sink(self, targets: Sequence[Path], grid: Grid, info: ChangeMapInfo) -> Iterator[ChangeSink]:
        """A :data:`geocd.changemap.SinkFactory` once ``targets`` are bound: the label rasters on ``grid``."""
        with contextlib.ExitStack() as stack:
            truth = [stack.enter_context(src) for src in open_labels(self._truth_paths(), grid)]
            dsts = [stack.enter_context(open_label_raster(path, grid, folder)) for path, folder in zip(targets, LABEL_FOLDERS)]

            def add(rows: ChangeRows) -> None:
                truth_before, truth_after, change = self._truth([read_label(src, rows.window) for src in truth])
                pseudo = agreed_class(truth_before, *rows.landcover)
                for dst, labels in zip(dsts, (merge(truth_before, pseudo), merge(truth_after, pseudo), change)):
                    write_rows(dst, labels.astype(np.uint8)[None], rows.window)
                self.unchanged += int(np.count_nonzero(truth_before == 0))
                self.labelled += int(np.count_nonzero(pseudo != IGNORE))

            yield add

    def _truth_paths(self) -> list[Path]:
        r = self.record
        return [r.label_before, r.label_after] if r.semantic else [r.change]

    def _truth(self, labels: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Both dates' ground-truth land cover and the change mask; a binary pair's land cover is 0 where
        unchanged and ``IGNORE`` elsewhere."""
        if self.record.semantic:
            return labels[0], labels[1], change_mask(labels[0])
        change = change_mask(labels[0])
        unchanged = np.where(change == 0, 0, IGNORE)
        return unchanged, unchanged, change


def agreed_class(truth_before: np.ndarray, predicted_before: np.ndarray, predicted_after: np.ndarray) -> np.ndarray:
    """The predicted class where the ground truth says unchanged and both dates' valid predictions agree, else ``IGNORE``."""
    agree = (truth_before == 0) & (predicted_before == predicted_after) & (predicted_before != IGNORE)
    return np.where(agree, predicted_before, IGNORE)


def merge(truth: np.ndarray, pseudo: np.ndarray) -> np.ndarray:
    """Ground-truth classes 1..K kept exactly; the pseudo label (or ``IGNORE``) everywhere else."""
    return np.where((truth > 0) & (truth != IGNORE), truth, pseudo)


@contextlib.contextmanager
def open_label_raster(path: Path, grid: Grid, description: str):  # noqa: ANN201 - a rasterio writer context
    """Create a tiled, compressed one-band uint8 label GeoTIFF on ``grid`` (255 = ignore, nodata)."""
    with rasterio.open(path, "w", **geotiff_profile(grid, 1, "uint8", IGNORE)) as dst:
        dst.descriptions = (description,)
        yield dst


def read_provenance(folder: str | os.PathLike[str]) -> dict:
    """The ``pseudo_labels.json`` of a pseudo-label folder; a folder without one is an :class:`InputError`."""
    path = Path(folder) / PROVENANCE
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        data = None
    if not isinstance(data, dict):
        raise InputError(path, "cannot be read as pseudo-label provenance; is this a folder written by geocd pseudo-label?")
    return data
