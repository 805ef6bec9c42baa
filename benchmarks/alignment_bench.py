"""Residual misregistration: real images against themselves with their content moved; prints one table.

For each image of ``--data`` (SZTAKI 1.5 m, LEVIR-CD 0.5 m) and each shift, the 'after' date is the
same image cropped a few pixels further (the content moves, the grid does not: the misregistration
of two orthophotos), both written as GeoTIFFs on one grid. ``geocd.predict`` runs with the default
model without and with ``align``: the table gives the shift the report measured, whether it was
warned of, and the share of the overlap flagged as change (nothing changed, so every flagged pixel
is a false alarm). Asserts nothing.

    python3 benchmarks/alignment_bench.py [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import tempfile
import warnings
from pathlib import Path

import numpy as np
import rasterio
from PIL import Image
from rasterio.transform import from_origin

from geocd.changemap import NODATA, changed_pixels, open_change_raster
from geocd.errors import GeocdWarning
from geocd.inference.predict import PredictOptions, PredictOutputs, predict

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
IMAGES = (("sztaki/A/Szada_train_1.png", 1.5, None), ("sztaki/A/Szada_train_1.png", 1.5, 320),
          ("sztaki/A/Szada_train_6.png", 1.5, None), ("sztaki/A/Tisza_train_40.png", 1.5, None),
          ("levir-full/A/test_101.png", 0.5, None))
"""Image, its ground resolution (m) and the rows kept (None: all; 320: the top half of Szada_train_1, as the test)."""
SHIFTS = ((5, 0), (3, 4))
MARGIN = 8


def shifted_pair(image: np.ndarray, dx: int, dy: int, resolution: float, folder: Path) -> tuple[Path, Path]:
    """'before' and 'after' GeoTIFFs on one grid, the 'after' content ``(dx, dy)`` pixels east and south."""
    _, height, width = image.shape
    h, w = height - 2 * MARGIN, width - 2 * MARGIN
    crops = (image[:, MARGIN:MARGIN + h, MARGIN:MARGIN + w],
             image[:, MARGIN - dy:MARGIN - dy + h, MARGIN - dx:MARGIN - dx + w])
    paths = []
    for name, data in zip(("before", "after"), crops):
        path = folder / f"{name}.tif"
        with rasterio.open(path, "w", driver="GTiff", width=w, height=h, count=3, dtype="uint8", crs="EPSG:32634",
                           transform=from_origin(600_000, 5_200_000, resolution, resolution)) as dst:
            dst.write(data)
        paths.append(path)
    return paths[0], paths[1]


def flagged_share(raster: Path) -> float:
    """Share of the valid pixels flagged as changed."""
    with open_change_raster(raster) as (src, info):
        probability, from_class = src.read(1), src.read(2)
    valid = probability != NODATA
    return float((changed_pixels(probability, from_class, info) & valid).sum() / valid.sum())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    args = parser.parse_args()
    print("| image | m | shift (px) | measured (px) | warned | flagged | flagged with --align |\n|---|---|---|---|---|---|---|")
    for name, resolution, rows in IMAGES:
        image = np.asarray(Image.open(args.data / name).convert("RGB")).transpose(2, 0, 1)[:, :rows]
        label = f"{Path(name).stem}{' (top half)' if rows else ''}"
        for dx, dy in SHIFTS:
            with tempfile.TemporaryDirectory(prefix="geocd-align-") as tmp:
                folder = Path(tmp)
                before, after = shifted_pair(image, dx, dy, resolution, folder)
                shares, measured, warned = [], None, False
                for align in (False, True):
                    with warnings.catch_warnings(record=True) as caught:
                        warnings.simplefilter("always", GeocdWarning)
                        result = predict(before, after, outputs=PredictOutputs(raster=folder / f"c{align}.tif"),
                                         options=PredictOptions(align=align))
                    shares.append(flagged_share(folder / f"c{align}.tif"))
                    if not align:
                        found = result.change_raster.alignment
                        measured = None if found is None else (found.shift.dx, found.shift.dy)
                        warned = any("is shifted by" in str(w.message) for w in caught)
            shift = "none" if measured is None else f"({measured[0]:+.2f}, {measured[1]:+.2f})"
            print(f"| {label} | {resolution:g} | ({dx}, {dy}) | {shift} | {'yes' if warned else 'no'} | "
                  f"{100 * shares[0]:.2f} % | {100 * shares[1]:.2f} % |")


if __name__ == "__main__":
    main()
