"""A small synthetic, georeferenced before/after pair with planted changes, for trying geocd.

The scene is 0.5 m aerial-like RGB on a UTM grid: a mown meadow, bare ground with tracks, an
asphalt road, groves of round tree crowns and a few houses with gabled or flat roofs, rendered
procedurally from a height field lit by one sun (shaded crowns and roof planes, cast shadows
toward the north-west). Between the dates three houses are built on grass, a pond is dug in
bare ground and a grove is cleared; the after date also has another light colour and haze and
its own sensor noise, which a model should ignore. ``truth.tif`` marks the planted changes with
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
from scipy import ndimage

from geocd.atomic import atomic_output
from geocd.data.rasters import Grid, geotiff_profile
from geocd.schema import LandCover

DEMO_CRS = CRS.from_epsg(32633)
DEMO_RESOLUTION_M = 0.5
DEMO_ORIGIN = (500_000.0, 5_400_000.0)

GRASS, GROUND, TREE, BUILDING, WATER = (LandCover.LOW_VEGETATION, LandCover.GROUND, LandCover.TREE, LandCover.BUILDING,
                                        LandCover.WATER)

_SUN_AZIMUTH, _SUN_ELEVATION = np.radians(160.0), np.radians(48.0)  # clockwise from north; above the horizon
_SUN = np.array([np.sin(_SUN_AZIMUTH) * np.cos(_SUN_ELEVATION), np.cos(_SUN_AZIMUTH) * np.cos(_SUN_ELEVATION),
                 np.sin(_SUN_ELEVATION)])  # east, north, up
# Per date: direct sun and sky light (RGB, a fraction of what flat sunlit ground gets) and haze (DN).
_LIGHT = {"before": ((0.74, 0.72, 0.68), (0.24, 0.27, 0.32), (0.0, 0.0, 0.0)),
          "after": ((0.80, 0.74, 0.64), (0.25, 0.27, 0.30), (4.0, 5.0, 7.0))}
_SENSOR_NOISE_DN = 2.0
_ROOF_COLOURS = {"tiles": (150, 78, 58), "slate": (92, 92, 98), "flat": (128, 127, 124)}


@dataclass(frozen=True)
class DemoPair:
    """Paths of the files :func:`write_demo_pair` wrote."""

    before: Path
    after: Path
    truth: Path


@dataclass(frozen=True)
class _Scene:
    """What both dates share, wherever each surface could be: reflectance per surface (DN under
    flat full light, ``[3, h, w]``); crown and roof relief (height above ground in m, then its
    east and north slopes, ``[3, h, w]``)."""

    reflectance: dict[str, np.ndarray]
    crowns: np.ndarray
    roofs: np.ndarray


def _grove(size: int) -> tuple[slice, slice]:
    """The block of trees that is cleared between the dates."""
    return slice(size // 2 + 40, size // 2 + 110), slice(size - 110, size - 30)


def _road(size: int) -> slice:
    """The rows of the east-west road."""
    return slice(size // 2 - 6, size // 2 + 6)


def _land_cover(size: int, rng: np.random.Generator) -> np.ndarray:
    cover = np.full((size, size), GRASS, np.uint8)
    cover[: size // 2, size // 2 :] = GROUND
    cover[_road(size), :] = GROUND
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


def _fbm(shape: tuple[int, int], rng: np.random.Generator, largest: int, smallest: int = 1,
         roughness: float = 0.6) -> np.ndarray:
    """Fractal noise of unit standard deviation, octaves of ``largest`` down to ``smallest`` pixels
    (powers of two), each ``roughness`` times as strong as the one before."""
    cells = [(s + largest - 1) // largest + 4 for s in shape]
    noise = rng.standard_normal(cells).astype(np.float32)
    while largest > smallest:
        noise = ndimage.zoom(noise, 2, order=3, prefilter=False) / roughness
        noise += rng.standard_normal(noise.shape).astype(np.float32)
        largest //= 2
    if smallest > 1:
        noise = ndimage.zoom(noise, smallest, order=3, prefilter=False)
    noise = noise[largest : largest + shape[0], largest : largest + shape[1]]
    return (noise - noise.mean()) / (noise.std() + 1e-6)


def _mix(t: np.ndarray, low: tuple[float, ...], high: tuple[float, ...]) -> np.ndarray:
    """``[3, h, w]`` colours between ``low`` (t = 0) and ``high`` (t = 1)."""
    t = np.clip(t, 0, 1)[None]
    return np.array(low, np.float32)[:, None, None] * (1 - t) + np.array(high, np.float32)[:, None, None] * t


def _meadow(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Mottled green-yellow grass with mowing stripes."""
    yy, xx = np.mgrid[: shape[0], : shape[1]].astype(np.float32)
    stripes = np.tanh(3 * np.sin((xx * 0.97 + yy * 0.26) * np.pi / 6.0))
    colour = _mix(0.45 + 0.25 * _fbm(shape, rng, 64, 8), (70, 104, 44), (132, 136, 74))
    return colour * (1 + 0.06 * _fbm(shape, rng, 16, 1, 0.9) + 0.05 * rng.standard_normal(shape) + 0.05 * stripes)


