"""Pseudo labels: ground truth kept, agreement only, binary pairs, counted fractions, retraining, refused models."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin
from rasterio.windows import Window

from conftest import ORIGIN, intensity_model, synthetic_archive, write_raster
from geocd.checkpoint import load_checkpoint
from geocd.data.archive import read_archive, split_pairs, write_manifest
from geocd.data.labelled import LabelledPairDataset
from geocd.errors import InputError
from geocd.inference.predict import PredictOptions
from geocd.schema import LandCover
from geocd.training.pseudo import pseudo_label
from geocd.training.train import TrainOptions, train

SIZE = 64
DISAGREE_ROWS = 4
"""Rows 0..3 of every 'after' image are made bright: the models call them building there, low vegetation before."""


def read(path: Path) -> np.ndarray:
    with rasterio.open(path) as src:
        return src.read(1)


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 3-pair SECOND-style archive whose first pair's labels lie on a finer (0.5 m) grid."""
    folder = tmp_path_factory.mktemp("archive")
    manifest = synthetic_archive(folder, pairs=3, size=SIZE)
    for record in read_archive(manifest):
        with rasterio.open(record.after, "r+") as dst:
            dst.write(np.full((3, DISAGREE_ROWS, SIZE), 240, np.uint8), window=Window(0, 0, SIZE, DISAGREE_ROWS))
    fine = from_origin(*ORIGIN, 0.5, 0.5)
    for name in ("p0_lb.tif", "p0_la.tif"):
        labels = read(folder / name)
        write_raster(folder / name, labels.repeat(2, 0).repeat(2, 1)[None], transform=fine)
    return manifest


