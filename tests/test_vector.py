"""geocd.vector: change raster to styled GeoPackage polygons."""

from __future__ import annotations

import io
import json
import os
import sqlite3
import subprocess
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pytest
import rasterio
import rasterio.features
import shapely
from click.testing import CliRunner
from pyproj import CRS, Geod, Transformer
from rasterio.transform import from_origin

import geocd.vector.formats
import geocd.vector.pipeline
from cli.main import cli
from conftest import planted_pair
from geocd.changemap import BANDS, ChangeMapInfo
from geocd.errors import InputError, OutputError
from geocd.progress import Progress
from geocd.schema import SECOND
from geocd.vector import VectorizeResult, vectorize
from geocd.vector.formats import SHAPEFILE_FIELDS
from geocd.vector.measure import largest_pixel_area

TRAINED = ChangeMapInfo(
    threshold=0.5, trained_classes=(1, 2, 3, 4, 5, 6), models=("tiny.safetensors",), inputs=("before.tif", "after.tif")
)
UNTRAINED = ChangeMapInfo(threshold=0.5, models=("tiny.safetensors",), inputs=("before.tif", "after.tif"))
UTM = from_origin(500000.0, 6000000.0, 2.0, 2.0)


def geodesic(polygon: shapely.Polygon, crs: str) -> tuple[float, float]:
    """Oracle: ``(area_m2, perimeter_m)`` of a map polygon by pyproj's own geodesic shapely helpers."""
    transformer = Transformer.from_crs(crs, CRS(crs).geodetic_crs, always_xy=True)
    lonlat = shapely.transform(polygon, lambda x, y: transformer.transform(x, y), interleaved=False)
    geod = CRS(crs).get_geod()
    return abs(geod.geometry_area_perimeter(lonlat)[0]), geod.geometry_length(lonlat.boundary)


PIXEL_M2 = geodesic(shapely.box(500000, 5999998, 500002, 6000000), "EPSG:32633")[0]
"""One 2 m UTM pixel near the rasters' origin: 4 m² of map / 0.9996² (zone 33's central meridian)."""
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
    result = vectorize(raster, tmp_path / "out.gpkg", strip_rows=7, min_area_m2=0)
    frame = read(result.path)
    assert result.polygons == len(frame) > 20
    assert frame.area_m2.sum() == pytest.approx(changed.sum() * PIXEL_M2, rel=1e-7)
    assert result.changed_area_m2 == pytest.approx(changed.sum() * PIXEL_M2, rel=1e-7)
    assert shapely.is_valid(frame.geometry.values).all()
    assert set(frame.geometry.geom_type) == {"Polygon"}
    assert list(frame.change_id) == list(range(1, len(frame) + 1))
    # regions never touch along an edge, whatever their pairs (they would be one 4-connected region)
    geoms = frame.geometry.values
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
    assert frame.area_m2[0] == pytest.approx((13 * 6 + 2) * PIXEL_M2, rel=1e-7)
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


def test_a_region_is_one_polygon_of_its_majority_pair_and_min_area_never_fills_holes(tmp_path: Path) -> None:
    probability = np.zeros((16, 16), np.uint8)
    before = np.full(probability.shape, 5, np.uint8)
    after = np.full(probability.shape, 2, np.uint8)
    probability[1:11, 1:11] = 200  # big region, 100 px: building -> ground
    after[5, 5] = 1  # one pixel of building -> water inside it
    before[6, 1:3] = 4  # two pixels of tree -> ground
    probability[3:5, 3:5] = 0  # a 4 px unchanged hole ...
    probability[7:10, 7:10] = 0  # ... and a 9 px hole with a 1 px speck in it (GDAL sieve alone keeps
    probability[8, 8] = 200  # that speck: its only neighbour, the 8 px ring, is itself small)
    probability[13, 13:15] = 200  # a 2 px speck outside
    raster = write_raster(tmp_path / "c.tif", probability, before, after)
    frame = read(vectorize(raster, tmp_path / "o.gpkg", min_area_m2=10 * PIXEL_M2, strip_rows=4).path)
    assert frame.change_type.tolist() == ["building → ground"]
    big = frame.geometry[0]
    assert big.area == (100 - 4 - 9) * 2 * 2 and len(big.interiors) == 2
    assert frame.type_share[0] == pytest.approx(84 / 87)  # 87 px: 84 building -> ground, 1 -> water, 2 from tree
    assert (frame.from_share[0], frame.to_share[0]) == pytest.approx((85 / 87, 86 / 87))


