"""geocd evaluate: the predict path on labelled pairs gives the hand-computed scores."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from click.testing import CliRunner, Result
from rasterio.transform import from_origin

import geocd.evaluation
from cli.main import cli
from conftest import intensity_model, synthetic_archive, write_raster
from geocd.errors import InputError, OutputError
from geocd.evaluation import evaluate, save_report
from geocd.inference.predict import PredictOptions
from geocd.metrics import semantic_scores
from geocd.schema import LandCover


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
    from geocd.data.archive import LandCoverRecord, write_manifest
    from geocd.data.labels import encode_set
    from geocd.evaluation import evaluate_landcover
    from rasterio.transform import from_origin

    image = np.full((3, 64, 64), 100, np.uint8)
    image[:, :, 32:] = 240  # bright: the intensity model says building, else low vegetation
    labels = np.full((64, 64), LandCover.LOW_VEGETATION, np.uint8)
    labels[:, 32:] = LandCover.BUILDING
    labels[:4, :32] = LandCover.BUILDING  # 128 dark pixels mislabelled as building
    labels[60:, :] = encode_set({LandCover.LOW_VEGETATION, LandCover.TREE})  # coarse labels are left out of the scores
    grid = from_origin(*ORIGIN, 1.0, 1.0)
    record = LandCoverRecord("img", write_raster(tmp_path / "img.tif", image, transform=grid),
                             write_raster(tmp_path / "lc.tif", labels[None], transform=grid), dataset="toy")
    manifest = write_manifest([record], tmp_path / "manifest.csv")
    report = evaluate_landcover(manifest, [intensity_model()], PredictOptions(tile_size=32))
    scores = report.scores(report.total())
    building, vegetation = 60 * 32, 60 * 32 - 128  # counted rows 0..59
    assert scores["building"] == pytest.approx(building / (building + 128))
    assert scores["low vegetation"] == pytest.approx(vegetation / (vegetation + 128))
    assert scores["miou"] == pytest.approx((scores["building"] + scores["low vegetation"]) / 2)
    assert "building" in report.table()


def relabel(manifest: Path, pair: str, columns: slice, shift_m: float = 0.0) -> Path:
    """Rewrite a pair's change label keeping only ``columns``, moved ``shift_m`` metres east."""
    path = manifest.parent / f"{pair}_change.tif"
    with rasterio.open(path) as src:
        data, transform = src.read()[:, :, columns], src.transform
    left = transform.c + (columns.start or 0) * transform.a + shift_m
    return write_raster(path, data, transform=from_origin(left, transform.f, transform.a, -transform.e))


def run_cli(*args: str) -> Result:
    return CliRunner().invoke(cli, ["evaluate", *args, "--num-workers", "0"])


def test_a_label_covering_part_of_a_pair_reports_the_scored_fraction(tmp_path: Path) -> None:
    manifest = synthetic_archive(tmp_path / "a", pairs=2, size=64, semantic=False)
    relabel(manifest, "p0", slice(0, 16))
    report = evaluate(manifest, [intensity_model()], PredictOptions(tile_size=32))
    p0, p1 = report.pairs
    assert (p0.binary.sum(), p0.predicted, p0.scored_fraction) == (64 * 16, 64 * 64, 0.25)
    assert (p1.binary.sum(), p1.scored_fraction) == (64 * 64, 1.0)
    assert report.groups["all"].scored_fraction == (64 * 16 + 64 * 64) / (2 * 64 * 64)
    data = report.to_dict()
    assert [p["scored_fraction"] for p in data["pairs"]] == [0.25, 1.0] and data["failed"] == []
    assert [line.split()[3] for line in report.table().splitlines()] == ["scored", "25.0%", "100.0%", "62.5%", "62.5%"]


