"""geocd's one decimated reader: whole-factor decimation, so a decimated read samples every n-th pixel."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.windows import Window

import geocd.data.pair
from conftest import write_raster
from geocd.data.pair import PairDataset
from geocd.data.rasters import decimated_shape, read_decimated, spread_windows


@pytest.mark.parametrize("height, width, max_side, shape", [
    (96, 128, 1024, (96, 128)),        # small enough: read as is
    (1180, 1070, 1024, (590, 535)),    # a factor of 2, not 1180/1024
    (2000, 3000, 1024, (666, 1000)),   # a factor of 3
    (1, 5000, 1024, (1, 1000)),        # never below one pixel
])
def test_decimated_shape_divides_by_a_whole_factor(height: int, width: int, max_side: int, shape: tuple[int, int]) -> None:
    assert decimated_shape(height, width, max_side) == shape


def test_read_decimated_samples_every_nth_pixel_with_its_mask(tmp_path: Path) -> None:
    data = np.arange(3 * 60 * 90, dtype=np.uint16).reshape(3, 60, 90)
    data[:, :6, :] = 0  # nodata rows
    path = write_raster(tmp_path / "r.tif", data, nodata=0)
    window = Window(0, 0, 90, 60)
    with rasterio.open(path) as src:
        values, valid = read_decimated(src, [3, 1], decimated_shape(60, 90, 30), window)
    assert values.dtype == np.float32 and values.shape == (2, 20, 30)
    np.testing.assert_array_equal(values, data[[2, 0], 1::3, 1::3])  # GDAL's nearest: the centre pixel of each 3 x 3
    assert not valid[:2].any() and valid[2:].all()


def test_spread_windows_are_centred_in_the_cells_of_the_region() -> None:
    windows = spread_windows(Window(10, 20, 1600, 1200), grid=4, side=64)
    assert len(windows) == 16 and {(w.width, w.height) for w in windows} == {(64, 64)}
    assert [w.col_off for w in windows[:4]] == [10 + 200 - 32, 10 + 600 - 32, 10 + 1000 - 32, 10 + 1400 - 32]
    assert [w.row_off for w in windows[::4]] == [20 + 150 - 32, 20 + 450 - 32, 20 + 750 - 32, 20 + 1050 - 32]


def _large_pair(tmp_path: Path, after: np.ndarray, dtype: str = "uint8", nodata: float | None = None) -> PairDataset:
    before = (np.arange(3 * 1024 * 1024) % 251).reshape(3, 1024, 1024).astype(dtype)
    paths = write_raster(tmp_path / "b.tif", before), write_raster(tmp_path / "a.tif", after.astype(dtype), nodata=nodata)
    return PairDataset(*paths, num_bands=3)


@pytest.fixture
def decimated_reads(monkeypatch: pytest.MonkeyPatch) -> list[Window]:
    """The windows of every decimated read of a pair's files (one per date)."""
    calls: list[Window] = []

    def counted(src, indexes, shape, window=None):  # noqa: ANN001, ANN202 - read_decimated's own signature
        calls.append(window)
        return read_decimated(src, indexes, shape, window)

    monkeypatch.setattr(geocd.data.pair, "read_decimated", counted)
    return calls


def test_a_large_uint8_pair_is_checked_on_a_sample_without_decoding_the_scene(tmp_path: Path, decimated_reads: list) -> None:
    after = (np.arange(3 * 1024 * 1024) % 241).reshape(3, 1024, 1024)
    dataset = _large_pair(tmp_path, after)
    assert dataset.has_valid_pixels() and not dataset.same_pixels and decimated_reads == []


def test_the_whole_overlap_decides_what_the_sample_cannot(tmp_path: Path, decimated_reads: list) -> None:
    before = (np.arange(3 * 1024 * 1024) % 251).reshape(3, 1024, 1024)
    assert _large_pair(tmp_path, before).same_pixels and len(decimated_reads) == 2  # the sample alike: the whole decides
    differs_between_windows = before.copy()
    differs_between_windows[:, 0:6, 0:6] += 1  # a corner no sample window reaches, but the decimated read does
    assert not _large_pair(tmp_path, differs_between_windows).same_pixels and len(decimated_reads) == 4
    valid_between_windows = np.zeros((3, 1024, 1024))
    valid_between_windows[:, 0:6, 0:6] = 7  # the only pixels valid in the 'after' date
    assert _large_pair(tmp_path, valid_between_windows, nodata=0).has_valid_pixels() and len(decimated_reads) == 6


def test_a_stretch_is_fitted_on_the_decimated_overlap(tmp_path: Path, decimated_reads: list) -> None:
    after = (np.arange(3 * 1024 * 1024) % 241).reshape(3, 1024, 1024)
    dataset = _large_pair(tmp_path, after * 100, dtype="uint16")
    assert len(decimated_reads) == 2 and dataset.stretches[0].low is not None