def test_majority_pair_is_counted_over_the_whole_region_across_seams(tmp_path: Path) -> None:
    """Two strips of building -> water (16 px) above one strip of tree -> building (20 px): the region is tree -> building."""
    probability = np.zeros((12, 8), np.uint8)
    before, after = np.zeros_like(probability), np.zeros_like(probability)
    probability[0:8, 1:3], before[0:8, 1:3], after[0:8, 1:3] = 200, 5, 1
    probability[8:12, 1:6], before[8:12, 1:6], after[8:12, 1:6] = 200, 4, 5
    probability[0:2, 6:8], before[0:2, 6:8], after[0:2, 6:8] = 200, 1, 4  # a tie, 2 px each: the lower pair wins
    before[1, 6:8], after[1, 6:8] = 3, 2
    raster = write_raster(tmp_path / "c.tif", probability, before, after)
    frames = [read(vectorize(raster, tmp_path / f"o{rows}.gpkg", strip_rows=rows, min_area_m2=0).path)
              for rows in (None, 1, 3, 4)]
    for frame in frames:
        assert frame.drop(columns="geometry").equals(frames[0].drop(columns="geometry"))
    frame = frames[0]
    assert frame.change_type.tolist() == ["tree → building", "water → tree"]
    assert frame.type_share.tolist() == pytest.approx([20 / 36, 0.5])
    assert frame.from_share.tolist() == pytest.approx([20 / 36, 0.5])
    assert frame.to_share.tolist() == pytest.approx([20 / 36, 0.5])
    assert frame.area_m2[0] == pytest.approx(36 * PIXEL_M2, rel=1e-7)


def test_nodata_threshold_and_progress(tmp_path: Path) -> None:
    probability = np.array([[255, 130, 200, 254]], np.uint8).repeat(3, axis=0)
    raster = write_raster(tmp_path / "c.tif", probability, info=UNTRAINED)
    events = io.StringIO()
    result = vectorize(raster, tmp_path / "a.gpkg", strip_rows=2, progress=Progress("json", stream=events))
    assert result.changed_area_m2 == pytest.approx(9 * PIXEL_M2, rel=1e-7)
    progress = [json.loads(line) for line in events.getvalue().splitlines() if '"progress"' in line]
    assert [(p["done"], p["total"]) for p in progress] == [(1, 2), (2, 2)]
    assert vectorize(raster, tmp_path / "b.gpkg", threshold=0.7).changed_area_m2 == pytest.approx(6 * PIXEL_M2, rel=1e-7)


def test_simplify_keeps_a_valid_coverage(tmp_path: Path) -> None:
    raster = random_raster(tmp_path / "change.tif", seed=7)
    exact = read(vectorize(raster, tmp_path / "exact.gpkg").path)
    frame = read(vectorize(raster, tmp_path / "simple.gpkg", simplify=2.5).path)
    geoms = frame.geometry.values
    assert len(frame) == len(exact)
    assert shapely.is_valid(geoms).all()
    assert shapely.get_num_coordinates(geoms).sum() < shapely.get_num_coordinates(exact.geometry.values).sum()
    assert shapely.union_all(geoms).area == pytest.approx(shapely.area(geoms).sum())  # no overlaps
    assert frame.area_m2.sum() == pytest.approx(exact.area_m2.sum(), rel=0.05)


# ---- attributes -----------------------------------------------------------------------------


