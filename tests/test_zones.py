"""Areas by zone and the from→to matrix (geocd.vector.zones, predict --zones)."""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pytest
import shapely
from click.testing import CliRunner
from pyproj import CRS

from conftest import intensity_model
from geocd.cli.main import cli
from geocd.demo import DEMO_ORIGIN, write_demo_pair
from geocd.errors import InputError
from geocd.inference.predict import PredictOutputs, predict
from geocd.vector.attributes import COLUMNS, ChangeTypeSummary
from geocd.vector.formats import LayerInfo
from geocd.vector.measure import measure
from geocd.vector.pipeline import ChangePolygons
from geocd.vector.zones import Zones, read_zones, zone_statistics, zones_report

UTM = CRS.from_epsg(32633)
X0, Y0 = DEMO_ORIGIN


def zones_file(path: Path, crs: int = 4326) -> Path:
    """Two zones over the demo scene (west, east) and one 5 km away (far), drawn in UTM, stored in ``crs``."""
    boxes = [shapely.box(X0 - 10, Y0 - 100, X0 + 60, Y0 + 10), shapely.box(X0 + 60, Y0 - 140, X0 + 200, Y0 - 20),
             shapely.box(X0 + 5000, Y0, X0 + 5100, Y0 + 100)]
    frame = gpd.GeoDataFrame({"name": ["west", "east", "far"]}, geometry=boxes, crs=UTM).to_crs(crs)
    frame.to_file(path)
    return path


