"""Import single-date land-cover chip folders into a georeferenced land-cover archive.

SRC holds ``image/`` and ``mask/`` (or ``train/``, ``val/`` and ``test/`` sub-folders that
each do; ``test`` is recorded as split ``val``); an image and its mask share a file stem.
A YAML *mapping* turns the mask's grey values or RGB colours into geocd land-cover values:

* ``1..K``: one SECOND land-cover class;
* ``SET_BASE + bitmask``: any of a set of classes (bit ``c - 1`` for class ``c``), for coarse
  source classes such as "vegetation" = {low vegetation, tree};
* ``IGNORE``: not labelled. 0 is never written.

The archive is ``DST/image/NAME.tif``, ``DST/landcover/NAME.tif`` (uint8, on the image's
grid) and ``DST/manifest.csv`` with columns ``name,dataset,split,image,landcover``.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import yaml
from rasterio.enums import ColorInterp
from rasterio.io import DatasetReader

from geocd.atomic import atomic_output
from geocd.data.archive import check_unique_names, write_manifest
from geocd.data.chips import (
    EXTENSIONS,
    SPLITS,
    _Bands,
    check_import,
    _child,
    _convert,
    _Job,
    _Layout,
    _layout_pairs,
    _open,
    _Pair,
    _palette_rgb,
    _plan,
    _rollback,
    _text,
    _write,
)
from geocd.data.rasters import image_bands
from geocd.errors import InputError
from geocd.schema import SECOND

IGNORE = 255
SET_BASE = 64
COLUMNS = ("name", "dataset", "split", "image", "landcover")
MANIFEST = "manifest.csv"
MAPPINGS = Path(__file__).with_name("mappings")
CLASS_IDS = {c.name: c.id for c in SECOND.landcover}
# _layout_pairs matches the stems of every folder in ``images + labels``; _plan writes
# source i of a pair to ``DST/outputs[i]/NAME.tif``.
LAYOUT = _Layout(("image", "mask"), (), ("image", "landcover"))
NO_LAYOUT = "no image/ and mask/ folders (in it or in train/, val/, test/)"


@dataclass(frozen=True)
class LandCoverRecord:
    """One chip of a land-cover archive, with absolute paths."""

    name: str
    image: Path
    landcover: Path
    dataset: str = ""
    split: str = ""


@dataclass(frozen=True)
class LandCoverMapping:
    """A mask coding: grey values, or colours packed as ``0xRRGGBB``, to land-cover values."""

    path: Path
    colours: bool
    table: dict[int, int]

    def describe(self, key: float) -> str:
        """A mask value or colour as written in messages."""
        return f"colour #{int(key):06X}" if self.colours else f"value {_text(key)}"


def encode_set(classes: Iterable[int]) -> int:
    """The label value allowing any of ``classes`` (ids 1..K); one class encodes as its id."""
    ids = sorted(set(classes))
    if not ids or not all(1 <= c <= SECOND.num_landcover for c in ids):
        raise ValueError(f"a class set needs ids in 1..{SECOND.num_landcover}, got {ids}")
    if len(ids) == 1:
        return ids[0]
    return SET_BASE + sum(1 << (c - 1) for c in ids)


def decode_value(value: int) -> tuple[int, ...]:
    """The class ids a label value allows, ascending; ``()`` for :data:`IGNORE`."""
    value = int(value)
    if value == IGNORE:
        return ()
    if 1 <= value <= SECOND.num_landcover:
        return (value,)
    bits = value - SET_BASE
    if 0 < bits < 1 << SECOND.num_landcover:
        return tuple(c for c in range(1, SECOND.num_landcover + 1) if bits & (1 << (c - 1)))
    raise ValueError(f"{value} is not a land-cover label value")


def mapping_path(name: str) -> Path:
    """The file of a mapping shipped with geocd, by short name (``dubai``, ``loveda``, ...)."""
    path = MAPPINGS / f"{name}.yaml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in MAPPINGS.glob("*.yaml")))
        raise InputError(None, f"no shipped mapping {name!r} (known: {known})")
    return path


def load_mapping(mapping: str | os.PathLike[str]) -> LandCoverMapping:
    """Read a mapping given as a shipped short name or a YAML file path, checking every entry."""
    path = Path(mapping)
    if not path.is_file():
        if path.suffix or len(path.parts) > 1:
            raise InputError(path, "mapping file does not exist")
        path = mapping_path(str(mapping))
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError, UnicodeDecodeError) as error:
        raise InputError(path, f"cannot be read as a YAML mapping ({type(error).__name__})") from None
    if not isinstance(data, dict) or len(data) != 1 or not isinstance(next(iter(data.values())), dict):
        raise InputError(path, "a mapping needs exactly one of 'values:' or 'colours:' with entries")
    kind, entries = next(iter(data.items()))
    if kind not in ("values", "colours"):
        raise InputError(path, f"unknown key {kind!r} (use 'values' or 'colours')")
    colours = kind == "colours"
    table = {}
    for key, target in entries.items():
        source = _colour_key(path, key) if colours else _value_key(path, key)
        table[source] = _label_value(path, key, target)
    return LandCoverMapping(path, colours, table)


def _value_key(path: Path, key: object) -> int:
    if isinstance(key, bool) or not isinstance(key, int) or key < 0:
        raise InputError(path, f"mask value {key!r} is not a non-negative integer")
    return key


def _colour_key(path: Path, key: object) -> int:
    text = key.strip() if isinstance(key, str) else ""
    if len(text) != 7 or text[0] != "#" or not all(c in "0123456789abcdefABCDEF" for c in text[1:]):
        raise InputError(path, f"colour {key!r} is not a quoted '#RRGGBB' string")
    return int(text[1:], 16)


def _label_value(path: Path, key: object, target: object) -> int:
    """The label value of a mapping entry: a class name, ``ignore`` or a list of class names."""
    if isinstance(target, str) and target.strip().lower() == "ignore":
        return IGNORE
    names = target if isinstance(target, list) else [target]
    ids = []
    for name in names:
        class_id = CLASS_IDS.get(name.strip().lower()) if isinstance(name, str) else None
        if class_id is None:
            known = ", ".join(CLASS_IDS)
            raise InputError(path, f"{key!r} maps to unknown class {name!r} (known: {known}, or ignore)")
        ids.append(class_id)
    if not ids:
        raise InputError(path, f"{key!r} maps to an empty class list")
    return encode_set(ids)


def map_mask(path: str | os.PathLike[str], mapping: LandCoverMapping) -> np.ndarray:
    """A mask file as uint8 land-cover values ``[h, w]``; an unknown value or colour is an error."""
    path = Path(path)
    with _open(path) as src:
        keys = _mask_keys(path, src, mapping)
    values = np.zeros(keys.shape, np.uint8)  # 0 is no label value: it marks unmapped pixels
    for key, value in mapping.table.items():
        values[keys == key] = value
    unmapped = values == 0
    if unmapped.any():
        key = np.unique(keys[unmapped])[0]
        raise InputError(path, f"unknown mask {mapping.describe(key)} (not in {mapping.path.name})")
    return values


def _mask_keys(path: Path, src: DatasetReader, mapping: LandCoverMapping) -> np.ndarray:
    """The mask's grey values, or its colours packed as ``0xRRGGBB``, as ``[h, w]``."""
    bands = image_bands(src)
    paletted = src.colorinterp[bands[0] - 1] == ColorInterp.palette
    if not mapping.colours:
        if len(bands) != 1:
            raise InputError(path, f"has {len(bands)} bands; {mapping.path.name} maps the values of a one-band mask")
        return src.read(bands[0])
    if src.dtypes[bands[0] - 1] != "uint8":
        raise InputError(path, f"is {src.dtypes[bands[0] - 1]}; {mapping.path.name} maps 8-bit colours")
    if len(bands) >= 3:
        rgb = src.read(bands[:3])
    elif paletted:
        rgb = _palette_rgb(src, bands[0])
    else:
        rgb = np.repeat(src.read(bands[:1]), 3, axis=0)
    rgb = rgb.astype(np.uint32)
    return rgb[0] << 16 | rgb[1] << 8 | rgb[2]


