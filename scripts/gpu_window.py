"""A GPU window for the default model: pack the training data here, train on a borrowed GPU.

    python3 scripts/gpu_window.py pack DATA_DIR BUNDLE.zip
    python3 scripts/gpu_window.py train BUNDLE.zip RUN_DIR [--minutes 8] [--batch-size 128] ...

``pack`` reads a data folder laid out as ``../shared/data`` (see its README) and writes a training
bundle (:mod:`geocd.training.bundle`, at most 50 MiB): every real change pair except the validation
scenes (:data:`VALIDATION`) -- the chip folders' PNG pairs and the Sentinel-2 cities of ``oscd-s2``
(red, green, blue; 'after' warped onto 'before'; one percentile stretch of both dates) -- and every
land-cover map whose folder has a mapping shipped with geocd, pixels finer than 0.5 m coarsened.
``train`` runs :func:`geocd.training.gpu_window.train_window` on it (needs neither rasterio nor the data).
"""

from __future__ import annotations

import argparse
import functools
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image

from geocd.training.bundle import BundleEntry, coarsened, write_bundle

CHIP_RESOLUTION_M = {"levir": 0.5, "levir-full": 0.5, "egy-bcd": 0.5, "cdd": 0.5, "dsifn": 2.0, "sztaki": 1.5,
                     "oscd": 10.0}
"""Chip folders (``A/``, ``B/``, ``label/`` PNGs) and their ground resolution (``../shared/README.md``)."""
S2_FOLDER, S2_RESOLUTION_M, S2_RGB = "oscd-s2", 10.0, (3, 2, 1)
LANDCOVER_RESOLUTION_M = {"dubai": 1.0, "loveda": 0.3, "potsdam": 0.05, "gid": 4.0, "chesapeake": 1.0,
                          "deepglobe": 0.5}
VALIDATION = {"levir-full": {"test_101"}, "egy-bcd": {"val_1", "val_2", "val_3", "test_1", "test_2"},
              "dsifn": {"5_3", "6_3"}, "sztaki": {"Szada_train_6", "Tisza_train_40"},
              "oscd-s2": {"brasilia", "milano", "montpellier"}, "cdd": {"00000"}}
"""The validation scenes of ``../shared/README.md`` ("Validation set"), never packed (landsat-taizhou is not read)."""
MIN_RESOLUTION_M = 0.5
MIN_SIDE = 256


def pack(data: Path, bundle: Path) -> None:
    """Write the bundle of ``data`` and print what went in."""
    entries = [coarsened(e, MIN_RESOLUTION_M, MIN_SIDE) for e in [*_chip_pairs(data), *_s2_pairs(data),
                                                                      *_landcover(data)]]
    size = write_bundle(entries, bundle)
    datasets = sorted({e.dataset for e in entries})
    for dataset in datasets:
        chosen = [e for e in entries if e.dataset == dataset]
        pixels = sum(e.before.shape[0] * e.before.shape[1] for e in chosen)
        kind = "pairs" if chosen[0].is_pair else "land-cover maps"
        print(f"{dataset}: {len(chosen)} {kind}, {pixels / 1e6:.2f} MP")
    print(f"{bundle}: {len(entries)} entries, {size / 2**20:.1f} MiB")


def _chip_pairs(data: Path) -> Iterator[BundleEntry]:
    for dataset, resolution in CHIP_RESOLUTION_M.items():
        for before in sorted((data / dataset / "A").glob("*.png")):
            if before.stem in VALIDATION.get(dataset, set()):
                continue
            after, label = (data / dataset / folder / before.name for folder in ("B", "label"))
            change = np.asarray(Image.open(label).convert("L"))
            yield BundleEntry(f"{dataset}/{before.stem}", dataset, resolution, _rgb(before), _rgb(after),
                              (change > 127).astype(np.uint8))


