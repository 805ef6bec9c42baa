"""From/to accuracy of models on synthetic change pairs built from held-out land-cover images.

Each held-out image of the land-cover archives (names from ``--pairs``, e.g. the default model's
``scripts/default_model_split.yaml``) is cut to its top-left ``--size`` square and edited by
:func:`geocd.training.synthetic.synthetic_pair` (object paste, removal or destruction, with the
next held-out image as the source; fixed seeds), written as a georeferenced pair and predicted
with ``geocd.predict``. Pooled over all pairs, per model: change F1 on the edited pixels (rim
ignored) and, among the truly changed pixels with one known from and one known to class, the share
detected and the share of those detected whose from and to classes are both right. Prints a table.

    python3 benchmarks/synthetic_fromto.py ARCHIVE... --model [NAME=]M [--model ...] [--pairs a,b] [--size 512] [--json F]

``--json`` also writes the figures per model name (scripts/default_model_table.py reads them).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import rasterio
import yaml
from rasterio.windows import Window

from geocd.changemap import is_changed
from geocd.checkpoint import load_checkpoint
from geocd.data.archive import read_landcover_archive
from geocd.data.labels import IGNORE
from geocd.inference.predict import PredictOptions, PredictOutputs, predict
from geocd.metrics import binary_scores, confusion_matrix
from geocd.schema import LandCover
from geocd.training.synthetic import synthetic_pair

SPLIT = Path(__file__).resolve().parents[1] / "scripts" / "default_model_split.yaml"
LAND_COVER = tuple(c for c in LandCover if c != LandCover.UNCHANGED)
"""The land-cover class ids: a pixel whose from and to classes are among them has a known from -> to."""


def held_out(archives: list[str], names: set[str], size: int) -> list[tuple[np.ndarray, np.ndarray, dict]]:
    """(image, label, profile) of each held-out image, cut to ``size`` (images smaller than that skipped)."""
    out = []
    for archive in archives:
        for record in read_landcover_archive(archive):
            if record.name not in names:
                continue
            with rasterio.open(record.image) as src, rasterio.open(record.landcover) as lab:
                if min(src.width, src.height) < size:
                    continue
                window = Window(0, 0, size, size)
                profile = src.profile | {"width": size, "height": size, "transform": src.window_transform(window),
                                         "driver": "GTiff"}
                out.append((src.read(window=window).astype(np.float32), lab.read(1, window=window).astype(np.int64),
                            profile))
    return out


def write_pairs(images: list, folder: Path) -> list[tuple[Path, Path, np.ndarray, np.ndarray, np.ndarray]]:
    """Synthetic pairs written as GeoTIFFs: (before, after, change, from, to) per pair."""
    pairs = []
    for i, (image, label, profile) in enumerate(images):
        source_image, source_label, _ = images[(i + 1) % len(images)]
        pair = synthetic_pair(image, label, source_image, source_label, np.random.default_rng(i))
        paths = []
        for date, data in (("before", pair.before), ("after", pair.after)):
            path = folder / f"{i}_{date}.tif"
            with rasterio.open(path, "w", **profile) as dst:
                dst.write(np.clip(np.round(data), 0, 255).astype(np.uint8))
            paths.append(path)
        pairs.append((*paths, pair.change, pair.label_before, pair.label_after))
    return pairs


def scores(model: Path, pairs: list, folder: Path) -> dict[str, float]:
    """Pooled change F1, share of known from/to changes detected, and from/to accuracy among those detected."""
    loaded = [load_checkpoint(model)]
    matrix = np.zeros((2, 2), np.int64)
    known = detected = right = 0
    for i, (before, after, change, truth_from, truth_to) in enumerate(pairs):
        raster = folder / f"{i}_change.tif"
        predict(before, after, models=loaded, outputs=PredictOutputs(raster=raster, overwrite=True))
        with rasterio.open(raster) as src:
            probability, pred_from, pred_to = src.read()
        flagged = is_changed(probability, PredictOptions().threshold)
        matrix += confusion_matrix(change, flagged, 2, ignore=IGNORE)
        classes = (change == 1) & np.isin(truth_from, LAND_COVER) & np.isin(truth_to, LAND_COVER)
        known += np.count_nonzero(classes)
        detected += np.count_nonzero(classes & flagged)
        right += np.count_nonzero(classes & flagged & (pred_from == truth_from) & (pred_to == truth_to))
    return {"f1": binary_scores(matrix).f1, "detected": detected / max(known, 1),
            "from_to": right / max(detected, 1), "pixels": int(known)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("archives", nargs="+")
    parser.add_argument("--model", action="append", required=True, help="NAME=PATH or PATH (named by its stem)")
    parser.add_argument("--pairs", default=",".join(yaml.safe_load(SPLIT.read_text())["val"]))
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    models = dict(m.split("=", 1) if "=" in m else (Path(m).stem, m) for m in args.model)
    images = held_out(args.archives, set(args.pairs.split(",")), args.size)
    with tempfile.TemporaryDirectory() as tmp:
        pairs = write_pairs(images, Path(tmp))
        print(f"{len(pairs)} synthetic pairs of {args.size}x{args.size} px from held-out land-cover images")
        print("| model | change F1 | known from/to changes detected | from/to right among detected |")
        print("| --- | --- | --- | --- |")
        figures = {}
        for name, model in models.items():
            s = figures[name] = scores(Path(model), pairs, Path(tmp))
            print(f"| {name} | {s['f1']:.3f} | {s['detected']:.3f} | {s['from_to']:.3f} |")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
