"""geocd predict-archive on a real Dask cluster: a task per pair, failures isolated, an index, resumable runs."""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyogrio
import pytest
from click.testing import CliRunner
from rasterio.transform import from_origin
from rasterio.warp import transform_bounds

from cli.main import cli
from conftest import ORIGIN, UTM, files_under, hostile_names, planted_pair, smooth_scene, write_raster
from geocd.inference.archive import ArchiveOutputs
from geocd.inference.predict import PredictOutputs
from geocd.safe_names import file_stem


@pytest.fixture(scope="module")
def scheduler() -> Iterator[str]:
    """The address of a local cluster (two worker processes of one thread, on 127.0.0.1) for this module."""
    import logging

    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=":0",
                      scheduler_kwargs={"dashboard": False}, silence_logs=logging.ERROR) as cluster:
        yield cluster.scheduler_address


def archive(folder: Path) -> Path:
    """A manifest of two planted pairs and one whose dates do not overlap (``far``); no labels."""
    rows = ["name,before,after"]
    for name in ("north", "south"):
        (folder / name).mkdir(parents=True)
        before, after, _ = planted_pair(folder / name)
        rows.append(f"{name},{before.relative_to(folder)},{after.relative_to(folder)}")
    far = write_raster(folder / "far.tif", smooth_scene(96, 128).astype(np.uint8),
                       transform=from_origin(ORIGIN[0] + 1e5, ORIGIN[1], 1, 1))
    rows.append(f"far,north/before.tif,{far.name}")
    manifest = folder / "manifest.csv"
    manifest.write_text("\n".join(rows) + "\n")
    return manifest


def run(manifest: Path, output: Path, model: Path, *args: str, verbose: bool = False) -> tuple[int, str]:
    result = CliRunner().invoke(cli, [*(["--verbose"] if verbose else []), "predict-archive", str(manifest), "-o", str(output), "--model", str(model),
                                      "--backend", "torch", "-q", *args])
    return result.exit_code, result.output


def test_a_bad_pair_fails_alone_and_a_rerun_skips_the_finished_pairs(tmp_path: Path, tiny_checkpoint: Path,
                                                                     scheduler: str) -> None:
    manifest, output = archive(tmp_path / "archive"), tmp_path / "out"
    code, printed = run(manifest, output, tiny_checkpoint, "--scheduler", scheduler, "--report")
    far = tmp_path / "archive" / "far.tif"
    error = f"{far}: does not overlap {tmp_path / 'archive' / 'north' / 'before.tif'}"
    assert code == 2
    assert printed.splitlines() == [f"3 pairs: 2 predicted, 0 already done, 1 failed -> {output / 'index.gpkg'}",
                                    f"geocd: error: {error}"]
    assert sorted(p.name for p in output.iterdir()) == ["index.gpkg", "north.gpkg", "north.json", "south.gpkg", "south.json"]
    index = pyogrio.read_dataframe(output / "index.gpkg")
    assert index.crs == "EPSG:4326"
    assert list(index["name"]) == ["north", "south", "far"]
    assert list(index["status"]) == ["ok", "ok", "failed"]
    assert index.loc[2, "error"] == error and index.loc[2, "geometry"] is None
    assert list(index["vectors"][:2]) == [str(output / "north.gpkg"), str(output / "south.gpkg")]
    report = json.loads((output / "north.json").read_text())
    assert index.loc[0, "polygons"] == report["changes"]["polygons"]
    assert json.loads(index.loc[0, "change_types"]) == {
        t["change_type"]: {"polygons": t["polygons"], "area_m2": t["area_m2"]} for t in report["changes"]["by_type"]}
    footprint = transform_bounds(UTM, "EPSG:4326", ORIGIN[0], ORIGIN[1] - 96, ORIGIN[0] + 128, ORIGIN[1], densify_pts=21)
    assert index.loc[0, "geometry"].bounds == pytest.approx(footprint, abs=1e-8)  # the 128 x 96 m overlap

    written = {p.name: p.stat().st_mtime_ns for p in output.glob("*.gpkg") if p.name != "index.gpkg"}
    code, printed = run(manifest, output, tiny_checkpoint, "--scheduler", scheduler, "--report")
    assert code == 2
    assert printed.splitlines()[0] == f"3 pairs: 0 predicted, 2 already done, 1 failed -> {output / 'index.gpkg'}"
    assert {p.name: p.stat().st_mtime_ns for p in output.glob("*.gpkg") if p.name != "index.gpkg"} == written
    assert list(pyogrio.read_dataframe(output / "index.gpkg")["status"]) == ["ok", "ok", "failed"]

    code, printed = run(manifest, output, tiny_checkpoint, "--scheduler", scheduler, "--report", "--threshold", "0.9",
                        "--overwrite")
    assert printed.splitlines()[0] == f"3 pairs: 2 predicted, 0 already done, 1 failed -> {output / 'index.gpkg'}"
    assert all(output.joinpath(name).stat().st_mtime_ns > mtime for name, mtime in written.items())


def test_without_a_scheduler_a_local_cluster_runs_the_pairs(tmp_path: Path, tiny_checkpoint: Path) -> None:
    manifest, output = archive(tmp_path / "archive"), tmp_path / "out"
    manifest.write_text("\n".join(manifest.read_text().splitlines()[:2]) + "\n")
    code, printed = run(manifest, output, tiny_checkpoint, "--workers", "1", "--raster")
    assert code == 0, printed
    assert printed.splitlines() == [f"1 pairs: 1 predicted, 0 already done, 0 failed -> {output / 'index.gpkg'}"]
    assert sorted(p.name for p in output.iterdir()) == ["index.gpkg", "north.gpkg", "north_change.tif"]
    assert pyogrio.list_layers(output / "index.gpkg").tolist() == [["pairs", "Polygon"]]

    code, printed = run(manifest, output, tiny_checkpoint, "--workers", "1", "--raster")
    assert printed.splitlines() == [f"1 pairs: 0 predicted, 1 already done, 0 failed -> {output / 'index.gpkg'}"]
    code, printed = run(manifest, output, tiny_checkpoint, "--workers", "1", "--raster", "--report")
    assert printed.splitlines()[0].startswith("1 pairs: 0 predicted, 0 already done, 1 failed")  # redone: north.gpkg exists


