"""Change invented along footprint edges, with the default model; prints one table, asserts nothing.

(a) Landsat warp round trip: ``landsat-taizhou/before_2000.tif`` (UTM 51N, 30 m), its inner
    window (1/8 of each side off) warped to EPSG:4326 and back to UTM 51N (bilinear, nodata 0,
    as ``gdalwarp -r bilinear -dstnodata 0`` does) is the 'after' of the full scene: nothing changed, so every flagged pixel is false. Reported:
    the area flagged (probability >= 0.5) within ``BAND`` pixels of the edge of the warped
    footprint, and in all.
(b) Crop edge: on the held-out aerial validation pairs (chips given a local metric grid), the
    'after' cropped to an inner window (``1/8`` of each side off) is predicted against the full
    'before'. Reported: the share of pixels flagged in the ``BAND``-pixel band inside the crop
    edge, minus that share on the same pixels when the full pair is predicted (points).

Usage: python benchmarks/edges.py [--data /work/shared/data] [--tta]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import rasterio
from PIL import Image
from rasterio.crs import CRS
from rasterio.transform import from_origin
from rasterio.windows import Window
from rasterio.warp import Resampling, calculate_default_transform, reproject
from scipy import ndimage

from geocd.changemap import decode_probability, is_changed, raster_sink
from geocd.checkpoint import load_models
from geocd.inference.predict import predict_change_raster
from geocd.options import PredictOptions

BAND = 16
"""Width (pixels) of the band along an edge that is scored."""

CROP_SCENES = (("sztaki", "Szada_train_6", 1.5), ("sztaki", "Tisza_train_40", 1.5), ("dsifn", "5_3", 2.0),
               ("dsifn", "6_3", 2.0), ("levir-full", "test_101", 0.5))
"""The aerial validation pairs (dataset, name, metres per pixel)."""


def warp(src_path: Path, dst_path: Path, crs: CRS) -> None:
    """``gdalwarp -t_srs crs -r bilinear -dstnodata 0`` of a raster, onto GDAL's default grid."""
    with rasterio.open(src_path) as src:
        transform, width, height = calculate_default_transform(src.crs, crs, src.width, src.height, *src.bounds)
        profile = src.profile | dict(crs=crs, transform=transform, width=width, height=height, nodata=0,
                                     tiled=False, compress="deflate")
        with rasterio.open(dst_path, "w", **profile) as dst:
            for band in src.indexes:
                reproject(rasterio.band(src, band), rasterio.band(dst, band), resampling=Resampling.bilinear,
                          src_nodata=src.nodata, dst_nodata=0)


def changed(before: Path, after: Path, out: Path, models: list, tta: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Flagged (probability at the default threshold or above) and valid pixels of a pair on the 'before' grid,
    and the probabilities."""
    options = PredictOptions(tta=tta)
    predict_change_raster(before, after, models, [raster_sink(out)], options)
    with rasterio.open(out) as src:
        encoded = src.read(1)
        valid = encoded != src.nodata
        return is_changed(encoded, options.threshold), valid, np.where(valid, decode_probability(encoded), 0.0)


def landsat_round_trip(data: Path, work: Path, models: list, tta: bool) -> tuple[float, float, float]:
    """(band km², total km²) flagged on the Landsat warp round trip, and the highest probability in the band."""
    before = data / "landsat-taizhou" / "before_2000.tif"
    with rasterio.open(before) as src:
        crs, pixel_km2 = src.crs, src.res[0] * src.res[1] / 1e6
        inner = Window(src.width // 8, src.height // 8, src.width - src.width // 4, src.height - src.height // 4)
        profile = src.profile | dict(width=inner.width, height=inner.height, transform=src.window_transform(inner))
        with rasterio.open(work / "inner.tif", "w", **profile) as dst:
            dst.write(src.read(window=inner))
    warp(work / "inner.tif", work / "wgs84.tif", CRS.from_epsg(4326))
    warp(work / "wgs84.tif", work / "round_trip.tif", crs)
    flagged, valid, probability = changed(before, work / "round_trip.tif", work / "landsat_change.tif", models, tta)
    band = valid & ~ndimage.binary_erosion(valid, iterations=BAND, border_value=0)
    return (flagged & band).sum() * pixel_km2, flagged.sum() * pixel_km2, float(probability[band].max())


def write_chip(png: Path, out: Path, resolution: float, window: tuple[slice, slice] | None = None) -> Path:
    """A PNG chip as a GeoTIFF on a local metric grid (``window``: rows, cols of it only, in place)."""
    data = np.asarray(Image.open(png).convert("RGB")).transpose(2, 0, 1)
    rows, cols = window or (slice(0, data.shape[1]), slice(0, data.shape[2]))
    data = data[:, rows, cols]
    transform = from_origin(500_000 + cols.start * resolution, 5_000_000 - rows.start * resolution, resolution, resolution)
    with rasterio.open(out, "w", driver="GTiff", width=data.shape[2], height=data.shape[1], count=3, dtype="uint8",
                       crs="EPSG:32633", transform=transform) as dst:
        dst.write(data)
    return out


def crop_excess(data: Path, work: Path, dataset: str, name: str, resolution: float, models: list, tta: bool) -> tuple[float, float, float]:
    """(% flagged in the crop-edge band with the cropped 'after', % with the full pair, excess in points)."""
    png = next((data / dataset / "A").glob(f"{name}.*"))
    before = write_chip(png, work / f"{name}_a.tif", resolution)
    after_png = data / dataset / "B" / png.name
    full_after = write_chip(after_png, work / f"{name}_b.tif", resolution)
    height, width = np.asarray(Image.open(png)).shape[:2]
    window = (slice(height // 8, height - height // 8), slice(width // 8, width - width // 8))
    crop_after = write_chip(after_png, work / f"{name}_b_crop.tif", resolution, window)
    full = changed(before, full_after, work / f"{name}_full.tif", models, tta)[0]
    crop = changed(before, crop_after, work / f"{name}_crop.tif", models, tta)[0]
    inner = np.zeros(full.shape, bool)
    inner[window] = True
    band = inner & ~ndimage.binary_erosion(inner, iterations=BAND, border_value=0)
    with_crop, with_full = 100 * crop[band].mean(), 100 * full[band].mean()
    return with_crop, with_full, with_crop - with_full


def main() -> None:
    """Print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("/work/shared/data"))
    parser.add_argument("--tta", action="store_true", help="predict with test-time augmentation")
    args = parser.parse_args()
    models = load_models([])
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        band_km2, total_km2, band_max = landsat_round_trip(args.data, work, models, args.tta)
        print(f"(a) Landsat inner window warped EPSG:32651 -> 4326 -> 32651 as 'after', nothing changed:\n"
              f"    flagged within {BAND} px of the warped footprint's edge: {band_km2:.2f} km²; "
              f"flagged in all: {total_km2:.2f} km²; highest probability in the band: {band_max:.2f}")
        print(f"(b) 'after' cropped by 1/8 per side: % flagged in the {BAND}-px band inside the crop edge")
        print(f"    {'scene':<26}{'cropped':>9}{'full':>9}{'excess':>9}")
        excesses = []
        for dataset, name, resolution in CROP_SCENES:
            with_crop, with_full, excess = crop_excess(args.data, work, dataset, name, resolution, models, args.tta)
            excesses.append(excess)
            print(f"    {dataset + '/' + name:<26}{with_crop:>9.1f}{with_full:>9.1f}{excess:>+9.1f}")
        print(f"    {'mean':<26}{'':>18}{np.mean(excesses):>+9.1f}")


if __name__ == "__main__":
    main()
