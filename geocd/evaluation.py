"""``geocd evaluate``: the full predict path on each labelled pair of an archive, then scores.

Each pair is predicted exactly as ``geocd predict`` does (tiling, blending, threshold); its
finished rows go straight into confusion matrices beside the labels (aligned to the 'before'
grid), with no temporary change raster, so memory stays bounded.

Only predicted pixels that are labelled are scored; each pair reports the fraction of its
predicted pixels that was. A pair that cannot be scored (unreadable, no labelled pixel where it
was predicted, ...) is left out of the scores and listed in the report's ``failed``, and the
others are still scored; when no pair can be scored, the first pair's error is raised.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from geocd.atomic import atomic_output, check_output_path
from geocd.changemap import NODATA, ChangeMapInfo, ChangeRows, ChangeSink, changed_pixels
from geocd.checkpoint import LoadedModel, load_models
from geocd.data.archive import LandCoverRecord, PairRecord, read_archive, read_landcover_archive
from geocd.data.labelled import change_mask, open_labels, read_label
from geocd.data.labels import IGNORE
from geocd.data.rasters import Grid
from geocd.data.remote import with_remote_reads
from geocd.errors import GeocdError, InputError, OutputError
from geocd.inference.predict import PredictOptions, predict_change_raster, resolve_device
from geocd.metrics import binary_scores, confusion_matrix, iou_per_class, semantic_scores
from geocd.progress import Progress


@dataclass
class PairEvaluation:
    """Confusion matrices of one pair (``semantic`` is None without land-cover labels or model).

    ``predicted`` counts the pixels with a prediction; the scored ones (labelled among them)
    are ``binary.sum()``.
    """

    name: str
    dataset: str
    binary: np.ndarray
    semantic: np.ndarray | None = None
    predicted: int = 0

    @property
    def scored_fraction(self) -> float:
        """Share of the predicted pixels that were labelled, hence scored (0..1)."""
        return float(self.binary.sum() / self.predicted) if self.predicted else 0.0

    def scores(self) -> dict[str, float]:
        """Binary scores, plus SECOND scores when semantic matrices exist."""
        if self.semantic is not None:
            return asdict(semantic_scores(self.semantic))
        return asdict(binary_scores(self.binary))


@dataclass
class EvaluationReport:
    """Per-pair, per-dataset and overall scores."""

    pairs: list[PairEvaluation]
    models: list[str]
    tta: bool
    class_names: list[str]
    failed: list[tuple[str, GeocdError]] = field(default_factory=list)
    groups: dict[str, PairEvaluation] = field(default_factory=dict)

    def __post_init__(self) -> None:
        names = sorted({p.dataset for p in self.pairs})
        for name in names + ["all"]:
            members = [p for p in self.pairs if name in ("all", p.dataset)]
            semantic = [p.semantic for p in members if p.semantic is not None]
            self.groups[name] = PairEvaluation(
                name, name, sum(p.binary for p in members), sum(semantic) if len(semantic) == len(members) else None,
                sum(p.predicted for p in members),
            )

    def to_dict(self) -> dict:
        """JSON-ready: models, TTA, for every pair and group its scored pixels, scored fraction and scores,
        and the pairs that could not be scored with their error."""
        def entry(e: PairEvaluation, pairs: int) -> dict:
            return {"name": e.name, "dataset": e.dataset, "pairs": pairs, "pixels": int(e.binary.sum()),
                    "scored_fraction": e.scored_fraction, **e.scores(), "binary_confusion": e.binary.tolist(),
                    "semantic_confusion": None if e.semantic is None else e.semantic.tolist()}

        counts = {g: sum(1 for p in self.pairs if g in ("all", p.dataset)) for g in self.groups}
        return {"models": self.models, "tta": self.tta, "pairs": [entry(p, 1) for p in self.pairs],
                "groups": [entry(g, counts[name]) for name, g in self.groups.items()],
                "failed": [{"name": name, "error": str(error)} for name, error in self.failed]}

    def table(self) -> str:
        """A plain-text table of every pair and group: scored megapixels and share, scores."""
        columns = ("f1", "iou_changed", "miou", "sek", "score", "f_scd")
        lines = [f"{'pair':24} {'dataset':12} {'MP':>7} {'scored':>7} " + " ".join(f"{c:>11}" for c in columns)]
        for e in [*self.pairs, *self.groups.values()]:
            scores = e.scores()
            cells = " ".join(f"{scores[c]:11.4f}" if c in scores else f"{'-':>11}" for c in columns)
            lines.append(f"{e.name[:24]:24} {e.dataset[:12]:12} {e.binary.sum() / 1e6:7.3f} {e.scored_fraction:7.1%} {cells}")
        return "\n".join(lines)


class _PairConfusion:
    """Confusion matrices of a pair's predicted change map against its labels, filled row by row.

    The change truth is the record's ``change`` mask when it has one, else ``label_before > 0``
    (as in training); land-cover matrices (``semantic``) count ids 0..``num_classes``. With
    ``PredictOptions.only`` the prediction keeps only those changes, and so does the truth where
    land-cover labels name its classes (a binary truth, e.g. LEVIR's buildings, is taken as it is).
    """

    def __init__(self, record: PairRecord, semantic: bool, num_classes: int) -> None:
        self.record = record
        self.change_source = record.change or record.label_before
        self.land_cover = [record.label_before, record.label_after] if semantic else []
        self.binary = np.zeros((2, 2), np.int64)
        self.hist = np.zeros((num_classes + 1, num_classes + 1), np.int64) if semantic else None
        self.predicted = 0

    @contextlib.contextmanager
    def sink(self, grid: Grid, info: ChangeMapInfo) -> Iterator[ChangeSink]:
        """A :data:`geocd.changemap.SinkFactory`: the labels are read on ``grid`` beside each strip of rows."""
        with contextlib.ExitStack() as stack:
            labels = [stack.enter_context(src) for src in open_labels([self.change_source, *self.land_cover], grid)]

            def add(rows: ChangeRows) -> None:
                probability, from_class, to_class = rows.bands
                valid = probability != NODATA
                self.predicted += int(valid.sum())
                truth_change = change_mask(read_label(labels[0], rows.window))
                truth = [np.where(valid, read_label(src, rows.window), IGNORE) for src in labels[1:]]
                if info.only and truth:
                    kept = np.isin(truth[0], info.only) | np.isin(truth[1], info.only)
                    truth_change = np.where(truth_change == 1, kept, truth_change)
                truth_change = np.where(valid, truth_change, IGNORE)
                self.binary += confusion_matrix(truth_change, changed_pixels(probability, from_class, info).astype(np.int64), 2)
                for date_truth, predicted in zip(truth, (from_class, to_class)):
                    self.hist += confusion_matrix(date_truth, predicted, len(self.hist))

            yield add

    def result(self) -> PairEvaluation:
        """The pair's evaluation; :class:`InputError` when no predicted pixel is labelled."""
        if not self.binary.any():
            raise InputError(self.change_source, f"labels no pixel where pair {self.record.name} was predicted; nothing to score")
        return PairEvaluation(self.record.name, self.record.dataset, self.binary, self.hist, self.predicted)


@with_remote_reads
def evaluate(
    archive: str | os.PathLike[str],
    models: Sequence[LoadedModel | str | os.PathLike[str]] | None = None,
    options: PredictOptions = PredictOptions(),
    pairs: Sequence[str] | None = None,
    progress: Progress | None = None,
) -> EvaluationReport:
    """Predict and score every pair of ``archive`` (or the ``pairs`` named); pairs that fail are listed in ``failed``.

    ``models``: loaded models or checkpoint paths (none or ``"default"``: the bundled model).
    """
    models = load_models(models, resolve_device(options.device))
    records = read_archive(archive)
    if pairs is not None:
        records = [r for r in records if r.name in set(pairs)]
    meta = models[0].metadata
    score = functools.partial(_score_pair, models=models, options=options, progress=progress)
    results, failed = _score_each(records, score)
    return EvaluationReport(results, [str(m.path) for m in models], options.tta, [c.name for c in meta.schema.classes], failed)


def _score_pair(record: PairRecord, models: Sequence[LoadedModel], options: PredictOptions, progress: Progress | None,
                ) -> PairEvaluation:
    meta = models[0].metadata
    confusion = _PairConfusion(record, record.semantic and meta.landcover_trained, meta.config.num_classes)
    predict_change_raster(record.before, record.after, models, [confusion.sink], options, progress)
    return confusion.result()


def _score_each(records: Sequence[PairRecord | LandCoverRecord], score: Callable[..., PairEvaluation],
                ) -> tuple[list[PairEvaluation], list[tuple[str, GeocdError]]]:
    """Every record's evaluation, and the (name, error) of those that failed; the first error when all did."""
    results, failed = [], []
    for record in records:
        try:
            results.append(score(record))
        except GeocdError as error:
            failed.append((record.name, error))
    if failed and not results:
        raise failed[0][1]
    return results, failed


def plot_confusion(matrix: np.ndarray, labels: Sequence[str], path: Path, title: str = "Confusion matrix") -> Path:
    """A confusion-matrix PNG for a report: ``title`` in full, class names on both axes, each cell's
    pixel count and its share of the true class (rows normalised; colour scale alongside)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    share = matrix / np.maximum(matrix.sum(1, keepdims=True), 1)
    side = max(4.5, 1.6 + 1.1 * len(labels))
    figure, axes = plt.subplots(figsize=(side + 1.2, side), layout="constrained")
    image = axes.imshow(share, cmap="Blues", vmin=0, vmax=1)
    for (t, p), value in np.ndenumerate(matrix):
        axes.text(p, t, f"{value:,}\n{share[t, p]:.1%}", ha="center", va="center", fontsize=8,
                  color="black" if share[t, p] < 0.6 else "white")
    axes.set_xticks(range(len(labels)), labels, rotation=30, ha="right")
    axes.set_yticks(range(len(labels)), labels)
    axes.set_xlabel("predicted class")
    axes.set_ylabel("true class")
    figure.colorbar(image, ax=axes, shrink=0.8, label="share of the true class's pixels")
    figure.suptitle(title, wrap=True)
    figure.savefig(path, dpi=150)
    plt.close(figure)
    return path


@dataclass
class LandCoverReport:
    """Land-cover confusion matrices ``[truth, pred]`` (ids 0..K) per image of a land-cover archive."""

    images: list[PairEvaluation]
    models: list[str]
    tta: bool
    class_names: list[str]
    trained_classes: tuple[int, ...]
    failed: list[tuple[str, GeocdError]] = field(default_factory=list)

    def total(self, dataset: str | None = None) -> np.ndarray:
        """The summed matrix of one dataset, or of all images."""
        return sum(e.semantic for e in self.images if dataset in (None, e.dataset))

    def scores(self, hist: np.ndarray) -> dict[str, float | None]:
        """Per-class IoU of the trained classes with single-class labels in ``hist``, and their mean.

        A class never labelled on its own (e.g. only inside a coarse set) gets None, not 0.
        """
        iou = iou_per_class(hist)
        labelled = hist.sum(1) > 0
        per_class = {self.class_names[c]: float(iou[c]) if labelled[c] else None for c in self.trained_classes}
        present = [v for v in per_class.values() if v is not None]
        return {**per_class, "miou": float(np.mean(present)) if present else None}

    def to_dict(self) -> dict:
        """JSON-ready per-image, per-dataset and overall scores, and the images that failed with their error."""
        datasets = sorted({e.dataset for e in self.images})
        rows = [{"name": e.name, "dataset": e.dataset, **self.scores(e.semantic)} for e in self.images]
        groups = [{"name": d, "images": sum(e.dataset == d for e in self.images), **self.scores(self.total(d))} for d in datasets]
        groups.append({"name": "all", "images": len(self.images), **self.scores(self.total()),
                       "confusion": self.total().tolist()})
        return {"models": self.models, "tta": self.tta, "images": rows, "groups": groups,
                "failed": [{"name": name, "error": str(error)} for name, error in self.failed]}

    def table(self) -> str:
        """Per-class IoU per dataset and overall, as text."""
        columns = [self.class_names[c] for c in self.trained_classes] + ["miou"]
        lines = [f"{'dataset':12} " + " ".join(f"{c[:14]:>14}" for c in columns)]
        for group in self.to_dict()["groups"]:
            cells = " ".join(f"{group[c]:14.4f}" if group[c] is not None else f"{'-':>14}" for c in columns)
            lines.append(f"{group['name'][:12]:12} {cells}")
        return "\n".join(lines)


@with_remote_reads
def evaluate_landcover(
    archive: str | os.PathLike[str], models: Sequence[LoadedModel | str | os.PathLike[str]] | None = None,
    options: PredictOptions = PredictOptions(), names: Sequence[str] | None = None,
) -> LandCoverReport:
    """Land-cover maps predicted through the full predict path (the image as both dates) against a land-cover archive.

    Only pixels labelled with one class count; coarse labels naming a set of classes are left out. ``models`` as
    :func:`evaluate` takes them.
    """
    models = load_models(models, resolve_device(options.device))
    meta = models[0].metadata
    if not meta.landcover_trained:
        raise InputError(models[0].path, "has untrained land-cover heads, so land cover cannot be evaluated")
    records = [r for r in read_landcover_archive(archive) if names is None or r.name in set(names)]
    images, failed = _score_each(records, functools.partial(_score_landcover, models=models, options=options))
    return LandCoverReport(images, [str(m.path) for m in models], options.tta,
                           [c.name for c in meta.schema.classes], meta.trained_classes, failed)


def _score_landcover(record: LandCoverRecord, models: Sequence[LoadedModel], options: PredictOptions) -> PairEvaluation:
    k = models[0].metadata.config.num_classes + 1
    hist = np.zeros((k, k), np.int64)

    @contextlib.contextmanager
    def sink(grid: Grid, info: ChangeMapInfo) -> Iterator[ChangeSink]:
        with contextlib.ExitStack() as stack:
            (truth,) = [stack.enter_context(src) for src in open_labels([record.landcover], grid)]

            def add(rows: ChangeRows) -> None:
                predicted = rows.landcover[0]
                labels = np.where(predicted != NODATA, read_label(truth, rows.window), IGNORE)
                hist[...] += confusion_matrix(labels, predicted, k)

            yield add

    predict_change_raster(record.image, record.image, models, [sink], options)
    return PairEvaluation(record.name, record.dataset, np.zeros((2, 2), np.int64), hist)


def report_paths(folder: str | os.PathLike[str], overwrite: bool = False) -> tuple[Path, Path]:
    """``evaluation.json`` and ``confusion.png`` in ``folder``; :class:`OutputError` if one exists (unless ``overwrite``)."""
    out = Path(folder)
    if out.exists() and not out.is_dir():
        raise OutputError(out, "exists and is not a folder")
    paths = out / "evaluation.json", out / "confusion.png"
    if out.is_dir():
        for path in paths:
            check_output_path(path, overwrite)
    return paths


def save_report(report: EvaluationReport | LandCoverReport, folder: str | os.PathLike[str],
                overwrite: bool = False) -> tuple[Path, Path]:
    """Write ``evaluation.json`` and ``confusion.png`` (overall matrix) into ``folder``, both or neither.

    Existing files are refused unless ``overwrite``; each is written under a temporary name and
    renamed once both are complete.
    """
    json_path, png_path = report_paths(folder, overwrite)
    json_path.parent.mkdir(parents=True, exist_ok=True)
    tta = ", TTA" if report.tta else ""
    if isinstance(report, LandCoverReport):
        matrix, labels = report.total()[1:, 1:], report.class_names[1:]
        title = f"Land cover, {len(report.images)} images{tta}: pixel counts and share of each true class"
    else:
        overall = report.groups["all"]
        matrix = overall.semantic if overall.semantic is not None else overall.binary
        labels = ["unchanged", "changed"] if overall.semantic is None else report.class_names
        kind = "Change" if overall.semantic is None else "Change type"
        title = f"{kind}, {len(report.pairs)} pairs{tta}: pixel counts and share of each true class"
    with atomic_output(json_path, overwrite) as json_tmp, atomic_output(png_path, overwrite) as png_tmp:
        json_tmp.write_text(json.dumps(report.to_dict(), indent=1))
        plot_confusion(matrix, labels, png_tmp, title)
    return json_path, png_path
