"""geocd evaluate: the predict path on labelled pairs gives the hand-computed scores."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import intensity_model, synthetic_archive
from geocd.evaluation import evaluate, save_report
from geocd.inference.predict import PredictOptions
from geocd.metrics import semantic_scores


def test_perfect_detector_scores_by_hand(tmp_path: Path) -> None:
    manifest = synthetic_archive(tmp_path / "a", pairs=2, size=64)
    report = evaluate(manifest, [intensity_model()], PredictOptions(tile_size=32))
    assert [p.name for p in report.pairs] == ["p0", "p1"]
    for pair in report.pairs:
        changed = 400  # each pair plants a 20 x 20 square, low vegetation -> building
        assert pair.binary.tolist() == [[64 * 64 - changed, 0], [0, changed]]
        expected = np.zeros((7, 7), np.int64)
        expected[0, 0] = 2 * (64 * 64 - changed)
        expected[3, 3] = expected[5, 5] = changed
        assert pair.semantic.tolist() == expected.tolist()
        assert pair.scores()["score"] == pytest.approx(1.0) and pair.scores()["f_scd"] == pytest.approx(1.0)
    overall = report.groups["all"]
    assert overall.binary.sum() == 2 * 64 * 64 and overall.scores() == semantic_scores(overall.semantic).__dict__


def test_a_blind_detector_scores_zero_change_iou(tmp_path: Path) -> None:
    manifest = synthetic_archive(tmp_path / "a", pairs=1, size=64, semantic=False)
    report = evaluate(manifest, [intensity_model(offset=1000.0)], PredictOptions(tile_size=32))
    pair = report.pairs[0]
    assert pair.semantic is None
    assert pair.binary.tolist() == [[64 * 64 - 400, 0], [400, 0]]
    scores = pair.scores()
    assert scores["iou_changed"] == 0.0 and scores["recall"] == 0.0
    assert scores["iou_unchanged"] == pytest.approx((4096 - 400) / 4096)


def test_report_files(tmp_path: Path) -> None:
    manifest = synthetic_archive(tmp_path / "a", pairs=2, size=64)
    report = evaluate(manifest, [intensity_model()], PredictOptions(tile_size=32))
    json_path, png_path = save_report(report, tmp_path / "out")
    data = json.loads(json_path.read_text())
    assert [g["name"] for g in data["groups"]] == ["synthetic", "all"] and data["groups"][1]["pairs"] == 2
    assert png_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "p0" in report.table() and "all" in report.table()


def test_evaluate_command_prints_a_table_and_writes_files(tmp_path: Path, tiny_checkpoint: Path) -> None:
    from click.testing import CliRunner

    from cli.main import cli

    manifest = synthetic_archive(tmp_path / "a", pairs=1, size=64, semantic=False)
    result = CliRunner().invoke(cli, ["evaluate", str(manifest), "--model", str(tiny_checkpoint), "-o", str(tmp_path / "e"),
                                      "--num-workers", "0"])
    assert result.exit_code == 0, result.output
    assert "p0" in result.output and (tmp_path / "e" / "evaluation.json").is_file()


def test_land_cover_archive_gives_per_class_iou_by_hand(tmp_path: Path) -> None:
    from conftest import ORIGIN, write_raster
    from geocd.data.landcover_import import LandCoverRecord, encode_set, write_landcover_manifest
    from geocd.evaluation import evaluate_landcover
    from rasterio.transform import from_origin

    image = np.full((3, 64, 64), 100, np.uint8)
    image[:, :, 32:] = 240  # bright: the intensity model says building (5), else low vegetation (3)
    labels = np.full((64, 64), 3, np.uint8)
    labels[:, 32:] = 5
    labels[:4, :32] = 5  # 128 dark pixels mislabelled as building
    labels[60:, :] = encode_set({3, 4})  # coarse labels are left out of the scores
    grid = from_origin(*ORIGIN, 1.0, 1.0)
    record = LandCoverRecord("img", write_raster(tmp_path / "img.tif", image, transform=grid),
                             write_raster(tmp_path / "lc.tif", labels[None], transform=grid), dataset="toy")
    manifest = write_landcover_manifest([record], tmp_path / "manifest.csv")
    report = evaluate_landcover(manifest, [intensity_model()], PredictOptions(tile_size=32))
    scores = report.scores(report.total())
    building, vegetation = 60 * 32, 60 * 32 - 128  # counted rows 0..59
    assert scores["building"] == pytest.approx(building / (building + 128))
    assert scores["low vegetation"] == pytest.approx(vegetation / (vegetation + 128))
    assert scores["miou"] == pytest.approx((scores["building"] + scores["low vegetation"]) / 2)
    assert "building" in report.table()
