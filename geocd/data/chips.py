"""Import chip folders of public datasets into a georeferenced archive.

A chip folder holds the sub-folders of a :class:`ChipLayout` in its ``train/``, ``val/`` and
``test/`` sub-folders, or in SRC itself, where a ``train_``, ``val_`` or ``test_`` file-name
prefix (as in LEVIR-CD's flat releases) gives a chip's split. ``test`` pairs are recorded as
split ``test``: training leaves them out. Chips of one pair share a file stem; ``.png .jpg .jpeg .tif .tiff`` files are read, any
other file is skipped. :func:`import_chip_folder` imports any layouts;
:func:`import_chips` configures it for change chips:

* ``A/``, ``B/``, ``label/`` (LEVIR-CD, DSIFN, SZTAKI, OSCD copies): a 0/255 (or 0/1) label
  becomes a binary ``change`` raster of 0/1;
* ``im1/``, ``im2/``, ``label1/``, ``label2/`` (SECOND): labels coloured with the SECOND palette
  (or single-band ids 0..6) become ``label_before``/``label_after`` id rasters.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.enums import ColorInterp
from rasterio.io import DatasetReader

from geocd.atomic import atomic_output
from geocd.data.archive import MANIFEST_NAMES, LandCoverRecord, PairRecord, write_manifest
from geocd.data.rasters import RASTER_BLOCK, Grid, choose_bands, geotiff_profile, image_bands, open_any_raster
from geocd.errors import InputError, OutputError
from geocd.safe_names import FileNameClash, file_stems, pair_file
from geocd.schema import SECOND

EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff")
SPLITS = ("train", "val", "test")
LOCAL_CRS = CRS.from_epsg(32631)
LOCAL_CENTRE_EASTING = 500_000.0
LOCAL_TAG = {"GEOCD_GRID": "local"}
BINARY_VALUES = (0, 1, 255)
SECOND_COLOURS = {c.color: c.id for c in SECOND.classes}

LabelConverter = Callable[[Path, DatasetReader], np.ndarray]
"""Reads an open label chip (its path for messages) as uint8 label values ``[h, w]``; raises
:class:`InputError` naming the path on a value it does not know."""


@dataclass(frozen=True)
class ChipLayout:
    """The sub-folders of one chip-folder layout (matched case-insensitively) and what becomes of them.

    ``columns`` names the archive column of each folder, images first: chip ``i`` of a pair is
    written to ``DST/columns[i]/NAME.tif``. Label chips go through ``convert``; with
    ``labels_on_image_grid`` they are written on the first image's grid (and must have its size)
    even when georeferenced themselves, otherwise a georeferenced label keeps its own grid.
    """

    images: tuple[str, ...]
    labels: tuple[str, ...]
    columns: tuple[str, ...]
    convert: LabelConverter
    labels_on_image_grid: bool = False

    @property
    def folders(self) -> tuple[str, ...]:
        """Image folders, then label folders."""
        return self.images + self.labels

    def is_label(self, index: int) -> bool:
        """Whether chip ``index`` of a pair (in :attr:`folders` order) is a label."""
        return index >= len(self.images)


@dataclass(frozen=True)
class _Pair:
    """One chip pair found in SRC: its archive name and split, layout and sources."""

    name: str
    split: str
    layout: ChipLayout
    sources: tuple[Path, ...]


@dataclass(frozen=True)
class ChipImport:
    """An imported chip folder: its manifest and where its splits came from.

    ``splits_from`` is ``"split folders"``, ``"file-name prefixes"`` or ``""`` (no splits given:
    training draws them).
    """

    manifest: Path
    splits_from: str


@dataclass(frozen=True)
class _Job:
    """One file to convert: source, target, label converter (None for images), output grid, tags and
    the image bands to keep (None: all)."""

    source: Path
    target: Path
    convert: LabelConverter | None
    grid: Grid
    tags: dict[str, str]
    bands: tuple[int, ...] | None = None


def import_chips(
    source: str | os.PathLike[str],
    destination: str | os.PathLike[str],
    *,
    resolution: float | None = None,
    dataset: str | None = None,
    overwrite: bool = False,
) -> ChipImport:
    """Convert a change chip folder into ``DST/<column>/NAME.tif`` GeoTIFFs and ``DST/manifest.csv``.

    Columns: ``before``, ``after`` and ``change`` (0/1) or ``label_before``/``label_after`` (ids);
    the rest is :func:`import_chip_folder`. Read the records with :func:`read_archive`.
    """
    return import_chip_folder(source, destination, CHANGE_LAYOUTS, PairRecord,
                              resolution=resolution, dataset=dataset, overwrite=overwrite)


def import_chip_folder(
    source: str | os.PathLike[str],
    destination: str | os.PathLike[str],
    layouts: Sequence[ChipLayout],
    record: type[PairRecord] | type[LandCoverRecord],
    *,
    resolution: float | None = None,
    dataset: str | None = None,
    bands: Sequence[int] | None = None,
    overwrite: bool = False,
) -> ChipImport:
    """Convert a chip folder of one of ``layouts`` into GeoTIFFs and a manifest of ``record`` rows.

    Pair names are ``<dataset>_<split folder>_<stem>`` (empty parts left out); ``dataset``
    defaults to SRC's folder name. Files are named after the pair, made a safe file name by
    :mod:`geocd.safe_names` where needed. Georeferenced chips keep their CRS and transform. A pair
    whose first image has none is put on a *local* grid: EPSG:32631 with ``resolution``
    metre pixels, each pair at its own place near the equator and the central meridian, and
    every raster written for it carries the GeoTIFF tag ``GEOCD_GRID=local`` (the manifest
    does not record it). Images keep dtype, bands and alpha, or only ``bands`` (1-based, in that
    order, as image bands: an alpha-flagged band chosen becomes an image band); labels are uint8
    without nodata.
    Nothing is written unless every chip passes the header checks (sizes; images of a pair with
    as many image bands); if a later step fails, the files and folders written so far are
    removed (other content of DST is left alone).
    """
    src_root, dst_root, manifest, name = _check_import(source, destination, resolution, dataset, overwrite)
    pairs, splits_from = _find_pairs(src_root, layouts, name)
    try:
        stems = dict(zip((p.name for p in pairs), file_stems([p.name for p in pairs])))
    except FileNameClash as clash:
        raise InputError(pairs[clash.second].sources[0], f"would be imported as {clash.stem!r}, as "
                                                         f"{pairs[clash.first].sources[0]} is; rename one of them") from None
    jobs = _plan(pairs, stems, dst_root, resolution, overwrite, tuple(bands) if bands else None)
    records = [_record(record, pair, _targets(dst_root, pair, stems[pair.name]), name) for pair in pairs]
    with _rollback([job.target.parent for job in jobs]) as written:
        for job in jobs:
            job.target.parent.mkdir(parents=True, exist_ok=True)
            _convert(job, overwrite)
            written.append(job.target)
        with atomic_output(manifest, overwrite=True) as tmp:
            write_manifest(records, tmp)
    return ChipImport(manifest, splits_from)


def _check_import(
    source: str | os.PathLike[str], destination: str | os.PathLike[str], resolution: float | None,
    dataset: str | None, overwrite: bool,
) -> tuple[Path, Path, Path, str]:
    """Check an import's arguments: (source folder, destination folder, manifest path, dataset name)."""
    src_root = Path(source)
    if not src_root.is_dir():
        raise InputError(src_root, "is not a folder")
    if resolution is not None and not (math.isfinite(resolution) and resolution > 0):
        raise InputError(None, f"resolution must be a positive number of metres, not {resolution}")
    dst_root = Path(destination)
    manifest = _check_destination(dst_root, overwrite)
    name = src_root.resolve().name if dataset is None else dataset
    if "/" in name or os.sep in name:
        raise InputError(None, f"a dataset name cannot hold a path separator: {name!r}")
    return src_root, dst_root, manifest, name


