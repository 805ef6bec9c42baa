"""Prepare the default model's training archives: the Sentinel-2 archive and the pinned split.

    python3 scripts/default_model_data.py OSCD_S2_DIR WORK_DIR ARCHIVE...

Writes ``WORK_DIR/archive/s2`` (one change pair per city of ``OSCD_S2_DIR``: the red, green and
blue bands of ``before.tif`` and ``after.tif`` as delivered -- uint16, each date on its own grid
-- and ``change.tif`` as an archive change mask: OSCD's 255 = change becomes 1, since 255 means
ignore in an archive) and ``WORK_DIR/landcover/s2`` (each date of each city as a land-cover image
whose labels come from its own near-infrared band, :func:`spectral_landcover`), then sets the
``split`` column of those archives and of every ``ARCHIVE`` from ``scripts/default_model_split.yaml``:
``val`` for the names listed there (a city's land-cover images follow the city), ``train`` for all others.
"""

from __future__ import annotations

import re
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import rasterio
import yaml

from geocd.data.archive import LandCoverRecord, PairRecord, manifest_path, open_archive, write_manifest
from geocd.data.labels import IGNORE, encode_set
from geocd.schema import LandCover

S2_RGB = (3, 2, 1)
"""B04, B03, B02 of the oscd-s2 stacks (B02, B03, B04, B08)."""
WATER, GROUND, LOW_VEGETATION, TREE, BUILDING = (LandCover.WATER, LandCover.GROUND, LandCover.LOW_VEGETATION, LandCover.TREE,
                                                 LandCover.BUILDING)
WATER_NDWI = 0.2
"""McFeeters' NDWI (green - NIR) / (green + NIR) above which a dark pixel (:data:`WATER_NIR`) is water."""
WATER_NIR = 500
"""Top-of-atmosphere NIR (B08, reflectance x 10000) below which water may be: dense city blocks reach NDWI > 0 too."""
VEGETATION_NDVI = 0.35
"""NDVI (NIR - red) / (NIR + red) above which a pixel is vegetation (low vegetation or tree: not told apart)."""
BARE_NDVI = 0.15
"""NDVI below which a pixel that is not water is unvegetated (ground or building: not told apart)."""
CITY_DATE = re.compile(r"_(before|after)$")
"""The date suffix of a Sentinel-2 land-cover image's name (``s2_pisa_before``: the city is ``s2_pisa``)."""


def spectral_landcover(stack: np.ndarray) -> np.ndarray:
    """Land-cover labels of a (B02, B03, B04, B08) top-of-atmosphere stack from NDWI and NDVI.

    Water where NDWI > :data:`WATER_NDWI` and NIR < :data:`WATER_NIR`; else {low vegetation, tree}
    where NDVI > :data:`VEGETATION_NDVI`; else {ground, building} where NDVI < :data:`BARE_NDVI`; the rest, and
    pixels without signal, ignore. Weak labels, but from a band the RGB model never sees.
    """
    _, green, red, nir = stack.astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        ndwi, ndvi = (green - nir) / (green + nir), (nir - red) / (nir + red)
    labels = np.full(ndvi.shape, IGNORE, np.uint8)
    labels[ndvi < BARE_NDVI] = encode_set((GROUND, BUILDING))
    labels[ndvi > VEGETATION_NDVI] = encode_set((LOW_VEGETATION, TREE))
    labels[(ndwi > WATER_NDWI) & (nir < WATER_NIR)] = WATER
    labels[~np.isfinite(ndvi) | ~np.isfinite(ndwi) | (nir + red == 0)] = IGNORE
    return labels


def write_rgb(source: rasterio.io.DatasetReader, out: Path) -> None:
    """The red, green and blue bands of an oscd-s2 stack, values, grid and band names as delivered."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(out, "w", **{**source.profile, "count": len(S2_RGB), "driver": "GTiff"}) as dst:
        dst.write(source.read(list(S2_RGB)))
        dst.descriptions = tuple(source.descriptions[b - 1] for b in S2_RGB)


def write_s2_archive(source: Path, folder: Path) -> Path:
    """The red/green/blue change archive of the oscd-s2 cities, values and grids as delivered."""
    records = []
    for city in sorted(p for p in source.iterdir() if (p / "change.tif").is_file()):
        paths = {}
        for date in ("before", "after"):
            paths[date] = folder / date / f"{city.name}.tif"
            with rasterio.open(city / f"{date}.tif") as src:
                write_rgb(src, paths[date])
        change = folder / "change" / f"{city.name}.tif"
        change.parent.mkdir(parents=True, exist_ok=True)
        with rasterio.open(city / "change.tif") as src:
            with rasterio.open(change, "w", **{**src.profile, "driver": "GTiff"}) as dst:
                dst.write((src.read() > 0).astype("uint8"))
        records.append(PairRecord(f"s2_{city.name}", paths["before"], paths["after"], change=change.resolve(), dataset="s2"))
    return write_manifest(records, folder / "manifest.csv")


def write_s2_landcover(source: Path, folder: Path) -> Path:
    """A land-cover archive of every date of the oscd-s2 cities: RGB as delivered, :func:`spectral_landcover` labels."""
    records = []
    for city in sorted(p for p in source.iterdir() if (p / "change.tif").is_file()):
        for date in ("before", "after"):
            name = f"s2_{city.name}_{date}"
            image, landcover = folder / "image" / f"{name}.tif", folder / "landcover" / f"{name}.tif"
            with rasterio.open(city / f"{date}.tif") as src:
                write_rgb(src, image)
                landcover.parent.mkdir(parents=True, exist_ok=True)
                profile = {**src.profile, "count": 1, "dtype": "uint8", "nodata": IGNORE, "driver": "GTiff"}
                with rasterio.open(landcover, "w", **profile) as dst:
                    dst.write(spectral_landcover(src.read()), 1)
            records.append(LandCoverRecord(name, image.resolve(), landcover.resolve(), dataset="s2"))
    return write_manifest(records, folder / "manifest.csv")


def pin_split(archive: Path, val: set[str]) -> None:
    """Rewrite ``archive``'s manifest with ``split`` = val for the names in ``val``, train otherwise."""
    manifest = manifest_path(archive)
    records = open_archive(manifest).records
    write_manifest([replace(r, split="val" if r.name in val or CITY_DATE.sub("", r.name) in val else "train")
                    for r in records], manifest)


def main(source: str, work: str, *archives: str) -> None:
    val = set(yaml.safe_load((Path(__file__).parent / "default_model_split.yaml").read_text())["val"])
    s2 = write_s2_archive(Path(source), Path(work) / "archive" / "s2")
    s2_landcover = write_s2_landcover(Path(source), Path(work) / "landcover" / "s2")
    for archive in (s2, s2_landcover, *archives):
        pin_split(Path(archive), val)


if __name__ == "__main__":
    main(*sys.argv[1:])
