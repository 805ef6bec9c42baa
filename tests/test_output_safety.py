"""Outputs are never lost or half-written: full disks, write faults, clashing names, signals, stale temporaries."""

from __future__ import annotations

import getpass
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import geocd.changemap as changemap_module
from cli.main import cli
from conftest import planted_pair, smooth_scene, write_raster
from geocd.atomic import atomic_output
from geocd.errors import OutputError


def predict(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["predict", *args, "--num-workers", "0", "--quiet"])
    return result.exit_code, result.output


@pytest.fixture
def small_disk(tmp_path: Path):
    """A 256 KiB tmpfs (skipped where mounting is not permitted)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here")
    yield mount
    subprocess.run(["umount", str(mount)], check=True)


def fill(folder: Path) -> None:
    """Write a filler file until the file system is full."""
    with open(folder / "filler", "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 4096)
        except OSError:
            pass


def test_full_disk_keeps_the_old_raster(tmp_path: Path, small_disk: Path, tiny_checkpoint: Path) -> None:
    before, after, _ = planted_pair(tmp_path)
    target = small_disk / "change.tif"
    target.write_bytes(b"previous good raster")
    fill(small_disk)
    code, output = predict(str(before), str(after), "--raster", str(target), "--model", str(tiny_checkpoint), "--overwrite")
    assert code == 2
    assert output == f"geocd: error: {target}: could not be written (No space left on device); nothing was replaced\n"
    assert target.read_bytes() == b"previous good raster"
    assert sorted(p.name for p in small_disk.iterdir()) == ["change.tif", "filler"]


@pytest.mark.parametrize("verbose", [False, True])
def test_a_full_disk_is_one_line_on_the_terminal_and_gdal_speaks_only_when_verbose(
        tmp_path: Path, small_disk: Path, tiny_checkpoint: Path, verbose: bool) -> None:
    """GDAL's and libtiff's own lines (``_tiffSeekProc: No space left on device.``) stay in the log."""
    before, after, _ = planted_pair(tmp_path)
    target = small_disk / "change.tif"
    fill(small_disk)
    geocd = Path(sys.executable).parent / "geocd"
    run = subprocess.run([str(geocd), *(["--verbose"] if verbose else []), "predict", str(before), str(after),
                          "--raster", str(target), "--model", str(tiny_checkpoint), "--num-workers", "0", "--quiet"],
                         capture_output=True, text=True)
    error = f"geocd: error: {target}: could not be written (No space left on device); nothing was replaced\n"
    assert run.returncode == 2
    if verbose:
        assert re.search(r"^geocd\.libtiff: ERROR: _tiff\w+Proc: No space left on device$", run.stderr, re.M)
        assert run.stderr.endswith(error)
    else:
        assert run.stderr == error


def test_libtiff_messages_go_to_the_log(capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    from geocd.native_messages import LIBTIFF_LOGGER, _loaded_libtiff, log_native_messages

    log_native_messages()
    libtiff = _loaded_libtiff()
    if libtiff is None:
        pytest.skip("no libtiff found in this process")
    records: list[logging.LogRecord] = []
    listener = logging.Handler()
    listener.emit = records.append  # type: ignore[method-assign]
    # a handler of our own on the logger itself: pytest's capture of it differs between versions and
    # with what earlier commands in this process did to its propagation
    monkeypatch.setattr(LIBTIFF_LOGGER, "handlers", [listener])
    monkeypatch.setattr(LIBTIFF_LOGGER, "propagate", False)
    monkeypatch.setattr(LIBTIFF_LOGGER, "level", LIBTIFF_LOGGER.level)  # restored after the test
    LIBTIFF_LOGGER.setLevel(logging.WARNING)
    libtiff.TIFFError(b"_tiffWriteProc", b"%s (%d)", b"No space left on device", 28)
    libtiff.TIFFWarning(b"TIFFReadDirectory", b"Unknown field with tag %d", 33550)
    assert [(r.levelname, r.getMessage()) for r in records] == [
        ("ERROR", "_tiffWriteProc: No space left on device (28)"), ("WARNING", "TIFFReadDirectory: Unknown field with tag 33550")]
    assert capfd.readouterr().err == ""


def test_the_libtiff_given_the_handlers_is_gdals_when_pillow_brought_its_own() -> None:
    """Pillow's and pyogrio's wheels load libtiffs of their own (any scikit-image, matplotlib or vector
    import may bring them); the handlers must go to the one rasterio's GDAL writes GeoTIFFs with."""
    import PIL.Image  # noqa: F401 - loads Pillow's libtiff
    import pyogrio  # noqa: F401 - loads pyogrio's GDAL and libtiff
    import rasterio

    from geocd.native_messages import _loaded_libtiff

    maps = Path("/proc/self/maps")
    paths = {line.split()[-1] for line in maps.read_text().splitlines()} if maps.exists() else set()
    rasterio_libs = Path(rasterio.__file__).parent.with_name("rasterio.libs")
    if not any(Path(p).parent == rasterio_libs for p in paths) or sum("/libtiff" in p for p in paths) < 2:
        pytest.skip("needs rasterio's wheel and two libtiffs in this process")
    assert Path(_loaded_libtiff()._name).parent == rasterio_libs