def test_attributes_on_a_hand_made_raster(tmp_path: Path) -> None:
    probability = np.zeros((5, 6), np.uint8)
    before = np.zeros_like(probability)
    after = np.zeros_like(probability)
    probability[1:3, 1:4] = [[200, 254, 127], [150, 180, 210]]  # 2x3 building -> water
    before[1:3, 1:4], after[1:3, 1:4] = 5, 1
    probability[4, 1:3] = [140, 160]  # 1x2 tree -> building, apart from the first
    before[4, 1:3], after[4, 1:3] = 4, 5
    probability[0, 5] = 100  # below the threshold
    raster = write_raster(tmp_path / "c.tif", probability, before, after)
    frame = read(vectorize(raster, tmp_path / "o.gpkg", min_area_m2=0).path)
    assert frame.change_id.tolist() == [1, 2]
    assert frame.from_class.tolist() == [5, 4] and frame.to_class.tolist() == [1, 5]
    assert frame.from_name.tolist() == ["building", "tree"] and frame.to_name.tolist() == ["water", "building"]
    assert frame.change_type.tolist() == ["building → water", "tree → building"]
    expected = [geodesic(g, "EPSG:32633") for g in (shapely.box(500002, 5999994, 500008, 5999998),
                                                       shapely.box(500002, 5999990, 500006, 5999992))]
    assert frame.area_m2.tolist() == pytest.approx([a for a, _ in expected], rel=1e-9)
    assert frame.perimeter_m.tolist() == pytest.approx([p for _, p in expected], rel=1e-9)
    assert frame.mean_probability.tolist() == pytest.approx([1121 / 6 / 254, 150 / 254])
    assert frame.max_probability.tolist() == pytest.approx([1.0, 160 / 254])
    assert frame[["type_share", "from_share", "to_share"]].to_numpy().tolist() == [[1.0] * 3] * 2
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
    area, perimeter = geodesic(shapely.box(1000, 1998, 1002, 2000), "EPSG:2236")
    assert (frame.area_m2[0], frame.perimeter_m[0]) == pytest.approx((area, perimeter), rel=1e-9)
    foot = 0.3048006096012192  # the US survey foot: the map figures in metres are within 0.1 % of the true ones
    assert (area, perimeter) == pytest.approx((4 * foot**2, 8 * foot), rel=1e-3)


LONLAT_48N = (2.35, 48.7)
"""Where Web Mercator's map areas are 2.3x the true ones."""


def ground_square_raster(path: Path, crs: str, side_m: float = 200.0, pixels: int = 20) -> tuple[Path, float]:
    """A change raster in ``crs`` whose ``pixels`` x ``pixels`` changed block covers one UTM square of
    ``side_m`` at 48.7°N; returns it and the square's geodesic area."""
    utm = "EPSG:32631"
    x0, y0 = Transformer.from_crs("EPSG:4326", utm, always_xy=True).transform(*LONLAT_48N)
    (left, right), (bottom, top) = Transformer.from_crs(utm, crs, always_xy=True).transform(
        [x0, x0 + side_m], [y0, y0 + side_m])
    width, height = (right - left) / pixels, (top - bottom) / pixels
    probability = np.zeros((pixels + 4, pixels + 4), np.uint8)
    probability[2:-2, 2:-2] = 200
    raster = write_raster(path, probability, crs=crs, transform=from_origin(left - 2 * width, top + 2 * height,
                                                                              width, height))
    return raster, geodesic(shapely.box(x0, y0, x0 + side_m, y0 + side_m), utm)[0]


def test_one_ground_square_has_the_same_true_area_in_utm_web_mercator_and_geographic(tmp_path: Path) -> None:
    areas, perimeters = [], []
    for crs in ("EPSG:32631", "EPSG:3857", "EPSG:4326"):
        raster, truth = ground_square_raster(tmp_path / f"{crs[5:]}.tif", crs)
        frame = read(vectorize(raster, tmp_path / f"{crs[5:]}.gpkg").path)
        assert len(frame) == 1
        areas.append(frame.area_m2[0])
        perimeters.append(frame.perimeter_m[0])
        if crs == "EPSG:3857":
            assert frame.geometry[0].area / truth == pytest.approx(2.3, abs=0.05)  # what planar areas would say
    assert areas == pytest.approx([truth] * 3, rel=0.01)
    assert max(areas) / min(areas) < 1.01
    assert perimeters == pytest.approx([4 * 200.0] * 3, rel=0.01)