def import_landcover(
    source: str | os.PathLike[str],
    destination: str | os.PathLike[str],
    mapping: str | os.PathLike[str],
    *,
    resolution: float | None = None,
    dataset: str | None = None,
    overwrite: bool = False,
) -> list[LandCoverRecord]:
    """Convert an image/mask folder into ``DST/image``, ``DST/landcover`` and ``DST/manifest.csv``.

    ``mapping`` is a shipped mapping's short name or a YAML file. Chip names are
    ``<dataset>_<split folder>_<stem>``; ``dataset`` defaults to SRC's folder name.
    Georeferenced images keep their grid; the others are placed on the local grid of
    :func:`geocd.data.chips.import_chips` (EPSG:32631, ``resolution`` metre pixels, tag
    ``GEOCD_GRID=local``). Masks must have their image's size; land-cover rasters go on
    the image's grid. If any chip fails, the files and folders written so far are removed.
    """
    coding = load_mapping(mapping)
    src_root, dst_root, manifest, name = check_import(source, destination, resolution, dataset, overwrite)
    pairs = _find_pairs(src_root, name)
    jobs = _plan(pairs, dst_root, resolution, overwrite)
    outputs = zip(pairs, jobs[0::2], jobs[1::2])
    records = [LandCoverRecord(p.name, image.target, mask.target, name, p.split) for p, image, mask in outputs]
    with _rollback([job.target.parent for job in jobs]) as written:
        _convert_all(jobs, coding, overwrite, written)
        with atomic_output(manifest, overwrite=True) as tmp:
            write_landcover_manifest(records, tmp)
    return read_landcover_archive(manifest)


