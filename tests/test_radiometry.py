"""Radiometry: the same scene gives the same change map however it is stored; invalid pixels of
one date (partial overlap, nodata collars, NaN blocks) create no change next to them."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from geocd.changemap import NODATA
from geocd.data.pair import PairDataset
from geocd.data.radiometry import DISPLAY8, Stretch, fit_stretches, fits_samples
from geocd.errors import CheckpointError, InputError
from geocd.changemap import raster_sink
from geocd.inference.predict import PredictOptions, predict_change_raster
from tests.conftest import ORIGIN, intensity_model, smooth_scene, write_raster


def small_change_pair() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A smooth 8-bit-range scene and the same with a bright 12x12 square (1.2 % of it) in 'after'."""
    before = smooth_scene(96, 128)
    after = before.copy()
    changed = np.zeros((96, 128), bool)
    changed[40:52, 70:82] = True
    after[:, changed] = 250
    return before.round(), after.round(), changed


def write_scaled(path: Path, dn: np.ndarray, scale: float, offset: float) -> Path:
    """``dn`` stored as uint16 ``(dn - offset) / scale`` with that GDAL scale/offset."""
    write_raster(path, ((dn - offset) / scale).round().astype(np.uint16))
    with rasterio.open(path, "r+") as dst:
        dst.scales = (scale,) * dn.shape[0]
        dst.offsets = (offset,) * dn.shape[0]
    return path


def predicted(tmp_path: Path, before: Path, after: Path, name: str, radiometry="auto", smoothing=False,
              num_workers: int = PredictOptions.num_workers) -> np.ndarray:
    """The change probability band of the intensity model's prediction."""
    out = tmp_path / f"{name}.tif"
    options = PredictOptions(tile_size=64, radiometry=radiometry, num_workers=num_workers)
    predict_change_raster(before, after, [intensity_model(smoothing=smoothing)], [raster_sink(out)], options)
    with rasterio.open(out) as src:
        return src.read(1)


def test_same_scene_stored_four_ways_gives_one_change_map(tmp_path: Path) -> None:
    before, after, changed = small_change_pair()
    stored = {
        "uint8": [write_raster(tmp_path / f"u8_{d}.tif", a.astype(np.uint8)) for d, a in (("b", before), ("a", after))],
        "12-bit": [write_raster(tmp_path / f"u16_{d}.tif", (a * 16 + 200).astype(np.uint16)) for d, a in (("b", before), ("a", after))],
        "float reflectance": [write_raster(tmp_path / f"f32_{d}.tif", (a / 255 * 0.4).astype(np.float32)) for d, a in (("b", before), ("a", after))],
        "scale/offset": [write_scaled(tmp_path / f"so_{d}.tif", a, 0.1, -100.0) for d, a in (("b", before), ("a", after))],
    }
    reference = predicted(tmp_path, *stored["uint8"], "ref", radiometry="stretch")
    assert (reference >= 127)[changed].all() and (reference >= 127).sum() == changed.sum()
    for name, (b, a) in stored.items():
        result = predicted(tmp_path, b, a, name.replace(" ", "_").replace("/", "_"))
        assert np.abs(result.astype(int) - reference).max() <= 1, name


def test_uint8_pair_is_fed_exactly_as_stored(tmp_path: Path) -> None:
    before, after, _ = small_change_pair()
    paths = [write_raster(tmp_path / f"{d}.tif", a.astype(np.uint8)) for d, a in (("b", before), ("a", after))]
    dataset = PairDataset(*paths, num_bands=3)
    assert dataset.stretches == (Stretch((1.0,) * 3, (0.0,) * 3),) * 2
    sample = dataset.read(rasterio.windows.Window(0, 0, 128, 96))
    np.testing.assert_array_equal(sample["image_before"], before)
    np.testing.assert_array_equal(sample["image_after"], after)


def test_dates_stored_differently_get_a_range_each(tmp_path: Path) -> None:
    """A uint8 'before' with a 12-bit uint16 'after' finds the planted change and nothing else."""
    before, after, changed = small_change_pair()
    b = write_raster(tmp_path / "b.tif", before.astype(np.uint8))
    a = write_raster(tmp_path / "a.tif", (after * 16 + 200).astype(np.uint16))
    dataset = PairDataset(b, a, num_bands=3)
    assert dataset.stretches[0] != dataset.stretches[1] and dataset.stretches[0].low is not None
    sample = dataset.read(rasterio.windows.Window(0, 0, 128, 96))
    difference = np.abs(sample["image_before"] - sample["image_after"]).max(0)
    assert difference[~changed].max() < 3 and difference[changed].min() > 30  # the two dates read alike
    found = predicted(tmp_path, b, a, "mixed") >= 127
    assert found[changed].all() and found.sum() == changed.sum()
    raw = predicted(tmp_path, b, a, "raw", radiometry="none") >= 127
    assert raw.mean() > 0.9  # as geocd read it before: 12-bit values against 8-bit ones differ everywhere


