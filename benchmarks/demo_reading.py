"""What a model makes of the ``geocd demo`` scene: one table row per planted change; asserts nothing.

Writes the demo pair, predicts it as ``geocd predict before.tif after.tif -o changes.gpkg
--landcover lc.tif --num-workers 0`` does, and prints per planted region (a connected part of
``truth.tif``) its true from -> to classes, the majority of the two land-cover maps over the
region, the ``change_type`` of the polygon covering most of it and the share of the
region the polygons cover; then the land-cover shares of the whole scene per date and the
polygons' area outside the planted changes.

    python3 benchmarks/demo_reading.py [--model M] [--size 512] [--seed 0]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import pyogrio
import rasterio
import shapely
from rasterio.features import geometry_mask, shapes

from geocd.checkpoint import load_models
from geocd.demo import write_demo_pair
from geocd.inference.predict import PredictOptions, PredictOutputs, predict
from geocd.schema import SECOND


def majority(values: np.ndarray) -> int:
    """The most frequent class id in ``values``."""
    return int(np.bincount(values.ravel(), minlength=len(SECOND.classes)).argmax())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", default=[])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        pair = write_demo_pair(tmp, size=args.size, seed=args.seed)
        vectors, landcover = Path(tmp) / "changes.gpkg", Path(tmp) / "lc.tif"
        predict(pair.before, pair.after, models=load_models(args.model),
                outputs=PredictOutputs(vectors=vectors, landcover=landcover), options=PredictOptions(num_workers=0))
        with rasterio.open(pair.truth) as src:
            truth, transform = src.read(), src.transform
        with rasterio.open(landcover) as src:
            cover = src.read()
        polygons = pyogrio.read_dataframe(vectors, layer="changes")
    name = SECOND.name
    print("| region | truth from → to | land cover read | polygons' change_type | share detected |")
    print("| --- | --- | --- | --- | --- |")
    for geometry, _ in shapes(truth[0], mask=truth[0] > 0, transform=transform, connectivity=4):
        region = shapely.geometry.shape(geometry)
        pixels = geometry_mask([geometry], truth.shape[1:], transform, invert=True)
        hits = polygons.intersection(region).area
        label = polygons["change_type"][hits.idxmax()] if hits.sum() > 0 else "-"
        centre = region.centroid
        print(f"| ({centre.x - transform.c:.0f} m E, {transform.f - centre.y:.0f} m S) "
              f"| {name(majority(truth[0][pixels]))} → {name(majority(truth[1][pixels]))} "
              f"| {name(majority(cover[0][pixels]))} → {name(majority(cover[1][pixels]))} "
              f"| {label} | {hits.sum() / region.area:.0%} |")
    for band, date in enumerate(("before", "after")):
        shares = np.bincount(cover[band].ravel(), minlength=len(SECOND.classes)) / cover[band].size
        print(f"{date} land cover: " + ", ".join(f"{name(c.id)} {shares[c.id]:.0%}" for c in SECOND.landcover))
    planted = truth[0] > 0
    pixel_area = abs(transform.a * transform.e)
    print(f"polygons: {len(polygons)}, {polygons.area.sum():.0f} m² in all; planted changes "
          f"{planted.sum() * pixel_area:.0f} m²")


if __name__ == "__main__":
    main()
