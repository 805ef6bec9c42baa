"""Change-detection metrics from confusion matrices (SECOND / SenseEarth 2020 definitions).

The semantic confusion matrix ``hist[true, pred]`` is over ids 0..K (0 = unchanged) and is
accumulated over *both* dates, as the SECOND benchmark does. From it:

* binary change matrix: unchanged vs changed (any id >= 1);
* ``iou_unchanged``, ``iou_changed``, ``miou`` (their mean);
* ``sek``: separated kappa = kappa(hist with hist[0, 0] set to 0) * exp(iou_changed) / e;
* ``score`` = 0.3 * miou + 0.7 * sek;
* ``f_scd``: harmonic mean of semantic-change precision and recall, where a changed pixel
  counts as right only with the right class;
* binary ``precision``, ``recall``, ``f1`` of the changed class.

Degenerate cases follow the usual conventions: a ratio with a zero denominator is 1.0 when
its numerator is also zero because nothing was there to find (e.g. IoU of "changed" when
neither truth nor prediction has a changed pixel), else 0.0; kappa with pe = 1 is 1.0.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np


def confusion_matrix(truth: np.ndarray, pred: np.ndarray, num_classes: int, ignore: int | None = 255) -> np.ndarray:
    """``hist[t, p]`` counts of pixels with truth ``t`` and prediction ``p`` (ids ``0..num_classes-1``)."""
    truth, pred = np.asarray(truth).ravel(), np.asarray(pred).ravel()
    keep = (truth >= 0) & (truth < num_classes)
    if ignore is not None:
        keep &= truth != ignore
    index = num_classes * truth[keep].astype(np.int64) + pred[keep].astype(np.int64)
    return np.bincount(index, minlength=num_classes**2).reshape(num_classes, num_classes).astype(np.int64)


def binary_matrix(hist: np.ndarray) -> np.ndarray:
    """Collapse a semantic matrix to unchanged (0) vs changed (1)."""
    return np.array([[hist[0, 0], hist[0, 1:].sum()], [hist[1:, 0].sum(), hist[1:, 1:].sum()]], dtype=np.int64)


def _ratio(numerator: float, denominator: float) -> float:
    if denominator == 0:
        return 1.0 if numerator == 0 else 0.0
    return float(numerator) / float(denominator)


def kappa(hist: np.ndarray) -> float:
    """Cohen's kappa of a confusion matrix."""
    total = hist.sum()
    if total == 0:
        return 1.0
    po = np.trace(hist) / total
    pe = float((hist.sum(0) * hist.sum(1)).sum()) / float(total) ** 2
    return 1.0 if pe == 1 else float((po - pe) / (1 - pe))


@dataclass(frozen=True)
class BinaryScores:
    """Scores of the binary change map."""

    iou_unchanged: float
    iou_changed: float
    miou: float
    precision: float
    recall: float
    f1: float


@dataclass(frozen=True)
class SemanticScores(BinaryScores):
    """Binary scores plus the semantic-change scores of SECOND."""

    sek: float
    score: float
    f_scd: float


def binary_scores(matrix: np.ndarray) -> BinaryScores:
    """Scores from a 2x2 ``[true, pred]`` matrix of unchanged/changed."""
    (tn, fp), (fn, tp) = matrix
    iou_changed = _ratio(tp, tp + fp + fn)
    iou_unchanged = _ratio(tn, tn + fp + fn)
    precision, recall = _ratio(tp, tp + fp), _ratio(tp, tp + fn)
    f1 = _ratio(2 * precision * recall, precision + recall) if precision + recall else 0.0
    return BinaryScores(iou_unchanged, iou_changed, (iou_unchanged + iou_changed) / 2, precision, recall, f1)


def semantic_scores(hist: np.ndarray) -> SemanticScores:
    """SECOND scores from a ``[true, pred]`` matrix over ids 0..K accumulated over both dates."""
    binary = binary_scores(binary_matrix(hist))
    separated = hist.copy()
    separated[0, 0] = 0
    sek = kappa(separated) * math.exp(binary.iou_changed) / math.e
    right = np.trace(hist[1:, 1:])
    precision = _ratio(right, hist[:, 1:].sum())
    recall = _ratio(right, hist[1:, :].sum())
    f_scd = _ratio(2 * precision * recall, precision + recall) if precision + recall else 0.0
    return SemanticScores(**asdict(binary), sek=sek, score=0.3 * binary.miou + 0.7 * sek, f_scd=f_scd)


def iou_per_class(hist: np.ndarray) -> np.ndarray:
    """Per-class IoU of a ``[true, pred]`` matrix (NaN for a class absent from truth and prediction)."""
    diag = np.diag(hist).astype(np.float64)
    union = hist.sum(0) + hist.sum(1) - diag
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, diag / np.maximum(union, 1), np.nan)
