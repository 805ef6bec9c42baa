"""geocd predict from the command line: real checkpoints, progress, one-line errors, no half outputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from click.testing import CliRunner
from rasterio.transform import from_origin

from cli.main import cli
from conftest import ORIGIN, planted_pair, smooth_scene, write_raster


def predict(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["predict", *args])
    return result.exit_code, result.output


def test_predict_writes_the_change_raster_with_a_real_checkpoint(tmp_path: Path, tiny_checkpoint: Path) -> None:
    before, after, _ = planted_pair(tmp_path)
    code, output = predict(str(before), str(after), "--raster", str(tmp_path / "c.tif"), "--model", str(tiny_checkpoint),
                           "--num-workers", "0", "--quiet")
    assert code == 0, output
    with rasterio.open(tmp_path / "c.tif") as src:
        assert src.count == 3 and src.tags()["GEOCD_MODELS"] == json.dumps([str(tiny_checkpoint)])
        assert (src.read(2) == 0).all()  # the tiny model's land cover is untrained


def test_predict_writes_styled_polygons_over_the_planted_change(tmp_path: Path) -> None:
    import pyogrio

    from conftest import intensity_model
    from geocd.inference.predict import PredictOptions, PredictOutputs, predict as run_predict

    before, after, changed = planted_pair(tmp_path)
    result = run_predict(before, after, models=[intensity_model()], outputs=PredictOutputs(vectors=tmp_path / "changes.gpkg"),
                         options=PredictOptions(tile_size=48))
    frame = pyogrio.read_dataframe(tmp_path / "changes.gpkg", layer="changes")
    assert result.polygons == len(frame) == 1
    assert frame.area.sum() == changed.sum()  # 1 m pixels
    assert frame.loc[0, "change_type"] == "low vegetation \u2192 building"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["after.tif", "before.tif", "changes.gpkg"]


def test_json_progress_lines_for_programs(tmp_path: Path, tiny_checkpoint: Path) -> None:
    before, after, _ = planted_pair(tmp_path)
    result = CliRunner().invoke(cli, ["predict", str(before), str(after), "--raster", str(tmp_path / "c.tif"), "--model",
                                      str(tiny_checkpoint), "--num-workers", "0", "--progress", "json"])
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.output.splitlines()]
    progress = [r for r in records if r["event"] == "progress"]
    assert progress and progress[-1]["percent"] == 100.0 and progress[-1]["done"] == progress[-1]["total"]


def test_workers_give_the_same_result(tmp_path: Path, tiny_checkpoint: Path) -> None:
    before, after, _ = planted_pair(tmp_path)
    for workers in ("0", "2"):
        code, output = predict(str(before), str(after), "--raster", str(tmp_path / f"c{workers}.tif"), "--model",
                               str(tiny_checkpoint), "--num-workers", workers, "--quiet")
        assert code == 0, output
    with rasterio.open(tmp_path / "c0.tif") as a, rasterio.open(tmp_path / "c2.tif") as b:
        assert np.array_equal(a.read(), b.read())


def bad_inputs(tmp: Path) -> dict[str, tuple[list[str], str, str]]:
    """name -> (BEFORE AFTER and options, the file the message names, the problem)."""
    before, after, _ = planted_pair(tmp)
    text = tmp / "notes.tif"
    text.write_text("not a raster")
    plain = tmp / "plain.tif"
    with rasterio.open(plain, "w", driver="GTiff", width=8, height=8, count=3, dtype="uint8") as dst:
        dst.write(np.ones((3, 8, 8), np.uint8))
    far = write_raster(tmp / "far.tif", smooth_scene(32, 32).astype(np.uint8), transform=from_origin(ORIGIN[0] + 1e5, ORIGIN[1], 1, 1))
    one_band = write_raster(tmp / "gray.tif", smooth_scene(96, 128)[:1].astype(np.uint8))
    empty = write_raster(tmp / "empty.tif", np.zeros((3, 96, 128), np.uint8), nodata=0)
    return {
        "missing": ([str(tmp / "nope.tif"), str(after)], str(tmp / "nope.tif"), "file does not exist"),
        "directory": ([str(tmp), str(after)], str(tmp), "cannot be read"),
        "not a raster": ([str(before), str(text)], str(text), "is not a raster GDAL can read"),
        "no georeferencing": ([str(plain), str(after)], str(plain), "has no georeferencing"),
        "no overlap": ([str(before), str(far)], str(far), f"does not overlap {before}"),
        "too few bands": ([str(one_band), str(after)], str(one_band), "has 1 image band(s), the model needs 3"),
        "no valid pixel": ([str(before), str(empty)], str(empty), "no pixel is valid in both"),
    }


@pytest.mark.parametrize("case", ["missing", "directory", "not a raster", "no georeferencing", "no overlap",
                                  "too few bands", "no valid pixel"])
def test_bad_input_gives_one_line_exit_2_and_no_output(tmp_path: Path, tiny_checkpoint: Path, case: str) -> None:
    args, named, problem = bad_inputs(tmp_path)[case]
    out = tmp_path / "out"
    out.mkdir()
    code, output = predict(*args, "--raster", str(out / "c.tif"), "--model", str(tiny_checkpoint), "--quiet")
    assert code == 2
    assert len(output.strip().splitlines()) == 1
    assert output.startswith(f"geocd: error: {named}: ") and problem in output
    assert list(out.iterdir()) == []


def test_unwritable_output_folder(tmp_path: Path, tiny_checkpoint: Path) -> None:
    before, after, _ = planted_pair(tmp_path)
    target = tmp_path / "missing" / "c.tif"
    code, output = predict(str(before), str(after), "--raster", str(target), "--model", str(tiny_checkpoint))
    assert code == 2 and output.strip() == f"geocd: error: {target}: folder {target.parent} does not exist"


def test_not_a_checkpoint(tmp_path: Path) -> None:
    before, after, _ = planted_pair(tmp_path)
    fake = tmp_path / "model.safetensors"
    fake.write_bytes(b"nonsense")
    code, output = predict(str(before), str(after), "--raster", str(tmp_path / "c.tif"), "--model", str(fake))
    assert code == 2 and output.startswith(f"geocd: error: {fake}: not a geocd checkpoint")
    assert not (tmp_path / "c.tif").exists()


def test_nothing_to_write_is_a_usage_error(tmp_path: Path) -> None:
    before, after, _ = planted_pair(tmp_path)
    code, output = predict(str(before), str(after))
    assert code == 2 and "--raster" in output


def test_library_errors_name_parameters_and_the_command_line_names_flags(tmp_path: Path, tiny_checkpoint: Path) -> None:
    from conftest import intensity_model
    from geocd.errors import InputError
    from geocd.inference.predict import PredictOptions, PredictOutputs, predict as run_predict

    before, after, _ = planted_pair(tmp_path)
    with pytest.raises(InputError, match=r"^overlap 64 must be at least 0 and less than the tile size 64$"):
        run_predict(before, after, models=[intensity_model()], outputs=PredictOutputs(raster=tmp_path / "c.tif"),
                    options=PredictOptions(tile_size=64, overlap=64))
    code, output = predict(str(before), str(after), "--raster", str(tmp_path / "c.tif"), "--model", str(tiny_checkpoint),
                           "--tile-size", "64", "--overlap", "64", "-q")
    assert code == 2 and output.strip() == "geocd: error: --overlap 64 must be at least 0 and less than the tile size 64"
    code, output = predict(str(before), str(after), "--raster", str(tmp_path / "c.tif"), "--model", str(tiny_checkpoint),
                           "--bands", "1,2", "-q")
    assert code == 2 and output.strip() == f"geocd: error: {before}: --bands lists 2 band(s), the model needs 3"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["after.tif", "before.tif"]


@pytest.mark.parametrize("flags, status", [((), True), (("--quiet",), False), (("--progress", "json"), False),
                                           (("--progress", "none"), False)])
def test_a_terminal_sees_what_start_up_is_loading(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   flags: tuple[str, ...], status: bool) -> None:
    import cli.main as main

    monkeypatch.setattr(main, "stderr_is_terminal", lambda: True)
    before, after, _ = planted_pair(tmp_path)
    model = tmp_path / "none.safetensors"
    result = CliRunner().invoke(cli, ["predict", str(before), str(after), "--raster", str(tmp_path / "c.tif"),
                                      "--model", str(model), *flags])
    error = f"geocd: error: {model}: model file does not exist"
    assert result.exit_code == 2
    assert result.output.splitlines() == ([f"loading model {model} …"] if status else []) + [error]


@pytest.mark.parametrize("case", ["missing", "directory", "not a raster", "no georeferencing"])
def test_bad_inputs_are_refused_before_pytorch_is_imported(tmp_path: Path, case: str) -> None:
    import subprocess
    import sys

    args, named, problem = bad_inputs(tmp_path)[case]
    code = ("import sys\nfrom click.testing import CliRunner\nfrom geocd.cli.main import cli\n"
            "result = CliRunner().invoke(cli, ['predict', *sys.argv[1:]])\n"
            "print(result.exit_code, result.output, end='')\nassert 'torch' not in sys.modules, 'torch imported'\n")
    done = subprocess.run([sys.executable, "-c", code, *args, "-o", str(tmp_path / "x.gpkg")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"2 geocd: error: {named}: ") and problem in done.stdout
    assert not (tmp_path / "x.gpkg").exists()


def test_json_progress_ends_with_a_done_event(tmp_path: Path, tiny_checkpoint: Path) -> None:
    before, after, _ = planted_pair(tmp_path)
    target = tmp_path / "c.gpkg"
    result = CliRunner().invoke(cli, ["predict", str(before), str(after), "-o", str(target), "--model",
                                      str(tiny_checkpoint), "--num-workers", "0", "--progress", "json"])
    assert result.exit_code == 0, result.output
    last = json.loads(result.output.splitlines()[-1])
    assert last["event"] == "done" and last["outputs"] == [str(target)] and last["polygons"] >= 0
    assert last["text"].endswith(f" -> {target}") and last["megapixels"] == round(96 * 128 / 1e6, 4)


@pytest.mark.parametrize("same", ["file", "pixels"])
def test_the_same_date_twice_is_warned_of(tmp_path: Path, tiny_checkpoint: Path, same: str) -> None:
    import shutil

    before, _, _ = planted_pair(tmp_path)
    after = before if same == "file" else shutil.copy(before, tmp_path / "copy.tif")
    code, output = predict(str(before), str(after), "--raster", str(tmp_path / "c.tif"), "--model", str(tiny_checkpoint),
                           "--num-workers", "0", "--quiet")
    problem = f"is the same file as {before}" if same == "file" else f"has the same pixels as {before} where they overlap"
    assert code == 0 and output == f"geocd: warning: {after}: {problem}: nothing can have changed\n"


@pytest.mark.parametrize("crs, pixel, warned", [
    ("EPSG:32633", 1.0, None),
    ("EPSG:32633", 0.2, "has 0.2 m pixels"),
    ("EPSG:32633", 300.0, "has 300 m pixels"),
    ("EPSG:4326", 0.00009, "has 8.14 m pixels"),  # 10 m x 6.6 m at 48.7 degrees north (Sentinel-2 in EPSG:4326)
])
def test_a_ground_resolution_far_from_the_models_is_warned_of(tmp_path: Path, crs: str, pixel: float,
                                                              warned: str | None) -> None:
    import warnings
    from dataclasses import replace

    from conftest import intensity_model
    from geocd.errors import GeocdWarning
    from geocd.inference.predict import PredictOptions, PredictOutputs, predict as run_predict

    model = intensity_model()
    model.metadata = replace(model.metadata, resolution_m=1.0)  # made for 0.25-4 m
    origin = (14.0, 48.7) if crs == "EPSG:4326" else ORIGIN
    scene = smooth_scene(96, 128).astype(np.uint8)
    before, after = (write_raster(tmp_path / f"{n}.tif", s, crs=rasterio.CRS.from_string(crs),
                                  transform=from_origin(*origin, pixel, pixel)) for n, s in (("b", scene), ("a", scene[:, ::-1].copy())))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run_predict(before, after, models=[model], outputs=PredictOutputs(raster=tmp_path / "c.tif"),
                    options=PredictOptions(tile_size=48))
    lines = [str(w.message) for w in caught if issubclass(w.category, GeocdWarning)]
    expected = [] if warned is None else [f"{before}: {warned}, far from the 0.25-4 m the model is made for: expect poor results"]
    assert lines == expected


def test_predict_imports_no_training_library_and_no_unused_runtime(tmp_path: Path, tiny_checkpoint: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """``geocd predict`` tiles the pair itself, and once the graph is cached builds no network: TorchGeo,
    timm and the torchvision models they pull in (3 s of a run's start), ONNX and an unused runtime are
    never imported, nor PyTorch (1.1-1.6 s and half the peak memory) where no CUDA device can exist."""
    import subprocess
    import sys

    from geocd.inference.predict import _cuda_possible

    pytest.importorskip("openvino")
    monkeypatch.setenv("GEOCD_CACHE_DIR", str(tmp_path / "cache"))
    before, after, _ = planted_pair(tmp_path)
    code = ("import sys; from geocd.cli.main import cli\n"
            f"cli.main(['predict', {str(before)!r}, {str(after)!r}, '-o', {str(tmp_path / 'c.gpkg')!r}, "
            f"'--model', {str(tiny_checkpoint)!r}, '--backend', 'openvino', '-q', '--overwrite', "
            f"'--quicklook', {str(tmp_path / 'q.png')!r}], standalone_mode=False)\n"
            "print(sorted({m.split('.')[0] for m in sys.modules} & "
            "{'torch', 'torchgeo', 'timm', 'torchvision', 'onnx', 'onnxruntime', 'openvino'}))")
    runs = [subprocess.run([sys.executable, "-c", code], capture_output=True, text=True) for _ in range(2)]
    assert [run.returncode for run in runs] == [0, 0], runs[0].stderr + runs[1].stderr
    assert "torchgeo" not in runs[0].stdout  # the first run builds the network (timm) to export its graph
    assert runs[1].stdout.strip() == ("['openvino', 'torch']" if _cuda_possible() else "['openvino']")
    assert (tmp_path / "c.gpkg").is_file() and (tmp_path / "q.png").is_file()


def test_predict_exits_without_teardown_and_loses_nothing(tmp_path: Path, tiny_checkpoint: Path) -> None:
    """The console script skips Python's teardown after predict: its last line still comes out, every output is
    whole and nothing else is left in the folder; a failed run still exits 2 the usual way."""
    import subprocess
    import sys

    import pyogrio

    before, after, _ = planted_pair(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    geocd = Path(sys.executable).parent / "geocd"
    command = [str(geocd), "predict", str(before), str(after), "-o", str(out / "c.gpkg"), "--raster", str(out / "c.tif"),
               "--report", str(out / "r.json"), "--model", str(tiny_checkpoint), "--backend", "torch", "--progress", "json"]
    run = subprocess.run(command, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    done = json.loads(run.stderr.splitlines()[-1])
    assert done["event"] == "done" and done["outputs"] == [str(out / n) for n in ("c.gpkg", "c.tif", "r.json")]
    assert sorted(p.name for p in out.iterdir()) == ["c.gpkg", "c.tif", "r.json"]
    assert len(pyogrio.read_dataframe(out / "c.gpkg", layer="changes")) == done["polygons"]
    assert json.loads((out / "r.json").read_text())["outputs"]["vectors"] == str(out / "c.gpkg")
    with rasterio.open(out / "c.tif") as src:
        assert src.read().shape == (3, 96, 128)
    failed = subprocess.run(command, capture_output=True, text=True)  # the outputs exist now
    assert failed.returncode == 2 and failed.stderr.startswith("geocd: error:")