def test_a_pair_whose_label_does_not_overlap_is_an_error_never_a_perfect_score(tmp_path: Path, tiny_checkpoint: Path) -> None:
    manifest = synthetic_archive(tmp_path / "a", pairs=2, size=64, semantic=False)
    label = relabel(manifest, "p0", slice(0, 64), shift_m=10_000.0)
    line = f"{label}: labels no pixel where pair p0 was predicted; nothing to score"
    report = evaluate(manifest, [intensity_model()], PredictOptions(tile_size=32))
    assert [p.name for p in report.pairs] == ["p1"] and report.groups["all"].binary.sum() == 64 * 64
    assert [(name, str(error)) for name, error in report.failed] == [("p0", line)]

    result = run_cli(str(manifest), "--model", str(tiny_checkpoint), "-o", str(tmp_path / "e"))
    assert result.exit_code == 2
    out = tmp_path / "e"
    assert result.stderr == f"wrote {out / 'evaluation.json'} and {out / 'confusion.png'}\ngeocd: error: {line}\n"
    assert "p1" in result.stdout and "p0" not in result.stdout
    assert json.loads((out / "evaluation.json").read_text())["failed"] == [{"name": "p0", "error": line}]

    relabel(manifest, "p1", slice(0, 64), shift_m=10_000.0)
    with pytest.raises(InputError, match="pair p0 was predicted"):
        evaluate(manifest, [intensity_model()], PredictOptions(tile_size=32))
    result = run_cli(str(manifest), "--model", str(tiny_checkpoint), "-o", str(tmp_path / "none"))
    assert (result.exit_code, result.stdout, result.stderr) == (2, "", f"geocd: error: {line}\n")
    assert not (tmp_path / "none").exists()


def test_evaluate_refuses_to_replace_its_report_without_overwrite(tmp_path: Path, tiny_checkpoint: Path) -> None:
    manifest = synthetic_archive(tmp_path / "a", pairs=1, size=64, semantic=False)
    out = tmp_path / "e"
    out.mkdir()
    (out / "evaluation.json").write_text("old")
    (out / "notes.txt").write_text("mine")
    result = run_cli(str(manifest), "--model", str(tiny_checkpoint), "-o", str(out))
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr == f"geocd: error: {out / 'evaluation.json'}: already exists (use --overwrite to replace it)\n"
    assert (out / "evaluation.json").read_text() == "old" and sorted(p.name for p in out.iterdir()) == ["evaluation.json", "notes.txt"]

    result = run_cli(str(manifest), "--model", str(tiny_checkpoint), "-o", str(out), "--overwrite")
    assert result.exit_code == 0, result.output
    assert json.loads((out / "evaluation.json").read_text())["pairs"][0]["name"] == "p0"
    assert sorted(p.name for p in out.iterdir()) == ["confusion.png", "evaluation.json", "notes.txt"]


def test_a_failed_report_write_leaves_the_old_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    manifest = synthetic_archive(tmp_path / "a", pairs=1, size=64, semantic=False)
    report = evaluate(manifest, [intensity_model()], PredictOptions(tile_size=32))
    out = tmp_path / "e"
    save_report(report, out)
    (out / "evaluation.json").rename(out / "kept.json")
    with pytest.raises(OutputError, match=r"confusion\.png: already exists"):
        save_report(report, out)
    (out / "kept.json").rename(out / "evaluation.json")
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def broken_plot(*args: object) -> None:
        raise OSError("No space left on device")

    monkeypatch.setattr(geocd.evaluation, "plot_confusion", broken_plot)
    with pytest.raises(OSError, match="No space left"):
        save_report(report, out, overwrite=True)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_evaluate_writes_no_raster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Scores come from the predicted rows directly: no change raster is written, not even a temporary one."""
    manifest = synthetic_archive(tmp_path / "archive", pairs=1)
    written, opened = [], rasterio.open

    def spy(path, mode="r", **kwargs):  # noqa: ANN001, ANN202 - rasterio.open's signature
        if mode == "w":
            written.append(path)
        return opened(path, mode, **kwargs)

    monkeypatch.setattr(rasterio, "open", spy)
    report = evaluate(manifest, [intensity_model()], PredictOptions(tile_size=32))
    assert len(report.pairs) == 1 and written == []


def test_confusion_figure_has_its_full_title_class_names_counts_and_shares(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import matplotlib.figure
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    saved = []
    savefig = matplotlib.figure.Figure.savefig
    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", lambda self, *a, **k: (saved.append(self), savefig(self, *a, **k)))
    title = "Change type, 12 pairs, TTA: pixel counts and share of each true class"
    geocd.evaluation.plot_confusion(np.array([[9000, 1000], [250, 750]]), ["unchanged", "changed"], tmp_path / "c.png", title)
    (figure,) = saved
    (axes, _colour_bar) = figure.axes
    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    renderer = canvas.get_renderer()
    heading = figure._suptitle
    box, page = heading.get_window_extent(renderer), figure.bbox
    assert heading.get_text() == title and page.x0 <= box.x0 and box.x1 <= page.x1 and box.y1 <= page.y1
    assert [t.get_text() for t in axes.texts] == ["9,000\n90.0%", "1,000\n10.0%", "250\n25.0%", "750\n75.0%"]
    assert [t.get_text() for t in axes.get_xticklabels()] == [t.get_text() for t in axes.get_yticklabels()] == ["unchanged", "changed"]
