"""geocd.vector: change raster to styled GeoPackage polygons."""

from __future__ import annotations

import io
import json
import os
import sqlite3
import subprocess
from pathlib import Path

import numpy as np
import pyogrio
import pytest
import rasterio
import rasterio.features
import shapely
from pyproj import Geod
from rasterio.transform import from_origin

import geocd.vector.pipeline
from geocd.changemap import BANDS, ChangeMapInfo
from geocd.errors import InputError, OutputError
from geocd.progress import Progress
from geocd.schema import SECOND
from geocd.vector import VectorizeResult, vectorize

TRAINED = ChangeMapInfo(
    threshold=0.5, trained_classes=(1, 2, 3, 4, 5, 6), models=("tiny.safetensors",), inputs=("before.tif", "after.tif")
)
UNTRAINED = ChangeMapInfo(threshold=0.5, models=("tiny.safetensors",), inputs=("before.tif", "after.tif"))
UTM = from_origin(500000.0, 6000000.0, 2.0, 2.0)
PIXEL_M2 = 4.0
QGIS_PYTHON = "/usr/bin/python3"


def write_raster(
    path: Path, probability: np.ndarray, before: np.ndarray | None = None, after: np.ndarray | None = None,
    info: ChangeMapInfo | None = TRAINED, crs: str = "EPSG:32633", transform=UTM,
) -> Path:
    """A change raster per geocd.changemap from encoded probabilities and class ids (no tags: ``info=None``)."""
    before = np.zeros_like(probability) if before is None else before
    after = np.zeros_like(probability) if after is None else after
    height, width = probability.shape
    profile = dict(driver="GTiff", width=width, height=height, count=3, dtype="uint8", nodata=255, crs=crs,
                   transform=transform, tiled=True, blockxsize=16, blockysize=16)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(np.stack([probability, before, after]).astype(np.uint8))
        dst.descriptions = BANDS
        dst.scales = (1 / 254, 1.0, 1.0)
        if info is not None:
            dst.update_tags(**info.to_tags())
    return path


def random_raster(path: Path, seed: int = 0, shape: tuple[int, int] = (120, 90), blobs: int = 70) -> Path:
    """Overlapping discs of random pairs and probabilities, many crossing any strip seam."""
    rng = np.random.default_rng(seed)
    probability = rng.integers(0, 120, shape, dtype=np.uint8)
    before, after = np.zeros(shape, np.uint8), np.zeros(shape, np.uint8)
    rows, cols = np.ogrid[: shape[0], : shape[1]]
    for _ in range(blobs):
        cy, cx, r = rng.integers(0, shape[0]), rng.integers(0, shape[1]), rng.integers(1, 9)
        disc = (rows - cy) ** 2 + ((cols - cx) * rng.uniform(0.5, 2)) ** 2 < r * r
        probability[disc] = rng.integers(127, 255, disc.sum())
        before[disc], after[disc] = rng.integers(1, 7), rng.integers(1, 7)
    probability[rng.random(shape) < 0.02] = 255
    return write_raster(path, probability, before, after)


def read(path: Path):  # noqa: ANN201 - a GeoDataFrame
    return pyogrio.read_dataframe(path, layer="changes")


def blob_pixel_counts(changed: np.ndarray) -> list[int]:
    """Oracle: sizes of the 4-connected blobs of a whole mask, from one GDAL polygonization."""
    shapes = rasterio.features.shapes(changed.astype(np.uint8), mask=changed, connectivity=4)
    return sorted(int(shapely.geometry.shape(g).area) for g, _ in shapes)


# ---- polygons -------------------------------------------------------------------------------


def test_areas_sum_to_changed_pixels_and_geometries_are_valid(tmp_path: Path) -> None:
    raster = random_raster(tmp_path / "change.tif")
    with rasterio.open(raster) as src:
        changed = src.read(1) >= 127
        changed &= src.read(1) != 255
    result = vectorize(raster, tmp_path / "out.gpkg", strip_rows=7)
    frame = read(result.path)
    assert result.polygons == len(frame) > 20
    assert frame.area_m2.sum() == pytest.approx(changed.sum() * PIXEL_M2, abs=1e-6)
    assert result.changed_area_m2 == pytest.approx(changed.sum() * PIXEL_M2, abs=1e-6)
    assert shapely.is_valid(frame.geometry.values).all()
    assert set(frame.geometry.geom_type) == {"Polygon"}
    assert list(frame.change_id) == list(range(1, len(frame) + 1))
    # regions of one pair never touch along an edge (they would be one 4-connected region)
    for _, group in frame.groupby("change_type"):
        geoms = group.geometry.values
        for i, j in zip(*shapely.STRtree(geoms).query(geoms, predicate="touches")):
            assert shapely.intersection(geoms[i], geoms[j]).length == 0


