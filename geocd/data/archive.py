"""Archives of labelled scene pairs: the manifest format and the split by pair.

An archive is a manifest file (``.csv`` or ``.yaml``) or a folder holding
``manifest.csv``/``manifest.yaml``. Each pair lists ``before`` and ``after`` rasters and its
labels, as paths relative to the manifest:

* SECOND-style semantic maps per date, ``label_before`` and ``label_after``
  (0 = unchanged, 1..K = land-cover class where changed, 255 = ignore); or
* a binary ``change`` mask (0 = unchanged, 255 = ignore, any other value = changed).

Optional columns: ``name`` (unique; default: the before file's stem), ``dataset`` (groups
pairs for a stratified split) and ``split`` (``train`` or ``val``). Label rasters may lie
on their own grids: they are aligned to the 'before' grid with nearest-neighbour resampling.
"""

from __future__ import annotations

import csv
import os
import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import yaml

from geocd.errors import InputError

MANIFEST_NAMES = ("manifest.csv", "manifest.yaml", "manifest.yml")
COLUMNS = ("name", "dataset", "split", "before", "after", "label_before", "label_after", "change")
PATH_COLUMNS = ("before", "after", "label_before", "label_after", "change")
IGNORE = 255


@dataclass(frozen=True)
class PairRecord:
    """One labelled pair of an archive, with absolute paths."""

    name: str
    before: Path
    after: Path
    label_before: Path | None = None
    label_after: Path | None = None
    change: Path | None = None
    dataset: str = ""
    split: str = ""

    @property
    def semantic(self) -> bool:
        """Whether the pair has land-cover labels for both dates."""
        return self.label_before is not None and self.label_after is not None

    @property
    def single_date(self) -> bool:
        """Whether this is one land-cover image (``before`` = ``after``, labels in ``label_before`` only)."""
        return self.label_before is not None and self.label_after is None and self.change is None


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


def read_archive(archive: str | os.PathLike[str]) -> list[PairRecord]:
    """Read and check every pair of an archive (files exist, labels given, names unique)."""
    manifest = manifest_path(archive)
    rows = _read_rows(manifest)
    if not rows:
        raise InputError(manifest, "lists no pairs")
    records = [_record(manifest, number, row) for number, row in enumerate(rows, start=1)]
    check_unique_names(manifest, [r.name for r in records], "pair")
    return records


def check_unique_names(manifest: Path, names: Sequence[str], kind: str) -> None:
    """Raise :class:`InputError` naming the manifest when a name appears twice."""
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise InputError(manifest, f"{kind} name {name!r} appears more than once")
        seen.add(name)


def _read_rows(manifest: Path) -> list[dict[str, str]]:
    try:
        if manifest.suffix.lower() == ".csv":
            with open(manifest, newline="") as f:
                return [dict(row) for row in csv.DictReader(f)]
        data = yaml.safe_load(manifest.read_text())
    except (OSError, csv.Error, yaml.YAMLError, UnicodeDecodeError) as error:
        raise InputError(manifest, f"cannot be read as a manifest ({type(error).__name__})") from None
    pairs = data.get("pairs") if isinstance(data, dict) else None
    if not isinstance(pairs, list) or not all(isinstance(p, dict) for p in pairs):
        raise InputError(manifest, "a YAML manifest needs a 'pairs' list of mappings")
    return [{k: "" if v is None else str(v) for k, v in p.items()} for p in pairs]


def _record(manifest: Path, number: int, row: dict[str, str]) -> PairRecord:
    unknown = set(row) - set(COLUMNS) - {None}
    if unknown:
        raise InputError(manifest, f"pair {number}: unknown column {sorted(unknown)[0]!r} (known: {', '.join(COLUMNS)})")
    values = {k: (row.get(k) or "").strip() for k in COLUMNS}
    paths: dict[str, Path | None] = {}
    for column in PATH_COLUMNS:
        if not values[column]:
            paths[column] = None
            continue
        path = (manifest.parent / values[column]).resolve()
        if not path.is_file():
            raise InputError(path, f"listed as {column} of pair {number} in {manifest.name} does not exist")
        paths[column] = path
    for column in ("before", "after"):
        if paths[column] is None:
            raise InputError(manifest, f"pair {number}: no {column!r} raster")
    if (paths["label_before"] is None) != (paths["label_after"] is None):
        raise InputError(manifest, f"pair {number}: give both label_before and label_after, or neither")
    if paths["label_before"] is None and paths["change"] is None:
        raise InputError(manifest, f"pair {number}: no labels (label_before/label_after or change)")
    if values["split"] not in ("", "train", "val"):
        raise InputError(manifest, f"pair {number}: split must be 'train' or 'val', not {values['split']!r}")
    name = values["name"] or paths["before"].stem
    return PairRecord(name=name, dataset=values["dataset"], split=values["split"], **paths)


def write_manifest(records: Sequence[Any], manifest: str | os.PathLike[str], columns: Sequence[str] = COLUMNS) -> Path:
    """Write dataclass ``records`` as a CSV manifest of ``columns``, paths relative to its folder."""
    manifest = Path(manifest)
    with open(manifest, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        for record in records:
            row = {}
            for field in fields(record):
                value = getattr(record, field.name)
                row[field.name] = "" if value is None else (os.path.relpath(value, manifest.parent) if isinstance(value, Path) else value)
            writer.writerow(row)
    return manifest


def split_pairs(records: Sequence[PairRecord], val_fraction: float = 0.2, seed: int = 0) -> tuple[list[PairRecord], list[PairRecord]]:
    """Split by pair, never by tile: explicit ``split`` values win; the rest are drawn per dataset.

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