@pytest.fixture(scope="module")
def pseudo(archive: Path, tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201 - (folder, report)
    folder = tmp_path_factory.mktemp("pseudo")
    report = pseudo_label(archive, [intensity_model(), intensity_model()], folder, PredictOptions(tta=True))
    return folder, report


def truth(archive: Path, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Ground-truth land cover of a pair on its 1 m 'before' grid (p0's finer labels decimated by hand)."""
    before, after = (read(archive.parent / f"{name}_{date}.tif") for date in ("lb", "la"))
    return (before[::2, ::2], after[::2, ::2]) if before.shape[0] > SIZE else (before, after)


def test_ground_truth_classes_are_never_overwritten(archive: Path, pseudo) -> None:
    folder, _ = pseudo
    for name in ("p0", "p1", "p2"):
        truth_before, truth_after = truth(archive, name)
        assert truth_before.any()
        for date, labels in (("label_before", truth_before), ("label_after", truth_after)):
            written = read(folder / date / f"{name}.tif")
            changed = labels > 0
            assert np.array_equal(written[changed], labels[changed])
        assert np.array_equal(read(folder / "change" / f"{name}.tif"), (truth_before > 0).astype(np.uint8))


def test_pseudo_labels_only_where_both_dates_agree(archive: Path, pseudo) -> None:
    folder, _ = pseudo
    for name in ("p0", "p1", "p2"):
        unchanged = truth(archive, name)[0] == 0
        disagree = np.zeros((SIZE, SIZE), bool)
        disagree[:DISAGREE_ROWS] = True
        for date in ("label_before", "label_after"):
            written = read(folder / date / f"{name}.tif")
            assert (written[disagree] == 255).all()
            assert (written[unchanged & ~disagree] == LandCover.LOW_VEGETATION).all()


def test_reported_fraction_matches_a_hand_count(archive: Path, pseudo) -> None:
    folder, report = pseudo
    provenance = json.loads((folder / "pseudo_labels.json").read_text())
    assert provenance["tta"] is True and provenance["models"] == ["intensity-model"] * 2
    assert provenance["archive"] == str(archive.resolve())
    for pair, entry in zip(report.pairs, provenance["pairs"]):
        unchanged = truth(archive, pair.name)[0] == 0
        hand = np.count_nonzero(unchanged[DISAGREE_ROWS:]) / np.count_nonzero(unchanged)
        assert pair.fraction == pytest.approx(hand) and entry["fraction"] == pytest.approx(hand)
        assert pair.name in report.table()
    records = read_archive(folder)
    assert [r.name for r in records] == ["p0", "p1", "p2"] and all(r.semantic and r.change for r in records)
    assert records[0].before == (archive.parent / "p0_before.tif").resolve()


def test_training_dataset_takes_change_from_the_change_raster(archive: Path, pseudo) -> None:
    folder, _ = pseudo
    record = read_archive(folder)[1]
    sample = LabelledPairDataset(record, 3).read(Window(0, 0, SIZE, SIZE))
    truth_before = truth(archive, "p1")[0]
    assert np.array_equal(sample["change"].numpy(), (truth_before > 0).astype(np.int64))
    unchanged = truth_before[DISAGREE_ROWS:] == LandCover.UNCHANGED
    assert (sample["label_before"].numpy()[DISAGREE_ROWS:][unchanged] == LandCover.LOW_VEGETATION).all()


def test_binary_pairs_get_pseudo_land_cover_where_unchanged(tmp_path: Path) -> None:
    binary = synthetic_archive(tmp_path / "binary", pairs=2, semantic=False)
    report = pseudo_label(binary, [intensity_model()], tmp_path / "out")
    for pair, record in zip(report.pairs, read_archive(tmp_path / "out")):
        changed = read(binary.parent / f"{record.name}_change.tif") > 0
        for date in ("label_before", "label_after"):
            written = read(tmp_path / "out" / date / f"{record.name}.tif")
            assert (written[~changed] == LandCover.LOW_VEGETATION).all() and (written[changed] == 255).all()
        assert np.array_equal(read(tmp_path / "out" / "change" / f"{record.name}.tif"), changed.astype(np.uint8))
        assert pair.unchanged_pixels == np.count_nonzero(~changed) and pair.fraction == 1.0
        sample = LabelledPairDataset(record, 3).read(Window(0, 0, SIZE, SIZE))
        assert np.array_equal(sample["change"].numpy(), changed.astype(np.int64))
        assert (sample["label_after"].numpy()[changed] == 255).all() and not sample["single_date"]


def test_untrained_models_are_refused(tmp_path: Path, archive: Path) -> None:
    untrained = intensity_model(trained=())
    with pytest.raises(InputError) as error:
        pseudo_label(archive, [intensity_model(), untrained], tmp_path / "out")
    assert str(error.value).startswith("intensity-model: has untrained land-cover heads") and "\n" not in str(error.value)


def test_retraining_with_pseudo_labels_records_provenance(tmp_path: Path, archive: Path, pseudo) -> None:
    options = TrainOptions(backbone="mobilenetv3_small_050", pretrained=False, tile_size=64, batch_size=2, max_epochs=1,
                           val_fraction=0.34, accelerator="cpu", devices=1)
    every_pair, _ = pseudo
    train_records, val_records = split_pairs(read_archive(archive), 0.34)
    train_names = [r.name for r in train_records]
    result = train([archive], tmp_path / "run", replace(options, pseudo_labels=every_pair), echo=lambda line: None)
    info = load_checkpoint(result.last).metadata.info
    assert info["pseudo_labels"] == {"folder": str(every_pair.resolve()), "models": ["intensity-model"] * 2, "tta": True,
                                     "pairs": sorted(train_names),
                                     "unused_pairs": {r.name: "validation split" for r in val_records}}
    assert info["class_weights"] == [1.0] * 6 and info["train_pairs"] == train_names


@pytest.fixture(scope="module")
def split_archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """4 binary pairs with splits from the manifest: p0 test, p1 val, p2 and p3 train."""
    folder = tmp_path_factory.mktemp("split")
    manifest = synthetic_archive(folder, pairs=4, semantic=False)
    records = [replace(r, split=split) for r, split in zip(read_archive(manifest), ("test", "val", "train", "train"))]
    return write_manifest(records, manifest)


def test_test_pairs_are_left_out_unless_asked(tmp_path: Path, split_archive: Path) -> None:
    """Issue 26: pseudo-label labelled the archive's test pairs, which training then refused."""
    report = pseudo_label(split_archive, [intensity_model()], tmp_path / "out")
    assert [(p.name, p.split) for p in report.pairs] == [("p1", "val"), ("p2", "train"), ("p3", "train")]
    assert [r.name for r in read_archive(tmp_path / "out")] == ["p1", "p2", "p3"]
    assert not (tmp_path / "out" / "label_before" / "p0.tif").exists()
    table = report.table().splitlines()
    assert table[2].split()[:2] == ["p2", "train"]
    assert table[-1] == "left out 1 pair of the test split (p0): never trained on (--include-test labels them too)"
    assert json.loads((tmp_path / "out" / "pseudo_labels.json").read_text())["test_pairs_left_out"] == ["p0"]
    with pytest.raises(InputError) as error:
        pseudo_label(split_archive, [intensity_model()], tmp_path / "none", pairs=["p0"])
    assert str(error.value) == (f"{split_archive.resolve()}: has no pair to pseudo-label: p0 in the test split, never "
                                "trained on (include_test=True labels test pairs too)")
    every = pseudo_label(split_archive, [intensity_model()], tmp_path / "all", include_test=True)
    assert [(p.name, p.split) for p in every.pairs][0] == ("p0", "test") and not every.test_pairs_left_out


def test_training_leaves_pseudo_labels_of_pairs_it_does_not_train_on_unused(tmp_path: Path, split_archive: Path) -> None:
    """Pseudo labels of a test pair, a validation pair and a pair of no archive: one line, not an error."""
    every = tmp_path / "all"
    pseudo_label(split_archive, [intensity_model()], every, include_test=True)
    three = write_manifest(read_archive(split_archive)[:3], split_archive.parent / "three.csv")
    options = TrainOptions(backbone="mobilenetv3_small_050", pretrained=False, tile_size=64, batch_size=2, max_epochs=1,
                           accelerator="cpu", devices=1, num_workers=0, pseudo_labels=every)
    lines: list[str] = []
    result = train([three], tmp_path / "run", options, echo=lines.append)
    assert lines[0] == ("pseudo labels of 3 pairs not trained on are left unused: p0 (test split), p1 (validation split), "
                        "p3 (in none of the training archives)")
    info = load_checkpoint(result.last).metadata.info["pseudo_labels"]
    assert info["pairs"] == ["p2"] and info["unused_pairs"] == {"p0": "test split", "p1": "validation split",
                                                                "p3": "in none of the training archives"}