def inside_zones(polygons: gpd.GeoDataFrame, zones: Path) -> dict[tuple[str, str], float]:
    """Independently: area (m², geodesic) of ``polygons`` inside each zone, by zone and change type."""
    areas = gpd.read_file(zones).to_crs(polygons.crs)
    found: dict[tuple[str, str], float] = {}
    for name, zone in zip(areas["name"], areas.geometry):
        for change_type, rows in polygons.groupby("change_type"):
            parts = shapely.intersection(rows.geometry.to_numpy(), zone)
            found[name, change_type] = float(measure(parts, polygons.crs)[0].sum())
    return found


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The demo pair predicted by the intensity model twice: without zones, and with zones in EPSG:4326."""
    folder = tmp_path_factory.mktemp("demo")
    pair = write_demo_pair(folder, size=256)
    zones = zones_file(folder / "zones.gpkg")
    model = [intensity_model()]
    plain = predict(pair.before, pair.after, models=model, outputs=PredictOutputs(vectors=folder / "plain.gpkg"))
    zoned = predict(pair.before, pair.after, models=model,
                    outputs=PredictOutputs(vectors=folder / "zoned.gpkg", report=folder / "report.json", zones=zones,
                                           zone_field="name"))
    return {"zones": zones, "plain": pyogrio.read_dataframe(plain.vectors, layer="changes"),
            "zoned": pyogrio.read_dataframe(zoned.vectors, layer="changes"), "result": zoned,
            "report": json.loads(zoned.report.read_text(encoding="utf-8"))}


def test_areas_per_zone_and_type_are_those_of_the_polygons_inside_each_zone(demo_run: dict) -> None:
    section = demo_run["report"]["zones"]
    expected = inside_zones(demo_run["plain"], demo_run["zones"])
    assert section["source"] == str(demo_run["zones"]) and section["field"] == "name"
    assert [z["zone"] for z in section["by_zone"]] == ["west", "east", "far"]
    found = {(z["zone"], t["change_type"]): t["area_m2"] for z in section["by_zone"] for t in z["by_type"]}
    assert found.keys() == expected.keys()
    assert found == pytest.approx(expected, rel=1e-6, abs=1e-6)
    assert section["by_zone"][0]["area_m2"] > 100 and section["by_zone"][1]["area_m2"] > 100  # both zones see changes
    assert section["area_m2"] == pytest.approx(sum(expected.values()), rel=1e-9)
    assert section["area_ha"] == pytest.approx(section["area_m2"] / 1e4)
    for zone in section["by_zone"]:  # the matrix's cells add up to the same total
        assert sum(c["area_m2"] for c in zone["matrix"]) == pytest.approx(zone["area_m2"], rel=1e-12)
        assert sum(t["area_m2"] for t in zone["by_type"]) == pytest.approx(zone["area_m2"], rel=1e-12)
    scene = sum(c["area_m2"] for c in section["matrix"])
    assert scene == pytest.approx(demo_run["plain"]["area_m2"].sum(), rel=1e-9) and scene > section["area_m2"]


def test_a_zone_outside_the_images_is_listed_with_zero_area(demo_run: dict) -> None:
    far = demo_run["report"]["zones"]["by_zone"][2]
    assert far["zone"] == "far" and far["area_m2"] == 0 and far["by_type"] and far["matrix"]
    assert all(t["area_m2"] == 0 for t in far["by_type"]) and all(c["area_m2"] == 0 for c in far["matrix"])


def test_polygons_are_cut_at_zone_boundaries_and_carry_their_zone(demo_run: dict) -> None:
    plain, zoned = demo_run["plain"], demo_run["zoned"]
    assert "zone" not in plain.columns and list(zoned.columns[:2]) == ["change_id", "zone"]
    assert set(zoned["zone"].dropna()) == {"west", "east"} and zoned["zone"].isna().any()
    assert set(zoned["change_id"]) == set(plain["change_id"])  # every region, in pieces
    assert zoned["area_m2"].sum() == pytest.approx(plain["area_m2"].sum(), rel=1e-9)  # the pieces add up
    np.testing.assert_allclose(measure(zoned.geometry.to_numpy(), zoned.crs)[0], zoned["area_m2"])
    areas = gpd.read_file(demo_run["zones"]).to_crs(zoned.crs).set_index("name").geometry
    for zone, piece in zip(zoned["zone"], zoned.geometry):
        covered = shapely.intersection(piece, areas.union_all()).area
        assert covered == pytest.approx(piece.area if isinstance(zone, str) else 0, abs=1e-6)
        if isinstance(zone, str):
            assert shapely.intersection(piece, areas[zone]).area == pytest.approx(piece.area)
    by_zone = zoned.groupby("zone")["area_m2"].sum()
    for zone in demo_run["report"]["zones"]["by_zone"][:2]:
        assert by_zone[zone["zone"]] == pytest.approx(zone["area_m2"], rel=1e-12)


def test_the_csv_beside_the_outputs_holds_the_same_table(demo_run: dict) -> None:
    result = demo_run["result"]
    assert result.zones_table == result.vectors.with_name("zoned_zones.csv")
    assert demo_run["report"]["outputs"]["zones"] == str(result.zones_table)
    table = pd.read_csv(result.zones_table, keep_default_na=False, na_values=[""])
    assert list(table.columns) == ["zone", "from_class", "from_name", "to_class", "to_name", "change_type", "area_m2",
                                   "area_ha"]
    section = demo_run["report"]["zones"]
    cells = {(z["zone"], c["from_name"], c["to_name"]): c["area_m2"] for z in section["by_zone"] for c in z["matrix"]}
    cells |= {(None, c["from_name"], c["to_name"]): c["area_m2"] for c in section["matrix"]}
    rows = {(None if pd.isna(r.zone) else r.zone, r.from_name, r.to_name): r.area_m2 for r in table.itertuples()}
    assert rows == pytest.approx(cells, rel=1e-12)
    np.testing.assert_allclose(table["area_ha"], table["area_m2"] / 1e4)


def hand_made_polygons() -> ChangePolygons:
    """Three 10 m squares: grass → building, building → water, and one of unknown classes."""
    geometries = np.array([shapely.box(X0 + 10 * i, Y0, X0 + 10 * i + 10, Y0 + 10) for i in range(3)])
    area, perimeter = measure(geometries, UTM)
    data = {"change_id": [1, 2, 3], "from_class": [3, 5, None], "from_name": ["low vegetation", "building", None],
            "to_class": [5, 1, None], "to_name": ["building", "water", None],
            "change_type": ["low vegetation → building", "building → water", "unknown → unknown"],
            "type_share": 1.0, "from_share": 1.0, "to_share": 1.0, "area_m2": area, "perimeter_m": perimeter,
            "mean_probability": 0.7, "max_probability": 0.9}
    frame = pd.DataFrame({name: pd.Series(data[name], dtype=dtype, index=range(3)) for name, dtype in COLUMNS.items()})
    return ChangePolygons(gpd.GeoDataFrame(frame, geometry=geometries, crs=UTM), LayerInfo("", {}, ""), (), 0.0)


def test_matrix_of_a_hand_made_layer_with_feature_ids_for_zones() -> None:
    # zone 1 holds the left half of square 1 and all of square 2 and half of square 3; zone 2 the rest of square 1
    boxes = [shapely.box(X0 + 5, Y0 - 5, X0 + 25, Y0 + 15), shapely.box(X0 - 5, Y0 - 5, X0 + 5, Y0 + 15)]
    zones = Zones(gpd.GeoDataFrame({"zone": pd.array([1, 2], dtype="Int64")}, geometry=boxes, crs=UTM).to_crs(3857),
                  Path("z.gpkg"), None)
    stats = zone_statistics(hand_made_polygons(), zones)
    square = hand_made_polygons().frame["area_m2"][0]
    report = zones_report(stats)
    cells = {(z["zone"], c["from_class"], c["to_class"]): c["area_m2"] for z in report["by_zone"] for c in z["matrix"]}
    assert cells == pytest.approx({(1, None, None): square / 2, (1, 3, 5): square / 2, (1, 5, 1): square,
                                   (2, None, None): 0, (2, 3, 5): square / 2, (2, 5, 1): 0}, rel=1e-3)
    assert report["field"] is None and report["area_m2"] == pytest.approx(2.5 * square, rel=1e-3)
    assert list(stats.frame["zone"].astype(object).where(stats.frame["zone"].notna(), None)) == [1, 2, 1, 1, None]
    assert list(stats.frame["change_id"]) == [1, 1, 2, 3, 3]


def test_overlapping_zones_each_count_their_shared_part_and_polygons_touching_a_zone_get_no_piece_of_it() -> None:
    square = shapely.box(X0, Y0, X0 + 10, Y0 + 10)
    boxes = [square, shapely.box(X0 + 5, Y0, X0 + 10, Y0 + 10), shapely.box(X0 + 30, Y0, X0 + 40, Y0 + 10)]
    zones = Zones(gpd.GeoDataFrame({"zone": ["all", "half", "touching"]}, geometry=boxes, crs=UTM), Path("z.gpkg"), "name")
    stats = zone_statistics(hand_made_polygons(), zones)
    area = hand_made_polygons().frame["area_m2"]
    assert list(zip(stats.frame["change_id"], stats.frame["zone"].fillna("-"))) == [(1, "all"), (1, "half"), (2, "-"), (3, "-")]
    by_zone = {z["zone"]: z["area_m2"] for z in zones_report(stats)["by_zone"]}
    assert by_zone == pytest.approx({"all": area[0], "half": area[0] / 2, "touching": 0}, rel=1e-6)


def test_without_change_every_zone_is_listed_with_the_layers_change_types() -> None:
    empty = hand_made_polygons()
    empty = ChangePolygons(empty.frame.iloc[:0], empty.layer, (ChangeTypeSummary("change", (0, 0, 0), (0, 0, 0), 0, 0.0),), 0)
    zones = Zones(gpd.GeoDataFrame({"zone": ["a", "b"]}, geometry=[shapely.box(X0, Y0, X0 + 5, Y0 + 5)] * 2, crs=UTM),
                  Path("z.gpkg"), "name")
    stats = zone_statistics(empty, zones)
    assert stats.frame.empty and "zone" in stats.frame.columns
    assert stats.table[["zone", "change_type", "area_m2"]].astype(object).where(stats.table.notna(), None).values.tolist() == [
        ["a", "change", 0.0], ["b", "change", 0.0], [None, "change", 0.0]]


@pytest.mark.filterwarnings("ignore:'crs' was not provided")
@pytest.mark.parametrize("case", ["missing", "text", "points", "no crs", "unknown field", "empty field"])
def test_bad_zones_are_one_line_errors(tmp_path: Path, case: str) -> None:
    path = tmp_path / "zones.gpkg"
    polygon = shapely.box(X0, Y0, X0 + 10, Y0 + 10)
    if case == "text":
        path = tmp_path / "zones.txt"
        path.write_text("not a vector file\n")
    elif case != "missing":
        geometry = [shapely.Point(X0, Y0)] if case == "points" else [polygon]
        crs = None if case == "no crs" else UTM
        gpd.GeoDataFrame({"name": [None if case == "empty field" else "a"]}, geometry=geometry, crs=crs).to_file(path)
    expected = {"missing": "zones file does not exist", "text": "is not a vector file GDAL can read",
                "points": "has Point geometries: zones must be polygons",
                "no crs": "has no coordinate reference system: zones must say where they are",
                "unknown field": "has no field 'nom' (its fields: name)",
                "empty field": "field 'name' is empty for feature 1: every zone needs an id"}[case]
    with pytest.raises(InputError) as raised:
        read_zones(path, "nom" if case == "unknown field" else "name")
    assert str(raised.value) == f"{path}: {expected}"


def test_cli_writes_the_zone_table_and_refuses_bad_zones_before_the_network_runs(
        tmp_path: Path, tiny_checkpoint: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pair = write_demo_pair(tmp_path / "demo", size=128)
    zones = zones_file(tmp_path / "zones.gpkg", crs=3857)
    output = tmp_path / "out" / "changes.gpkg"
    output.parent.mkdir()
    base = ["predict", str(pair.before), str(pair.after), "-o", str(output), "--model", str(tiny_checkpoint)]
    done = CliRunner().invoke(cli, [*base, "--zones", str(zones), "--threshold", "0.3", "--progress", "none"])
    assert done.exit_code == 0, done.output
    assert sorted(p.name for p in output.parent.iterdir()) == ["changes.gpkg", "changes_zones.csv"]
    table = pd.read_csv(output.parent / "changes_zones.csv", keep_default_na=False, na_values=[""])
    assert list(table["zone"].iloc[:3]) == [1, 2, 3] and pd.isna(table["zone"].iloc[-1])  # feature ids; then the scene
    assert list(table["change_type"]) == ["change"] * 4 and table["from_class"].isna().all()  # land cover untrained
    polygons = pyogrio.read_dataframe(output, layer="changes")
    assert table["area_m2"].iloc[0] > 0 and table["area_m2"].iloc[2] == 0
    assert table["area_m2"].iloc[:3].sum() == pytest.approx(polygons.groupby("zone")["area_m2"].sum().sum(), rel=1e-12)
    assert table["area_m2"].iloc[-1] == pytest.approx(polygons["area_m2"].sum(), rel=1e-9)  # pieces re-measured
    again = CliRunner().invoke(cli, [*base, "--zones", str(zones)])  # the table exists too: refused
    assert again.exit_code == 2 and "already exists" in again.output

    alone = CliRunner().invoke(cli, [*base, "--zone-field", "name"])
    assert alone.exit_code == 2 and "--zone-field names a field of --zones: give --zones too" in alone.output
    onto_zones = CliRunner().invoke(cli, ["predict", str(pair.before), str(pair.after), "-o", str(zones), "--model",
                                          str(tiny_checkpoint), "--zones", str(zones), "--overwrite"])
    assert onto_zones.output == f"geocd: error: {zones}: is also the input {zones}; choose another file name\n"
    assert gpd.read_file(zones)["name"].tolist() == ["west", "east", "far"]

    import geocd.inference.predict as predict_module

    monkeypatch.setattr(predict_module, "predict_change_raster", lambda *a, **k: pytest.fail("the network ran"))
    fresh = tmp_path / "fresh" / "changes.gpkg"
    fresh.parent.mkdir()
    bad = CliRunner().invoke(cli, ["predict", str(pair.before), str(pair.after), "-o", str(fresh), "--model",
                                   str(tiny_checkpoint), "--zones", str(zones), "--zone-field", "nom"])
    assert bad.exit_code == 2
    assert bad.output == f"geocd: error: {zones}: has no field 'nom' (its fields: name)\n"
    assert list(fresh.parent.iterdir()) == []
