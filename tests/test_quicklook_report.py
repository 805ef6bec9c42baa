"""geocd predict --quicklook and --report: a PNG to check at a glance, a JSON report that agrees with the polygons."""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path

import numpy as np
import pyogrio
import pytest
import rasterio
from click.testing import CliRunner
from matplotlib.image import imread
from rasterio.crs import CRS
from rasterio.transform import from_origin

from cli.main import cli
from conftest import ORIGIN, intensity_model, planted_pair, smooth_scene, write_raster
from geocd.changemap import BANDS, ChangeMapInfo, open_output_raster
from geocd.data.pair import PairDataset
from geocd.data.rasters import Grid
from geocd.inference.predict import PredictOptions, PredictOutputs, predict
from geocd.quicklook import DPI, LEGEND_INCHES, PANEL_INCHES, _ground_width_m, render_quicklook
from geocd.schema import LandCover
from geocd.vector import change_polygons

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "oscd-s2"


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["predict", *args])
    return result.exit_code, result.output


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) of a PNG, read back by matplotlib (which fails on anything but a valid PNG)."""
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    height, width, _ = imread(path).shape
    return width, height


def expected_size(height: int, width: int) -> tuple[int, int]:
    return round(3 * PANEL_INCHES * DPI), round((PANEL_INCHES * height / width + LEGEND_INCHES) * DPI)


def test_report_and_quicklook_agree_with_the_polygons(tmp_path: Path) -> None:
    before, after, changed = planted_pair(tmp_path)
    gpkg, png, report = tmp_path / "changes.gpkg", tmp_path / "look.png", tmp_path / "report.json"
    result = predict(before, after, models=[intensity_model()], options=PredictOptions(tile_size=48),
                     outputs=PredictOutputs(vectors=gpkg, min_area_m2=2.0, quicklook=png, report=report))
    assert (result.quicklook, result.report) == (png, report)
    assert png_size(png) == expected_size(96, 128)

    summary = json.loads(report.read_text())
    frame = pyogrio.read_dataframe(gpkg, layer="changes")
    by_type = summary["changes"]["by_type"]
    assert [t["change_type"] for t in by_type] == ["low vegetation \u2192 building"]
    assert (by_type[0]["color"], by_type[0]["outline_color"]) == ([128, 0, 0], [0, 128, 0])  # to, from class colours
    assert sum(t["polygons"] for t in by_type) == summary["changes"]["polygons"] == len(frame) == 1
    assert sum(t["area_m2"] for t in by_type) == summary["changes"]["area_m2"]
    assert summary["changes"]["area_m2"] == pytest.approx(frame.area_m2.sum(), rel=1e-12)
    assert summary["changes"]["area_m2"] == pytest.approx(changed.sum(), rel=1e-3)  # 1 m pixels of UTM, true ground area
    assert summary["inputs"]["before"] == {
        "path": str(before), "crs": "EPSG:32633", "width": 128, "height": 96, "resolution": [1.0, 1.0],
        "dtype": "uint8", "band_count": 3, "bands_used": [1, 2, 3],
    }
    identity = {"scale": [1.0] * 3, "offset": [0.0] * 3, "low": None, "high": None}
    assert summary["inputs"]["radiometry"] == {"mode": "auto", "before": identity, "after": identity}
    assert summary["model"]["paths"] == ["intensity-model"]
    assert summary["model"]["trained_classes"] == ["low vegetation", "building"]
    assert summary["options"] == {"threshold": 0.5, "only": [], "tta": False, "scales": [1.0], "tile_size": 48, "overlap": 6,
                                  "min_area_m2": 2.0, "device": "cpu", "backend": "torch"}  # a model without a file runs on torch
    assert summary["outputs"] == {"vectors": str(gpkg), "quicklook": str(png), "report": str(report)}
    assert set(summary["seconds"]) == {"predict", "vectorize", "quicklook", "total"}
    assert summary["seconds"]["total"] >= summary["seconds"]["predict"] + summary["seconds"]["vectorize"]

    metadata = pyogrio.read_info(gpkg, layer="changes")["layer_metadata"]
    assert json.loads(metadata["GEOCD_REPORT"]) == summary
    assert metadata["GEOCD_THRESHOLD"] == "0.5"  # vectorize's own metadata is kept
    assert sorted(p.name for p in tmp_path.iterdir()) == ["after.tif", "before.tif", "changes.gpkg", "look.png", "report.json"]


def test_report_without_polygon_output_lists_untrained_change(tmp_path: Path) -> None:
    before, after, changed = planted_pair(tmp_path)
    result = predict(before, after, models=[intensity_model(trained=())], outputs=PredictOutputs(report=tmp_path / "r.json"), options=PredictOptions(tile_size=48))
    summary = json.loads((tmp_path / "r.json").read_text())
    assert result.polygons == summary["changes"]["polygons"] == 1 and result.vectors is None
    (by_type,) = summary["changes"]["by_type"]
    assert by_type == {"change_type": "change", "color": [255, 0, 255], "outline_color": [255, 0, 255], "polygons": 1,
                       "area_m2": by_type["area_m2"]}
    assert by_type["area_m2"] == pytest.approx(changed.sum(), rel=1e-3)
    assert summary["outputs"] == {"report": str(tmp_path / "r.json")}
    assert summary["options"]["min_area_m2"] == pytest.approx(3.5, rel=1e-2)  # the default applied: 3.5 pixels of 1 m
    assert sorted(p.name for p in tmp_path.iterdir()) == ["after.tif", "before.tif", "r.json"]


def test_radiometry_is_reported_and_shown_as_the_network_saw_it(tmp_path: Path) -> None:
    """A 12-bit pair is reported with its fitted stretch and looks like the same pair stored as 8 bits."""
    before, after, _ = planted_pair(tmp_path)
    deep = []
    (tmp_path / "deep").mkdir()
    for path in (before, after):  # same names: the quicklook's title shows them
        with rasterio.open(path) as src:
            deep.append(write_raster(tmp_path / "deep" / path.name, src.read().astype(np.uint16) * 16 + 200))
    predict(*deep, models=[intensity_model()], options=PredictOptions(tile_size=48),
            outputs=PredictOutputs(raster=tmp_path / "c.tif", report=tmp_path / "r.json", quicklook=tmp_path / "deep.png"))
    predict(before, after, models=[intensity_model()], options=PredictOptions(tile_size=48, radiometry="stretch"),
            outputs=PredictOutputs(quicklook=tmp_path / "u8.png"))
    reported = json.loads((tmp_path / "r.json").read_text())["inputs"]["radiometry"]
    with rasterio.open(tmp_path / "c.tif") as src:
        assert reported == json.loads(src.tags()["GEOCD_RADIOMETRY"])
    assert reported["mode"] == "auto" and reported["before"] == reported["after"]
    assert reported["before"]["low"] < reported["before"]["high"]
    np.testing.assert_allclose(imread(tmp_path / "deep.png"), imread(tmp_path / "u8.png"), atol=2 / 255)


@pytest.mark.parametrize("flag, name, problem", [
    ("--quicklook", "look.jpg", "must be a .png file"),
    ("--report", "report.txt", "must be a .json file"),
    ("--report", "missing/report.json", "folder {folder} does not exist"),
])
def test_bad_output_names_are_refused_before_any_computation(tmp_path: Path, tiny_checkpoint: Path, flag: str,
                                                             name: str, problem: str) -> None:
    before, after, _ = planted_pair(tmp_path)
    target = tmp_path / name
    code, output = run(str(before), str(after), "--raster", str(tmp_path / "c.tif"), flag, str(target),
                       "--model", str(tiny_checkpoint), "-q")
    assert code == 2
    assert output.strip() == f"geocd: error: {target}: {problem.format(folder=target.parent)}"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["after.tif", "before.tif"]


def test_command_line_flags_and_existing_outputs(tmp_path: Path, tiny_checkpoint: Path) -> None:
    before, after, _ = planted_pair(tmp_path)
    gpkg, png, report = tmp_path / "c.gpkg", tmp_path / "look.png", tmp_path / "report.json"
    args = [str(before), str(after), "-o", str(gpkg), "--quicklook", str(png), "--report", str(report),
            "--model", str(tiny_checkpoint), "--tile-size", "128", "--num-workers", "0", "-q"]
    report.write_text("mine")
    code, output = run(*args)
    assert code == 2 and output.strip() == f"geocd: error: {report}: already exists (use --overwrite to replace it)"
    assert report.read_text() == "mine" and not png.exists() and not gpkg.exists()
    code, output = run(*args, "--overwrite")
    assert code == 0, output
    summary = json.loads(report.read_text())
    frame = pyogrio.read_dataframe(gpkg, layer="changes")
    assert summary["changes"]["polygons"] == len(frame)
    assert summary["changes"]["area_m2"] == pytest.approx(frame.area_m2.sum(), rel=1e-12)
    assert [t["change_type"] for t in summary["changes"]["by_type"]] == ["change"]  # the tiny model's land cover is untrained
    assert summary["model"]["paths"] == [str(tiny_checkpoint)] and summary["model"]["trained_classes"] == []
    assert png_size(png) == expected_size(96, 128)


def scene_with_change(folder: Path, factor: int) -> tuple[PairDataset, Path]:
    """A 96 x 128 scene scaled up ``factor`` times as a pair with itself, and its change raster with a changed rectangle."""
    folder.mkdir()
    image = np.repeat(np.repeat(smooth_scene(96, 128).astype(np.uint8), factor, axis=1), factor, axis=2)
    before = write_raster(folder / "before.tif", image)
    height, width = image.shape[1:]
    grid = Grid(CRS.from_epsg(32633), from_origin(*ORIGIN, 1.0, 1.0), width, height)
    band = np.zeros((height, width), np.uint8)
    band[height // 3 : 2 * height // 3, width // 4 : 3 * width // 4] = 254
    info = ChangeMapInfo(trained_classes=(LandCover.LOW_VEGETATION, LandCover.BUILDING))
    with open_output_raster(folder / "change.tif", grid, BANDS, info) as dst:
        dst.write(np.stack([band, (band > 0) * LandCover.LOW_VEGETATION, (band > 0) * LandCover.BUILDING]).astype(np.uint8))
    return PairDataset(before, before, 3), folder / "change.tif"


def quicklook_peak_memory(pair: PairDataset, change: Path, png: Path) -> int:
    """Peak bytes allocated through Python (numpy included) while rendering the quicklook."""
    changes = change_polygons(change)
    tracemalloc.start()
    try:
        render_quicklook(pair, ChangeMapInfo(), changes, png)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_quicklook_of_a_large_scene_is_decimated(tmp_path: Path) -> None:
    """A 2304 x 3072 scene costs the memory of a 768 x 1024 one and gives the same PNG size (same aspect)."""
    small = quicklook_peak_memory(*scene_with_change(tmp_path / "small", 8), tmp_path / "small.png")
    large = quicklook_peak_memory(*scene_with_change(tmp_path / "large", 24), tmp_path / "large.png")
    assert large < 1.2 * small  # a full-resolution float32 read of the large scene alone would take 85 MB
    assert png_size(tmp_path / "small.png") == png_size(tmp_path / "large.png") == expected_size(96, 128)


@pytest.mark.parametrize("crs, res, metres", [
    (CRS.from_epsg(32633), 10.0, 1000.0),        # UTM: 100 px of 10 m (geodesic, not planar: within the 0.04 % scale)
    (CRS.from_epsg(4326), 1e-3, 0.1 * 111_320 * np.cos(np.radians(60))),  # 0.1 degree of longitude at 60 N
    (CRS.from_epsg(3857), 100.0, 10_000.0 * np.cos(np.radians(48.7))),  # Web Mercator at 48.7 N: 2.3x too large on the map
])
def test_scale_bar_uses_true_ground_distance(crs: CRS, res: float, metres: float) -> None:
    origins = {32633: (500_000.0, 6_652_000.0), 4326: (10.0, 60.0 + 0.05), 3857: (0.0, 6_222_000.0)}
    left, top = origins[crs.to_epsg()]
    grid = Grid(crs, from_origin(left, top, res, res), 100, 100)
    assert _ground_width_m(grid) == pytest.approx(metres, rel=5e-3)


@pytest.mark.skipif(not SHARED.is_dir(), reason="needs ../shared/data/oscd-s2")
def test_quicklook_of_a_real_sentinel2_pair(tmp_path: Path) -> None:
    """uint16 4-band EPSG:4326 input, 'after' on another grid: a valid PNG with bands 3,2,1 as RGB."""
    city = SHARED / "bercy"
    with rasterio.open(city / "before.tif") as src:
        shape = (src.height, src.width)
    predict(city / "before.tif", city / "after.tif", models=[intensity_model()], outputs=PredictOutputs(quicklook=tmp_path / "q.png"),
            options=PredictOptions(tile_size=64, bands=(3, 2, 1)))
    assert png_size(tmp_path / "q.png") == expected_size(*shape)


def test_quicklook_tells_change_types_with_the_same_to_class_apart(tmp_path: Path) -> None:
    """water -> building and tree -> building: one fill (building), two outlines (water blue, tree green), as the legend says."""
    pair, change = scene_with_change(tmp_path / "scene", 1)
    with rasterio.open(change, "r+") as dst:
        probability = dst.read(1)
        probability[:] = 0
        probability[10:40, 10:50] = probability[50:80, 70:110] = 254
        from_class = np.where(probability > 0, LandCover.WATER, LandCover.UNCHANGED)
        from_class[50:80, 70:110] = LandCover.TREE
        dst.write(np.stack([probability, from_class, (probability > 0) * LandCover.BUILDING]).astype(np.uint8))
    changes = change_polygons(change)
    assert [(t.change_type, t.color, t.outline) for t in changes.change_types] == [
        ("water \u2192 building", (128, 0, 0), (0, 0, 255)), ("tree \u2192 building", (128, 0, 0), (0, 255, 0))]
    render_quicklook(pair, ChangeMapInfo(), changes, tmp_path / "q.png")
    image = (imread(tmp_path / "q.png")[..., :3] * 255).astype(int)
    panels = image[: -round(LEGEND_INCHES * DPI)]
    third = panels.shape[1] // 3

    def near(panel: np.ndarray, rgb: tuple[int, int, int]) -> int:
        return int((np.abs(panel - rgb).max(-1) < 40).sum())

    for rgb in ((0, 0, 255), (0, 255, 0)):
        assert near(panels[:, 2 * third :], rgb) > 100 and near(panels[:, third : 2 * third], rgb) == 0


def test_each_input_is_opened_once_and_no_scratch_raster_is_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Polygons, quicklook and report of an aligned pair: the pair's header, samples, shift, quicklook and report share
    one handle per input, and nothing is written through GDAL (no scratch change raster for the quicklook)."""
    before, after, _ = planted_pair(tmp_path)
    opened, open_raster = [], rasterio.open

    def counted(path, mode: str = "r", *args, **kwargs):  # noqa: ANN001, ANN202 - rasterio.open's own signature
        opened.append((Path(path).name, mode))
        return open_raster(path, mode, *args, **kwargs)

    monkeypatch.setattr(rasterio, "open", counted)
    predict(before, after, models=[intensity_model()], options=PredictOptions(tile_size=48, align=True),
            outputs=PredictOutputs(vectors=tmp_path / "c.gpkg", quicklook=tmp_path / "q.png", report=tmp_path / "r.json"))
    assert sorted(opened) == [("after.tif", "r"), ("before.tif", "r")]