def _find_pairs(root: Path, dataset: str) -> list[_Pair]:
    """The image/mask pairs of SRC itself or of its split sub-folders."""
    if any(_child(root, name) is not None for name in LAYOUT.images):
        pairs = _folder_pairs(root, dataset, "")
    else:
        splits = [(split, _child(root, split)) for split in SPLITS]
        splits = [(split, folder) for split, folder in splits if folder is not None]
        if not splits:
            raise InputError(root, NO_LAYOUT)
        pairs = [pair for split, folder in splits for pair in _folder_pairs(folder, dataset, split)]
    if not pairs:
        raise InputError(root, f"holds no chips ({' '.join(EXTENSIONS)})")
    return pairs


def _folder_pairs(folder: Path, dataset: str, split: str) -> list[_Pair]:
    present = [name for name in LAYOUT.images if _child(folder, name) is not None]
    if not present:
        raise InputError(folder, NO_LAYOUT)
    if len(present) == 1:
        missing = next(name for name in LAYOUT.images if name not in present)
        raise InputError(folder, f"has {present[0]}/ but no {missing}/ folder")
    return _layout_pairs(folder, LAYOUT, dataset, split)


def _convert_all(jobs: list[_Job], mapping: LandCoverMapping, overwrite: bool, written: list[Path]) -> None:
    """Write every land-cover raster and image (jobs come as image, mask per pair), adding each to ``written``."""
    for image, mask in zip(jobs[0::2], jobs[1::2]):
        _write_landcover(replace(mask, grid=image.grid), mapping, overwrite)
        written.append(mask.target)
        image.target.parent.mkdir(parents=True, exist_ok=True)
        _convert(image, overwrite)
        written.append(image.target)


def _write_landcover(job: _Job, mapping: LandCoverMapping, overwrite: bool) -> None:
    values = map_mask(job.source, mapping)
    job.target.parent.mkdir(parents=True, exist_ok=True)
    _write(job.target, values[np.newaxis], job.grid, _Bands([ColorInterp.gray], None, None), job.tags, overwrite)


def write_landcover_manifest(records: Sequence[LandCoverRecord], path: str | os.PathLike[str]) -> Path:
    """Write a land-cover manifest CSV with paths relative to its folder."""
    return write_manifest(records, path, COLUMNS)


def is_landcover_archive(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` (a folder or its manifest) is a land-cover archive rather than a change archive."""
    manifest = Path(path) / MANIFEST if Path(path).is_dir() else Path(path)
    if manifest.suffix.lower() != ".csv" or not manifest.is_file():
        return False
    with open(manifest, newline="") as f:
        return "landcover" in next(csv.reader(f), [])


def read_landcover_archive(path: str | os.PathLike[str]) -> list[LandCoverRecord]:
    """Read a land-cover archive (a folder holding manifest.csv, or the CSV) and check its files."""
    manifest = Path(path)
    if manifest.is_dir():
        manifest = manifest / MANIFEST
    if not manifest.is_file():
        raise InputError(manifest, "land-cover manifest does not exist")
    try:
        with open(manifest, newline="") as f:
            rows = list(csv.DictReader(f))
    except (OSError, csv.Error, UnicodeDecodeError) as error:
        raise InputError(manifest, f"cannot be read as a manifest ({type(error).__name__})") from None
    if not rows:
        raise InputError(manifest, "lists no chips")
    records = [_record(manifest, number, row) for number, row in enumerate(rows, start=1)]
    check_unique_names(manifest, [r.name for r in records], "chip")
    return records


def _record(manifest: Path, number: int, row: dict[str, str]) -> LandCoverRecord:
    unknown = set(row) - set(COLUMNS) - {None}
    if unknown:
        raise InputError(manifest, f"row {number}: unknown column {sorted(unknown)[0]!r} (known: {', '.join(COLUMNS)})")
    values = {k: (row.get(k) or "").strip() for k in COLUMNS}
    paths = {}
    for column in ("image", "landcover"):
        if not values[column]:
            raise InputError(manifest, f"row {number}: no {column!r} raster")
        paths[column] = (manifest.parent / values[column]).resolve()
        if not paths[column].is_file():
            raise InputError(paths[column], f"listed as {column} of row {number} in {manifest.name} does not exist")
    if values["split"] not in ("", "train", "val"):
        raise InputError(manifest, f"row {number}: split must be 'train' or 'val', not {values['split']!r}")
    name = values["name"] or paths["image"].stem
    return LandCoverRecord(name, paths["image"], paths["landcover"], values["dataset"], values["split"])
