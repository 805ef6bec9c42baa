"""Benchmark geocd.vector.vectorize on synthetic change rasters; prints one table, asserts nothing.

For each size it writes (in strips, never the whole raster in memory) a sparse change GeoTIFF
like ``geocd predict`` writes (tiled, deflate): ~5 % changed pixels in blobs of log-normal
size, several (from, to) pairs, blobs split between two pairs, scattered 1-pixel specks and
a noisy sub-threshold background. Each vectorization runs in its own process, so the peak
RSS figures are separate; CPU seconds (both threads) are less sensitive to a busy machine.

Usage: python benchmarks/vectorize_bench.py [--sizes 25 100] [--width W] [--min-area 2.0] [--strip-rows N]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import from_origin
from rasterio.windows import Window

from geocd.changemap import BANDS, ChangeMapInfo
from geocd.schema import LandCover

CHANGED_FRACTION = 0.05
LAND_COVER = tuple(c for c in LandCover if c != LandCover.UNCHANGED)
WATER, GROUND, GRASS, TREE, BUILDING, PLAYGROUND = LAND_COVER
PAIRS = [(GRASS, BUILDING), (TREE, BUILDING), (GROUND, WATER), (BUILDING, GROUND), (GRASS, GROUND), (TREE, GRASS),
         (GROUND, PLAYGROUND)]
WRITE_ROWS = 512
RADIUS_MEDIAN, RADIUS_SIGMA = 7.0, 0.7


def write_change_raster(path: Path, width: int, height: int, seed: int = 0) -> float:
    """A width x height change raster; returns the fraction of changed pixels."""
    rng = np.random.default_rng(seed)
    mean_blob = np.pi * np.exp(2 * np.log(RADIUS_MEDIAN) + 2 * RADIUS_SIGMA**2) * 0.75  # E[pi r^2 squash]
    count = int(CHANGED_FRACTION * width * height / mean_blob)
    cy, cx = rng.uniform(0, height, count), rng.uniform(0, width, count)
    radius = np.clip(rng.lognormal(np.log(RADIUS_MEDIAN), RADIUS_SIGMA, count), 1, 80)
    squash, angle = rng.uniform(0.5, 1.0, count), rng.uniform(0, np.pi, count)
    pair_a, pair_b = rng.integers(0, len(PAIRS), count), rng.integers(0, len(PAIRS), count)
    split = rng.random(count) < 0.3
    info = ChangeMapInfo(trained_classes=LAND_COVER, models=("bench",), inputs=("before.tif", "after.tif"))
    profile = dict(driver="GTiff", width=width, height=height, count=3, dtype="uint8", nodata=255, crs="EPSG:32633",
                   transform=from_origin(500_000, 5_400_000, 0.5, 0.5), tiled=True, blockxsize=512, blockysize=512,
                   compress="deflate", bigtiff="if_safer")
    changed = 0
    with rasterio.open(path, "w", **profile) as dst:
        dst.descriptions = BANDS
        dst.update_tags(**info.to_tags())
        for top in range(0, height, WRITE_ROWS):
            rows = min(WRITE_ROWS, height - top)
            probability = rng.integers(0, 110, (rows, width), dtype=np.uint8)
            before, after = np.zeros((rows, width), np.uint8), np.zeros((rows, width), np.uint8)
            for i in np.flatnonzero((cy + radius > top) & (cy - radius < top + rows)):
                y0, y1 = max(int(cy[i] - radius[i]), top), min(int(cy[i] + radius[i]) + 1, top + rows)
                x0, x1 = max(int(cx[i] - radius[i]), 0), min(int(cx[i] + radius[i]) + 1, width)
                yy, xx = np.mgrid[y0:y1, x0:x1]
                u = (xx - cx[i]) * np.cos(angle[i]) + (yy - cy[i]) * np.sin(angle[i])
                v = (yy - cy[i]) * np.cos(angle[i]) - (xx - cx[i]) * np.sin(angle[i])
                inside = u**2 + (v / squash[i]) ** 2 < radius[i] ** 2
                window = (slice(y0 - top, y1 - top), slice(x0, x1))
                probability[window][inside] = rng.integers(127, 255, inside.sum(), dtype=np.uint8)
                pair = np.where(split[i] & (u > 0), pair_b[i], pair_a[i])[inside]
                before[window][inside] = np.take([p[0] for p in PAIRS], pair)
                after[window][inside] = np.take([p[1] for p in PAIRS], pair)
            specks = rng.random((rows, width)) < 0.0005
            probability[specks] = 200
            before[specks], after[specks] = 3, 5
            changed += int((probability >= 127).sum())
            dst.write(np.stack([probability, before, after]), window=Window(0, top, width, rows))
    return changed / width / height


def run_one(raster: str, min_area: float, strip_rows: int | None) -> None:
    """Child process: vectorize and print wall and CPU seconds, polygons and peak RSS as JSON."""
    from geocd.vector import vectorize

    before = resource.getrusage(resource.RUSAGE_SELF)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        result = vectorize(raster, Path(tmp) / "changes.gpkg", min_area_m2=min_area, strip_rows=strip_rows)
    seconds = time.perf_counter() - start
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu = usage.ru_utime + usage.ru_stime - before.ru_utime - before.ru_stime
    print(json.dumps({"seconds": seconds, "cpu": cpu, "polygons": result.polygons, "peak_mb": usage.ru_maxrss / 1024}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=float, nargs="+", default=[25, 100], help="megapixels per raster")
    parser.add_argument("--min-area", type=float, default=2.0, help="min_area_m2 (0.5 m pixels)")
    parser.add_argument("--width", type=int, default=None, help="raster width (default: square rasters)")
    parser.add_argument("--strip-rows", type=int, default=None)
    parser.add_argument("--run", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run:
        run_one(args.run, args.min_area, args.strip_rows)
        return
    print(f"{'MP':>6} {'W x H':>12} {'changed':>8} {'build s':>8} {'seconds':>8} {'MP/s':>7} {'CPU s':>6} {'polygons':>9} "
          f"{'peak RSS MB':>12}")
    with tempfile.TemporaryDirectory() as tmp:
        for megapixels in args.sizes:
            width = args.width or int(round((megapixels * 1e6) ** 0.5))
            height = int(round(megapixels * 1e6 / width))
            raster = Path(tmp) / f"change_{width}x{height}.tif"
            start = time.perf_counter()
            fraction = write_change_raster(raster, width, height)
            built = time.perf_counter() - start
            command = [sys.executable, __file__, "--run", str(raster), "--min-area", str(args.min_area)]
            if args.strip_rows:
                command += ["--strip-rows", str(args.strip_rows)]
            child = json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout)
            mp = width * height / 1e6
            print(f"{mp:6.1f} {f'{width}x{height}':>12} {fraction:8.1%} {built:8.1f} {child['seconds']:8.2f} {mp / child['seconds']:7.1f} "
                  f"{child['cpu']:6.2f} {child['polygons']:9d} {child['peak_mb']:12.0f}", flush=True)
            raster.unlink()


if __name__ == "__main__":
    main()
