"""``geocd evaluate``: the full predict path on each labelled pair of an archive, then scores.

Each pair is predicted exactly as ``geocd predict`` does (tiling, blending, threshold) into a
temporary change raster; that raster and the labels (aligned to the 'before' grid) are read
back in strips of rows to fill confusion matrices, so memory stays bounded.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from rasterio.windows import Window

from geocd.changemap import NODATA, is_changed
from geocd.checkpoint import LoadedModel
from geocd.data.archive import IGNORE, PairRecord, read_archive
from geocd.data.labelled import change_mask, open_labels, read_label
from geocd.data.rasters import grid_of, open_raster
from geocd.inference.predict import PredictOptions, predict_change_raster
from geocd.metrics import binary_scores, confusion_matrix, semantic_scores
from geocd.progress import Progress

STRIP_ROWS = 512


@dataclass
class PairEvaluation:
    """Confusion matrices of one pair (``semantic`` is None without land-cover labels or model)."""

    name: str
    dataset: str
    binary: np.ndarray
    semantic: np.ndarray | None = None

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
    groups: dict[str, PairEvaluation] = field(default_factory=dict)

    def __post_init__(self) -> None:
        names = sorted({p.dataset for p in self.pairs})
        for name in names + ["all"]:
            members = [p for p in self.pairs if name in ("all", p.dataset)]
            semantic = [p.semantic for p in members if p.semantic is not None]
            self.groups[name] = PairEvaluation(
                name, name, sum(p.binary for p in members), sum(semantic) if len(semantic) == len(members) else None
            )

    def to_dict(self) -> dict:
        """JSON-ready: models, TTA, and for every pair and group its pixel count and scores."""
        def entry(e: PairEvaluation, pairs: int) -> dict:
            return {"name": e.name, "dataset": e.dataset, "pairs": pairs, "pixels": int(e.binary.sum()), **e.scores(),
                    "binary_confusion": e.binary.tolist(),
                    "semantic_confusion": None if e.semantic is None else e.semantic.tolist()}

        counts = {g: sum(1 for p in self.pairs if g in ("all", p.dataset)) for g in self.groups}
        return {"models": self.models, "tta": self.tta, "pairs": [entry(p, 1) for p in self.pairs],
                "groups": [entry(g, counts[name]) for name, g in self.groups.items()]}

    def table(self) -> str:
        """A plain-text table of every pair and group."""
        columns = ("f1", "iou_changed", "miou", "sek", "score", "f_scd")
        lines = [f"{'pair':24} {'dataset':12} {'MP':>7} " + " ".join(f"{c:>11}" for c in columns)]
        for e in [*self.pairs, *self.groups.values()]:
            scores = e.scores()
            cells = " ".join(f"{scores[c]:11.4f}" if c in scores else f"{'-':>11}" for c in columns)
            lines.append(f"{e.name[:24]:24} {e.dataset[:12]:12} {e.binary.sum() / 1e6:7.3f} {cells}")
        return "\n".join(lines)


def evaluate_pair(record: PairRecord, raster: Path, semantic: bool, num_classes: int) -> PairEvaluation:
    """Confusion matrices of a predicted change raster against the pair's labels, strip by strip.

    The change truth is the record's ``change`` mask when it has one, else ``label_before > 0``
    (as in training).
    """
    with open_raster(record.before) as before:
        grid = grid_of(before)
    land_cover = [record.label_before, record.label_after] if record.semantic else []
    change_source = record.change or record.label_before
    with open_raster(raster) as pred, contextlib.ExitStack() as stack:
        threshold = float(pred.tags().get("GEOCD_THRESHOLD", 0.5))
        change_labels, *cover_labels = [stack.enter_context(src) for src in open_labels([change_source, *land_cover], grid)]
        binary = np.zeros((2, 2), np.int64)
        hist = np.zeros((num_classes + 1, num_classes + 1), np.int64) if semantic else None
        for row in range(0, pred.height, STRIP_ROWS):
            window = Window(0, row, pred.width, min(STRIP_ROWS, pred.height - row))
            probability, from_class, to_class = pred.read(window=window)
            valid = probability != NODATA
            truth_change = np.where(valid, change_mask(read_label(change_labels, window)), IGNORE)
            binary += confusion_matrix(truth_change, is_changed(probability, threshold).astype(np.int64), 2)
            if hist is not None:
                for src, predicted in zip(cover_labels, (from_class, to_class)):
                    hist += confusion_matrix(np.where(valid, read_label(src, window), IGNORE), predicted, num_classes + 1)
    return PairEvaluation(record.name, record.dataset, binary, hist)


def evaluate(
    archive: str | os.PathLike[str],
    models: Sequence[LoadedModel],
    options: PredictOptions = PredictOptions(),
    pairs: Sequence[str] | None = None,
    progress: Progress | None = None,
) -> EvaluationReport:
    """Predict and score every pair of ``archive`` (or the ``pairs`` named)."""
    records = read_archive(archive)
    if pairs is not None:
        records = [r for r in records if r.name in set(pairs)]
    meta = models[0].metadata
    results = []
    with tempfile.TemporaryDirectory(prefix="geocd-evaluate-") as tmp:
        for record in records:
            raster = Path(tmp) / f"{len(results)}.tif"
            predict_change_raster(record.before, record.after, models, raster, options, progress)
            semantic = record.semantic and meta.landcover_trained
            results.append(evaluate_pair(record, raster, semantic, meta.config.num_classes))
            raster.unlink()
    return EvaluationReport(results, [str(m.path) for m in models], options.tta, [c.name for c in meta.schema.classes])


def save_report(report: EvaluationReport, folder: str | os.PathLike[str]) -> tuple[Path, Path]:
    """Write ``evaluation.json`` and ``confusion.png`` (overall matrix) into ``folder``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    json_path = out / "evaluation.json"
    json_path.write_text(json.dumps(report.to_dict(), indent=1))
    overall = report.groups["all"]
    matrix = overall.semantic if overall.semantic is not None else overall.binary
    labels = ["unchanged", "changed"] if overall.semantic is None else report.class_names
    share = matrix / np.maximum(matrix.sum(1, keepdims=True), 1)
    figure, axes = plt.subplots(figsize=(1.2 + 0.7 * len(labels), 1 + 0.7 * len(labels)))
    axes.imshow(share, cmap="Blues", vmin=0, vmax=1)
    for (t, p), value in np.ndenumerate(matrix):
        axes.text(p, t, f"{value}", ha="center", va="center", fontsize=7, color="black" if share[t, p] < 0.6 else "white")
    axes.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    axes.set_yticks(range(len(labels)), labels)
    axes.set_xlabel("predicted")
    axes.set_ylabel("truth")
    axes.set_title("confusion (rows normalised)")
    figure.tight_layout()
    png_path = out / "confusion.png"
    figure.savefig(png_path, dpi=120)
    plt.close(figure)
    return json_path, png_path