def _check_destination(root: Path, overwrite: bool) -> Path:
    if root.exists() and not root.is_dir():
        raise OutputError(root, "exists and is not a folder")
    existing = [root / n for n in MANIFEST_NAMES if (root / n).exists()]
    if existing and not overwrite:
        raise OutputError(existing[0], "already exists (use overwrite=True to replace it)")
    return root / MANIFEST_NAMES[0]


def _child(folder: Path, name: str) -> Path | None:
    """The sub-folder of ``folder`` called ``name``, matched case-insensitively."""
    matches = [p for p in folder.iterdir() if p.is_dir() and p.name.lower() == name.lower()]
    return matches[0] if matches else None


def _find_pairs(root: Path, layouts: Sequence[ChipLayout], dataset: str) -> tuple[list[_Pair], str]:
    """The pairs of SRC, and where their splits came from (see :class:`ChipImport`)."""
    no_layout = f"no {' or '.join('/'.join(layout.folders) for layout in layouts)} folders"
    layout = _layout(root, layouts)
    if layout is not None:
        pairs = _layout_pairs(root, layout, dataset, "")
        splits_from = "file-name prefixes" if any(pair.split for pair in pairs) else ""
    else:
        splits_from = "split folders"
        splits = [(s, _child(root, s)) for s in SPLITS]
        splits = [(s, folder) for s, folder in splits if folder is not None]
        if not splits:
            raise InputError(root, no_layout)
        pairs = []
        for split, folder in splits:
            found = _layout(folder, layouts)
            if found is None:
                raise InputError(folder, no_layout)
            pairs += _layout_pairs(folder, found, dataset, split)
    if not pairs:
        raise InputError(root, f"holds no chips ({' '.join(EXTENSIONS)})")
    return pairs, splits_from


