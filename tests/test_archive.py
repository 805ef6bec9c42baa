"""Archive manifests: one schema with a ``kind`` column, one reader and writer for both kinds."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from rasterio.windows import Window

from conftest import write_raster
from geocd.data.archive import (
    LandCoverRecord,
    PairRecord,
    open_archive,
    read_archive,
    read_landcover_archive,
    write_manifest,
)
from geocd.data.labelled import LabelledPairDataset
from geocd.errors import InputError


def rasters(folder: Path, *names: str) -> list[Path]:
    return [write_raster(folder / f"{name}.tif", np.zeros((1, 4, 4), np.uint8)) for name in names]


def write_rows(path: Path, rows: list[list[str]]) -> Path:
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows(rows)
    return path


def test_written_manifests_declare_their_kind_and_read_back(tmp_path: Path) -> None:
    before, after, change, image, cover = rasters(tmp_path, "b", "a", "c", "i", "l")
    pairs = [PairRecord("p", before, after, change=change, dataset="d", split="val")]
    chips = [LandCoverRecord("x", image, cover, "d", "train")]
    for records, kind in ((pairs, "change"), (chips, "landcover")):
        manifest = write_manifest(records, tmp_path / f"{kind}.csv")
        with open(manifest, newline="") as f:
            header, row = list(csv.reader(f))
        assert (header[0], row[0]) == ("kind", kind)
        archive = open_archive(manifest)
        assert (archive.manifest, archive.kind, list(archive.records)) == (manifest, kind, records)
    assert read_archive(tmp_path / "change.csv") == pairs
    assert read_landcover_archive(tmp_path / "landcover.csv") == chips


def test_manifests_without_kind_are_recognised_by_their_columns(tmp_path: Path) -> None:
    rasters(tmp_path, "b", "a", "c", "i", "l")
    change = write_rows(tmp_path / "old_change.csv", [["name", "before", "after", "change"], ["p", "b.tif", "a.tif", "c.tif"]])
    cover = write_rows(tmp_path / "old_landcover.csv", [["name", "dataset", "split", "image", "landcover"], ["x", "", "", "i.tif", "l.tif"]])
    assert open_archive(change).kind == "change"
    assert read_archive(change) == [PairRecord("p", tmp_path / "b.tif", tmp_path / "a.tif", change=tmp_path / "c.tif")]
    assert open_archive(cover).kind == "landcover"
    assert read_landcover_archive(cover) == [LandCoverRecord("x", tmp_path / "i.tif", tmp_path / "l.tif")]
    (tmp_path / "manifest.yaml").write_text("pairs:\n  - {image: i.tif, landcover: l.tif}\n")
    assert open_archive(tmp_path).kind == "landcover"
    assert read_landcover_archive(tmp_path)[0].name == "i"


def test_an_archive_of_another_kind_is_refused(tmp_path: Path) -> None:
    before, after, change, image, cover = rasters(tmp_path, "b", "a", "c", "i", "l")
    pairs = write_manifest([PairRecord("p", before, after, change=change)], tmp_path / "pairs.csv")
    chips = write_manifest([LandCoverRecord("x", image, cover)], tmp_path / "chips.csv")
    with pytest.raises(InputError) as error:
        read_archive(chips)
    assert str(error.value) == f"{chips}: is a landcover archive, not a change archive"
    with pytest.raises(InputError) as error:
        read_landcover_archive(pairs)
    assert str(error.value) == f"{pairs}: is a change archive, not a landcover archive"


@pytest.mark.parametrize(
    "kinds, problem",
    [
        (("landcover", "change"), "mixes kinds change and landcover; an archive holds one kind"),
        (("landcover", "pairs"), "unknown kind 'pairs' (known: change, landcover)"),
    ],
)
def test_one_known_kind_per_archive(tmp_path: Path, kinds: tuple[str, str], problem: str) -> None:
    rasters(tmp_path, "i", "l")
    rows = [["kind", "image", "landcover"], *([kind, "i.tif", "l.tif"] for kind in kinds)]
    manifest = write_rows(tmp_path / "manifest.csv", rows)
    with pytest.raises(InputError) as error:
        open_archive(manifest)
    assert str(error.value) == f"{manifest}: {problem}"


def test_row_errors_name_the_row_of_either_kind(tmp_path: Path) -> None:
    rasters(tmp_path, "i")
    manifest = write_rows(tmp_path / "manifest.csv", [["kind", "name", "image", "landcover"], ["landcover", "x", "i.tif", ""]])
    with pytest.raises(InputError) as error:
        open_archive(manifest)
    assert str(error.value) == f"{manifest}: chip 1: no 'landcover' raster"
    manifest = write_rows(tmp_path / "manifest.csv", [["kind", "before", "after"], ["change", "i.tif", "i.tif"]])
    with pytest.raises(InputError) as error:
        open_archive(manifest)
    assert str(error.value) == f"{manifest}: pair 1: no labels (label_before/label_after or change)"


def test_a_record_says_its_kind_instead_of_it_being_guessed_from_empty_labels(tmp_path: Path) -> None:
    image, cover = rasters(tmp_path, "i", "l")
    land = LandCoverRecord("x", image, cover).as_pair()
    assert (land.kind, land.single_date, land.before, land.after, land.label_before) == ("landcover", True, image, image, cover)
    pair = PairRecord("p", image, image, label_before=cover)  # a change pair with one date's map: still a change pair
    assert (pair.kind, pair.single_date) == ("change", False)
    window = Window(0, 0, 4, 4)
    assert LabelledPairDataset(land, 1).read(window)["single_date"].item() is True
    assert LabelledPairDataset(pair, 1).read(window)["single_date"].item() is False
    with pytest.raises(ValueError, match="landcover pair record has its map in label_before only"):
        PairRecord("p", image, image, change=cover, kind="landcover")
    with pytest.raises(ValueError, match="a landcover manifest holds LandCoverRecords"):
        write_manifest([land], tmp_path / "manifest.csv")