@pytest.mark.parametrize("min_area_m2", [0.0, 30.0, 101.0])
def test_result_does_not_depend_on_strip_height(tmp_path: Path, min_area_m2: float) -> None:
    raster = random_raster(tmp_path / "change.tif", seed=3)
    frames = []
    for rows in (None, 1, 4, 13, 64):
        out = vectorize(raster, tmp_path / f"out{rows}.gpkg", strip_rows=rows, min_area_m2=min_area_m2)
        frames.append(read(out.path))
    first = frames[0]
    assert len(first) > 10
    for other in frames[1:]:
        assert other.drop(columns="geometry").equals(first.drop(columns="geometry"))
        assert other.geometry.geom_equals_exact(first.geometry, tolerance=0).all()


def test_blob_across_seams_is_one_polygon(tmp_path: Path) -> None:
    probability = np.zeros((20, 12), np.uint8)
    probability[2:15, 3:9] = 200
    probability[9, 9:11] = 250
    after = np.full(probability.shape, 5, np.uint8)
    raster = write_raster(tmp_path / "c.tif", probability, np.full_like(after, 3), after)
    frame = read(vectorize(raster, tmp_path / "o.gpkg", strip_rows=3).path)
    assert len(frame) == 1
    assert frame.area_m2[0] == (13 * 6 + 2) * PIXEL_M2
    assert len(frame.geometry[0].exterior.coords) == 9  # no leftover vertices on the seams
    assert frame.max_probability[0] == pytest.approx(250 / 254)


def test_min_area_removes_blobs_whole_even_across_seams(tmp_path: Path) -> None:
    raster = random_raster(tmp_path / "change.tif", seed=5)
    with rasterio.open(raster) as src:
        p = src.read(1)
    changed = (p >= 127) & (p != 255)
    min_area = 40.0
    counts = blob_pixel_counts(changed)
    kept = [c for c in counts if c * PIXEL_M2 >= min_area]
    assert len(kept) < len(counts)
    for rows in (2, 9, None):
        result = vectorize(raster, tmp_path / f"o{rows}.gpkg", min_area_m2=min_area, strip_rows=rows, overwrite=True)
        assert result.changed_area_m2 == pytest.approx(sum(kept) * PIXEL_M2)


def test_min_area_keeps_small_pairs_inside_big_blobs_and_never_fills_holes(tmp_path: Path) -> None:
    probability = np.zeros((16, 16), np.uint8)
    before = np.full(probability.shape, 5, np.uint8)
    after = np.full(probability.shape, 2, np.uint8)
    probability[1:11, 1:11] = 200  # big blob, 100 px: building -> ground
    after[5, 5] = 1  # one pixel of building -> water inside it
    probability[3:5, 3:5] = 0  # a 4 px unchanged hole ...
    probability[7:10, 7:10] = 0  # ... and a 9 px hole with a 1 px speck in it (GDAL sieve alone keeps
    probability[8, 8] = 200  # that speck: its only neighbour, the 8 px ring, is itself small)
    probability[13, 13:15] = 200  # a 2 px speck outside
    raster = write_raster(tmp_path / "c.tif", probability, before, after)
    frame = read(vectorize(raster, tmp_path / "o.gpkg", min_area_m2=10 * PIXEL_M2, strip_rows=4).path)
    assert sorted(frame.change_type) == ["building → ground", "building → water"]
    big = frame[frame.to_class == 2].geometry.iloc[0]
    assert big.area == (100 - 4 - 9 - 1) * PIXEL_M2 and len(big.interiors) == 3
    assert frame[frame.to_class == 1].area_m2.tolist() == [PIXEL_M2]


def test_nodata_threshold_and_progress(tmp_path: Path) -> None:
    probability = np.array([[255, 130, 200, 254]], np.uint8).repeat(3, axis=0)
    raster = write_raster(tmp_path / "c.tif", probability, info=UNTRAINED)
    events = io.StringIO()
    result = vectorize(raster, tmp_path / "a.gpkg", strip_rows=2, progress=Progress("json", stream=events))
    assert result.changed_area_m2 == 9 * PIXEL_M2
    progress = [json.loads(line) for line in events.getvalue().splitlines() if '"progress"' in line]
    assert [(p["done"], p["total"]) for p in progress] == [(1, 2), (2, 2)]
    assert vectorize(raster, tmp_path / "b.gpkg", threshold=0.7).changed_area_m2 == 6 * PIXEL_M2