def test_each_pair_writes_the_predict_outputs_of_the_kinds_asked(tmp_path: Path) -> None:
    outputs = ArchiveOutputs(tmp_path, frozenset({"vectors", "quicklook", "report"}), ".fgb", min_area_m2=5.0)
    assert outputs.for_pair("north") == PredictOutputs(
        vectors=tmp_path / "north.fgb", quicklook=tmp_path / "north.png", report=tmp_path / "north.json", min_area_m2=5.0)
    for kinds in ({"vectors", "landcover"}, {"report"}):
        with pytest.raises(ValueError, match="kinds must be vectors and any of vectors, raster, quicklook, report, not"):
            ArchiveOutputs(tmp_path, frozenset(kinds))


def test_without_the_cluster_extra_it_is_one_line_naming_it(tmp_path: Path, tiny_checkpoint: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "distributed", None)
    manifest, output = archive(tmp_path / "archive"), tmp_path / "out"
    assert run(manifest, output, tiny_checkpoint) == (
        2, 'geocd: error: a Dask cluster needs distributed, which is not installed (pip install "geocd[cluster]")\n')
    assert not output.exists()


def test_a_missing_file_fails_its_pair_alone(tmp_path: Path, tiny_checkpoint: Path, scheduler: str) -> None:
    folder = tmp_path / "archive"
    (folder / "north").mkdir(parents=True)
    planted_pair(folder / "north")
    manifest = folder / "manifest.csv"
    manifest.write_text("name,before,after\nnorth,north/before.tif,north/after.tif\ngone,north/before.tif,gone.tif\n")
    code, printed = run(manifest, tmp_path / "out", tiny_checkpoint, "--scheduler", scheduler)
    assert code == 2 and printed.splitlines()[-1] == f"geocd: error: {folder / 'gone.tif'}: file does not exist"
    index = pyogrio.read_dataframe(tmp_path / "out" / "index.gpkg")
    assert list(index["status"]) == ["ok", "failed"] and (tmp_path / "out" / "north.gpkg").is_file()


def test_hostile_pair_names_stay_inside_the_output_folder_and_fail_alone(tmp_path: Path, tiny_checkpoint: Path,
                                                                         scheduler: str) -> None:
    folder, real, outside = tmp_path / "archive", tmp_path / "real_out", tmp_path / "outside"
    for made in (folder, real, outside, tmp_path / "abs"):
        made.mkdir()
    planted_pair(folder, 64, 64)
    victim = outside / "victim.gpkg"
    victim.write_text("keep")
    (real / "linked.gpkg").symlink_to(victim)
    output = tmp_path / "out"
    output.symlink_to(real, target_is_directory=True)
    long_input = "y" * 300 + ".tif"
    rows = [(name, "before.tif") for name in hostile_names(tmp_path)]
    rows += [("linked", "before.tif"), ("missing", "gone.tif"), ("long_input", long_input)]
    manifest = folder / "manifest.csv"
    with open(manifest, "w", newline="") as f:
        csv.writer(f).writerows([("name", "before", "after"), *((name, before, "after.tif") for name, before in rows)])
    existing = files_under(tmp_path)

    code, printed = run(manifest, output, tiny_checkpoint, "--scheduler", scheduler, "--overwrite")
    assert code == 2
    assert printed.splitlines() == [
        f"10 pairs: 7 predicted, 0 already done, 3 failed -> {output / 'index.gpkg'}",
        f"geocd: error: {output / 'linked.gpkg'}: leads outside the output folder {real} (a symbolic link?); "
        "remove it or choose another folder",
        f"geocd: error: {folder / 'gone.tif'}: file does not exist",
        f"geocd: error: {folder / long_input}: pair 'long_input' failed "
        f"(OSError: [Errno 36] File name too long: '{folder / long_input}')",
    ]
    written = files_under(tmp_path) - existing
    assert written and all(path.parent == real for path in written)
    assert victim.read_text() == "keep" and (real / "linked.gpkg").is_symlink()
    index = pyogrio.read_dataframe(output / "index.gpkg")
    names = [name for name, _ in rows]
    assert list(index["name"]) == names
    assert list(index["status"]) == ["ok"] * 7 + ["failed"] * 3
    stems = [file_stem(name, hashed=name in ("Case", "case")) for name in names]
    assert list(index["file_stem"]) == stems
    assert list(index["vectors"][:7]) == [str(output / f"{stem}.gpkg") for stem in stems[:7]]
    assert sorted(p.name for p in written) == sorted(["index.gpkg", *(f"{stem}.gpkg" for stem in stems[:7])])
    assert stems[:5] == ["_escape-1ba7343c", f"{file_stem(names[1])}", "a_b-c14cddc0", "x" * 111 + "-0d4e2ca9", "CON_-a3dbc4b6"]
    assert "Traceback" not in printed

    code, printed = run(manifest, output, tiny_checkpoint, "--scheduler", scheduler, verbose=True)
    assert code == 2 and printed.splitlines()[0].startswith("10 pairs: 0 predicted, 7 already done, 3 failed")
    assert "Traceback (most recent call last):" in printed and printed.splitlines()[-1].startswith("OSError: [Errno 36]")