def test_min_area_in_web_mercator_keeps_the_same_blobs_as_in_utm(tmp_path: Path) -> None:
    utm = random_raster(tmp_path / "utm.tif", seed=5)
    with rasterio.open(utm) as src:
        bands, (width, height), bounds = src.read(), (src.width, src.height), src.bounds
    (left, right), (bottom, top) = Transformer.from_crs("EPSG:32633", "EPSG:3857", always_xy=True).transform(
        [bounds.left, bounds.right], [bounds.bottom, bounds.top])
    transform = from_origin(left, top, (right - left) / width, (top - bottom) / height)
    mercator = write_raster(tmp_path / "3857.tif", bands[0], bands[1], bands[2], crs="EPSG:3857", transform=transform)
    assert transform.a * -transform.e > 2.9 * PIXEL_M2  # planar areas would keep blobs of 4+ pixels, not 11+
    min_area = 10.5 * PIXEL_M2
    sizes = blob_pixel_counts((bands[0] >= 127) & (bands[0] != 255))
    assert any(4 <= n <= 10 for n in sizes) and any(n > 10 for n in sizes)
    frames = [read(vectorize(r, tmp_path / f"{r.stem}.gpkg", min_area_m2=min_area).path) for r in (utm, mercator)]
    columns = ["change_type", "mean_probability", "max_probability"]
    assert frames[1][columns].equals(frames[0][columns])
    assert frames[1].area_m2.tolist() == pytest.approx(frames[0].area_m2.tolist(), rel=1e-3)
    assert frames[0].area_m2.sum() == pytest.approx(sum(n for n in sizes if n > 10) * PIXEL_M2, rel=1e-6)


def test_largest_pixel_area_bounds_every_pixel_in_web_mercator(tmp_path: Path) -> None:
    transform = from_origin(-2e6, 3e6, 50000.0, 50000.0)  # 27°N to 27°S: true pixel areas peak at the equator
    height = width = 120
    bound = largest_pixel_area(transform, height, width, CRS("EPSG:3857"))
    rows, cols = np.meshgrid(np.arange(height), np.arange(0, width, 7))
    pixels = [shapely.box(*(transform * (c, r + 1)), *(transform * (c + 1, r))) for r, c in zip(rows.ravel(), cols.ravel())]
    true = [geodesic(p, "EPSG:3857")[0] for p in pixels]
    assert max(true) <= bound <= 1.06 * max(true)


def test_default_min_area_drops_blobs_of_up_to_three_pixels(tmp_path: Path) -> None:
    probability = np.zeros((9, 12), np.uint8)
    probability[1, 1] = probability[1, 4:6] = probability[4, 1:4] = 200
    probability[6:8, 6:8] = 200
    raster = write_raster(tmp_path / "c.tif", probability, info=UNTRAINED)
    frame = read(vectorize(raster, tmp_path / "default.gpkg").path)
    assert frame.area_m2.tolist() == pytest.approx([4 * PIXEL_M2], rel=1e-6)
    minimum = float(pyogrio.read_info(tmp_path / "default.gpkg", layer="changes")["layer_metadata"]["GEOCD_MIN_AREA_M2"])
    assert minimum == pytest.approx(3.5 * PIXEL_M2, rel=1e-6)
    assert vectorize(raster, tmp_path / "all.gpkg", min_area_m2=0).polygons == 4
    runner = CliRunner()
    for options, count in (([], 1), (["--min-area", "0"], 4)):
        run = runner.invoke(cli, ["vectorize", str(raster), "-o", str(tmp_path / f"cli{count}.gpkg"), *options])
        assert run.exit_code == 0 and run.stderr.startswith(f"{count} change polygons")


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
        "type_share", "from_share", "to_share", "area_m2", "perimeter_m", "mean_probability", "max_probability",
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
    assert by_type == {name: (len(group), pytest.approx(group.area_m2.sum(), rel=1e-12))
                       for name, group in frame.groupby("change_type")}
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

    monkeypatch.setattr(geocd.vector.formats, "write_geopackage", broken)
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
    with pytest.raises(InputError, match=r"untagged\.tif: has a bad metadata tag: GEOCD_SCHEMA is not a JSON list"):
        vectorize(untagged, tmp_path / "o.gpkg")
    raster = write_raster(tmp_path / "ok.tif", np.zeros((4, 4), np.uint8))
    for option in ({"min_area_m2": -1.0}, {"simplify": 0.0}, {"threshold": 1.5}, {"strip_rows": 0}):
        with pytest.raises(InputError):
            vectorize(raster, tmp_path / "o.gpkg", **option)
    assert not (tmp_path / "o.gpkg").exists()


