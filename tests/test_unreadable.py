"""Rasters whose header opens but whose data blocks cannot be read: one line naming the file, exit 2."""

from __future__ import annotations

import pickle
import re
from pathlib import Path

import numpy as np
import pytest
import rasterio
from click.testing import CliRunner
from rasterio.transform import from_origin
from rasterio.windows import Window

from cli.main import cli
from conftest import ORIGIN, UTM, smooth_scene
from geocd.data.labelled import open_labels, read_label
from geocd.data.rasters import grid_of
from geocd.errors import CheckpointError, InputError, OutputError


def tiled_scene(path: Path, transform=None) -> Path:
    """A 3-band uint8 128x128 GeoTIFF in 32-pixel deflate tiles."""
    rng = np.random.default_rng(1)
    data = (smooth_scene(128, 128) + rng.integers(0, 40, (3, 128, 128))).astype(np.uint8)
    with rasterio.open(
        path, "w", driver="GTiff", width=128, height=128, count=3, dtype="uint8", crs=UTM,
        transform=transform or from_origin(*ORIGIN, 1.0, 1.0), tiled=True, blockxsize=32, blockysize=32, compress="deflate",
    ) as dst:
        dst.write(data)
    return path


def damage(path: Path, how: str) -> Path:
    """Cut the file at 60 % of its length, or zero 2 kB of tile data in its second half."""
    data = bytearray(path.read_bytes())
    cut = len(data) * 6 // 10
    if how == "truncated":
        del data[cut:]
    else:
        data[cut : cut + 2048] = bytes(2048)
    path.write_bytes(bytes(data))
    with rasterio.open(path) as src:  # the header still opens: only block reads fail
        assert src.count == 3
    return path


@pytest.mark.parametrize("workers", ["2", "0"])
@pytest.mark.parametrize("how", ["truncated", "corrupt"])
@pytest.mark.parametrize("grid", ["same", "shifted"])
def test_unreadable_blocks_give_one_line_naming_the_file(
    tmp_path: Path, tiny_checkpoint: Path, workers: str, how: str, grid: str
) -> None:
    before = tiled_scene(tmp_path / "before.tif")
    shift = from_origin(ORIGIN[0] + 0.5, ORIGIN[1] - 0.5, 1.0, 1.0) if grid == "shifted" else None
    after = damage(tiled_scene(tmp_path / "after.tif", shift), how)
    out = tmp_path / "out"
    out.mkdir()
    result = CliRunner().invoke(cli, ["predict", str(before), str(after), "-o", str(out / "c.gpkg"), "--raster",
                                      str(out / "c.tif"), "--model", str(tiny_checkpoint), "--num-workers", workers, "-q"])
    assert result.exit_code == 2, result.output
    pattern = rf"geocd: error: {re.escape(str(after))}: cannot be read: [^\n]+ \(truncated or corrupt file\?\)\n"
    assert re.fullmatch(pattern, result.stderr), result.stderr
    assert result.stdout == ""
    assert list(out.iterdir()) == []


def test_errors_survive_pickling_between_processes() -> None:
    for kind in (InputError, OutputError, CheckpointError):
        error = pickle.loads(pickle.dumps(kind("a.tif", "cannot be read")))
        assert type(error) is kind and (error.path, error.problem, str(error)) == ("a.tif", "cannot be read", "a.tif: cannot be read")
    assert str(pickle.loads(pickle.dumps(InputError(None, "no path")))) == "no path"


def test_label_raster_with_unreadable_blocks_is_named(tmp_path: Path) -> None:
    labels = damage(tiled_scene(tmp_path / "labels.tif"), "truncated")
    with rasterio.open(labels) as src:
        grid = grid_of(src)
    (label_src,) = open_labels([labels], grid)
    with label_src, pytest.raises(InputError, match=rf"^{re.escape(str(labels))}: cannot be read: .+ \(truncated or corrupt file\?\)$"):
        read_label(label_src, Window(0, 0, 128, 128))
