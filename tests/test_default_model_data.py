"""The default model's training data script: Sentinel-2 land cover from the near-infrared band, the pinned split."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import from_origin

from geocd.data.archive import read_landcover_archive
from geocd.data.labels import decode_value

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
from default_model_data import pin_split, spectral_landcover, write_s2_landcover  # noqa: E402

# Blue, green, red, NIR (top-of-atmosphere reflectance x 10000) of: a lake, a dense city block (NDWI 0.125, NDVI -0.06),
# a meadow (NDVI 0.79), a sparse field (NDVI 0.2), a pixel without signal.
PIXELS = np.array([[900, 800, 400, 300], [1000, 900, 800, 700], [500, 700, 300, 2500], [800, 900, 1000, 1500], [0, 0, 0, 0]])


def test_spectral_landcover_tells_water_vegetation_and_bare_land_apart() -> None:
    labels = spectral_landcover(PIXELS.T.reshape(4, 1, 5))
    assert [decode_value(v) for v in labels.ravel()] == [(1,), (2, 5), (3, 4), (), ()]


def test_each_date_is_a_land_cover_image_that_follows_its_city_into_validation(tmp_path: Path) -> None:
    for city in ("pisa", "nantes"):
        (tmp_path / "s2" / city).mkdir(parents=True)
        profile = {"driver": "GTiff", "width": 5, "height": 1, "count": 4, "dtype": "uint16", "crs": "EPSG:4326",
                   "transform": from_origin(10, 45, 1e-4, 1e-4)}
        for date in ("before", "after"):
            with rasterio.open(tmp_path / "s2" / city / f"{date}.tif", "w", **profile) as dst:
                dst.write(PIXELS.T.reshape(4, 1, 5).astype("uint16"))
                dst.descriptions = ("B02", "B03", "B04", "B08")
        with rasterio.open(tmp_path / "s2" / city / "change.tif", "w", **{**profile, "count": 1, "dtype": "uint8"}) as dst:
            dst.write(np.zeros((1, 1, 5), "uint8"))
    manifest = write_s2_landcover(tmp_path / "s2", tmp_path / "landcover")
    pin_split(manifest.parent, {"s2_pisa"})
    records = read_landcover_archive(manifest)
    assert {(r.name, r.split) for r in records} == {("s2_nantes_before", "train"), ("s2_nantes_after", "train"),
                                                    ("s2_pisa_before", "val"), ("s2_pisa_after", "val")}
    with rasterio.open(records[0].image) as image, rasterio.open(records[0].landcover) as landcover:
        assert image.descriptions == ("B04", "B03", "B02") and image.read(1).tolist() == [[400, 800, 300, 1000, 0]]
        assert landcover.transform == image.transform and landcover.crs == image.crs
        assert landcover.read(1).tolist() == [spectral_landcover(PIXELS.T.reshape(4, 1, 5)).ravel().tolist()]