def test_simplify_keeps_a_valid_coverage(tmp_path: Path) -> None:
    raster = random_raster(tmp_path / "change.tif", seed=7)
    exact = read(vectorize(raster, tmp_path / "exact.gpkg").path)
    frame = read(vectorize(raster, tmp_path / "simple.gpkg", simplify=2.5).path)
    geoms = frame.geometry.values
    assert len(frame) == len(exact)
    assert shapely.is_valid(geoms).all()
    assert shapely.get_num_coordinates(geoms).sum() < shapely.get_num_coordinates(exact.geometry.values).sum()
    assert shapely.union_all(geoms).area == pytest.approx(frame.area_m2.sum())  # no overlaps
    assert frame.area_m2.sum() == pytest.approx(exact.area_m2.sum(), rel=0.05)


# ---- attributes -----------------------------------------------------------------------------


def test_attributes_on_a_hand_made_raster(tmp_path: Path) -> None:
    probability = np.zeros((5, 6), np.uint8)
    before = np.zeros_like(probability)
    after = np.zeros_like(probability)
    probability[1:3, 1:4] = [[200, 254, 127], [150, 180, 210]]  # 2x3 building -> water
    before[1:3, 1:4], after[1:3, 1:4] = 5, 1
    probability[3, 1:3] = [140, 160]  # 1x2 tree -> building, touching the first below
    before[3, 1:3], after[3, 1:3] = 4, 5
    probability[0, 5] = 100  # below the threshold
    raster = write_raster(tmp_path / "c.tif", probability, before, after)
    frame = read(vectorize(raster, tmp_path / "o.gpkg").path)
    assert frame.change_id.tolist() == [1, 2]
    assert frame.from_class.tolist() == [5, 4] and frame.to_class.tolist() == [1, 5]
    assert frame.from_name.tolist() == ["building", "tree"] and frame.to_name.tolist() == ["water", "building"]
    assert frame.change_type.tolist() == ["building → water", "tree → building"]
    assert frame.area_m2.tolist() == [6 * PIXEL_M2, 2 * PIXEL_M2]
    assert frame.perimeter_m.tolist() == [2 * (6 + 4), 2 * (4 + 2)]
    assert frame.mean_probability.tolist() == pytest.approx([1121 / 6 / 254, 150 / 254])
    assert frame.max_probability.tolist() == pytest.approx([1.0, 160 / 254])
    assert frame.geometry[0].equals(shapely.box(500002, 5999994, 500008, 5999998))


def test_untrained_land_cover_gives_null_classes_and_plain_change(tmp_path: Path) -> None:
    probability = np.zeros((8, 8), np.uint8)
    probability[1:3, 1:3] = probability[5:7, 4:8] = 220
    raster = write_raster(tmp_path / "c.tif", probability, info=UNTRAINED)
    frame = read(vectorize(raster, tmp_path / "o.gpkg").path)
    assert len(frame) == 2 and frame.change_type.tolist() == ["change", "change"]
    for column in ("from_class", "from_name", "to_class", "to_name"):
        assert frame[column].isna().all()
    assert _style_qml(tmp_path / "o.gpkg").count("<category ") == 1


def test_geographic_crs_gets_geodesic_area_and_perimeter(tmp_path: Path) -> None:
    probability = np.zeros((10, 10), np.uint8)
    probability[2:6, 3:8] = 200
    transform = from_origin(10.0, 60.0, 0.001, 0.001)
    raster = write_raster(tmp_path / "c.tif", probability, crs="EPSG:4326", transform=transform)
    frame = read(vectorize(raster, tmp_path / "o.gpkg").path)
    box = shapely.box(10.003, 59.994, 10.008, 59.998)
    area, _ = Geod(ellps="WGS84").geometry_area_perimeter(shapely.orient_polygons(box))
    perimeter = Geod(ellps="WGS84").geometry_length(box.exterior)
    assert frame.area_m2[0] == pytest.approx(area, rel=1e-9)
    assert frame.perimeter_m[0] == pytest.approx(perimeter, rel=1e-9)
    assert 120000 < area < 130000  # 5 x 4 pixels of ~55.8 m x 111.4 m at 60°N
    # min_area is judged on geodesic areas too
    assert vectorize(raster, tmp_path / "a.gpkg", min_area_m2=area * 0.99).polygons == 1
    assert vectorize(raster, tmp_path / "b.gpkg", min_area_m2=area * 1.01).polygons == 0


