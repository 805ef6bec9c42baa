"""Change F1 of a model on the real Sentinel-2 pairs in ../shared/data/oscd-s2, by radiometry.

Each pair is predicted as delivered (uint16 B02,B03,B04,B08 stacks, dates on different grids,
``--bands 3,2,1``) with each ``--radiometry`` mode, and from a hand-made 8-bit true-colour
rendition (B04,B03,B02 with 0..3000 -> 0..255, as ``gdal_translate -scale 0 3000 0 255 -ot
Byte`` gives). F1, precision and recall are pooled over all pairs' valid pixels. Prints a
table and asserts nothing.

    python3 benchmarks/s2_radiometry.py [--model M] [--cities beirut,nantes]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import rasterio

from geocd.changemap import NODATA, is_changed
from geocd.checkpoint import load_models
from geocd.data.labels import IGNORE
from geocd.inference.predict import PredictOptions, PredictOutputs, predict
from geocd.metrics import binary_scores, confusion_matrix

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "oscd-s2"
RENDITION_MAX = 3000.0


def rendition(src_path: Path, dst_path: Path) -> Path:
    """B04,B03,B02 of a B02,B03,B04,B08 stack as 8-bit true colour (0..3000 -> 0..255)."""
    with rasterio.open(src_path) as src:
        data = src.read([3, 2, 1]).astype(np.float32)
        profile = src.profile | {"dtype": "uint8", "count": 3, "nodata": None}
    with rasterio.open(dst_path, "w", **profile) as dst:
        dst.write(np.clip(data * (255 / RENDITION_MAX), 0, 255).round().astype(np.uint8))
    return dst_path


def confusion(change_tif: Path, truth_tif: Path, threshold: float) -> np.ndarray:
    """The 2x2 ``[truth, prediction]`` unchanged/changed matrix over pixels valid in the prediction."""
    with rasterio.open(change_tif) as pred, rasterio.open(truth_tif) as truth:
        encoded = pred.read(1)
        changed = truth.read(1) > 0
    return confusion_matrix(np.where(encoded != NODATA, changed, IGNORE), is_changed(encoded, threshold), 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", default=[])
    parser.add_argument("--cities", help="comma-separated subset")
    parser.add_argument("--modes", default="auto,8-bit rendition")
    args = parser.parse_args()
    cities = args.cities.split(",") if args.cities else sorted(p.name for p in SHARED.iterdir() if p.is_dir())
    models = load_models(args.model)
    modes = args.modes.split(",")
    totals = {m: np.zeros((2, 2), np.int64) for m in modes}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        print("| city | " + " | ".join(f"F1 {m}" for m in modes) + " |")
        print("| --- |" + " --- |" * len(modes))
        for city in cities:
            row = []
            for mode in modes:
                out = work / f"{city}-{mode}.tif".replace(" ", "_")
                before, after = SHARED / city / "before.tif", SHARED / city / "after.tif"
                if mode == "8-bit rendition":
                    before = rendition(before, work / f"{city}-before8.tif")
                    after = rendition(after, work / f"{city}-after8.tif")
                    options = PredictOptions(num_workers=0)
                else:
                    radiometry = tuple(float(v) for v in mode.split(":")) if ":" in mode else mode
                    options = PredictOptions(num_workers=0, bands=(3, 2, 1), radiometry=radiometry)
                predict(before, after, models=models, outputs=PredictOutputs(raster=out), options=options)
                matrix = confusion(out, SHARED / city / "change.tif", options.threshold)
                totals[mode] += matrix
                row.append(f"{binary_scores(matrix).f1:.3f}")
            print(f"| {city} | " + " | ".join(row) + " |", flush=True)
        print("| **all (pooled)** | " + " | ".join(f"{binary_scores(totals[m]).f1:.3f}" for m in modes) + " |")
        for m in modes:
            pooled = binary_scores(totals[m])
            print(f"{m}: F1 {pooled.f1:.3f}, precision {pooled.precision:.3f}, recall {pooled.recall:.3f}")


if __name__ == "__main__":
    main()
