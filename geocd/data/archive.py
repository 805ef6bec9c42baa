"""Archives of labelled rasters: the manifest format, its reader and writer, and the split by pair.

An archive is a manifest file (``.csv`` or ``.yaml``) or a folder holding
``manifest.csv``/``manifest.yaml``. Its rows list rasters as paths relative to the manifest,
and its ``kind`` column says which columns those are (label values: :mod:`geocd.data.labels`):

* ``change``: one row per scene pair, ``before`` and ``after`` rasters with SECOND-style
  land-cover maps per date, ``label_before`` and ``label_after`` (0 = unchanged, 1..K =
  land-cover class where changed, 255 = ignore), or a binary ``change`` mask (0 = unchanged,
  255 = ignore, any other value = changed);
* ``landcover``: one row per single-date image, ``image`` and its ``landcover`` map.

Optional columns: ``name`` (unique; default: the first raster's stem), ``dataset`` (groups
rows for a stratified split) and ``split`` (``train``, ``val``, or ``test``: never trained
or validated on). A manifest without
``kind`` is a land-cover archive when it has an ``image`` or ``landcover`` column, else a
change archive. Label rasters may lie on their own grids: they are aligned to the image's
grid with nearest-neighbour resampling.
"""

from __future__ import annotations

import csv
import os
import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import ClassVar

import yaml

from geocd.data.remote import file_stem, is_remote
from geocd.errors import InputError
from geocd.safe_names import FileNameClash, file_stems

MANIFEST_NAMES = ("manifest.csv", "manifest.yaml", "manifest.yml")
KINDS = ("change", "landcover")
RasterPath = Path | str
"""A raster of a manifest: an absolute local path, or a URL or GDAL /vsi path (:mod:`geocd.data.remote`) as listed."""


@dataclass(frozen=True)
class PairRecord:
    """One labelled pair of a change archive, with absolute paths (a URL as its text).

    ``kind`` is ``change``, or ``landcover`` for one image of a land-cover archive as a pair
    (:meth:`LandCoverRecord.as_pair`: ``before`` = ``after``, its map in ``label_before`` only).
    """

    name: str
    before: RasterPath
    after: RasterPath
    label_before: RasterPath | None = None
    label_after: RasterPath | None = None
    change: RasterPath | None = None
    dataset: str = ""
    split: str = ""
    kind: str = "change"

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}, not {self.kind!r}")
        if self.single_date and (self.label_before is None or self.label_after is not None or self.change is not None):
            raise ValueError("a landcover pair record has its map in label_before only")

    @property
    def semantic(self) -> bool:
        """Whether the pair has land-cover labels for both dates."""
        return self.label_before is not None and self.label_after is not None

    @property
    def single_date(self) -> bool:
        """Whether this is one land-cover image as a pair (``kind`` ``landcover``)."""
        return self.kind == "landcover"


@dataclass(frozen=True)
class LandCoverRecord:
    """One image of a land-cover archive, with absolute paths (a URL as its text)."""

    kind: ClassVar[str] = "landcover"
    name: str
    image: RasterPath
    landcover: RasterPath
    dataset: str = ""
    split: str = ""

    def as_pair(self) -> PairRecord:
        """The image as a pair record of kind ``landcover``: the image as both dates, its map in ``label_before``."""
        return PairRecord(name=self.name, before=self.image, after=self.image, label_before=self.landcover,
                          dataset=self.dataset, split=self.split, kind=self.kind)


Record = PairRecord | LandCoverRecord


@dataclass(frozen=True)
class _Schema:
    """What the rows of one archive kind hold and are called."""

    record: type[PairRecord] | type[LandCoverRecord]
    paths: tuple[str, ...]
    required: tuple[str, ...]
    row: str

    @property
    def columns(self) -> tuple[str, ...]:
        return ("kind", "name", "dataset", "split", *self.paths)


_SCHEMAS = {
    "change": _Schema(PairRecord, ("before", "after", "label_before", "label_after", "change"), ("before", "after"), "pair"),
    "landcover": _Schema(LandCoverRecord, ("image", "landcover"), ("image", "landcover"), "chip"),
}


@dataclass(frozen=True)
class Archive:
    """A checked archive: its manifest file, its kind (one of :data:`KINDS`) and its records."""

    manifest: Path
    kind: str
    records: tuple[Record, ...]