def test_projected_crs_in_feet_reports_metres(tmp_path: Path) -> None:
    probability = np.full((2, 2), 200, np.uint8)
    raster = write_raster(tmp_path / "c.tif", probability, crs="EPSG:2236", transform=from_origin(1000, 2000, 1, 1))
    frame = read(vectorize(raster, tmp_path / "o.gpkg").path)
    foot = 0.3048006096012192
    assert frame.area_m2[0] == pytest.approx(4 * foot**2)
    assert frame.perimeter_m[0] == pytest.approx(8 * foot)


# ---- GeoPackage -----------------------------------------------------------------------------


def _style_qml(path: Path) -> str:
    with sqlite3.connect(path) as db:
        return db.execute("SELECT styleQML FROM layer_styles WHERE useAsDefault = 1").fetchone()[0]


def test_geopackage_layer_index_style_and_metadata(tmp_path: Path) -> None:
    raster = random_raster(tmp_path / "change.tif", seed=1)
    result = vectorize(raster, tmp_path / "out.gpkg")
    assert result == VectorizeResult(tmp_path / "out.gpkg", result.polygons, result.changed_area_m2, result.change_types)
    info = pyogrio.read_info(result.path, layer="changes")
    assert info["crs"] == "EPSG:32633" and info["geometry_type"] == "Polygon"
    assert info["features"] == result.polygons
    assert list(info["fields"]) == [
        "change_id", "from_class", "from_name", "to_class", "to_name", "change_type",
        "area_m2", "perimeter_m", "mean_probability", "max_probability",
    ]
    assert info["layer_metadata"]["GEOCD_MODELS"] == '["tiny.safetensors"]'
    assert dict(pyogrio.list_layers(result.path).tolist()) == {"changes": "Polygon", "layer_styles": None}
    with sqlite3.connect(result.path) as db:
        assert db.execute("SELECT count(*) FROM rtree_changes_geom").fetchone()[0] == result.polygons
        description = db.execute("SELECT description FROM gpkg_contents WHERE table_name='changes'").fetchone()[0]
        geometry_column = db.execute("SELECT column_name FROM gpkg_geometry_columns").fetchone()[0]
        style = db.execute(
            "SELECT f_table_catalog, f_table_schema, f_table_name, f_geometry_column, useAsDefault FROM layer_styles"
        ).fetchall()
        contents = db.execute("SELECT data_type FROM gpkg_contents WHERE table_name='layer_styles'").fetchone()
    assert "tiny.safetensors" in description and "threshold 0.5" in description and "before.tif" in description
    assert style == [("", "", "changes", geometry_column, 1)]
    assert contents == ("attributes",)
    frame = read(result.path)
    by_type = {t.change_type: (t.polygons, t.area_m2) for t in result.change_types}
    assert by_type == {name: (len(group), group.area_m2.sum()) for name, group in frame.groupby("change_type")}
    qml = _style_qml(result.path)
    assert 'type="categorizedSymbol"' in qml and 'attr="change_type"' in qml
    assert qml.count("<category ") == frame.change_type.nunique()


def test_empty_result_is_a_valid_styled_geopackage(tmp_path: Path) -> None:
    raster = write_raster(tmp_path / "c.tif", np.full((10, 10), 30, np.uint8))
    result = vectorize(raster, tmp_path / "o.gpkg", min_area_m2=10.0, simplify=1.0)
    assert (result.polygons, result.changed_area_m2) == (0, 0.0)
    info = pyogrio.read_info(result.path, layer="changes")
    assert info["features"] == 0 and info["geometry_type"] == "Polygon" and info["crs"] == "EPSG:32633"
    assert 'type="categorizedSymbol"' in _style_qml(result.path)


