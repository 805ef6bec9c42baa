"""Prepare the default model's training archives: the Sentinel-2 archive and the pinned split.

    python3 scripts/default_model_data.py OSCD_S2_DIR WORK_DIR ARCHIVE...

Writes ``WORK_DIR/archive/s2`` (one change pair per city of ``OSCD_S2_DIR``: the red, green and
blue bands of ``before.tif`` and ``after.tif`` as delivered -- uint16, each date on its own grid
-- and ``change.tif`` as an archive change mask: OSCD's 255 = change becomes 1, since 255 means
ignore in an archive), then sets the ``split`` column of that archive and of every ``ARCHIVE``
from ``scripts/default_model_split.yaml``: ``val`` for the names listed there, ``train`` for all others.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import rasterio
import yaml

from geocd.data.archive import PairRecord, manifest_path, open_archive, write_manifest

S2_RGB = (3, 2, 1)
"""B04, B03, B02 of the oscd-s2 stacks (B02, B03, B04, B08)."""


def write_s2_archive(source: Path, folder: Path) -> Path:
    """The red/green/blue change archive of the oscd-s2 cities, values and grids as delivered."""
    records = []
    for city in sorted(p for p in source.iterdir() if (p / "change.tif").is_file()):
        paths = {}
        for date in ("before", "after"):
            out = folder / date / f"{city.name}.tif"
            out.parent.mkdir(parents=True, exist_ok=True)
            with rasterio.open(city / f"{date}.tif") as src:
                profile = {**src.profile, "count": len(S2_RGB), "driver": "GTiff"}
                with rasterio.open(out, "w", **profile) as dst:
                    dst.write(src.read(list(S2_RGB)))
                    dst.descriptions = tuple(src.descriptions[b - 1] for b in S2_RGB)
            paths[date] = out
        change = folder / "change" / f"{city.name}.tif"
        change.parent.mkdir(parents=True, exist_ok=True)
        with rasterio.open(city / "change.tif") as src:
            with rasterio.open(change, "w", **{**src.profile, "driver": "GTiff"}) as dst:
                dst.write((src.read() > 0).astype("uint8"))
        records.append(PairRecord(f"s2_{city.name}", paths["before"], paths["after"], change=change.resolve(), dataset="s2"))
    return write_manifest(records, folder / "manifest.csv")


def pin_split(archive: Path, val: set[str]) -> None:
    """Rewrite ``archive``'s manifest with ``split`` = val for the names in ``val``, train otherwise."""
    manifest = manifest_path(archive)
    records = open_archive(manifest).records
    write_manifest([replace(r, split="val" if r.name in val else "train") for r in records], manifest)


def main(source: str, work: str, *archives: str) -> None:
    val = set(yaml.safe_load((Path(__file__).parent / "default_model_split.yaml").read_text())["val"])
    s2 = write_s2_archive(Path(source), Path(work) / "archive" / "s2")
    for archive in (s2, *archives):
        pin_split(Path(archive), val)


if __name__ == "__main__":
    main(*sys.argv[1:])