@pytest.mark.parametrize(
    ("tag", "value", "problem"),
    [
        ("GEOCD_THRESHOLD", "nan", "GEOCD_THRESHOLD is 'nan', not a number in (0, 1]"),
        ("GEOCD_THRESHOLD", "-1", "GEOCD_THRESHOLD is '-1', not a number in (0, 1]"),
        ("GEOCD_THRESHOLD", "2", "GEOCD_THRESHOLD is '2', not a number in (0, 1]"),
        ("GEOCD_THRESHOLD", "0", "GEOCD_THRESHOLD is '0', not a number in (0, 1]"),
        ("GEOCD_THRESHOLD", "half", "GEOCD_THRESHOLD is 'half', not a number in (0, 1]"),
        ("GEOCD_SCHEMA", '{"id": 1}', "GEOCD_SCHEMA is not a JSON list: '{\"id\": 1}'"),
        ("GEOCD_SCHEMA", '[{"name": "x"}]', "GEOCD_SCHEMA or GEOCD_TRAINED_CLASSES does not list geocd classes"),
        ("GEOCD_TRAINED_CLASSES", '["x"]', "GEOCD_SCHEMA or GEOCD_TRAINED_CLASSES does not list geocd classes"),
        ("GEOCD_MODELS", "[oops", "GEOCD_MODELS is not a JSON list: '[oops'"),
        ("GEOCD_ONLY", '["roof"]', "GEOCD_ONLY names no class 'roof': use water, ground, low vegetation, tree, building, "
                                   "playground"),
    ],
)
def test_bad_metadata_tags_are_one_line_and_write_nothing(tmp_path: Path, tag: str, value: str, problem: str) -> None:
    raster = write_raster(tmp_path / "change.tif", np.full((4, 4), 200, np.uint8))
    with rasterio.open(raster, "r+") as dst:
        dst.update_tags(**{tag: value})
    result = CliRunner().invoke(cli, ["vectorize", str(raster), "-o", str(tmp_path / "o.gpkg")])
    assert result.exit_code == 2
    assert result.stderr == f"geocd: error: {raster}: has a bad metadata tag: {problem}\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["change.tif"]


def test_threshold_tag_at_the_edges_is_accepted(tmp_path: Path) -> None:
    raster = write_raster(tmp_path / "change.tif", np.array([[254, 253], [1, 0]], np.uint8), info=replace(TRAINED, threshold=1.0))
    assert vectorize(raster, tmp_path / "o.gpkg", min_area_m2=0).changed_area_m2 == PIXEL_M2


# ---- other formats --------------------------------------------------------------------------


def read_any(path: Path) -> gpd.GeoDataFrame:
    return gpd.read_parquet(path) if path.suffix == ".parquet" else pyogrio.read_dataframe(path)


