"""Invariance training: nuisance differences between dates that are not change, and how the sampler deals them out."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import ndimage

from conftest import smooth_scene, synthetic_archive
from geocd.data.archive import read_archive
from geocd.training import invariance
from geocd.training.datamodule import ArchiveDataModule, ArchiveTiles, NuisanceItem, SyntheticItem
from geocd.training.invariance import nuisance, with_nuisance
from test_synthetic import landcover_records


def scene() -> np.ndarray:
    return smooth_scene(96, 96, seed=3)


def only(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    monkeypatch.setattr(invariance, "PROBABILITIES", {k: float(k == name) for k in invariance.PROBABILITIES})


def test_nuisance_is_another_look_at_the_same_ground() -> None:
    image = scene()
    outs = [nuisance(image, np.random.default_rng(seed)) for seed in range(20)]
    assert all(o.shape == image.shape and o.dtype == np.float32 and o.min() >= 0 and o.max() <= 255 for o in outs)
    assert np.array_equal(nuisance(image, np.random.default_rng(4)), outs[4])
    assert sum(not np.allclose(o, image, atol=2) for o in outs) >= 18
    # the scene stays recognisable: its pattern correlates with the original
    correlations = [np.corrcoef(o.mean(0).ravel(), image.mean(0).ravel())[0, 1] for o in outs]
    assert min(correlations) > 0.5 and np.median(correlations) > 0.9


def test_misregistration_moves_the_ground_by_at_most_two_pixels_and_a_little_rotation(monkeypatch: pytest.MonkeyPatch) -> None:
    only(monkeypatch, "geometry")
    image = np.zeros((3, 96, 96), np.float32)
    image[:, 46:50, 46:50] = 200
    moves = []
    for seed in range(20):
        out = nuisance(image, np.random.default_rng(seed))
        moves.append(np.hypot(*(np.array(ndimage.center_of_mass(out[0])) - 47.5)))
    assert 0.3 < max(moves) <= 2 * np.sqrt(2) + 0.1


def test_jpeg_leaves_blocking_artefacts(monkeypatch: pytest.MonkeyPatch) -> None:
    only(monkeypatch, "jpeg")
    image = scene()
    out = nuisance(image, np.random.default_rng(0))
    assert 0.5 < np.abs(out - image).mean() < 10 and np.allclose(out, np.round(out))


def test_with_nuisance_changes_one_date_and_keeps_the_labels() -> None:
    sample = {"image_before": torch.from_numpy(scene()), "image_after": torch.from_numpy(scene()),
              "change": torch.zeros(96, 96, dtype=torch.int64)}
    out = with_nuisance(sample, np.random.default_rng(2))
    same = [torch.equal(out[k], sample[k]) for k in ("image_before", "image_after")]
    assert sorted(same) == [False, True] and out["change"] is sample["change"]


def test_the_sampler_gives_nuisance_to_change_tiles_and_unchanged_synthetic_pairs(tmp_path: Path) -> None:
    change = read_archive(synthetic_archive(tmp_path / "archive", pairs=2))
    land = landcover_records(tmp_path, images=3)
    data = ArchiveDataModule(change + land, change, 3, 64, batch_size=4, epoch_length=400, landcover_share=0.5,
                             synthetic_share=1.0, invariance=1.0)
    sampler = data.train_dataloader().sampler
    items = list(iter(sampler))
    synthetic = [i for i in items if isinstance(i, SyntheticItem)]
    land_tiles = sum(n for pair, n in zip(sampler.pairs, sampler.counts) if pair.record.single_date)
    assert len(synthetic) == land_tiles > 150 and all(isinstance(i, NuisanceItem) for i in items if i not in synthetic)
    kinds = {kind: sum(i.kind == kind for i in synthetic) for kind in ("edit", "unpaired", "unchanged")}
    assert all(20 <= n <= 150 for n in kinds.values()) and all(i.nuisance for i in synthetic if i.kind != "unchanged")
    tiles = ArchiveTiles(data.train_pairs)
    nuisance_item = next(i for i in items if isinstance(i, NuisanceItem))
    plain, varied = tiles[nuisance_item.item], tiles[nuisance_item]
    assert torch.equal(plain["change"], varied["change"]) and torch.equal(plain["label_after"], varied["label_after"])
    assert not (torch.equal(plain["image_before"], varied["image_before"])
                and torch.equal(plain["image_after"], varied["image_after"]))
    unchanged = tiles[next(i for i in synthetic if i.kind == "unchanged")]
    assert (unchanged["change"] == 0).all() and not torch.equal(unchanged["image_before"], unchanged["image_after"])


def test_without_invariance_no_tile_gets_nuisance(tmp_path: Path) -> None:
    change = read_archive(synthetic_archive(tmp_path / "archive", pairs=2))
    land = landcover_records(tmp_path, images=3)
    data = ArchiveDataModule(change + land, change, 3, 64, batch_size=4, epoch_length=100, synthetic_share=1.0)
    items = list(iter(data.train_dataloader().sampler))
    assert not any(isinstance(i, NuisanceItem) or (isinstance(i, SyntheticItem) and (i.nuisance or i.kind == "unchanged"))
                   for i in items)