def _layout(folder: Path, layouts: Sequence[ChipLayout]) -> ChipLayout | None:
    """The layout whose folders ``folder`` holds; an error if it holds a layout's first folder but not all."""
    for layout in layouts:
        names = layout.folders
        present = [n for n in names if _child(folder, n) is not None]
        if len(present) == len(names):
            return layout
        if present and present[0] == names[0]:
            missing = next(n for n in names if n not in present)
            raise InputError(folder, f"has {'/, '.join(present)}/ but no {missing}/ folder")
    return None


def _chips(folder: Path) -> dict[str, Path]:
    """Chip files of a folder by stem; two files with one stem are an error."""
    chips: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.is_file() and not path.name.startswith(".") and path.suffix.lower() in EXTENSIONS:
            if path.stem in chips:
                raise InputError(path, f"has the same name as {chips[path.stem].name}; keep one of them")
            chips[path.stem] = path
    return chips


def _layout_pairs(folder: Path, layout: ChipLayout, dataset: str, split: str) -> list[_Pair]:
    """The pairs of one layout folder; in a folder of no split, a chip's split is its file-name prefix."""
    names = layout.folders
    chips = [_chips(_child(folder, n)) for n in names]
    for name, files in zip(names[1:], chips[1:]):
        unmatched = sorted(chips[0].keys() - files.keys())
        if unmatched:
            raise InputError(chips[0][unmatched[0]], f"has no matching chip in {name}/")
        unmatched = sorted(files.keys() - chips[0].keys())
        if unmatched:
            raise InputError(files[unmatched[0]], f"has no matching chip in {names[0]}/")
    pairs = []
    for stem in sorted(chips[0]):
        name = "_".join(part for part in (dataset, split, stem) if part)
        pairs.append(_Pair(name, split or _prefix_split(stem), layout, tuple(files[stem] for files in chips)))
    return pairs


def _prefix_split(stem: str) -> str:
    """``train``, ``val`` or ``test`` for a stem starting with that and ``_``; else ``""``."""
    return next((split for split in SPLITS if stem.lower().startswith(f"{split}_")), "")


@dataclass(frozen=True)
class _Header:
    """What the checks need of a chip: size in pixels, image bands (alpha excluded), own grid if any."""

    width: int
    height: int
    bands: int
    grid: Grid | None


def _header(path: Path, bands: tuple[int, ...] | None = None) -> _Header:
    """The :class:`_Header` of a chip (grid None without a CRS and geotransform); an image chip
    given ``bands`` must have them and counts them as its image bands."""
    with open_any_raster(path) as src:
        georeferenced = src.crs is not None and src.transform != Affine.identity()
        grid = Grid(src.crs, src.transform, src.width, src.height) if georeferenced else None
        count = len(image_bands(src)) if bands is None else len(choose_bands(src, bands, len(bands)))
        return _Header(src.width, src.height, count, grid)


def _targets(root: Path, pair: _Pair, stem: str) -> dict[str, Path]:
    """Where each raster of ``pair`` goes: ``root/<column>/<stem>.tif``."""
    return {column: pair_file(root / column, stem, ".tif", root=root) for column in pair.layout.columns}