def manifest_path(archive: str | os.PathLike[str]) -> Path:
    """The manifest file of an archive given as a file or a folder."""
    path = Path(archive)
    if path.is_dir():
        for name in MANIFEST_NAMES:
            if (path / name).is_file():
                return path / name
        raise InputError(path, f"is a folder without {' or '.join(MANIFEST_NAMES[:2])}")
    if not path.is_file():
        raise InputError(path, "archive does not exist")
    if path.suffix.lower() not in (".csv", ".yaml", ".yml"):
        raise InputError(path, "an archive manifest must be .csv or .yaml")
    return path


def open_archive(archive: str | os.PathLike[str], kind: str | None = None, inference: bool = False) -> Archive:
    """Read and check every row of an archive (files exist, labels given, names unique).

    With ``kind``, an archive of another kind is an :class:`InputError`. For ``inference`` labels
    are optional and the files are not checked here: each pair's own prediction checks them,
    so one missing file fails that pair alone.
    """
    manifest = manifest_path(archive)
    columns, rows = _read_rows(manifest)
    found = _kind(manifest, columns, rows)
    if kind is not None and found != kind:
        raise InputError(manifest, f"is a {found} archive, not a {kind} archive")
    schema = _SCHEMAS[found]
    if not rows:
        raise InputError(manifest, f"lists no {schema.row}s")
    missing = [column for column in schema.required if column not in columns]
    if missing:
        raise InputError(manifest, f"has no {missing[0]!r} column (columns: {', '.join(sorted(columns)) or 'none'})")
    records = tuple(_record(manifest, schema, number, row, inference) for number, row in enumerate(rows, start=1))
    _check_unique_names(manifest, [r.name for r in records], schema.row)
    return Archive(manifest, found, records)


def archive_file_stems(archive: Archive, taken: Sequence[str] = ()) -> dict[str, str]:
    """The file stem of each record's outputs, by name (see :func:`geocd.safe_names.file_stems`; ``taken``:
    stems the output folder holds already); names that would share one are an :class:`InputError` naming the rows."""
    names = [r.name for r in archive.records]
    try:
        return dict(zip(names, file_stems(names, taken)))
    except FileNameClash as clash:
        row = _SCHEMAS[archive.kind].row
        other = f"{row} {clash.first + 1} ({names[clash.first]!r})" if clash.first >= 0 else "a file geocd writes there"
        raise InputError(archive.manifest, f"{row} {clash.second + 1} name {names[clash.second]!r} would be written "
                                           f"as {clash.stem!r}, as {other} is") from None


def read_archive(archive: str | os.PathLike[str], inference: bool = False) -> list[PairRecord]:
    """The checked pairs of a change archive (see :func:`open_archive`)."""
    return list(open_archive(archive, "change", inference).records)


def read_landcover_archive(archive: str | os.PathLike[str]) -> list[LandCoverRecord]:
    """The checked images of a land-cover archive (see :func:`open_archive`)."""
    return list(open_archive(archive, "landcover").records)


def write_manifest(records: Sequence[Record], manifest: str | os.PathLike[str]) -> Path:
    """Write ``records`` (all of one kind, as read: :class:`LandCoverRecord` for land cover) as a CSV manifest
    declaring that kind, paths relative to its folder."""
    manifest = Path(manifest)
    kinds = {r.kind for r in records}
    if len(kinds) > 1:
        raise ValueError("a manifest holds records of one kind")
    kind = kinds.pop() if kinds else "change"
    schema = _SCHEMAS[kind]
    if not all(isinstance(r, schema.record) for r in records):
        raise ValueError(f"a {kind} manifest holds {schema.record.__name__}s")
    with open(manifest, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=schema.columns)
        writer.writeheader()
        for record in records:
            row = {"kind": kind}
            for field in fields(record):
                value = getattr(record, field.name)
                row[field.name] = "" if value is None else (os.path.relpath(value, manifest.parent) if isinstance(value, Path) else value)
            writer.writerow(row)
    return manifest


def _check_unique_names(manifest: Path, names: Sequence[str], row: str) -> None:
    """Raise :class:`InputError` naming the manifest when a name appears twice."""
    seen: set[str] = set()
    for number, name in enumerate(names, start=1):
        if name in seen:
            raise InputError(manifest, f"{row} {number} name {name!r} appears more than once")
        seen.add(name)


