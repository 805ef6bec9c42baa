"""Importing image/mask land-cover folders with a YAML mapping of mask values or colours."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import rasterio
from PIL import Image
from affine import Affine
from rasterio.crs import CRS
from rasterio.enums import ColorInterp

from conftest import write_raster
from geocd.data.archive import LandCoverRecord, read_landcover_archive, write_manifest
from geocd.data.labels import IGNORE, SET_BASE, decode_value, encode_set
from geocd.data.landcover_import import import_landcover, load_mapping, map_mask, mapping_path
from geocd.errors import InputError, OutputError

SIZE = 8
VALUES = "values:\n  0: ignore\n  1: water\n  2: [low vegetation, tree]\n  3: Building\n"
COLOURS = 'colours:\n  "#3c1098": building\n  "#FEDD3A": [low vegetation, tree]\n  "#9B9b9B": ignore\n'


def png(path: Path, array: np.ndarray) -> Path:
    """Save ``array`` (``[h, w]`` or ``[h, w, 3]`` uint8) as a PNG, making its folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


def text(path: Path, content: str) -> Path:
    path.write_text(content)
    return path


def grey_mask() -> np.ndarray:
    """Values 0..3 in horizontal bands."""
    return np.repeat(np.arange(4, dtype=np.uint8), SIZE * SIZE // 4).reshape(SIZE, SIZE)


def colour_mask() -> np.ndarray:
    mask = np.empty((SIZE, SIZE, 3), np.uint8)
    mask[:3], mask[3:6], mask[6:] = (0x3C, 0x10, 0x98), (0xFE, 0xDD, 0x3A), (0x9B, 0x9B, 0x9B)
    return mask


def image(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)


def read(path: Path) -> np.ndarray:
    with rasterio.open(path) as src:
        return src.read()


def test_sets_encode_as_base_plus_bitmask_and_decode_back() -> None:
    assert encode_set([3, 4]) == SET_BASE + 4 + 8 == 76
    assert encode_set([4, 3, 4]) == 76
    assert encode_set([5]) == 5
    assert decode_value(76) == (3, 4)
    assert decode_value(2) == (2,)
    assert decode_value(IGNORE) == ()
    for classes in ([1, 6], [2, 3, 5], [1, 2, 3, 4, 5, 6]):
        assert decode_value(encode_set(classes)) == tuple(classes)
    with pytest.raises(ValueError):
        encode_set([0])
    with pytest.raises(ValueError):
        decode_value(0)


def test_mapping_by_value(tmp_path: Path) -> None:
    mapping = load_mapping(text(tmp_path / "m.yaml", VALUES))
    values = map_mask(png(tmp_path / "mask.png", grey_mask()), mapping)
    assert values.dtype == np.uint8
    assert np.array_equal(values, np.array([IGNORE, 1, 76, 5], np.uint8)[grey_mask()])


def test_mapping_by_colour_any_case(tmp_path: Path) -> None:
    mapping = load_mapping(text(tmp_path / "m.yaml", COLOURS))
    values = map_mask(png(tmp_path / "mask.png", colour_mask()), mapping)
    assert values[:3].tolist() == [[5] * SIZE] * 3
    assert values[3:6].tolist() == [[76] * SIZE] * 3
    assert values[6:].tolist() == [[IGNORE] * SIZE] * 2


def test_unknown_value_names_mask_and_value(tmp_path: Path) -> None:
    mapping = load_mapping(text(tmp_path / "m.yaml", VALUES))
    mask = grey_mask()
    mask[0, 0] = 7
    path = png(tmp_path / "mask.png", mask)
    with pytest.raises(InputError) as error:
        map_mask(path, mapping)
    assert str(error.value) == f"{path}: unknown mask value 7 (not in m.yaml)"


def test_unknown_colour_names_mask_and_colour(tmp_path: Path) -> None:
    mapping = load_mapping(text(tmp_path / "m.yaml", COLOURS))
    mask = colour_mask()
    mask[4, 4] = (0x12, 0x34, 0x56)
    path = png(tmp_path / "mask.png", mask)
    with pytest.raises(InputError) as error:
        map_mask(path, mapping)
    assert str(error.value) == f"{path}: unknown mask colour #123456 (not in m.yaml)"


@pytest.mark.parametrize(
    "content, problem",
    [
        ("values:\n  1: forest\n", "unknown class 'forest'"),
        ("colours:\n  '#000000': [tree, shrub]\n", "unknown class 'shrub'"),
        ("values:\n  1: unchanged\n", "unknown class 'unchanged'"),
        ("colours:\n  '#00000': tree\n", "is not a quoted '#RRGGBB' string"),
        ("labels:\n  1: tree\n", "unknown key 'labels'"),
    ],
)
def test_bad_mapping_names_the_file(tmp_path: Path, content: str, problem: str) -> None:
    path = text(tmp_path / "bad.yaml", content)
    with pytest.raises(InputError) as error:
        load_mapping(path)
    assert str(error.value).startswith(f"{path}: ") and problem in str(error.value)
    assert "\n" not in str(error.value)


def test_import_round_trip_on_local_grid(tmp_path: Path) -> None:
    src = tmp_path / "toy"
    for split, stem in (("train", "a"), ("test", "b")):
        png(src / split / "image" / f"{stem}.png", image(len(stem)))
        png(src / split / "mask" / f"{stem}.png", grey_mask())
    records = import_landcover(src, tmp_path / "out", text(tmp_path / "m.yaml", VALUES), resolution=0.5)
    assert records == read_landcover_archive(tmp_path / "out")
    expected = [("toy_train_a", "toy", "train"), ("toy_test_b", "toy", "test")]
    assert [(r.name, r.dataset, r.split) for r in records] == expected
    with open(tmp_path / "out" / "manifest.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["kind", "name", "dataset", "split", "image", "landcover"]
    assert rows[1] == ["landcover", "toy_train_a", "toy", "train", "image/toy_train_a.tif", "landcover/toy_train_a.tif"]
    for record in records:
        with rasterio.open(record.image) as img, rasterio.open(record.landcover) as lc:
            assert img.crs == lc.crs == CRS.from_epsg(32631)
            assert img.transform == lc.transform and img.res == (0.5, 0.5)
            assert img.tags()["GEOCD_GRID"] == lc.tags()["GEOCD_GRID"] == "local"
            assert img.count == 3 and img.dtypes[0] == "uint8"
            assert lc.dtypes == ("uint8",)
            assert np.array_equal(lc.read(1), np.array([IGNORE, 1, 76, 5], np.uint8)[grey_mask()])
    assert np.array_equal(read(records[0].image), np.moveaxis(image(1), -1, 0))


def test_georeferenced_image_keeps_grid_without_resolution(tmp_path: Path) -> None:
    (tmp_path / "src" / "image").mkdir(parents=True)
    write_raster(tmp_path / "src" / "image" / "a.tif", np.ones((2, SIZE, SIZE), np.uint16))
    png(tmp_path / "src" / "mask" / "a.png", grey_mask())
    (record,) = import_landcover(tmp_path / "src", tmp_path / "out", text(tmp_path / "m.yaml", VALUES), dataset="")
    with rasterio.open(tmp_path / "src" / "image" / "a.tif") as src, rasterio.open(record.landcover) as lc:
        assert (lc.crs, lc.transform) == (src.crs, src.transform) and "GEOCD_GRID" not in lc.tags()
    assert (record.name, record.split) == ("a", "")
    with rasterio.open(record.image) as img:
        assert (img.count, img.dtypes[0]) == (2, "uint16")


def test_import_refusals(tmp_path: Path) -> None:
    mapping = text(tmp_path / "m.yaml", VALUES)
    png(tmp_path / "src" / "image" / "a.png", image(0))
    png(tmp_path / "src" / "mask" / "a.png", grey_mask())
    with pytest.raises(InputError, match=r"a\.png: has no georeferencing; pass resolution=METRES$"):
        import_landcover(tmp_path / "src", tmp_path / "out", mapping)
    import_landcover(tmp_path / "src", tmp_path / "out", mapping, resolution=1.0)
    with pytest.raises(OutputError, match="manifest.csv: already exists"):
        import_landcover(tmp_path / "src", tmp_path / "out", mapping, resolution=1.0)
    assert len(import_landcover(tmp_path / "src", tmp_path / "out", mapping, resolution=1.0, overwrite=True)) == 1
    png(tmp_path / "src" / "mask" / "a.png", grey_mask()[:4])
    with pytest.raises(InputError, match=r"mask/a\.png: is 8x4 pixels, image/a\.png is 8x8"):
        import_landcover(tmp_path / "src", tmp_path / "other", mapping, resolution=1.0)


def test_failed_import_leaves_nothing(tmp_path: Path) -> None:
    mapping = text(tmp_path / "m.yaml", VALUES)
    bad = grey_mask()
    bad[1, 1] = 9
    for stem, mask in (("a", grey_mask()), ("b", bad)):
        png(tmp_path / "src" / "image" / f"{stem}.png", image(0))
        png(tmp_path / "src" / "mask" / f"{stem}.png", mask)
    with pytest.raises(InputError, match="unknown mask value 9"):
        import_landcover(tmp_path / "src", tmp_path / "out", mapping, resolution=1.0)
    assert not (tmp_path / "out").exists()
    (tmp_path / "kept" / "image").mkdir(parents=True)
    (tmp_path / "kept" / "image" / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="unknown mask value 9"):
        import_landcover(tmp_path / "src", tmp_path / "kept", mapping, resolution=1.0)
    assert sorted(p.relative_to(tmp_path / "kept").as_posix() for p in (tmp_path / "kept").rglob("*")) == ["image", "image/notes.txt"]


def test_archive_reader_checks_files(tmp_path: Path) -> None:
    image_path = write_raster(tmp_path / "i.tif", np.ones((1, SIZE, SIZE), np.uint8))
    record = LandCoverRecord("x", image_path, tmp_path / "missing.tif")
    write_manifest([record], tmp_path / "manifest.csv")
    with pytest.raises(InputError) as error:
        read_landcover_archive(tmp_path)
    assert str(error.value).startswith(f"{tmp_path / 'missing.tif'}: listed as landcover")


@pytest.mark.parametrize(
    "name, mask, expected",
    [
        ("dubai", np.array([[[0xFE, 0xDD, 0x3A], [0x3C, 0x10, 0x98], [0x84, 0x29, 0xF6], [0, 0, 0]]], np.uint8),
         [(3, 4), (5,), (2,), ()]),
        ("loveda", np.array([[6, 7, 2, 1]], np.uint8), [(4,), (3,), (5,), ()]),
        ("potsdam", np.array([[5, 1, 6, 3]], np.uint8), [(2,), (2,), (), (3,)]),
        ("deepglobe", np.array([[[255, 0, 255], [255, 255, 0], [0, 0, 255], [0, 255, 255]]], np.uint8),
         [(3,), (3,), (1,), ()]),
        ("chesapeake", np.array([[1, 2, 3, 5, 15]], np.uint8), [(1,), (4,), (3,), (5,), ()]),
    ],
)
def test_shipped_mappings(tmp_path: Path, name: str, mask: np.ndarray, expected: list[tuple[int, ...]]) -> None:
    assert mapping_path(name).is_file()
    png(tmp_path / "building" / "m.png", np.ones(mask.shape[:2], np.uint8))  # Chesapeake's footprints: all set
    values = map_mask(png(tmp_path / "mask" / "m.png", mask), load_mapping(name))
    assert [decode_value(v) for v in values[0]] == expected


def test_unknown_shipped_mapping() -> None:
    known = "chesapeake, deepglobe, dubai, gid, loveda, potsdam"
    with pytest.raises(InputError, match=f"no shipped mapping 'atlantis' \\(known: {known}\\)"):
        load_mapping("atlantis")


def test_a_georeferenced_mask_goes_on_its_image_grid(tmp_path: Path) -> None:
    image_grid = Affine(2.0, 0.0, 300_000.0, 0.0, -2.0, 5_000_000.0)
    (tmp_path / "src" / "image").mkdir(parents=True)
    (tmp_path / "src" / "mask").mkdir(parents=True)
    write_raster(tmp_path / "src" / "image" / "a.tif", np.ones((3, SIZE, SIZE), np.uint8), transform=image_grid)
    write_raster(tmp_path / "src" / "mask" / "a.tif", grey_mask()[None], transform=image_grid * Affine.translation(3, 0))
    (record,) = import_landcover(tmp_path / "src", tmp_path / "out", text(tmp_path / "m.yaml", VALUES))
    with rasterio.open(record.landcover) as lc:
        assert lc.transform == image_grid
        assert np.array_equal(lc.read(1), np.array([IGNORE, 1, 76, 5], np.uint8)[grey_mask()])


PREFIXES = ("prefixes:\n  a_:\n    values:\n      1: water\n      2: tree\n"
            "  ab_:\n    values:\n      1: building\n      2: ignore\n")


def test_the_longest_file_name_prefix_picks_the_coding(tmp_path: Path) -> None:
    mapping = load_mapping(text(tmp_path / "m.yaml", PREFIXES))
    mask = np.array([[1, 2]], np.uint8)
    assert map_mask(png(tmp_path / "a_1.png", mask), mapping).tolist() == [[1, 4]]
    assert map_mask(png(tmp_path / "AB_1.png", mask), mapping).tolist() == [[5, IGNORE]]
    path = png(tmp_path / "c_1.png", mask)
    with pytest.raises(InputError) as error:
        map_mask(path, mapping)
    assert str(error.value) == f"{path}: file name starts with none of the prefixes of m.yaml (a_, ab_)"


def test_gid_codings_by_prefix() -> None:
    mapping = load_mapping("gid")
    assert (mapping.coding(Path("psc5_meadow_1.png")).table[4], mapping.coding(Path("psc15_lake_1.png")).table[4]) == (1, 3)


OVERRIDE = "values:\n  1: water\n  5: ground\noverride:\n  folder: building\n  where: [5]\n  class: building\n"


def test_override_folder_turns_marked_pixels_of_listed_values_into_its_class(tmp_path: Path) -> None:
    mask = np.array([[5, 5, 1, 1]], np.uint8)
    png(tmp_path / "src" / "image" / "a.png", image(0)[:1, :4])
    png(tmp_path / "src" / "mask" / "a.png", mask)
    png(tmp_path / "src" / "building" / "a.png", np.array([[1, 0, 1, 0]], np.uint8))
    (record,) = import_landcover(tmp_path / "src", tmp_path / "out", text(tmp_path / "m.yaml", OVERRIDE), resolution=1.0)
    assert read(record.landcover)[0].tolist() == [[5, 2, 1, 1]]


def test_override_mask_missing_or_of_another_size(tmp_path: Path) -> None:
    mapping = load_mapping(text(tmp_path / "m.yaml", OVERRIDE))
    path = png(tmp_path / "mask" / "a.png", np.array([[5, 1]], np.uint8))
    with pytest.raises(InputError) as error:
        map_mask(path, mapping)
    assert str(error.value) == f"{path}: has no matching mask in building/"
    other = png(tmp_path / "building" / "a.tif", np.zeros((2, 2), np.uint8))
    with pytest.raises(InputError) as error:
        map_mask(path, mapping)
    assert str(error.value) == f"{other}: is 2x2 pixels, mask/a.png is 2x1"


@pytest.mark.parametrize(
    "content, problem",
    [
        ("prefixes:\n  a_:\n    labels:\n      1: tree\n", "unknown key 'labels'"),
        ("prefixes:\n  a_:\n    values:\n      1: tree\nvalues:\n  1: tree\n", "'prefixes:' needs"),
        ("values:\n  1: tree\noverride:\n  folder: b\n  where: 5\n  class: building\n", "'override:' needs"),
        ("values:\n  1: tree\noverride:\n  folder: b\n  where: [5]\n  class: house\n", "unknown class 'house'"),
    ],
)
def test_bad_prefixes_or_override_name_the_file(tmp_path: Path, content: str, problem: str) -> None:
    path = text(tmp_path / "bad.yaml", content)
    with pytest.raises(InputError) as error:
        load_mapping(path)
    assert str(error.value).startswith(f"{path}: ") and problem in str(error.value)


def test_bands_keeps_the_chosen_image_bands(tmp_path: Path) -> None:
    rgbn = np.random.default_rng(3).integers(0, 256, (4, SIZE, SIZE), dtype=np.uint8)
    (tmp_path / "src" / "image").mkdir(parents=True)
    with rasterio.open(tmp_path / "src" / "image" / "a.tif", "w", driver="GTiff", width=SIZE, height=SIZE,
                       count=4, dtype="uint8", photometric="RGB") as dst:
        dst.write(rgbn)
        dst.colorinterp = [ColorInterp.red, ColorInterp.green, ColorInterp.blue, ColorInterp.alpha]  # NIR flagged alpha
    png(tmp_path / "src" / "mask" / "a.png", grey_mask())
    mapping = text(tmp_path / "m.yaml", VALUES)
    (record,) = import_landcover(tmp_path / "src", tmp_path / "out", mapping, resolution=1.0, bands=(1, 2, 3))
    with rasterio.open(record.image) as img:
        assert img.read().tolist() == rgbn[:3].tolist()
        assert [ci.name for ci in img.colorinterp] == ["red", "green", "blue"]
    (record,) = import_landcover(tmp_path / "src", tmp_path / "nir", mapping, resolution=1.0, bands=(4,))
    with rasterio.open(record.image) as img:
        assert img.read().tolist() == rgbn[3:].tolist() and img.colorinterp[0].name != "alpha"
    with pytest.raises(InputError, match=r"a\.tif: has no band 5 \(it has 4\)$"):
        import_landcover(tmp_path / "src", tmp_path / "bad", mapping, resolution=1.0, bands=(1, 5))
    assert not (tmp_path / "bad").exists()
