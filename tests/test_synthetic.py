"""Synthetic change pairs: exact from/to labels, feathered colour-matched pastes, removals, the training sampler."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from rasterio.transform import from_origin

from conftest import ORIGIN, write_raster
from geocd.data.archive import LandCoverRecord, PairRecord
from geocd.data.labels import IGNORE, encode_set
from geocd.errors import InputError
from geocd.schema import LandCover
from geocd.training.datamodule import ArchiveDataModule, ArchiveTiles, RandomArchiveSampler, SyntheticItem
from geocd.training.synthetic import synthetic_pair
from geocd.training.train import TrainOptions, train

WATER, GROUND, LOW_VEGETATION, TREE, BUILDING, PLAYGROUND = (LandCover.WATER, LandCover.GROUND, LandCover.LOW_VEGETATION,
                                                            LandCover.TREE, LandCover.BUILDING, LandCover.PLAYGROUND)
SIZE = 64
SQUARE = (slice(20, 40), slice(20, 40))
INTERIOR = (slice(23, 37), slice(23, 37))
"""The pasted square less the 3-pixel reach of the feathering."""


def textured(level: float, seed: int) -> np.ndarray:
    return (level + np.random.default_rng(seed).normal(0, 5, (3, SIZE, SIZE))).astype(np.float32)


def building_source() -> tuple[np.ndarray, np.ndarray]:
    """Ground (level 20) with one building square (level 120), both with std-5 noise."""
    image, label = textured(20, 1), np.full((SIZE, SIZE), GROUND)
    image[(slice(None), *SQUARE)] += 100
    label[SQUARE] = BUILDING
    return image, label


def outside(margin: int = 4) -> np.ndarray:
    far = np.ones((SIZE, SIZE), bool)
    far[20 - margin:40 + margin, 20 - margin:40 + margin] = False
    return far


def test_a_pasted_building_is_labelled_from_the_target_class_to_building() -> None:
    image, label = textured(100, 0), np.full((SIZE, SIZE), LOW_VEGETATION)
    pair = synthetic_pair(image, label, *building_source(), np.random.default_rng(0))
    assert (pair.change[INTERIOR] == 1).all()
    assert (pair.label_before[INTERIOR] == LOW_VEGETATION).all() and (pair.label_after[INTERIOR] == BUILDING).all()
    far = outside()
    assert (pair.change[far] == 0).all() and np.array_equal(pair.before[:, far], pair.after[:, far])
    assert (pair.label_before[far] == LOW_VEGETATION).all() and (pair.label_after[far] == LOW_VEGETATION).all()
    assert np.array_equal(pair.before, image)
    # colour matched: the building stands 100 above its surroundings, which take the target's level
    assert abs(pair.after[(slice(None), *INTERIOR)].mean() - 200) < 5


def test_the_paste_is_feathered_and_its_rim_ignored() -> None:
    image, label = textured(100, 0), np.full((SIZE, SIZE), LOW_VEGETATION)
    pair = synthetic_pair(image, label, *building_source(), np.random.default_rng(0))
    rim = pair.change == IGNORE
    assert rim.any() and not (rim & outside(3)).any() and not rim[INTERIOR].any()
    assert (pair.label_before[rim] == IGNORE).all() and (pair.label_after[rim] == IGNORE).all()
    step = (pair.after - pair.before).mean(0)
    edge = np.zeros((SIZE, SIZE), bool)
    edge[SQUARE] = True
    edge[21:39, 21:39] = False  # the building's outermost pixels
    assert (step[edge] > 20).all() and (step[edge] < 90).all()  # between the target (+0) and the building (+100)
    assert (step[INTERIOR] > 75).all()


def test_class_set_and_ignored_targets_give_no_from_class() -> None:
    image, label = textured(100, 0), np.full((SIZE, SIZE), LOW_VEGETATION)
    label[:, :30] = encode_set({GROUND, LOW_VEGETATION})
    label[:30, 30:] = IGNORE
    label[30:, 33:] = encode_set({TREE, BUILDING})
    pair = synthetic_pair(image, label, *building_source(), np.random.default_rng(0))
    in_set, ignored, allowing = (slice(23, 37), slice(23, 30)), (slice(23, 30), slice(30, 37)), (slice(30, 37), slice(33, 37))
    assert (pair.change[in_set] == 1).all() and (pair.label_before[in_set] == IGNORE).all()
    assert (pair.label_after[in_set] == BUILDING).all()
    for region in (ignored, allowing):
        assert (pair.change[region] == IGNORE).all() and (pair.label_before[region] == IGNORE).all()
        assert (pair.label_after[region] == IGNORE).all()
    assert (pair.change[outside()] == 0).all() and np.array_equal(pair.label_before[outside()], label[outside()])


def test_no_object_gives_an_all_unchanged_pair() -> None:
    image, label = textured(100, 0), np.full((SIZE, SIZE), PLAYGROUND)
    label[:10] = BUILDING  # an object, but no ground or low vegetation texture to fill it with
    source_label = np.full((SIZE, SIZE), PLAYGROUND)  # nor ground to make debris of
    source_label[:2, :2] = BUILDING  # below the minimum object size
    pair = synthetic_pair(image, label, textured(50, 1), source_label, np.random.default_rng(3))
    assert np.array_equal(pair.before, image) and np.array_equal(pair.after, image)
    assert (pair.change == 0).all() and np.array_equal(pair.label_before, label) and np.array_equal(pair.label_after, label)


def test_a_removed_building_becomes_ground_with_ground_texture() -> None:
    image, label = building_source()
    pair = synthetic_pair(image, label, textured(50, 2), np.full((SIZE, SIZE), GROUND), np.random.default_rng(0),
                          edits=("removal",))
    assert (pair.change[INTERIOR] == 1).all()
    assert (pair.label_before[INTERIOR] == BUILDING).all() and (pair.label_after[INTERIOR] == GROUND).all()
    assert abs(pair.after[(slice(None), *INTERIOR)].mean() - 20) < 3 and pair.after[(slice(None), *INTERIOR)].std() > 3
    assert (pair.change[outside()] == 0).all() and np.array_equal(pair.after[:, outside()], image[:, outside()])


def test_a_destroyed_building_becomes_ground_debris_from_the_source_texture() -> None:
    image, label = building_source()
    source = textured(200, 2)
    pair = synthetic_pair(image, label, source, np.full((SIZE, SIZE), GROUND), np.random.default_rng(0),
                          edits=("destruction",))
    assert (pair.change[INTERIOR] == 1).all()
    assert (pair.label_before[INTERIOR] == BUILDING).all() and (pair.label_after[INTERIOR] == GROUND).all()
    debris = pair.after[(slice(None), *INTERIOR)]
    fragments = debris.mean(0) > 60  # pieces of the roof (level 120, darkened) among ground (level 20, matched)
    assert 0.05 < fragments.mean() < 0.5 and abs(np.median(debris[:, ~fragments]) - 20) < 5
    assert (pair.change[outside()] == 0).all() and np.array_equal(pair.after[:, outside()], image[:, outside()])


def test_unpaired_images_change_where_their_classes_differ() -> None:
    image, label = textured(100, 0), np.full((SIZE, SIZE), LOW_VEGETATION)
    label[:, :8] = encode_set({LOW_VEGETATION, TREE})
    label[:4] = IGNORE
    source, source_label = building_source()
    pair = synthetic_pair(image, label, source, source_label, np.random.default_rng(0), kind="unpaired")
    assert np.array_equal(pair.before, image) and np.array_equal(pair.after, source)
    assert (pair.change[INTERIOR] == 1).all() and (pair.label_after[INTERIOR] == BUILDING).all()
    assert (pair.label_before[INTERIOR] == LOW_VEGETATION).all()
    assert (pair.change[4:, 8:20] == 1).all()  # low vegetation -> ground
    assert (pair.change[:4] == IGNORE).all() and (pair.label_before[:4] == IGNORE).all()
    assert (pair.change[4:20, :8] == 1).all()  # {low vegetation, tree} and ground share no class
    assert (pair.label_before[4:20, :8] == encode_set({LOW_VEGETATION, TREE})).all()


def test_unpaired_images_are_unchanged_where_the_class_is_the_same() -> None:
    image, label = building_source()
    pair = synthetic_pair(image, label, textured(60, 3), np.full((SIZE, SIZE), GROUND), np.random.default_rng(0),
                          kind="unpaired")
    assert (pair.change[outside(0)] == 0).all() and (pair.label_after[outside(0)] == GROUND).all()
    assert (pair.change[SQUARE] == 1).all()


def test_an_unchanged_pair_is_another_acquisition_labelled_unchanged() -> None:
    image, label = building_source()
    pair = synthetic_pair(image, label, *building_source(), np.random.default_rng(1), kind="unchanged")
    assert (pair.change == 0).all() and np.array_equal(pair.label_before, label) and np.array_equal(pair.label_after, label)
    assert np.array_equal(pair.before, image) and not np.allclose(pair.after, image, atol=1)


def test_the_same_seed_gives_the_same_pair() -> None:
    rng = np.random.default_rng(5)
    label = rng.choice([GROUND, TREE, BUILDING, WATER], (8, 8)).repeat(8, 0).repeat(8, 1)
    image = textured(80, 4) + label[None] * 20
    pairs = [synthetic_pair(image, label, image[:, ::-1].copy(), label[::-1].copy(), np.random.default_rng(s))
             for s in (7, 7)]
    for field in ("after", "label_before", "label_after", "change"):
        assert np.array_equal(getattr(pairs[0], field), getattr(pairs[1], field))
    assert (pairs[0].change == 1).any()


def landcover_records(folder: Path, images: int = 3) -> list[PairRecord]:
    records = []
    for i in range(images):
        image, label = (np.roll(a, 16 * i, axis=-1) for a in building_source())
        grid = from_origin(ORIGIN[0], ORIGIN[1] + i * 1000, 1.0, 1.0)
        records.append(LandCoverRecord(
            f"lc{i}", write_raster(folder / f"lc{i}.tif", image.clip(0, 255).astype(np.uint8), transform=grid),
            write_raster(folder / f"lc{i}_mask.tif", label.astype(np.uint8)[None], transform=grid)).as_pair())
    return records


@pytest.mark.parametrize("share", [0.0, 1.0])
def test_the_sampler_turns_land_cover_tiles_into_synthetic_change_pairs(tmp_path: Path, share: float) -> None:
    records = landcover_records(tmp_path)
    data = ArchiveDataModule(records, records, 3, SIZE, batch_size=3, epoch_length=6, synthetic_share=share)
    items = list(iter(data.train_dataloader().sampler))
    assert isinstance(data.train_dataloader().sampler, RandomArchiveSampler) and len(items) == 6
    assert sum(isinstance(item, SyntheticItem) for item in items) == (6 if share else 0)
    batch = next(iter(data.train_dataloader()))
    assert batch["single_date"].tolist() == [not share] * 3
    assert ((batch["change"] == 1).any() if share else (batch["change"] == IGNORE).all())
    sample = ArchiveTiles(data.train_pairs)[items[0]]
    assert sample["image_after"].shape == (3, SIZE, SIZE) and sample["label_after"].shape == (SIZE, SIZE)


def test_synthetic_share_needs_land_cover_archives(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="^synthetic_share needs land-cover archives"):
        train([tmp_path / "missing"], tmp_path / "run", TrainOptions(synthetic_share=0.5), echo=lambda line: None)