def _read_rows(manifest: Path) -> tuple[set[str], list[dict[str, str]]]:
    """The column names and rows of a manifest file."""
    try:
        if manifest.suffix.lower() == ".csv":
            with open(manifest, newline="") as f:
                reader = csv.DictReader(f)
                rows = [dict(row) for row in reader]
                return set(reader.fieldnames or ()), rows
        data = yaml.safe_load(manifest.read_text())
    except (OSError, csv.Error, yaml.YAMLError, UnicodeDecodeError) as error:
        raise InputError(manifest, f"cannot be read as a manifest ({type(error).__name__})") from None
    pairs = data.get("pairs") if isinstance(data, dict) else None
    if not isinstance(pairs, list) or not all(isinstance(p, dict) for p in pairs):
        raise InputError(manifest, "a YAML manifest needs a 'pairs' list of mappings")
    rows = [{str(k): "" if v is None else str(v) for k, v in p.items()} for p in pairs]
    return {k for row in rows for k in row}, rows


def _kind(manifest: Path, columns: set[str], rows: list[dict[str, str]]) -> str:
    """The kind the rows declare, or (none declared) the one their columns show."""
    declared = {(row.get("kind") or "").strip() for row in rows} - {""}
    for kind in sorted(declared):
        if kind not in KINDS:
            raise InputError(manifest, f"unknown kind {kind!r} (known: {', '.join(KINDS)})")
    if len(declared) > 1:
        raise InputError(manifest, f"mixes kinds {' and '.join(sorted(declared))}; an archive holds one kind")
    if declared:
        return declared.pop()
    return "landcover" if columns & set(_SCHEMAS["landcover"].paths) else "change"


def _record(manifest: Path, schema: _Schema, number: int, row: dict[str, str], inference: bool) -> Record:
    where = f"{schema.row} {number}"
    unknown = set(row) - set(schema.columns) - {None}
    if unknown:
        raise InputError(manifest, f"{where}: unknown column {sorted(unknown)[0]!r} (known: {', '.join(schema.columns)})")
    values = {k: (row.get(k) or "").strip() for k in schema.columns}
    paths: dict[str, RasterPath | None] = {}
    for column in schema.paths:
        if not values[column]:
            paths[column] = None
            continue
        if is_remote(values[column]):
            paths[column] = values[column]
            continue
        path = (manifest.parent / values[column]).resolve()
        if not inference and not path.is_file():
            raise InputError(path, f"listed as {column} of {where} in {manifest.name} does not exist")
        paths[column] = path
    for column in schema.required:
        if paths[column] is None:
            raise InputError(manifest, f"{where}: no {column!r} raster")
    if schema.record is PairRecord and not inference:
        _check_change_labels(manifest, where, paths)
    if values["split"] not in ("", "train", "val", "test"):
        raise InputError(manifest, f"{where}: split must be 'train', 'val' or 'test', not {values['split']!r}")
    name = values["name"] or file_stem(paths[schema.paths[0]])
    return schema.record(name=name, dataset=values["dataset"], split=values["split"], **paths)


def _check_change_labels(manifest: Path, where: str, paths: dict[str, RasterPath | None]) -> None:
    """A change pair has both land-cover maps, or neither, and some label."""
    if (paths["label_before"] is None) != (paths["label_after"] is None):
        raise InputError(manifest, f"{where}: give both label_before and label_after, or neither")
    if paths["label_before"] is None and paths["change"] is None:
        raise InputError(manifest, f"{where}: no labels (label_before/label_after or change)")


def split_pairs(records: Sequence[PairRecord], val_fraction: float = 0.2, seed: int = 0) -> tuple[list[PairRecord], list[PairRecord]]:
    """Split by pair, never by tile: explicit ``split`` values win (``test`` pairs are in neither);
    the rest are drawn per dataset.

    Every dataset with at least two undecided pairs gives at least one to validation. Each
    dataset is drawn with its own seeded generator, so adding a dataset leaves the others' split alone.
    """
    train = [r for r in records if r.split == "train"]
    val = [r for r in records if r.split == "val"]
    groups: dict[str, list[PairRecord]] = defaultdict(list)
    for record in records:
        if not record.split:
            groups[record.dataset].append(record)
    for dataset in sorted(groups):
        members = sorted(groups[dataset], key=lambda r: r.name)
        random.Random(f"{seed}:{dataset}").shuffle(members)
        n_val = max(1, round(val_fraction * len(members))) if len(members) >= 2 and val_fraction > 0 else 0
        val += members[:n_val]
        train += members[n_val:]
    return train, val