def test_fixed_range_and_recorded_tag(tmp_path: Path) -> None:
    before, after, changed = small_change_pair()
    paths = [write_raster(tmp_path / f"{d}.tif", (a * 10).astype(np.uint16)) for d, a in (("b", before), ("a", after))]
    out = tmp_path / "fixed.tif"
    predict_change_raster(*paths, [intensity_model()], [raster_sink(out)], PredictOptions(tile_size=64, radiometry=(0.0, 2550.0)))
    with rasterio.open(out) as src:
        found = src.read(1) >= 127
        tag = json.loads(src.tags()["GEOCD_RADIOMETRY"])
    assert found[changed].all() and found.sum() == changed.sum()
    assert tag == {"mode": [0.0, 2550.0], "before": {"scale": [1.0] * 3, "offset": [0.0] * 3, "low": 0.0, "high": 2550.0},
                   "after": {"scale": [1.0] * 3, "offset": [0.0] * 3, "low": 0.0, "high": 2550.0}}


def test_nan_nodata_is_invalid_and_silent(tmp_path: Path) -> None:
    before, after, changed = small_change_pair()
    dates = [(before / 255 * 0.4).astype(np.float32), (after / 255 * 0.4).astype(np.float32)]
    paths = [write_raster(tmp_path / f"{d}.tif", a, nodata=float("nan")) for d, a in zip("ba", dates)]
    reference = predicted(tmp_path, *paths, "reference", smoothing=True)
    dates[1][:, 10:20, 10:30] = np.nan
    paths[1] = write_raster(tmp_path / "a_nan.tif", dates[1], nodata=float("nan"))
    paths.append(write_raster(tmp_path / "a_unset.tif", dates[1]))  # NaN without a declared nodata value
    block = np.zeros(changed.shape, bool)
    block[10:20, 10:30] = True
    for after_path in paths[1:]:
        with warnings.catch_warnings():  # tiles read in this process, so their warnings would be raised here
            warnings.simplefilter("error")
            probability = predicted(tmp_path, paths[0], after_path, after_path.stem, smoothing=True, num_workers=0)
        assert (probability[block] == NODATA).all()
        assert np.abs(probability[~block].astype(int) - reference[~block]).max() <= 1
        assert ((probability >= 127) & ~block).sum() == (reference >= 127).sum()


@pytest.mark.parametrize("hole", ["partial overlap", "nodata collar"])
def test_no_change_along_the_edge_of_invalid_pixels(tmp_path: Path, hole: str) -> None:
    before, after, _ = small_change_pair()
    b = write_raster(tmp_path / "b.tif", before.astype(np.uint8))
    full = predicted(tmp_path, b, write_raster(tmp_path / "a.tif", after.astype(np.uint8)), "full", smoothing=True)
    if hole == "partial overlap":
        inner = from_origin(ORIGIN[0] + 20, ORIGIN[1] - 16, 1.0, 1.0)
        a = write_raster(tmp_path / "a_part.tif", after[:, 16:80, 20:100].astype(np.uint8), transform=inner)
    else:
        collar = after.astype(np.uint8)
        collar[:, :16], collar[:, 80:], collar[:, :, :20], collar[:, :, 100:] = 0, 0, 0, 0
        a = write_raster(tmp_path / "a_collar.tif", collar, nodata=0)
    part = predicted(tmp_path, b, a, "part", smoothing=True)[16:80, 20:100]
    assert (part != NODATA).all()
    np.testing.assert_array_equal(part >= 127, full[16:80, 20:100] >= 127)
    ring = np.ones(part.shape, bool)
    ring[2:-2, 2:-2] = False
    assert part[ring].max() < 32  # p < 0.13: tile padding at the corner; a missing date read as change gives 254


def test_radiometry_errors(tmp_path: Path) -> None:
    before, after, _ = small_change_pair()
    paths = [write_raster(tmp_path / f"{d}.tif", a.astype(np.uint8)) for d, a in (("b", before), ("a", after))]
    with pytest.raises(InputError, match=r"radiometry range \(5, 5\) must be finite with high > low"):
        PairDataset(*paths, num_bands=3, radiometry=(5.0, 5.0))
    with pytest.raises(InputError, match="radiometry 'linear' is not one of"):
        fit_stretches("linear", ["uint8"] * 2, [((1,) * 3, (0,) * 3)] * 2, [np.zeros((3, 1))] * 2)
    model = intensity_model()
    model.metadata = type(model.metadata)(**{**model.metadata.__dict__, "radiometry": "reflectance"})
    with pytest.raises(CheckpointError, match=f"expects input radiometry 'reflectance'; this geocd produces only '{DISPLAY8}'"):
        predict_change_raster(*paths, [model], [raster_sink(tmp_path / "x.tif")], PredictOptions(tile_size=64))


@pytest.mark.parametrize("mode, dtypes, scale, fits", [
    ("auto", ("uint8", "uint8"), 1.0, False),   # fed as stored
    ("auto", ("uint8", "uint16"), 1.0, True),
    ("auto", ("uint8", "uint8"), 0.5, True),    # a GDAL scale makes it physical values
    ("stretch", ("uint8", "uint8"), 1.0, True),
    ("none", ("uint16", "uint16"), 1.0, False),
    ((0.0, 3000.0), ("uint16", "uint16"), 1.0, False),
])
def test_stretches_fit_samples_only_where_they_use_them(mode, dtypes, scale: float, fits: bool) -> None:  # noqa: ANN001
    calibrations = [((1.0, scale, 1.0), (0.0, 0.0, 0.0))] * 2
    assert fits_samples(mode, dtypes, calibrations) is fits
    samples = [np.arange(30, dtype=np.float32).reshape(3, 10) * (i + 1) for i in range(2)]
    fitted = fit_stretches(mode, dtypes, calibrations, samples)
    assert (fitted != fit_stretches(mode, dtypes, calibrations, [s * 2 for s in samples])) is fits