def pair_and_previous_output(tmp_path: Path, name: str) -> tuple[Path, Path, Path]:
    """A planted pair, and the path of a previous output ``name`` alone in its own folder."""
    before, after, _ = planted_pair(tmp_path)
    (tmp_path / "out").mkdir()
    target = tmp_path / "out" / name
    target.write_bytes(b"previous")
    return before, after, target


def test_a_raster_that_reads_back_incomplete_replaces_nothing(tmp_path: Path, tiny_checkpoint: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """GDAL only logs a write error at closing: the closed file is read back before the rename."""
    check = changemap_module._check_written

    def truncate_then_check(path: Path) -> None:
        data = Path(path).read_bytes()
        Path(path).write_bytes(data[: len(data) // 2])
        check(path)

    monkeypatch.setattr(changemap_module, "_check_written", truncate_then_check)
    before, after, target = pair_and_previous_output(tmp_path, "c.tif")
    code, output = predict(str(before), str(after), "--raster", str(target), "--model", str(tiny_checkpoint), "--overwrite")
    assert code == 2 and len(output.splitlines()) == 1
    assert output.startswith(f"geocd: error: {target}: could not be written (")
    assert output.endswith("); nothing was replaced\n")
    assert [p.name for p in target.parent.iterdir()] == ["c.tif"] and target.read_bytes() == b"previous"


def test_a_failed_geopackage_write_replaces_nothing(tmp_path: Path, tiny_checkpoint: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import pyogrio
    from pyogrio.errors import DataSourceError

    def fail(*args: object, **kwargs: object) -> None:
        raise DataSourceError("Failed to commit transaction")

    monkeypatch.setattr(pyogrio, "write_dataframe", fail)
    before, after, target = pair_and_previous_output(tmp_path, "c.gpkg")
    code, output = predict(str(before), str(after), "-o", str(target), "--model", str(tiny_checkpoint), "--overwrite")
    assert code == 2
    assert output == f"geocd: error: {target}: could not be written (Failed to commit transaction); nothing was replaced\n"
    assert [p.name for p in target.parent.iterdir()] == ["c.gpkg"] and target.read_bytes() == b"previous"


@pytest.mark.parametrize("case", ["raster is the input", "raster links to the input", "two outputs",
                                  "polygons as a GeoTIFF", "png raster",
                                  "png land cover"])
def test_clashing_or_misnamed_outputs_are_refused_before_loading_models(tmp_path: Path, case: str) -> None:
    before, after, _ = planted_pair(tmp_path)
    link = tmp_path / "link.tif"
    link.symlink_to(before)
    args, named, problem = {
        "raster is the input": (["--raster", str(before)], before, f"is also the input {before}; choose another file name"),
        "raster links to the input": (["--raster", str(link)], link, f"is also the input {before}; choose another file name"),
        "two outputs": (["--raster", str(tmp_path / "x.tif"), "--landcover", str(tmp_path / "x.tif")], tmp_path / "x.tif",
                        "is also another output; choose another file name"),
        "polygons as a GeoTIFF": (["-o", str(tmp_path / "x.tif"), "--raster", str(tmp_path / "y.tif")], tmp_path / "x.tif",
                                  "unknown vector format '.tif' (use .gpkg, .fgb, .geojson, .parquet or .shp)"),
        "png raster": (["--raster", str(tmp_path / "x.png")], tmp_path / "x.png",
                       "is written as a GeoTIFF, so its name must end in .tif or .tiff"),
        "png land cover": (["--landcover", str(tmp_path / "x.PNG")], tmp_path / "x.PNG",
                           "is written as a GeoTIFF, so its name must end in .tif or .tiff"),
    }[case]
    listing = sorted(tmp_path.iterdir())
    original = before.read_bytes()
    code, output = predict(str(before), str(after), *args, "--overwrite", "--model", str(tmp_path / "no-model.safetensors"))
    assert code == 2 and output == f"geocd: error: {named}: {problem}\n"
    assert sorted(tmp_path.iterdir()) == listing and before.read_bytes() == original


def test_a_target_that_appears_during_the_write_is_kept(tmp_path: Path) -> None:
    target = tmp_path / "out.tif"
    with pytest.raises(OutputError, match="appeared while geocd was writing it and was kept"):
        with atomic_output(target) as tmp:
            tmp.write_text("ours")
            target.write_text("theirs")
    assert [p.name for p in tmp_path.iterdir()] == ["out.tif"] and target.read_text() == "theirs"
    with atomic_output(target, overwrite=True) as tmp:
        tmp.write_text("ours")
    assert target.read_text() == "ours"


def test_stale_temporaries_of_dead_geocd_runs_are_removed(tmp_path: Path) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    host = socket.gethostname()
    stale = tmp_path / f".out.tif.geocd-{host}-{int(dead.stdout)}-abc_12.part.tif"
    live = tmp_path / f".out.tif.geocd-{host}-{os.getpid()}-abc_12.part.tif"
    foreign = [tmp_path / ".out.tif.other.part.tif", tmp_path / f".out2.tif.geocd-{host}-{int(dead.stdout)}-abc_12.part.tif"]
    for path in (stale, Path(f"{stale}-journal"), live, *foreign):
        path.write_text("x")
    with atomic_output(tmp_path / "out.tif") as tmp:
        assert tmp.name.startswith(f".out.tif.geocd-{host}-{os.getpid()}-") and tmp.name.endswith(".part.tif")
        tmp.write_text("new")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in (tmp_path / "out.tif", live, *foreign))


@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signals_remove_temporaries_and_exit_128_plus_n(tmp_path: Path, tiny_checkpoint: Path, signum: int, code: int) -> None:
    scene = smooth_scene(768, 768).astype(np.uint8)
    before = write_raster(tmp_path / "before.tif", scene)
    after = write_raster(tmp_path / "after.tif", scene[::-1].copy())
    out, tmpdir = tmp_path / "out", tmp_path / "tmpdir"
    out.mkdir(), tmpdir.mkdir()
    (out / "c.tif").write_bytes(b"previous")
    geocd = Path(sys.executable).parent / "geocd"
    run = subprocess.Popen([str(geocd), "predict", str(before), str(after), "--raster", str(out / "c.tif"), "--overwrite",
                            "--model", str(tiny_checkpoint), "--num-workers", "2", "--quiet"],
                           env={**os.environ, "TMPDIR": str(tmpdir)}, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not list(out.glob("*.part.tif")) and run.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert run.poll() is None, run.stderr.read()
    time.sleep(0.3)
    run.send_signal(signum)
    stderr = run.communicate(timeout=60)[1]
    assert run.returncode == code, stderr
    assert stderr == f"geocd: stopped by {signal.Signals(signum).name}\n"
    assert [p.name for p in out.iterdir()] == ["c.tif"] and (out / "c.tif").read_bytes() == b"previous"
    # no pymp-* folders of the reading workers, no geocd temporaries; only what the libraries keep
    # there for every run of theirs (one file, one cache folder, reused, never accumulating)
    library_state = {".ses", f"torchinductor_{getpass.getuser()}"}  # onnxruntime's session id, torch's compile cache
    assert [p.name for p in tmpdir.iterdir() if p.name not in library_state] == []