def _s2_pairs(data: Path) -> Iterator[BundleEntry]:
    import rasterio  # here, not above: ``train`` runs where rasterio may be missing

    from geocd.data.pair import warp_onto
    from geocd.data.radiometry import fit_stretches
    from geocd.data.rasters import grid_of

    for city in sorted(p for p in (data / S2_FOLDER).glob("*") if (p / "change.tif").is_file()):
        if city.name in VALIDATION[S2_FOLDER]:
            continue
        with rasterio.open(city / "before.tif") as before, rasterio.open(city / "after.tif") as after_src, \
                rasterio.open(city / "change.tif") as change:
            after = warp_onto(after_src, grid_of(before))
            dates = [src.read(list(S2_RGB)).astype(np.float32) for src in (before, after)]
            valid = (dates[0] > 0).all(0) & (dates[1] > 0).all(0)
            stretches = fit_stretches("stretch", [before.dtypes[0]] * 2, [((1.0,) * 3, (0.0,) * 3)] * 2,
                                      [d[:, valid] for d in dates])
            rgb = [np.round(s.apply(d)[0]).astype(np.uint8).transpose(1, 2, 0) for s, d in zip(stretches, dates)]
            labels = np.where(valid, change.read(1) > 0, 255).astype(np.uint8)
        yield BundleEntry(f"{S2_FOLDER}/{city.name}", S2_FOLDER, S2_RESOLUTION_M, *rgb, labels)


def _landcover(data: Path) -> Iterator[BundleEntry]:
    from geocd.data.landcover_import import MAPPINGS, load_mapping, map_mask
    from geocd.data.rasters import image_bands, open_any_raster

    for dataset, resolution in LANDCOVER_RESOLUTION_M.items():
        if not (MAPPINGS / f"{dataset}.yaml").is_file():
            print(f"{dataset}: left out (geocd ships no mapping for it)")
            continue
        mapping = load_mapping(dataset)
        for mask in sorted((data / "landcover" / dataset / "mask").glob("*")):
            image = next((data / "landcover" / dataset / "image").glob(f"{mask.stem}.*"))
            with open_any_raster(image) as src:
                rgb = src.read(image_bands(src)[:3]).transpose(1, 2, 0)
            yield BundleEntry(f"{dataset}/{mask.stem}", dataset, resolution, np.ascontiguousarray(rgb),
                              landcover=map_mask(mask, mapping))


def _rgb(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def main(argv: list[str] | None = None) -> None:
    """Parse the command line and run ``pack`` or ``train``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    packing = commands.add_parser("pack", help="pack a data folder into a training bundle")
    packing.add_argument("data", type=Path)
    packing.add_argument("bundle", type=Path)
    training = commands.add_parser("train", help="train from the default model for a fixed wall-clock budget")
    training.add_argument("bundle", type=Path)
    training.add_argument("output", type=Path)
    training.add_argument("--minutes", type=float, default=8.0, help="wall-clock budget of the whole command")
    training.add_argument("--checkpoint-at", type=float, nargs="*", default=[3.0], help="minutes of extra checkpoints")
    training.add_argument("--batch-size", type=int, help="default 128 on a GPU, 4 on the CPU")
    training.add_argument("--tile-size", type=int, default=256)
    training.add_argument("--lr", type=float, default=1e-3)
    training.add_argument("--max-steps", type=int, help="stop after this many steps (dry runs)")
    training.add_argument("--init-from", type=Path, help="starting checkpoint (default: the bundled default model)")
    training.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.command == "pack":
        pack(args.data, args.bundle)
        return
    from geocd.training.gpu_window import WindowOptions, train_window

    options = WindowOptions(minutes=args.minutes, checkpoint_minutes=tuple(args.checkpoint_at),
                            batch_size=args.batch_size, tile_size=args.tile_size, lr=args.lr, max_steps=args.max_steps,
                            seed=args.seed, **({"init_from": args.init_from} if args.init_from else {}))
    train_window(args.bundle, args.output, options, echo=functools.partial(print, flush=True))


if __name__ == "__main__":
    main()
