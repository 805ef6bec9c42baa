"""A small synthetic, georeferenced before/after pair with planted changes, for trying geocd.

The scene is 0.5 m aerial-like RGB on a UTM grid: fields, a road, trees and a few
houses. Between the dates three houses are built on grass, a pond is dug in bare
ground and a grove is cleared. ``truth.tif`` marks the planted changes with
SECOND class ids (band 1 from-class, band 2 to-class, 0 = unchanged).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from rasterio.crs import CRS
from rasterio.transform import from_origin

from geocd.atomic import atomic_output
from geocd.data.rasters import Grid, geotiff_profile

DEMO_CRS = CRS.from_epsg(32633)
DEMO_RESOLUTION_M = 0.5
DEMO_ORIGIN = (500_000.0, 5_400_000.0)

GRASS, GROUND, TREE, BUILDING, WATER = 3, 2, 4, 5, 1
COLOURS = {
    GRASS: (96, 128, 64),
    GROUND: (150, 130, 105),
    TREE: (45, 75, 40),
    BUILDING: (170, 80, 70),
    WATER: (40, 65, 90),
}


@dataclass(frozen=True)
class DemoPair:
    """Paths of the files :func:`write_demo_pair` wrote."""

    before: Path
    after: Path
    truth: Path


def _grove(size: int) -> tuple[slice, slice]:
    """The block of trees that is cleared between the dates."""
    return slice(size // 2 + 40, size // 2 + 110), slice(size - 110, size - 30)


def _land_cover(size: int, rng: np.random.Generator) -> np.ndarray:
    cover = np.full((size, size), GRASS, np.uint8)
    cover[: size // 2, size // 2 :] = GROUND
    cover[size // 2 - 6 : size // 2 + 6, :] = GROUND
    for _ in range(6):
        r, c = rng.integers(20, size - 20, 2)
        yy, xx = np.ogrid[:size, :size]
        cover[(yy - r) ** 2 + (xx - c) ** 2 < rng.integers(60, 300)] = TREE
    for r, c in ((40, 40), (40, 100), (200, 60)):
        cover[r : r + 24, c : c + 30] = BUILDING
    cover[_grove(size)] = TREE
    return cover


def _plant_changes(cover: np.ndarray) -> np.ndarray:
    after = cover.copy()
    size = cover.shape[0]
    for r, c in ((size - 120, 60), (size - 120, 130), (size - 60, 200)):
        after[r : r + 28, c : c + 36] = BUILDING
    yy, xx = np.ogrid[:size, :size]
    after[(yy - size // 5) ** 2 + (xx - 3 * size // 4) ** 2 < 35**2] = WATER
    after[_grove(size)] = GROUND
    return after


def _render(cover: np.ndarray, rng: np.random.Generator, lighting: float) -> np.ndarray:
    image = np.zeros((3, *cover.shape), np.float32)
    for cls, colour in COLOURS.items():
        image[:, cover == cls] = np.array(colour, np.float32)[:, None]
    yy, xx = np.mgrid[: cover.shape[0], : cover.shape[1]].astype(np.float32)
    texture = 8 * np.sin(xx / 7.0 + yy / 11.0) * np.cos(yy / 5.0)
    image += texture + rng.normal(0, 6, image.shape)
    return np.clip(image * lighting, 0, 255).astype(np.uint8)


def write_demo_pair(folder: str | os.PathLike[str], size: int = 512, seed: int = 0, overwrite: bool = False) -> DemoPair:
    """Write ``before.tif``, ``after.tif`` and ``truth.tif`` into ``folder`` (created if needed)."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    cover_before = _land_cover(size, rng)
    cover_after = _plant_changes(cover_before)
    changed = cover_before != cover_after
    grid = Grid(DEMO_CRS, from_origin(*DEMO_ORIGIN, DEMO_RESOLUTION_M, DEMO_RESOLUTION_M), size, size)
    layers = {
        "before.tif": _render(cover_before, rng, 1.0),
        "after.tif": _render(cover_after, rng, 1.08),
        "truth.tif": np.stack([np.where(changed, cover_before, 0), np.where(changed, cover_after, 0)]).astype(np.uint8),
    }
    for name, data in layers.items():
        with atomic_output(out / name, overwrite=overwrite) as tmp:
            with rasterio.open(tmp, "w", **geotiff_profile(grid, data.shape[0], "uint8")) as dst:
                dst.write(data)
    return DemoPair(out / "before.tif", out / "after.tif", out / "truth.tif")
