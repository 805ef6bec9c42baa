"""Import single-date land-cover chip folders into a georeferenced land-cover archive.

SRC holds ``image/`` and ``mask/`` (or ``train/``, ``val/`` and ``test/`` sub-folders that
each do; ``test`` is recorded as split ``val``); an image and its mask share a file stem.
A YAML *mapping* turns the mask's grey values or RGB colours into land-cover label values
(:mod:`geocd.data.labels`): one SECOND class, a set of classes, or ``IGNORE``; 0 is never written.
A mapping may code masks by file-name prefix (``prefixes:``, e.g. GID's PSC5 and PSC15 crops) and
name an *override* folder of masks beside ``mask/`` (e.g. building footprints that turn
Chesapeake's impervious pixels into buildings).

The archive is ``DST/image/NAME.tif``, ``DST/landcover/NAME.tif`` (uint8, on the image's
grid) and ``DST/manifest.csv`` of kind ``landcover``.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml
from rasterio.io import DatasetReader

from geocd.data.archive import LandCoverRecord, read_landcover_archive
from geocd.data.chips import EXTENSIONS, ChipLayout, import_chip_folder, label_rgb, value_text
from geocd.data.labels import IGNORE, encode_set
from geocd.data.rasters import image_bands, open_any_raster
from geocd.errors import InputError
from geocd.schema import SECOND

MAPPINGS = Path(__file__).with_name("mappings")
CLASS_IDS = {c.name: c.id for c in SECOND.landcover}
NEEDS_CODING = "a mapping needs exactly one of 'values:' or 'colours:' with entries"


@dataclass(frozen=True)
class Coding:
    """One mask coding: grey values, or colours packed as ``0xRRGGBB``, to land-cover values."""

    colours: bool
    table: dict[int, int]

    def describe(self, key: float) -> str:
        """A mask value or colour as written in messages."""
        return f"colour #{int(key):06X}" if self.colours else f"value {value_text(key)}"


@dataclass(frozen=True)
class Override:
    """Where the mask of the same stem in ``folder`` (beside ``mask/``) is non-zero, pixels whose
    mask value or colour is one of ``keys`` get the land-cover value ``value``."""

    folder: str
    keys: tuple[int, ...]
    value: int

    def apply(self, path: Path, keys: np.ndarray, values: np.ndarray) -> None:
        """Overwrite ``values`` (of mask ``path``, whose keys are ``keys``) in place."""
        folder = path.parent.parent / self.folder
        found = sorted(folder.glob(f"{glob.escape(path.stem)}.*")) if folder.is_dir() else []
        found = [f for f in found if f.suffix.lower() in EXTENSIONS]
        if not found:
            raise InputError(path, f"has no matching mask in {self.folder}/")
        with open_any_raster(found[0]) as src:
            marked = src.read(image_bands(src)[0]) != 0
        if marked.shape != keys.shape:
            raise InputError(found[0], f"is {marked.shape[1]}x{marked.shape[0]} pixels, "
                                       f"{path.parent.name}/{path.name} is {keys.shape[1]}x{keys.shape[0]}")
        values[marked & np.isin(keys, self.keys)] = self.value


@dataclass(frozen=True)
class LandCoverMapping:
    """A mapping file: its coding by mask file-name prefix (``""``: every mask), and an optional override."""

    path: Path
    codings: dict[str, Coding]
    override: Override | None = None

    def coding(self, path: Path) -> Coding:
        """The coding of mask ``path``: that of the longest prefix its file name starts with (any case)."""
        matches = [prefix for prefix in self.codings if path.name.lower().startswith(prefix.lower())]
        if not matches:
            raise InputError(path, f"file name starts with none of the prefixes of {self.path.name} "
                                   f"({', '.join(self.codings)})")
        return self.codings[max(matches, key=len)]

    def convert(self, path: Path, src: DatasetReader) -> np.ndarray:
        """An open mask as uint8 land-cover values ``[h, w]``; an unknown value or colour is an error naming ``path``."""
        coding = self.coding(path)
        keys = _mask_keys(path, src, coding.colours, self.path.name)
        values = np.zeros(keys.shape, np.uint8)  # 0 is no label value: it marks unmapped pixels
        for key, value in coding.table.items():
            values[keys == key] = value
        unmapped = values == 0
        if unmapped.any():
            key = np.unique(keys[unmapped])[0]
            raise InputError(path, f"unknown mask {coding.describe(key)} (not in {self.path.name})")
        if self.override is not None:
            self.override.apply(path, keys, values)
        return values


def mapping_path(name: str) -> Path:
    """The file of a mapping shipped with geocd, by short name (``dubai``, ``loveda``, ...)."""
    path = MAPPINGS / f"{name}.yaml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in MAPPINGS.glob("*.yaml")))
        raise InputError(None, f"no shipped mapping {name!r} (known: {known})")
    return path


def load_mapping(mapping: str | os.PathLike[str]) -> LandCoverMapping:
    """Read a mapping given as a shipped short name or a YAML file path, checking every entry.

    The YAML holds one coding (``values:`` or ``colours:``) or ``prefixes:`` (file-name prefix ->
    coding), and optionally ``override:`` (``folder``, ``where``, ``class``; see :class:`Override`).
    """
    path = Path(mapping)
    if not path.is_file():
        if path.suffix or len(path.parts) > 1:
            raise InputError(path, "the mapping file does not exist")
        path = mapping_path(str(mapping))
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError, UnicodeDecodeError) as error:
        raise InputError(path, f"cannot be read as a YAML mapping ({type(error).__name__})") from None
    if not isinstance(data, dict):
        raise InputError(path, NEEDS_CODING)
    unknown = [key for key in data if key not in ("values", "colours", "prefixes", "override")]
    if unknown:
        raise InputError(path, f"unknown key {unknown[0]!r} (use 'values', 'colours' or 'prefixes', and 'override')")
    override = _override(path, data.pop("override")) if "override" in data else None
    if "prefixes" not in data:
        return LandCoverMapping(path, {"": _coding(path, data)}, override)
    prefixes = data.pop("prefixes")
    if data or not isinstance(prefixes, dict) or not prefixes:
        raise InputError(path, "'prefixes:' needs file-name prefix entries, each with a coding, and no other coding")
    return LandCoverMapping(path, {str(prefix): _coding(path, coding) for prefix, coding in prefixes.items()}, override)


def _coding(path: Path, data: object) -> Coding:
    """A ``{values: ...}`` or ``{colours: ...}`` coding, every entry checked."""
    if not isinstance(data, dict) or len(data) != 1 or not isinstance(next(iter(data.values())), dict):
        raise InputError(path, NEEDS_CODING)
    kind, entries = next(iter(data.items()))
    if kind not in ("values", "colours"):
        raise InputError(path, f"unknown key {kind!r} (use 'values' or 'colours')")
    colours = kind == "colours"
    table = {}
    for key, target in entries.items():
        source = _colour_key(path, key) if colours else _value_key(path, key)
        table[source] = _label_value(path, key, target)
    return Coding(colours, table)


def _override(path: Path, data: object) -> Override:
    if (not isinstance(data, dict) or set(data) != {"folder", "where", "class"} or not isinstance(data["folder"], str)
            or not isinstance(data["where"], list) or not data["where"]):
        raise InputError(path, "'override:' needs 'folder:' (masks beside mask/), 'where:' (a list of mask values "
                               "or colours) and 'class:'")
    keys = tuple(_colour_key(path, k) if isinstance(k, str) else _value_key(path, k) for k in data["where"])
    return Override(data["folder"], keys, _label_value(path, "override", data["class"]))


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
    with open_any_raster(path) as src:
        return mapping.convert(path, src)


def _mask_keys(path: Path, src: DatasetReader, colours: bool, mapping_name: str) -> np.ndarray:
    """The mask's grey values, or its colours packed as ``0xRRGGBB``, as ``[h, w]``."""
    bands = image_bands(src)
    if not colours:
        if len(bands) != 1:
            raise InputError(path, f"has {len(bands)} bands; {mapping_name} maps the values of a one-band mask")
        return src.read(bands[0])
    if src.dtypes[bands[0] - 1] != "uint8":
        raise InputError(path, f"is {src.dtypes[bands[0] - 1]}; {mapping_name} maps 8-bit colours")
    rgb = label_rgb(src)
    if rgb is None:
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
    bands: Sequence[int] | None = None,
    overwrite: bool = False,
) -> list[LandCoverRecord]:
    """Convert an image/mask folder into ``DST/image``, ``DST/landcover`` and ``DST/manifest.csv``.

    ``mapping`` is a shipped mapping's short name or a YAML file. Chip names, splits, grids and
    the rollback on failure are those of :func:`geocd.data.chips.import_chip_folder` (images
    without georeferencing go on a local grid of ``resolution`` metre pixels). Masks must have
    their image's size; land-cover rasters go on the image's grid. ``bands`` (1-based) keeps only
    those image bands, e.g. ``(1, 2, 3)`` for the RGB of R,G,B,NIR images.
    """
    coding = load_mapping(mapping)
    layout = ChipLayout(("image",), ("mask",), ("image", "landcover"), coding.convert, labels_on_image_grid=True)
    imported = import_chip_folder(source, destination, (layout,), LandCoverRecord,
                                  resolution=resolution, dataset=dataset, bands=bands, overwrite=overwrite)
    return read_landcover_archive(imported.manifest)