@pytest.mark.parametrize("extension", [".fgb", ".geojson", ".parquet", ".shp"])
def test_each_format_round_trips_the_fields(tmp_path: Path, extension: str) -> None:
    raster = random_raster(tmp_path / "c.tif", seed=1)
    reference = read(vectorize(raster, tmp_path / "reference.gpkg").path)
    result = vectorize(raster, tmp_path / f"changes{extension.upper()}")  # any case; written in lower case
    assert result.path == tmp_path / f"changes{extension}" and result.path.exists()
    frame = read_any(result.path).rename(columns={v: k for k, v in SHAPEFILE_FIELDS.items()})
    frame = frame.sort_values("change_id", ignore_index=True)  # FlatGeobuf's index stores features in Hilbert order
    assert list(frame.columns) == list(reference.columns) and len(frame) == result.polygons == len(reference) > 10
    pd.testing.assert_frame_equal(frame.drop(columns="geometry"), reference.drop(columns="geometry"),
                                  check_dtype=False, rtol=1e-13)
    if extension == ".geojson":  # RFC 7946: WGS84 longitude/latitude, 7 decimals (~1 cm)
        assert frame.crs == "EPSG:4326"
        frame = frame.to_crs(reference.crs)
    assert frame.crs == reference.crs == "EPSG:32633"
    if extension == ".geojson":
        assert (shapely.hausdorff_distance(frame.geometry.values, reference.geometry.values) < 0.02).all()
    else:
        assert frame.geometry.normalize().geom_equals_exact(reference.geometry, tolerance=0).all()


def test_shapefile_field_names_sidecars_and_atomic_failure(tmp_path: Path, monkeypatch) -> None:
    raster = random_raster(tmp_path / "c.tif", seed=1)
    out = tmp_path / "out"
    out.mkdir()
    result = vectorize(raster, out / "changes.shp")
    assert sorted(p.name for p in out.iterdir()) == [f"changes.{e}" for e in ("cpg", "dbf", "prj", "shp", "shx")]
    assert list(pyogrio.read_info(result.path)["fields"]) == [
        "change_id", "from_class", "from_name", "to_class", "to_name", "chg_type",
        "type_share", "from_share", "to_share", "area_m2", "perim_m", "mean_prob", "max_prob",
    ]
    assert (out / "changes.cpg").read_text().strip() == "UTF-8"
    assert "building" in set(read_any(result.path).chg_type.str.split(" ").str[0])  # UTF-8 arrows read back

    def broken(frame: gpd.GeoDataFrame, path: Path, **options: object) -> None:
        pyogrio.write_dataframe(frame, path, **options)
        raise RuntimeError("disk full")

    monkeypatch.setattr(geocd.vector.formats, "pyogrio", SimpleNamespace(write_dataframe=broken))
    with pytest.raises(RuntimeError, match="disk full"):
        vectorize(raster, tmp_path / "failed.shp")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.tif", "out"]


def test_unknown_extension_is_refused_before_any_work(tmp_path: Path) -> None:
    target = tmp_path / "changes.xyz"
    message = f"{target}: unknown vector format '.xyz' (use .gpkg, .fgb, .geojson, .parquet or .shp)"
    with pytest.raises(OutputError) as error:
        vectorize(tmp_path / "missing.tif", target)
    assert str(error.value) == message
    runner = CliRunner()
    (tmp_path / "inputs").mkdir()
    before, after, _ = planted_pair(tmp_path / "inputs")  # predict refuses missing inputs first
    for args in (["vectorize", str(tmp_path / "missing.tif")],
                 ["predict", str(before), str(after), "--model", str(tmp_path / "none.safetensors")]):
        run = runner.invoke(cli, [*args, "-o", str(target)])
        assert (run.exit_code, run.stderr) == (2, f"geocd: error: {message}\n")
    assert [p.name for p in tmp_path.iterdir()] == ["inputs"]


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
    classes = dict(zip(frame.change_type, zip(frame.from_class, frame.to_class)))
    for category in seen["categories"]:
        fill, outline = ([255, 0, 255] if info is UNTRAINED else list(SECOND.classes[c].color)
                         for c in reversed(classes[category["value"]]))
        assert category["fill"] == fill + [153] and category["outline"] == outline + [255]

