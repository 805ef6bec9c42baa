"""No change invented along the edge of one date's footprint: warped edges, cropped 'after' images.

The real-data checks run the default model through benchmarks/edges.py's helpers and skip
where /work/shared/data is absent.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from rasterio.crs import CRS
from rasterio.transform import from_origin
from torch import nn

from conftest import ORIGIN, IntensityChangeNet, intensity_model, smooth_scene, write_raster
from geocd.changemap import NODATA, raster_sink
from geocd.checkpoint import LoadedModel, load_models
from geocd.inference.predict import predict_change_raster
from geocd.models import ChangeLogits
from geocd.options import PredictOptions

DATA = Path("/work/shared/data")
BENCHMARK = Path(__file__).resolve().parents[1] / "benchmarks" / "edges.py"
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason=f"{DATA} absent")


def benchmark():
    """benchmarks/edges.py as a module."""
    spec = importlib.util.spec_from_file_location("edges_benchmark", BENCHMARK)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class GradientChangeNet(IntensityChangeNet):
    """Change logit = gain * (3x3 mean of |d before - d after| over bands and both axes - offset).

    Blind to a brightness offset between the dates, alive to any edge that one date has and the
    other lacks: a seam where one date's values stop, as a real network's receptive field sees it.
    """

    def __init__(self, bands: int = 3, gain: float = 0.5, offset: float = 12.0) -> None:
        super().__init__(bands, smoothing=True)
        self.gain, self.offset = gain, offset
        self.gradient = nn.Conv2d(bands, 2 * bands, 3, padding=1, groups=bands, bias=False, padding_mode="replicate")
        with torch.no_grad():
            self.gradient.weight.zero_()
            self.gradient.weight[0::2, 0, 1, 1], self.gradient.weight[0::2, 0, 1, 2] = -1.0, 1.0
            self.gradient.weight[1::2, 0, 1, 1], self.gradient.weight[1::2, 0, 2, 1] = -1.0, 1.0

    def forward(self, before: torch.Tensor, after: torch.Tensor) -> ChangeLogits:
        edges = (self.gradient(before) - self.gradient(after)).abs().sum(1, keepdim=True)
        change = self.gain * (self.smooth(edges) - self.offset)
        return ChangeLogits(self.semantic(before), self.semantic(after), change)


def gradient_probability(tmp_path: Path, before: Path, after: Path, name: str) -> np.ndarray:
    """The change probability band (NODATA where not predicted) of :class:`GradientChangeNet`."""
    model = LoadedModel(GradientChangeNet().eval(), intensity_model().metadata, Path("gradient-model"))
    out = tmp_path / f"{name}.tif"
    predict_change_raster(before, after, [model], [raster_sink(out)], PredictOptions(tile_size=64, backend="torch"))
    with rasterio.open(out) as src:
        return src.read(1)


def brightened_pair(tmp_path: Path) -> tuple[Path, np.ndarray]:
    """The 'before' GeoTIFF of a smooth scene, and the 'after' values: the same scene 40 levels brighter."""
    scene = smooth_scene(96, 128)
    return write_raster(tmp_path / "before.tif", scene.astype(np.uint8)), (scene + 40).astype(np.uint8)


def test_tiles_past_the_scene_edge_show_the_network_no_seam(tmp_path: Path) -> None:
    before, brighter = brightened_pair(tmp_path)
    probability = gradient_probability(tmp_path, before, write_raster(tmp_path / "after.tif", brighter), "full")
    assert probability.max() < 32  # nothing changed but the brightness; zeros past the scene's edge gave p = 1 there


def test_cropped_after_shows_the_network_no_seam(tmp_path: Path) -> None:
    before, brighter = brightened_pair(tmp_path)
    crop = write_raster(tmp_path / "crop.tif", brighter[:, 16:80, 20:100], transform=from_origin(ORIGIN[0] + 20, ORIGIN[1] - 16, 1, 1))
    probability = gradient_probability(tmp_path, before, crop, "cropped")
    assert (probability[16:80, 20:100] != NODATA).all() and (probability[:16] == NODATA).all()
    assert probability[16:80, 20:100].max() < 32  # 'after' filled from 'before' outside the crop gave p = 1 along its edge


def test_after_warped_to_wgs84_and_back_flags_no_band_along_its_edge(tmp_path: Path) -> None:
    before, brighter = brightened_pair(tmp_path)
    inner = write_raster(tmp_path / "inner.tif", brighter[:, 16:80, 20:100], transform=from_origin(ORIGIN[0] + 20, ORIGIN[1] - 16, 1, 1))
    edges = benchmark()
    edges.warp(inner, tmp_path / "wgs84.tif", CRS.from_epsg(4326))
    edges.warp(tmp_path / "wgs84.tif", tmp_path / "round_trip.tif", CRS.from_epsg(32633))
    probability = gradient_probability(tmp_path, before, tmp_path / "round_trip.tif", "round_trip")
    valid = probability != NODATA
    assert valid[20:76, 24:96].all() and not valid[:14].any()  # the warped footprint, a pixel or two short at the edge
    assert probability[valid].max() < 32


@needs_data
@pytest.mark.parametrize(("dataset", "name", "resolution"), [("sztaki", "Szada_train_6", 1.5), ("dsifn", "5_3", 2.0)])
def test_cropped_after_flags_no_more_change_along_the_crop_edge(tmp_path: Path, dataset: str, name: str,
                                                                  resolution: float) -> None:
    with_crop, with_full, excess = benchmark().crop_excess(DATA, tmp_path, dataset, name, resolution, load_models([]), False)
    assert excess <= 2.0, f"{with_crop:.1f} % flagged along the crop edge, {with_full:.1f} % with the full pair"


@needs_data
def test_landsat_warped_to_wgs84_and_back_flags_no_band_along_its_edge(tmp_path: Path) -> None:
    band_km2, total_km2, band_max = benchmark().landsat_round_trip(DATA, tmp_path, load_models([]), False)
    assert band_km2 == 0.0 and total_km2 < 0.05 and band_max < 0.25
