"""geocd's one decimated reader: whole-factor decimation, so a decimated read samples every n-th pixel."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.windows import Window

from conftest import write_raster
from geocd.data.rasters import decimated_shape, read_decimated


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