def _plan(pairs: list[_Pair], stems: dict[str, str], root: Path, resolution: float | None, overwrite: bool,
          bands: tuple[int, ...] | None) -> list[_Job]:
    """Check every chip's header and decide where each output goes and on which grid."""
    headers = [[_header(p, None if pair.layout.is_label(i) else bands) for i, p in enumerate(pair.sources)]
               for pair in pairs]
    local = [i for i, h in enumerate(headers) if h[0].grid is None]
    if local and resolution is None:
        raise InputError(pairs[local[0]].sources[0], "has no georeferencing; pass resolution=METRES")
    grids: dict[int, Grid] = {}
    if local:
        grids = dict(zip(local, _local_grids([(headers[i][0].width, headers[i][0].height) for i in local], resolution)))
    jobs = []
    for i, (pair, header) in enumerate(zip(pairs, headers)):
        _check_pair(pair, header)
        reference = grids.get(i) or header[0].grid
        tags = LOCAL_TAG if i in grids else {}
        layout = pair.layout
        targets = _targets(root, pair, stems[pair.name])
        for index, (path, chip, column) in enumerate(zip(pair.sources, header, layout.columns)):
            target = targets[column]
            if target.exists() and not overwrite:
                raise OutputError(target, "already exists (use overwrite=True to replace it)")
            label = layout.is_label(index)
            grid = reference if label and layout.labels_on_image_grid else chip.grid or reference
            jobs.append(_Job(path, target, layout.convert if label else None, grid, tags, None if label else bands))
    return jobs


def _check_pair(pair: _Pair, header: list[_Header]) -> None:
    """Images of a pair have the first's size and as many image bands; labels have its size
    unless they keep their own georeferencing."""
    first, chip0, layout = pair.sources[0], header[0], pair.layout
    for index, (path, chip) in enumerate(zip(pair.sources[1:], header[1:]), start=1):
        label = layout.is_label(index)
        if chip0.grid is None and chip.grid is not None:
            raise InputError(path, f"is georeferenced but {first.name} of its pair is not")
        own_grid = label and chip.grid is not None and not layout.labels_on_image_grid
        if (chip.width, chip.height) != (chip0.width, chip0.height) and not own_grid:
            raise InputError(path, f"is {chip.width}x{chip.height} pixels, {first.parent.name}/{first.name} is "
                                   f"{chip0.width}x{chip0.height}")
        if not label and chip.bands != chip0.bands:
            raise InputError(path, f"has {chip.bands} image band(s), {first.parent.name}/{first.name} has {chip0.bands}")