def _soil(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Brown-beige bare ground with soil grain and a few vehicle tracks."""
    colour = _mix(0.55 + 0.25 * _fbm(shape, rng, 64, 4), (112, 92, 70), (166, 146, 116))
    yy, xx = np.mgrid[: shape[0], : shape[1]].astype(np.float32)
    tracks = np.zeros(shape, np.float32)
    for _ in range(3):
        row0, amplitude, length, phase, tilt = rng.uniform((0, 5, 40, 0, -0.4), (shape[0], 25, 120, 6.3, 0.4))
        centre = row0 + amplitude * np.sin(xx / length + phase) + tilt * xx
        for wheel in (-3.0, 3.0):
            tracks = np.maximum(tracks, np.exp(-(((yy - centre - wheel) / 1.3) ** 2)))
    return colour * (1 + 0.06 * _fbm(shape, rng, 4, 1, 0.9) + 0.04 * rng.standard_normal(shape) - 0.25 * tracks)


def _asphalt(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Grey asphalt with a dashed white centre line."""
    grey = _mix(0.5 + 0.2 * _fbm(shape, rng, 32, 1, 0.7), (78, 80, 84), (112, 112, 114))
    line = np.zeros(shape, np.float32)
    line[shape[0] // 2 - 1, (np.arange(shape[1]) % 18) < 7] = 0.7
    return grey * (1 - line) + 215 * line


def _understory(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Dark forest floor between crowns."""
    return _mix(0.5 + 0.3 * _fbm(shape, rng, 8), (40, 48, 30), (74, 76, 50))


def _crowns(mask: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Round tree crowns packed into ``mask``: their height above ground (m, 0 between crowns)
    and their foliage colour ``[3, h, w]``."""
    height = np.zeros(mask.shape, np.float32)
    colour = np.zeros((3, *mask.shape), np.float32)
    room = ndimage.distance_transform_edt(mask)
    centres = np.argwhere(room >= 2.5)
    if not len(centres):
        return height, colour
    for r, c in centres[rng.choice(len(centres), int(mask.sum() / 30))]:
        radius = min(rng.uniform(4.5, 8.5), room[r, c] + 2)
        top = rng.uniform(8, 14)
        depth = 1.2 * radius * DEMO_RESOLUTION_M
        rows = slice(max(r - int(radius) - 1, 0), min(r + int(radius) + 2, mask.shape[0]))
        cols = slice(max(c - int(radius) - 1, 0), min(c + int(radius) + 2, mask.shape[1]))
        yy, xx = np.ogrid[rows, cols]
        inside = np.clip(1 - ((yy - r) ** 2 + (xx - c) ** 2) / radius**2, 0, None)
        dome = np.where(inside > 0, top - depth + depth * np.sqrt(inside), 0)
        higher = dome > height[rows, cols]
        height[rows, cols][higher] = dome[higher]
        tint = rng.uniform(0.85, 1.15) * np.array([rng.uniform(38, 62), rng.uniform(62, 84), rng.uniform(26, 38)])
        colour[:, rows, cols][:, higher] = tint[:, None]
    leaves = _fbm(mask.shape, rng, 4, 1, 0.8)
    height = np.where(height > 0, height + 0.25 * leaves, 0) * mask
    return height, colour * (1 + 0.1 * leaves)


def _roof(shape: tuple[int, int], kind: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One building's height (m) and roof colour ``[3, h, w]``: gabled ``tiles`` or ``slate`` (ridge along the
    long side), or ``flat`` with a parapet and a rooftop unit."""
    h, w = shape
    yy, xx = np.mgrid[:h, :w].astype(np.float32)
    grain = 1 + 0.05 * rng.standard_normal(shape).astype(np.float32)
    colour = np.array(_ROOF_COLOURS[kind], np.float32) * rng.uniform(0.88, 1.12)
    if kind == "flat":
        height = np.full(shape, rng.uniform(6, 8), np.float32)
        border = np.minimum.reduce([yy, xx, h - 1 - yy, w - 1 - xx]) < 1
        box = (yy >= h // 3) & (yy < h // 3 + 4) & (xx >= w // 2) & (xx < w // 2 + 5)
        height += 0.6 * border + 1.2 * box
        return height, colour[:, None, None] * grain * np.where(border | box, 1.15, 1)
    across = yy if w >= h else xx
    half = (min(h, w) - 1) / 2
    height = rng.uniform(4.5, 6) + 0.7 * DEMO_RESOLUTION_M * (half - np.abs(across - half))
    ridge = np.where(np.abs(across - half) < 1, 0.85, 1)
    return height.astype(np.float32), colour[:, None, None] * grain * ridge


def _buildings(mask: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Height (m) and roof colour ``[3, h, w]`` of each connected building in ``mask``."""
    height = np.zeros(mask.shape, np.float32)
    colour = np.zeros((3, *mask.shape), np.float32)
    labels, _ = ndimage.label(mask)
    for index, box in enumerate(ndimage.find_objects(labels)):
        roof_height, roof_colour = _roof((box[0].stop - box[0].start, box[1].stop - box[1].start),
                                        tuple(_ROOF_COLOURS)[index % len(_ROOF_COLOURS)], rng)
        height[box] = np.where(labels[box] == index + 1, roof_height, height[box])
        colour[:, *box] = np.where(labels[box] == index + 1, roof_colour, colour[:, *box])
    return height, colour


def _water(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Dark blue-green still water, deeper toward the middle, with a lighter muddy shore."""
    shore = ndimage.distance_transform_edt(mask).astype(np.float32)
    yy, xx = np.mgrid[: mask.shape[0], : mask.shape[1]].astype(np.float32)
    colour = _mix(shore / 14, (58, 84, 78), (24, 46, 54))
    colour *= 1 + 0.06 * (xx - yy) / mask.shape[0] + 0.015 * _fbm(mask.shape, rng, 16, 2)
    mud = np.exp(-(((shore - 1) / 2) ** 2))[None]
    return colour * (1 - mud) + np.array([118, 112, 90], np.float32)[:, None, None] * mud


def _relief(height: np.ndarray) -> np.ndarray:
    """``[3, h, w]``: ``height`` (m), its east and north slopes (m/m) where it stands above ground."""
    d_row, d_col = np.gradient(height, DEMO_RESOLUTION_M)
    raised = height > 0
    return np.stack([height, d_col * raised, -d_row * raised])


def _scene(before: np.ndarray, after: np.ndarray, rng: np.random.Generator) -> _Scene:
    """Textures, crowns and roofs for everything either date shows."""
    shape = before.shape
    crowns, foliage = _crowns((before == TREE) | (after == TREE), rng)
    roofs, tiles = _buildings((before == BUILDING) | (after == BUILDING), rng)
    reflectance = {"grass": _meadow(shape, rng), "ground": _soil(shape, rng), "road": _asphalt(shape, rng),
                   "understory": _understory(shape, rng), "crown": foliage, "roof": tiles,
                   "water": _water((before == WATER) | (after == WATER), rng)}
    return _Scene(reflectance, _relief(ndimage.gaussian_filter(crowns, 0.6) * (crowns > 0)), _relief(roofs))


def _cast_shadow(height: np.ndarray) -> np.ndarray:
    """Where ``height`` (m) hides the sun from the surface: true in cast shadow."""
    rise = DEMO_RESOLUTION_M * np.tan(_SUN_ELEVATION)
    steps = int(np.ceil(height.max() / rise))
    pad = steps + 1
    padded = np.pad(height, pad)
    shadow = np.zeros(height.shape, bool)
    for k in range(1, steps + 1):
        r, c = pad + round(-k * np.cos(_SUN_AZIMUTH)), pad + round(k * np.sin(_SUN_AZIMUTH))
        shadow |= padded[r : r + height.shape[0], c : c + height.shape[1]] > height + k * rise
    return shadow


def _render(cover: np.ndarray, scene: _Scene, date: str, rng: np.random.Generator) -> np.ndarray:
    """One date's uint8 RGB ``[3, h, w]``: the scene's surfaces for ``cover`` under that date's light."""
    tree = cover == TREE
    relief = np.where(tree, scene.crowns, np.where(cover == BUILDING, scene.roofs, 0))
    road = np.zeros(cover.shape, bool)
    road[_road(cover.shape[0])] = True
    surfaces = {"ground": cover == GROUND, "road": road & (cover == GROUND), "understory": tree,
                "crown": tree & (relief[0] > 0), "roof": cover == BUILDING, "water": cover == WATER}
    image = scene.reflectance["grass"].copy()
    for name, where in surfaces.items():
        image[:, where] = scene.reflectance[name][:, where]
    height, east, north = relief
    facing = (-east * _SUN[0] - north * _SUN[1] + _SUN[2]) / np.sqrt(east**2 + north**2 + 1) / _SUN[2]
    lit = 1 - ndimage.gaussian_filter(_cast_shadow(height).astype(np.float32), 0.6)
    sun, sky, haze = (np.array(v, np.float32)[:, None, None] for v in _LIGHT[date])
    image *= sun * np.clip(facing, 0, None) * lit + sky
    image = ndimage.gaussian_filter(image, (0, 0.5, 0.5)) + haze
    image += rng.normal(0, _SENSOR_NOISE_DN, image.shape)
    return np.clip(image, 0, 255).round().astype(np.uint8)


def write_demo_pair(folder: str | os.PathLike[str], size: int = 512, seed: int = 0, overwrite: bool = False) -> DemoPair:
    """Write ``before.tif``, ``after.tif`` and ``truth.tif`` into ``folder`` (created if needed): a scene of
    ``size`` x ``size`` pixels of 0.5 m; the same ``seed`` writes the same files."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    cover_before = _land_cover(size, rng)
    cover_after = _plant_changes(cover_before)
    changed = cover_before != cover_after
    scene = _scene(cover_before, cover_after, rng)
    grid = Grid(DEMO_CRS, from_origin(*DEMO_ORIGIN, DEMO_RESOLUTION_M, DEMO_RESOLUTION_M), size, size)
    layers = {
        "before.tif": _render(cover_before, scene, "before", rng),
        "after.tif": _render(cover_after, scene, "after", rng),
        "truth.tif": np.stack([np.where(changed, cover_before, 0), np.where(changed, cover_after, 0)]).astype(np.uint8),
    }
    for name, data in layers.items():
        with atomic_output(out / name, overwrite=overwrite) as tmp:
            with rasterio.open(tmp, "w", **geotiff_profile(grid, data.shape[0], "uint8")) as dst:
                dst.write(data)
    return DemoPair(out / "before.tif", out / "after.tif", out / "truth.tif")
