"""Metrics against hand-computed confusion matrices."""

import math

import numpy as np
import pytest

from geocd.metrics import binary_matrix, binary_scores, confusion_matrix, iou_per_class, kappa, semantic_scores


def test_confusion_matrix_counts_truth_rows_and_prediction_columns() -> None:
    truth = np.array([0, 0, 1, 2, 2, 255])
    pred = np.array([0, 1, 1, 2, 0, 1])
    hist = confusion_matrix(truth, pred, 3)
    assert hist.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 1]]


def test_kappa_by_hand() -> None:
    hist = np.array([[20, 5], [10, 15]])
    po, pe = 35 / 50, (30 * 25 + 20 * 25) / 50**2
    assert kappa(hist) == pytest.approx((po - pe) / (1 - pe))


def test_semantic_scores_by_hand() -> None:
    # ids 0 unchanged, 1 water, 2 building; rows truth, columns prediction
    hist = np.array([[50, 2, 3], [4, 10, 1], [1, 2, 7]])
    s = semantic_scores(hist)
    tn, fp, fn, tp = 50, 5, 5, 20
    assert binary_matrix(hist).tolist() == [[tn, fp], [fn, tp]]
    iou_c, iou_u = tp / (tp + fp + fn), tn / (tn + fp + fn)
    assert s.iou_changed == pytest.approx(iou_c) and s.miou == pytest.approx((iou_c + iou_u) / 2)
    sep = hist.copy()
    sep[0, 0] = 0
    total = sep.sum()
    po = np.trace(sep) / total
    pe = (sep.sum(0) * sep.sum(1)).sum() / total**2
    sek = (po - pe) / (1 - pe) * math.exp(iou_c) / math.e
    assert s.sek == pytest.approx(sek)
    assert s.score == pytest.approx(0.3 * s.miou + 0.7 * sek)
    p_scd, r_scd = 17 / (2 + 3 + 10 + 1 + 2 + 7), 17 / (4 + 10 + 1 + 1 + 2 + 7)
    assert s.f_scd == pytest.approx(2 * p_scd * r_scd / (p_scd + r_scd))
    assert s.precision == pytest.approx(tp / (tp + fp)) and s.recall == pytest.approx(tp / (tp + fn))


def test_all_unchanged_and_predicted_unchanged_is_perfect() -> None:
    hist = np.zeros((7, 7), np.int64)
    hist[0, 0] = 1000
    s = semantic_scores(hist)
    assert s.iou_unchanged == 1.0 and s.iou_changed == 1.0 and s.miou == 1.0
    assert s.sek == pytest.approx(1.0) and s.score == pytest.approx(1.0)


def test_all_unchanged_but_false_alarms_scores_zero_on_change() -> None:
    hist = np.zeros((3, 3), np.int64)
    hist[0, 0], hist[0, 2] = 90, 10
    s = semantic_scores(hist)
    assert s.iou_changed == 0.0 and s.precision == 0.0 and s.f1 == 0.0 and s.f_scd == 0.0
    assert s.iou_unchanged == pytest.approx(0.9)


def test_binary_scores_on_a_2x2() -> None:
    s = binary_scores(np.array([[6, 2], [1, 3]]))
    assert s.iou_changed == pytest.approx(3 / 6) and s.iou_unchanged == pytest.approx(6 / 9)
    assert s.f1 == pytest.approx(2 * 0.6 * 0.75 / 1.35)


def test_iou_per_class_marks_absent_classes_nan() -> None:
    hist = np.array([[3, 1, 0], [1, 2, 0], [0, 0, 0]])
    iou = iou_per_class(hist)
    assert iou[0] == pytest.approx(3 / 5) and iou[1] == pytest.approx(2 / 4) and math.isnan(iou[2])