def _local_grids(sizes: list[tuple[int, int]], resolution: float) -> list[Grid]:
    """Non-overlapping grids on a square lattice centred on UTM 31N's central meridian.

    Cells are whole metres (at least 100 m more than the largest chip), so every origin is
    an exact float64.
    """
    side = math.ceil(math.sqrt(len(sizes)))
    extent = max(max(w, h) for w, h in sizes) * resolution
    spacing = 100.0 * (math.floor(extent / 100.0) + 2)
    grids = []
    for i, (width, height) in enumerate(sizes):
        row, col = divmod(i, side)
        left = LOCAL_CENTRE_EASTING + (col - side // 2) * spacing
        top = (row + 1) * spacing
        grids.append(Grid(LOCAL_CRS, Affine(resolution, 0.0, left, 0.0, -resolution, top), width, height))
    return grids


@contextmanager
def _rollback(folders: list[Path]) -> Iterator[list[Path]]:
    """Yield a list for the files the block writes; if the block fails, remove them and those of
    ``folders`` (and their parents) that did not exist before, so a failed import leaves nothing."""
    created = sorted({f for folder in folders for f in (folder, *folder.parents) if not f.exists()}, key=lambda f: -len(f.parts))
    written: list[Path] = []
    try:
        yield written
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        for folder in created:
            with suppress(OSError):
                folder.rmdir()
        raise


def _convert(job: _Job, overwrite: bool) -> None:
    colormap = None
    with open_any_raster(job.source) as src:
        if job.convert is not None:
            data = job.convert(job.source, src)[np.newaxis]
            colorinterp, nodata = [ColorInterp.gray], None
        elif job.bands is not None:
            data, nodata = src.read(list(job.bands)), src.nodata
            interps = [src.colorinterp[b - 1] for b in job.bands]
            colorinterp = [ColorInterp.undefined if ci in (ColorInterp.alpha, ColorInterp.palette) else ci for ci in interps]
        else:
            data, colorinterp, nodata = src.read(), list(src.colorinterp), src.nodata
            if colorinterp[0] == ColorInterp.palette:
                colormap = src.colormap(1)
    _write(job.target, data, job.grid, _Bands(colorinterp, nodata, colormap), job.tags, overwrite)


@dataclass(frozen=True)
class _Bands:
    """What an output keeps of its source's band description."""

    colorinterp: list[ColorInterp]
    nodata: float | None
    colormap: dict[int, tuple[int, ...]] | None


def _write(target: Path, data: np.ndarray, grid: Grid, bands: _Bands, tags: dict[str, str], overwrite: bool) -> None:
    """A deflate-compressed, tiled GeoTIFF, written atomically."""
    block = min(RASTER_BLOCK, 16 * math.ceil(max(grid.width, grid.height) / 16))
    with atomic_output(target, overwrite) as tmp:
        with rasterio.open(tmp, "w", **geotiff_profile(grid, data.shape[0], data.dtype, bands.nodata, block)) as dst:
            dst.write(data)
            dst.colorinterp = bands.colorinterp
            if bands.colormap is not None:
                dst.write_colormap(1, bands.colormap)
            dst.update_tags(**tags)


def _label_ids(path: Path, src: DatasetReader, semantic: bool) -> np.ndarray:
    """A label chip as uint8 ids: SECOND classes 0..6, or change 0/1."""
    rgb = label_rgb(src)
    if rgb is None:
        return _value_ids(path, src.read(image_bands(src)[0]), semantic)
    if semantic:
        return _colour_ids(path, rgb)
    grey = (rgb[0] == rgb[1]) & (rgb[1] == rgb[2])
    if not grey.all():
        r, c = np.argwhere(~grey)[0]
        raise InputError(path, f"unknown label colour {_colour_text(rgb[:, r, c].tolist())}")
    return _value_ids(path, rgb[0], semantic)


def label_rgb(src: DatasetReader) -> np.ndarray | None:
    """A label chip's colours as RGB ``[3, h, w]``: its first three image bands, or its paletted
    first band through the colour table; None for a single grey band."""
    bands = image_bands(src)
    if len(bands) >= 3:
        return src.read(bands[:3])
    if src.colorinterp[bands[0] - 1] != ColorInterp.palette:
        return None
    table = np.zeros((256, 3), np.uint8)
    for index, colour in src.colormap(bands[0]).items():
        table[index] = colour[:3]
    return np.moveaxis(table[src.read(bands[0])], -1, 0)


def _value_ids(path: Path, values: np.ndarray, semantic: bool) -> np.ndarray:
    allowed = range(len(SECOND.classes)) if semantic else BINARY_VALUES
    unknown = [v for v in np.unique(values).tolist() if v not in allowed]
    if unknown:
        raise InputError(path, f"unknown label value {value_text(unknown[0])}")
    return (values if semantic else values != 0).astype(np.uint8)


def _colour_ids(path: Path, rgb: np.ndarray) -> np.ndarray:
    """SECOND palette colours ``[3, h, w]`` to class ids ``[h, w]``."""
    colours, inverse = np.unique(rgb.reshape(3, -1).T, axis=0, return_inverse=True)
    ids = np.empty(len(colours), np.uint8)
    for k, colour in enumerate(colours.tolist()):
        if tuple(colour) not in SECOND_COLOURS:
            raise InputError(path, f"unknown label colour {_colour_text(colour)}")
        ids[k] = SECOND_COLOURS[tuple(colour)]
    return ids[inverse.reshape(rgb.shape[1:])]


def value_text(value: float) -> str:
    """A label value as written in messages: integers without a decimal point."""
    value = float(value)
    return str(int(value)) if value.is_integer() else str(value)


def _colour_text(colour: list[float]) -> str:
    return f"({', '.join(value_text(v) for v in colour)})"


def _record(record: type[PairRecord] | type[LandCoverRecord], pair: _Pair, paths: dict[str, Path],
            dataset: str) -> PairRecord | LandCoverRecord:
    return record(name=pair.name, dataset=dataset, split=pair.split, **paths)


CHANGE_LAYOUTS = (
    ChipLayout(("A", "B"), ("label",), ("before", "after", "change"), partial(_label_ids, semantic=False)),
    ChipLayout(("im1", "im2"), ("label1", "label2"), ("before", "after", "label_before", "label_after"),
               partial(_label_ids, semantic=True)),
)