def test_failure_leaves_no_file_and_existing_output_needs_overwrite(tmp_path: Path, monkeypatch) -> None:
    raster = random_raster(tmp_path / "c.tif")
    target = tmp_path / "out" / "changes.gpkg"
    target.parent.mkdir()

    def broken(path: Path, *args: object) -> None:
        path.write_bytes(b"half a GeoPackage")
        Path(f"{path}-wal").write_bytes(b"journal")
        raise RuntimeError("disk full")

    monkeypatch.setattr(geocd.vector.pipeline, "write_changes", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        vectorize(raster, target)
    assert list(target.parent.iterdir()) == []
    monkeypatch.undo()

    target.write_text("old")
    with pytest.raises(OutputError, match="already exists"):
        vectorize(raster, target)
    assert target.read_text() == "old"
    assert vectorize(raster, target, overwrite=True).polygons > 0
    assert sorted(p.name for p in target.parent.iterdir()) == ["changes.gpkg"]


def test_bad_inputs_raise_input_error(tmp_path: Path) -> None:
    rgb = tmp_path / "rgb.tif"
    with rasterio.open(rgb, "w", driver="GTiff", width=4, height=4, count=4, dtype="uint8", crs="EPSG:32633",
                       transform=UTM) as dst:
        dst.write(np.zeros((4, 4, 4), np.uint8))
    with pytest.raises(InputError, match=r"rgb\.tif: is not a geocd change raster: expected 3 uint8 bands"):
        vectorize(rgb, tmp_path / "o.gpkg")
    floats = tmp_path / "floats.tif"
    with rasterio.open(floats, "w", driver="GTiff", width=4, height=4, count=3, dtype="float32", crs="EPSG:32633",
                       transform=UTM) as dst:
        dst.write(np.zeros((3, 4, 4), np.float32))
    with pytest.raises(InputError, match="found 3 band\\(s\\) of float32"):
        vectorize(floats, tmp_path / "o.gpkg")
    text = tmp_path / "notes.tif"
    text.write_text("not a raster")
    with pytest.raises(InputError, match="cannot be read as a raster"):
        vectorize(text, tmp_path / "o.gpkg")
    untagged = write_raster(tmp_path / "untagged.tif", np.zeros((4, 4), np.uint8), info=None)
    with pytest.raises(InputError, match="no GEOCD_\\* metadata tags"):
        vectorize(untagged, tmp_path / "o.gpkg")
    with rasterio.open(untagged, "r+") as dst:
        dst.update_tags(GEOCD_SCHEMA="[{broken")
    with pytest.raises(InputError, match="unreadable GEOCD"):
        vectorize(untagged, tmp_path / "o.gpkg")
    raster = write_raster(tmp_path / "ok.tif", np.zeros((4, 4), np.uint8))
    for option in ({"min_area_m2": -1.0}, {"simplify": 0.0}, {"threshold": 1.5}, {"strip_rows": 0}):
        with pytest.raises(InputError):
            vectorize(raster, tmp_path / "o.gpkg", **option)
    assert not (tmp_path / "o.gpkg").exists()


# ---- real QGIS ------------------------------------------------------------------------------


def _qgis_available() -> bool:
    try:
        return subprocess.run([QGIS_PYTHON, "-c", "import qgis.core"], capture_output=True, timeout=60).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@pytest.mark.skipif(not _qgis_available(), reason=f"{QGIS_PYTHON} cannot import qgis.core (apt python3-qgis)")
@pytest.mark.parametrize("info", [TRAINED, UNTRAINED], ids=["trained", "untrained"])
def test_qgis_opens_the_layer_with_its_categorized_style(tmp_path: Path, info: ChangeMapInfo) -> None:
    raster = random_raster(tmp_path / "c.tif", seed=2)
    if info is UNTRAINED:
        with rasterio.open(raster, "r+") as dst:
            dst.update_tags(**UNTRAINED.to_tags())
    result = vectorize(raster, tmp_path / "changes.gpkg")
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "QGIS_CUSTOM_CONFIG_PATH": str(tmp_path / "qgis-profile")}
    script = Path(__file__).with_name("qgis_check.py")
    run = subprocess.run([QGIS_PYTHON, str(script), str(result.path)], capture_output=True, text=True, env=env,
                         timeout=120)
    assert run.returncode == 0, run.stderr
    assert "partially supported" not in run.stderr
    seen = json.loads(run.stdout.strip().splitlines()[-1])
    assert seen["isValid"] and seen["featureCount"] == result.polygons and seen["crs"] == "EPSG:32633"
    assert seen["renderer"] == "categorizedSymbol" and seen["attribute"] == "change_type"
    frame = read(result.path)
    assert {c["value"] for c in seen["categories"]} == set(frame.change_type)
    to_class = dict(zip(frame.change_type, frame.to_class))
    for category in seen["categories"]:
        rgb = [255, 0, 255] if info is UNTRAINED else list(SECOND.classes[to_class[category["value"]]].color)
        assert category["fill"] == rgb + [153] and category["outline"] == rgb + [255]

