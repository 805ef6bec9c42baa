"""Importing public chip folders (LEVIR-style A/B/label, SECOND im1/im2/label1/label2)."""

from __future__ import annotations

from pathlib import Path

from affine import Affine
import numpy as np
import pytest
import rasterio
from click.testing import CliRunner
from PIL import Image
from rasterio.crs import CRS
from rasterio.enums import ColorInterp

import geocd.data.chips
from cli.main import cli
from conftest import write_raster
from geocd.data.archive import open_archive, read_archive, split_pairs
from geocd.data.chips import import_chips
from geocd.errors import InputError, OutputError
from geocd.safe_names import file_stem
from geocd.schema import SECOND

SIZE = 16


def png(path: Path, array: np.ndarray) -> Path:
    """Save ``array`` (``[h, w]`` or ``[h, w, bands]`` uint8) as a PNG, making its folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


def image(seed: int, bands: int = 3) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (SIZE, SIZE, bands), dtype=np.uint8)


def binary_folder(root: Path, stems: tuple[str, ...] = ("a", "b")) -> dict[str, tuple[np.ndarray, ...]]:
    """An A/B/label folder of 16x16 PNG chips; returns the pixels written per stem."""
    written = {}
    for i, stem in enumerate(stems):
        label = np.zeros((SIZE, SIZE), np.uint8)
        label[2 + i : 9 + i, 4:12] = 255
        before, after = image(2 * i), image(2 * i + 1)
        png(root / "A" / f"{stem}.png", before)
        png(root / "B" / f"{stem}.png", after)
        png(root / "label" / f"{stem}.png", label)
        written[stem] = (before, after, label)
    return written


def second_folder(root: Path, label_before: np.ndarray, label_after: np.ndarray) -> None:
    png(root / "im1" / "x.png", image(0))
    png(root / "im2" / "x.png", image(1))
    png(root / "label1" / "x.png", label_before)
    png(root / "label2" / "x.png", label_after)


def imported(source: Path, destination: Path, **options: object) -> list:
    """The records of an :func:`import_chips` run."""
    return read_archive(import_chips(source, destination, **options).manifest)


def read(path: Path) -> np.ndarray:
    with rasterio.open(path) as src:
        return src.read()


def bounds_overlap(a: rasterio.coords.BoundingBox, b: rasterio.coords.BoundingBox) -> bool:
    return a.left < b.right and b.left < a.right and a.bottom < b.top and b.bottom < a.top


def test_binary_round_trip(tmp_path: Path) -> None:
    written = binary_folder(tmp_path / "levir")
    records = imported(tmp_path / "levir", tmp_path / "out", resolution=0.5)
    assert records == read_archive(tmp_path / "out")
    assert open_archive(tmp_path / "out").kind == "change" and all(r.kind == "change" for r in records)
    assert (tmp_path / "out" / "manifest.csv").read_text().splitlines()[1].startswith("change,levir_a,")  # declared
    assert [r.name for r in records] == ["levir_a", "levir_b"]
    assert all(not r.semantic and r.change is not None and r.dataset == "levir" and r.split == "" for r in records)
    boxes = []
    for record, (before, after, label) in zip(records, written.values()):
        np.testing.assert_array_equal(read(record.before), before.transpose(2, 0, 1))
        np.testing.assert_array_equal(read(record.after), after.transpose(2, 0, 1))
        np.testing.assert_array_equal(read(record.change)[0], (label == 255).astype(np.uint8))
        for path in (record.before, record.after, record.change):
            with rasterio.open(path) as src:
                assert src.crs == CRS.from_epsg(32631)
                assert src.res == (0.5, 0.5)
                assert src.tags()["GEOCD_GRID"] == "local"
                assert src.profile["compress"] == "deflate"
                bounds = src.bounds
        with rasterio.open(record.before) as src, rasterio.open(record.change) as change:
            assert src.transform == change.transform
            assert change.dtypes == ("uint8",) and change.nodata is None
            boxes.append(src.bounds)
    assert not bounds_overlap(*boxes)
    assert bounds.left > 166_000 and bounds.right < 834_000


def test_second_colour_and_index_labels(tmp_path: Path) -> None:
    colours = np.array([c.color for c in SECOND.classes], np.uint8)
    ids = np.arange(SIZE * SIZE).reshape(SIZE, SIZE) % len(colours)
    second_folder(tmp_path / "second", colours[ids], ids[::-1].astype(np.uint8))
    (record,) = imported(tmp_path / "second", tmp_path / "out", resolution=1.0, dataset="")
    assert record.semantic and record.change is None and record.name == "x" and record.dataset == ""
    np.testing.assert_array_equal(read(record.label_before)[0], ids)
    np.testing.assert_array_equal(read(record.label_after)[0], ids[::-1])


def test_split_folders(tmp_path: Path) -> None:
    binary_folder(tmp_path / "cd" / "train", ("a",))
    binary_folder(tmp_path / "cd" / "test", ("a", "b"))
    records = imported(tmp_path / "cd", tmp_path / "out", resolution=2.0, dataset="d")
    assert [(r.name, r.split) for r in records] == [("d_train_a", "train"), ("d_test_a", "test"), ("d_test_b", "test")]
    with rasterio.open(records[0].before) as a, rasterio.open(records[1].before) as b:
        assert not bounds_overlap(a.bounds, b.bounds)


def test_unknown_label_colour_is_one_line_and_writes_nothing(tmp_path: Path) -> None:
    label = np.full((SIZE, SIZE, 3), 255, np.uint8)
    label[3, 5] = (1, 2, 3)
    second_folder(tmp_path / "second", np.zeros((SIZE, SIZE), np.uint8), label)
    with pytest.raises(InputError) as error:
        import_chips(tmp_path / "second", tmp_path / "out", resolution=1.0)
    message = str(error.value)
    assert "\n" not in message
    assert message == f"{tmp_path / 'second' / 'label2' / 'x.png'}: unknown label colour (1, 2, 3)"
    assert not [p for p in (tmp_path / "out").rglob("*") if p.is_file()]


def test_unexpected_binary_value(tmp_path: Path) -> None:
    binary_folder(tmp_path / "src")
    png(tmp_path / "src" / "label" / "b.png", np.full((SIZE, SIZE), 128, np.uint8))
    with pytest.raises(InputError, match=r"label/b\.png: unknown label value 128$"):
        import_chips(tmp_path / "src", tmp_path / "out", resolution=1.0)


def test_missing_resolution(tmp_path: Path) -> None:
    binary_folder(tmp_path / "src")
    with pytest.raises(InputError, match=r"A/a\.png: has no georeferencing; pass resolution=METRES"):
        import_chips(tmp_path / "src", tmp_path / "out")
    assert not (tmp_path / "out" / "manifest.csv").exists()


def test_georeferenced_chips_keep_their_grid(tmp_path: Path) -> None:
    transform = Affine(10.0, 0.0, 300_000.0, 0.0, -10.0, 5_000_000.0)
    for folder, seed in (("A", 0), ("B", 1)):
        (tmp_path / "src" / folder).mkdir(parents=True)
        write_raster(tmp_path / "src" / folder / "s.tif", image(seed).transpose(2, 0, 1), transform=transform)
    png(tmp_path / "src" / "label" / "s.png", np.zeros((SIZE, SIZE), np.uint8))
    (record,) = imported(tmp_path / "src", tmp_path / "out")
    for path in (record.before, record.after, record.change):
        with rasterio.open(path) as src:
            assert src.crs == CRS.from_epsg(32633) and src.transform == transform
            assert "GEOCD_GRID" not in src.tags()


def test_alpha_band_is_kept(tmp_path: Path) -> None:
    binary_folder(tmp_path / "src", ("a",))
    png(tmp_path / "src" / "A" / "a.png", image(0, bands=4))
    png(tmp_path / "src" / "B" / "a.png", image(1, bands=4))
    (record,) = imported(tmp_path / "src", tmp_path / "out", resolution=1.0)
    with rasterio.open(record.before) as src:
        assert src.colorinterp[3] == ColorInterp.alpha
        np.testing.assert_array_equal(src.read(), image(0, bands=4).transpose(2, 0, 1))


def test_existing_manifest_needs_overwrite(tmp_path: Path) -> None:
    binary_folder(tmp_path / "src")
    import_chips(tmp_path / "src", tmp_path / "out", resolution=1.0)
    with pytest.raises(OutputError, match="manifest.csv: already exists"):
        import_chips(tmp_path / "src", tmp_path / "out", resolution=1.0)
    assert len(imported(tmp_path / "src", tmp_path / "out", resolution=1.0, overwrite=True)) == 2


def test_no_layout_and_size_mismatch(tmp_path: Path) -> None:
    (tmp_path / "empty" / "images").mkdir(parents=True)
    with pytest.raises(InputError, match="no A/B/label or im1/im2/label1/label2 folders"):
        import_chips(tmp_path / "empty", tmp_path / "out", resolution=1.0)
    binary_folder(tmp_path / "src")
    png(tmp_path / "src" / "B" / "b.png", np.zeros((SIZE, SIZE + 1, 3), np.uint8))
    with pytest.raises(InputError, match=r"B/b\.png: is 17x16 pixels, A/b\.png is 16x16"):
        import_chips(tmp_path / "src", tmp_path / "out", resolution=1.0)


def tree(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*"))


def test_before_and_after_with_different_band_counts_are_refused(tmp_path: Path) -> None:
    binary_folder(tmp_path / "src")
    grey = png(tmp_path / "src" / "B" / "b.png", image(3)[:, :, 0])
    result = CliRunner().invoke(cli, ["import-chips", str(tmp_path / "src"), str(tmp_path / "out"), "--resolution", "1"])
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr == f"geocd: error: {grey}: has 1 image band(s), A/b.png has 3\n"
    assert not (tmp_path / "out").exists()


def test_a_failed_import_leaves_no_folder_and_keeps_other_content(tmp_path: Path) -> None:
    binary_folder(tmp_path / "src", ("a", "b", "c"))
    png(tmp_path / "src" / "label" / "c.png", np.full((SIZE, SIZE), 128, np.uint8))  # fails after a and b are written
    with pytest.raises(InputError, match=r"label/c\.png: unknown label value 128$"):
        import_chips(tmp_path / "src", tmp_path / "new" / "out", resolution=1.0)
    assert not (tmp_path / "new").exists()
    kept = tmp_path / "kept"
    (kept / "before").mkdir(parents=True)
    (kept / "before" / "mine.tif").write_bytes(b"mine")
    (kept / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="unknown label value 128"):
        import_chips(tmp_path / "src", kept, resolution=1.0)
    assert tree(kept) == ["before", "before/mine.tif", "notes.txt"]


def test_a_failed_manifest_write_removes_the_chips(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    binary_folder(tmp_path / "src")

    def full_disk(*args: object) -> None:
        raise OSError("No space left on device")

    monkeypatch.setattr(geocd.data.chips, "write_manifest", full_disk)
    with pytest.raises(OSError, match="No space left"):
        import_chips(tmp_path / "src", tmp_path / "out", resolution=1.0)
    assert not (tmp_path / "out").exists()


def test_a_georeferenced_label_keeps_its_own_grid(tmp_path: Path) -> None:
    transform = Affine(10.0, 0.0, 300_000.0, 0.0, -10.0, 5_000_000.0)
    for folder, seed in (("A", 0), ("B", 1)):
        (tmp_path / "src" / folder).mkdir(parents=True)
        write_raster(tmp_path / "src" / folder / "s.tif", image(seed).transpose(2, 0, 1), transform=transform)
    (tmp_path / "src" / "label").mkdir()
    coarse = Affine(20.0, 0.0, 300_000.0, 0.0, -20.0, 5_000_000.0)
    write_raster(tmp_path / "src" / "label" / "s.tif", np.ones((1, SIZE // 2, SIZE // 2), np.uint8), transform=coarse)
    (record,) = imported(tmp_path / "src", tmp_path / "out")
    with rasterio.open(record.change) as src:
        assert (src.transform, src.shape) == (coarse, (SIZE // 2, SIZE // 2))


def test_flat_split_prefixes_become_splits_and_test_is_never_trained_on(tmp_path: Path) -> None:
    binary_folder(tmp_path / "levir", ("train_1", "train_2", "val_1", "test_1", "other"))
    result = CliRunner().invoke(cli, ["import-chips", str(tmp_path / "levir"), str(tmp_path / "out"), "--resolution", "0.5"])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [f"imported 5 binary pairs into {tmp_path / 'out' / 'manifest.csv'}",
                                          "splits from file-name prefixes: train 2, val 1, test 1, 1 without (drawn by train)"]
    records = read_archive(tmp_path / "out")
    assert {r.name: r.split for r in records} == {"levir_train_1": "train", "levir_train_2": "train", "levir_val_1": "val",
                                                  "levir_test_1": "test", "levir_other": ""}
    train, val = split_pairs(records, 0.5)
    assert sorted(r.name for r in train) == ["levir_other", "levir_train_1", "levir_train_2"]
    assert [r.name for r in val] == ["levir_val_1"]


def test_split_folders_are_named_by_the_command(tmp_path: Path) -> None:
    binary_folder(tmp_path / "cd" / "train", ("a",))
    binary_folder(tmp_path / "cd" / "test", ("a",))
    result = CliRunner().invoke(cli, ["import-chips", str(tmp_path / "cd"), str(tmp_path / "out"), "--resolution", "1"])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[1] == "splits from split folders: train 1, test 1"


def test_chip_names_become_safe_distinct_file_names(tmp_path: Path) -> None:
    stems = ("Case", "case", "CON", "x" * 250, "plain")
    written = binary_folder(tmp_path / "src", stems)
    records = imported(tmp_path / "src", tmp_path / "dst", resolution=1.0, dataset="")
    assert [r.name for r in records] == sorted(stems)
    files = {r.name: r.before.name for r in records}
    assert files["plain"] == "plain.tif" and files["CON"] == f"{file_stem('CON')}.tif" == "CON_-a3dbc4b6.tif"
    assert files["x" * 250] == f"{'x' * 111}-{file_stem('x' * 250)[-8:]}.tif"
    assert files["Case"] == f"{file_stem('Case', hashed=True)}.tif" and files["case"] == f"{file_stem('case', hashed=True)}.tif"
    for r in records:
        assert np.array_equal(read(r.before).transpose(1, 2, 0), written[r.name][0])
    assert sorted(p.name for p in (tmp_path / "dst" / "change").iterdir()) == sorted(files.values())
