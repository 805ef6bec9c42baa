"""What the user reads of a changed pixel: joint from/to decoding (never from == to) and ``--only CLASS``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyogrio
import pytest
import rasterio
from click.testing import CliRunner

import geocd.inference.predict
from cli.main import cli
from conftest import intensity_model, planted_pair, synthetic_archive
from geocd.changemap import ChangeMapInfo, changed_pixels, encode_landcover, encode_rows, joint_classes
from geocd.errors import InputError
from geocd.evaluation import evaluate
from geocd.inference.predict import PredictOptions, PredictOutputs, predict
from geocd.schema import LandCover

WATER, GRASS, BUILDING = LandCover.WATER, LandCover.LOW_VEGETATION, LandCover.BUILDING
TRAINED = (WATER, GRASS, BUILDING)
PIXELS = [  # (before, after) probabilities over TRAINED, and the expected (from, to)
    ([0.7, 0.2, 0.1], [0.1, 0.2, 0.7], (WATER, BUILDING)),  # the dates' most likely classes differ: they are the pair
    ([0.6, 0.3, 0.1], [0.5, 0.1, 0.4], (WATER, BUILDING)),  # both water: water -> building (0.24) beats low vegetation -> water (0.15)
    ([0.5, 0.45, 0.05], [0.9, 0.05, 0.05], (GRASS, WATER)),  # both water: low vegetation -> water (0.405) wins
    ([0.4, 0.4, 0.2], [0.1, 0.1, 0.8], (WATER, BUILDING)),  # a tie within a date goes to the lower class
    ([0.6, 0.3, 0.1], [0.6, 0.3, 0.1], (WATER, GRASS)),  # a tie between the two pairs keeps the before class
]


def encoded(change: list[float], only: tuple[int, ...] = ()) -> tuple[np.ndarray, np.ndarray]:
    """encode_rows and encode_landcover on one row of the PIXELS with these change probabilities."""
    before = np.array([p[0] for p in PIXELS], np.float32).T[:, None, :]
    after = np.array([p[1] for p in PIXELS], np.float32).T[:, None, :]
    probabilities = np.concatenate([np.array(change, np.float32)[None, None, :], before, after])
    valid, info = np.ones((1, len(PIXELS)), bool), ChangeMapInfo(trained_classes=TRAINED, only=only)
    return encode_rows(probabilities, valid, info)[:, 0], encode_landcover(probabilities, valid, info)[:, 0]


def test_a_changed_pixel_gets_the_best_pair_of_different_classes() -> None:
    bands, _ = encoded([0.9] * len(PIXELS))
    assert list(zip(bands[1].tolist(), bands[2].tolist())) == [expected for _, _, expected in PIXELS]


def test_unchanged_pixels_keep_class_zero_and_land_cover_its_argmax() -> None:
    bands, cover = encoded([0.9, 0.2, 0.9, 0.2, 0.9])
    assert bands[1].tolist() == [1, 0, 3, 0, 1] and bands[2].tolist() == [5, 0, 1, 0, 3]
    assert cover.T.tolist() == [[1, 5], [1, 1], [1, 1], [1, 5], [1, 1]]  # each date's own argmax, changed or not


def test_joint_classes_is_the_exhaustive_best_pair_with_from_not_to() -> None:
    rng = np.random.default_rng(0)
    before, after = rng.dirichlet(np.ones(6), 2000).T, rng.dirichlet(np.ones(6), 2000).T
    before[:, :500] = after[:, :500]  # many pixels whose dates agree
    i, j = joint_classes(before, after)
    products = before[:, None, :] * after[None, :, :]
    products[np.arange(6), np.arange(6)] = -1
    assert (i != j).all()
    np.testing.assert_allclose(before[i, np.arange(2000)] * after[j, np.arange(2000)], products.max((0, 1)))


def test_only_keeps_the_changes_from_or_to_its_classes() -> None:
    bands, _ = encoded([0.9] * len(PIXELS), only=(BUILDING,))
    assert bands[1].tolist() == [1, 1, 0, 1, 0] and bands[2].tolist() == [5, 5, 0, 5, 0]
    info = ChangeMapInfo(trained_classes=TRAINED, only=(BUILDING,))
    assert changed_pixels(bands[0], bands[1], info).tolist() == [True, True, False, True, False]
    assert ChangeMapInfo.from_tags(info.to_tags()) == info
    assert info.to_tags()["GEOCD_ONLY"] == '["building"]'


def predicted(tmp_path: Path, only: tuple[str, ...]) -> tuple[dict, dict, int]:
    """Report, raster tags and polygon count of the planted pair (low vegetation -> building) with ``only``."""
    before, after, _ = planted_pair(tmp_path)
    out = tmp_path / "-".join(only)
    out.mkdir()
    result = predict(before, after, models=[intensity_model()], options=PredictOptions(tile_size=48, only=only),
                     outputs=PredictOutputs(vectors=out / "c.gpkg", raster=out / "c.tif", report=out / "r.json"))
    with rasterio.open(out / "c.tif") as src:
        tags = src.tags()
    assert len(pyogrio.read_dataframe(out / "c.gpkg", layer="changes")) == result.polygons
    return json.loads((out / "r.json").read_text()), tags, result.polygons


def test_predict_only_keeps_the_named_classes_in_every_output(tmp_path: Path) -> None:
    report, tags, polygons = predicted(tmp_path, ("building",))
    assert polygons == 1 and [t["change_type"] for t in report["changes"]["by_type"]] == ["low vegetation \u2192 building"]
    assert report["options"]["only"] == ["building"] and tags["GEOCD_ONLY"] == '["building"]'
    with rasterio.open(tmp_path / "building" / "c.tif") as src:
        assert src.read(2).max() == GRASS


def test_predict_only_drops_the_other_changes_everywhere(tmp_path: Path) -> None:
    model = intensity_model(trained=(1, 3, 5))
    before, after, _ = planted_pair(tmp_path)
    png, raster = tmp_path / "q.png", tmp_path / "c.tif"
    result = predict(before, after, models=[model], options=PredictOptions(tile_size=48, only=("water",)),
                     outputs=PredictOutputs(raster=raster, quicklook=png, report=tmp_path / "r.json"))
    assert result.polygons == 0 and result.summary["changes"]["by_type"] == []
    with rasterio.open(raster) as src:
        bands = src.read()
        info = ChangeMapInfo.from_tags(src.tags())
    assert (bands[0] >= 127).sum() > 1000  # the change probability is kept as the model gave it ...
    assert not changed_pixels(bands[0], bands[1], info).any() and (bands[1:] == 0).all()  # ... but nothing is kept


def test_only_names_an_untrained_or_unknown_class(tmp_path: Path) -> None:
    before, after, _ = planted_pair(tmp_path)
    for only in (("water",), ("building", "buidling")):
        with pytest.raises(InputError) as error:
            predict(before, after, models=[intensity_model()], options=PredictOptions(only=only),
                    outputs=PredictOutputs(raster=tmp_path / "c.tif"))
        assert str(error.value) == f"only names no class {only[-1]!r}: use low vegetation, building"
    with pytest.raises(InputError, match="untrained land-cover heads"):
        predict(before, after, models=[intensity_model(trained=())], options=PredictOptions(only=("building",)),
                outputs=PredictOutputs(raster=tmp_path / "c.tif"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["after.tif", "before.tif"]


def test_command_line_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(geocd.inference.predict, "load_models", lambda paths, device: [intensity_model()])
    before, after, _ = planted_pair(tmp_path)
    args = ["predict", str(before), str(after), "-o", str(tmp_path / "c.gpkg"), "--tile-size", "48", "-q"]
    run = CliRunner().invoke(cli, [*args, "--only", "buidling"])
    assert (run.exit_code, run.output) == (2, "geocd: error: --only names no class 'buidling': use low vegetation, building\n")
    assert not (tmp_path / "c.gpkg").exists()
    run = CliRunner().invoke(cli, [*args, "--only", "low vegetation", "--only", "building"])
    assert run.exit_code == 0, run.output
    metadata = pyogrio.read_info(tmp_path / "c.gpkg", layer="changes")["layer_metadata"]
    assert metadata["GEOCD_ONLY"] == '["low vegetation", "building"]'


@pytest.mark.parametrize("semantic", [True, False], ids=["semantic labels", "binary labels"])
def test_evaluate_only_scores_the_change_of_those_classes(tmp_path: Path, semantic: bool) -> None:
    manifest = synthetic_archive(tmp_path / "archive", pairs=1, semantic=semantic)  # low vegetation -> building
    model = intensity_model(trained=(1, 3, 5))
    everything, building, water = (evaluate(manifest, [model], PredictOptions(tile_size=32, only=only)).pairs[0].binary
                                   for only in ((), ("building",), ("water",)))
    assert everything[1, 1] > 300 and (building == everything).all()
    assert water[:, 1].sum() == 0  # no predicted change is kept ...
    assert water[1].sum() == (0 if semantic else everything[1].sum())  # ... nor true change, where labels name classes
