"""Tiny georeferenced rasters and hand-made models for the tests."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from rasterio.crs import CRS
from rasterio.transform import from_origin
from torch import nn

from geocd.checkpoint import LoadedModel, ModelMetadata, save_checkpoint
from geocd.models import ChangeLogits, ModelConfig, SiameseChangeNet
from geocd.schema import LandCover

UTM = CRS.from_epsg(32633)
ORIGIN = (500_000.0, 5_400_000.0)


def write_raster(path: Path, data: np.ndarray, crs: CRS | None = UTM, transform=None, nodata=None) -> Path:
    """Write ``data`` ``[bands, h, w]`` as a GeoTIFF (1 m pixels at ORIGIN unless told)."""
    transform = transform if transform is not None else from_origin(*ORIGIN, 1.0, 1.0)
    with rasterio.open(
        path, "w", driver="GTiff", width=data.shape[2], height=data.shape[1], count=data.shape[0],
        dtype=data.dtype, crs=crs, transform=transform, nodata=nodata,
    ) as dst:
        dst.write(data)
    return path


def smooth_scene(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A smooth 3-band float32 scene in [40, 200]."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:height, :width].astype(np.float32)
    bands = [120 + 40 * np.sin(xx / rng.uniform(9, 15) + i) * np.cos(yy / rng.uniform(9, 15)) for i in range(3)]
    return np.stack(bands).astype(np.float32)


def planted_pair(tmp_path: Path, height: int = 96, width: int = 128) -> tuple[Path, Path, np.ndarray]:
    """Before/after uint8 GeoTIFFs identical except a bright square; returns the change mask too."""
    before = smooth_scene(height, width)
    after = before.copy()
    changed = np.zeros((height, width), bool)
    changed[30:60, 70:110] = True
    after[:, changed] = 250
    paths = [write_raster(tmp_path / f"{n}.tif", a.astype(np.uint8)) for n, a in (("before", before), ("after", after))]
    return paths[0], paths[1], changed


class IntensityChangeNet(nn.Module):
    """Change logit = gain * (mean |before - after| - offset), with set (untrained) weights.

    Land cover: building where the pixel is bright, else low vegetation.
    ``smoothing`` adds a 3x3 mean filter so tiles see a receptive field, as real models do.
    """

    def __init__(self, bands: int = 3, gain: float = 0.2, offset: float = 30.0, smoothing: bool = False) -> None:
        super().__init__()
        self.change = nn.Conv2d(bands, 1, 1)
        self.smooth = nn.Conv2d(1, 1, 3, padding=1, bias=False) if smoothing else nn.Identity()
        with torch.no_grad():
            self.change.weight.fill_(gain / bands)
            self.change.bias.fill_(-gain * offset)
            if smoothing:
                self.smooth.weight.fill_(1 / 9)

    def semantic(self, x: torch.Tensor) -> torch.Tensor:
        bright = x.mean(1) - 200
        logits = torch.zeros(x.shape[0], 6, *x.shape[2:])
        logits[:, LandCover.BUILDING - 1] = bright  # head channel k is class id k + 1
        logits[:, LandCover.LOW_VEGETATION - 1] = -bright
        return logits

    def forward(self, before: torch.Tensor, after: torch.Tensor) -> ChangeLogits:
        return ChangeLogits(self.semantic(before), self.semantic(after), self.smooth(self.change((before - after).abs())))


def intensity_model(trained: tuple[int, ...] = (LandCover.LOW_VEGETATION, LandCover.BUILDING), tile_size: int = 64,
                    smoothing: bool = False, offset: float = 30.0) -> LoadedModel:
    """:class:`IntensityChangeNet` with metadata (identity normalisation)."""
    meta = ModelMetadata(ModelConfig("resnet18"), mean=(0.0,) * 3, std=(1.0,) * 3, trained_classes=trained, tile_size=tile_size)
    return LoadedModel(IntensityChangeNet(offset=offset, smoothing=smoothing).eval(), meta, Path("intensity-model"))


@pytest.fixture(scope="session", autouse=True)
def onnx_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """ONNX graphs exported by the tests go to a temporary cache folder, never the user's."""
    with pytest.MonkeyPatch.context() as patch:
        folder = tmp_path_factory.mktemp("cache")
        patch.setenv("GEOCD_CACHE_DIR", str(folder))
        yield folder


def random_checkpoint(path: Path, backbone: str) -> Path:
    """A real geocd checkpoint of ``backbone`` with seeded random weights, lightweight heads, 64-pixel tiles."""
    torch.manual_seed(0)
    model = SiameseChangeNet(ModelConfig(backbone, lightweight=True), mean=(120.0,) * 3, std=(50.0,) * 3).eval()
    meta = ModelMetadata(model.config, mean=(120.0,) * 3, std=(50.0,) * 3, tile_size=64)
    return save_checkpoint(path, model, meta)


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small real geocd checkpoint (resnet18, random weights, 64-pixel tiles)."""
    return random_checkpoint(tmp_path_factory.mktemp("models") / "tiny.safetensors", "resnet18")


def synthetic_archive(folder: Path, pairs: int = 4, size: int = 64, semantic: bool = True) -> Path:
    """An archive of pairs: in 'after' a bright square appears (low vegetation -> building).

    Returns the manifest path. Labels are SECOND-style (``semantic``) or a binary change mask.
    """
    from geocd.data.archive import PairRecord, write_manifest

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    records = []
    for i in range(pairs):
        before = (90 + rng.normal(0, 8, (3, size, size))).clip(0, 255).astype(np.uint8)
        after = (before.astype(int) + rng.normal(0, 4, before.shape)).clip(0, 255).astype(np.uint8)
        r, c = rng.integers(4, size - 28, 2)
        changed = np.zeros((size, size), bool)
        changed[r : r + 20, c : c + 20] = True
        after[:, changed] = 220
        origin = from_origin(ORIGIN[0] + i * 1000, ORIGIN[1], 1.0, 1.0)
        paths = {
            "before": write_raster(folder / f"p{i}_before.tif", before, transform=origin),
            "after": write_raster(folder / f"p{i}_after.tif", after, transform=origin),
        }
        if semantic:
            cover_before, cover_after = ((changed * c).astype(np.uint8)[None] for c in (LandCover.LOW_VEGETATION, LandCover.BUILDING))
            paths["label_before"] = write_raster(folder / f"p{i}_lb.tif", cover_before, transform=origin)
            paths["label_after"] = write_raster(folder / f"p{i}_la.tif", cover_after, transform=origin)
        else:
            paths["change"] = write_raster(folder / f"p{i}_change.tif", changed.astype(np.uint8)[None], transform=origin)
        records.append(PairRecord(name=f"p{i}", dataset="synthetic", **paths))
    return write_manifest(records, folder / "manifest.csv")


def hostile_names(tmp_path: Path) -> list[str]:
    """Pair names from someone else's manifest (issue 31): a parent escape, an absolute path (inside
    ``tmp_path``), a sub-folder, 300 characters, a Windows device name and two names differing only by case."""
    return ["../escape", str(tmp_path / "abs" / "escape"), "a/b", "x" * 300, "CON", "Case", "case"]


def files_under(root: Path) -> set[Path]:
    """Every file and symbolic link under ``root``, links to folders listed but not followed."""
    found = set()
    for folder, dirs, files in os.walk(root):
        found |= {Path(folder) / name for name in files}
        found |= {Path(folder) / name for name in dirs if (Path(folder) / name).is_symlink()}
    return found
