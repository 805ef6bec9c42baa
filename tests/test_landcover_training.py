"""Land-cover heads learnt from single-date maps beside change pairs."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import ORIGIN, synthetic_archive, write_raster
from geocd.checkpoint import load_checkpoint
from geocd.data.archive import LandCoverRecord, write_manifest
from geocd.data.labels import encode_set
from geocd.schema import LandCover
from geocd.training.losses import ChangeLoss, allowed_classes
from geocd.training.train import TrainOptions, train
from rasterio.transform import from_origin

WATER, GROUND, BUILDING = LandCover.WATER, LandCover.GROUND, LandCover.BUILDING
COLOURS = {WATER: (30, 45, 120), BUILDING: (200, 80, 70)}


def scene(rng: np.random.Generator, size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Water on the left, buildings on the right (split column drawn at random)."""
    split = rng.integers(16, size - 16)
    cover = np.full((size, size), WATER, np.uint8)
    cover[:, split:] = BUILDING
    image = np.zeros((3, size, size), np.float32)
    for cls, colour in COLOURS.items():
        image[:, cover == cls] = np.array(colour, np.float32)[:, None]
    return (image + rng.normal(0, 10, image.shape)).clip(0, 255).astype(np.uint8), cover


def landcover_archive(folder: Path, images: int = 4) -> Path:
    """Single-date maps; the first image labels its water only coarsely, as the set {water, ground}."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(1)
    records = []
    for i in range(images):
        image, cover = scene(rng)
        labels = cover.copy()
        if i == 0:
            labels[cover == WATER] = encode_set({WATER, GROUND})
        grid = from_origin(ORIGIN[0], ORIGIN[1] + i * 1000, 0.5, 0.5)
        records.append(LandCoverRecord(
            f"lc{i}", write_raster(folder / f"lc{i}.tif", image, transform=grid),
            write_raster(folder / f"lc{i}_mask.tif", labels[None], transform=grid), dataset="toy",
        ))
    return write_manifest(records, folder / "manifest.csv")


def test_partial_label_loss_by_hand() -> None:
    logits = torch.tensor([1.0, 2.0, 0.5, -1.0, 0.0, 0.3]).view(1, 6, 1, 1)
    labels = torch.tensor([[[encode_set({1, 3})]]])
    p = torch.softmax(logits.flatten(), 0)
    loss = ChangeLoss(class_weights=(1.0,) * 6).semantic(logits, labels)
    assert loss.item() == pytest.approx(-math.log(p[0] + p[2]))
    allowed = allowed_classes(torch.tensor([[[0, 255, 5]]]), 6)[0, :, 0]  # [classes, pixels]
    assert not allowed[:, :2].any() and allowed[:, 2].tolist() == [False, False, False, False, True, False]


def test_single_date_maps_train_the_land_cover_head(tmp_path: Path) -> None:
    changes = synthetic_archive(tmp_path / "changes", pairs=2, semantic=False)
    land_cover = landcover_archive(tmp_path / "landcover")
    options = TrainOptions(backbone="mobilenetv3_small_050", pretrained=False, tile_size=64, batch_size=4, max_epochs=8,
                           epoch_length=16, val_fraction=0.5, accelerator="cpu", devices=1, landcover=(land_cover,),
                           landcover_resolution=None, lr=2e-3)
    result = train([changes], tmp_path / "run", options, echo=lambda line: None)
    loaded = load_checkpoint(result.last)
    assert loaded.metadata.trained_classes == (WATER, BUILDING)  # ground only ever came in a set
    assert "landcover_miou" in loaded.metadata.info["validation"]
    image, cover = scene(np.random.default_rng(99))
    x = torch.from_numpy(image.astype(np.float32))[None]  # raw pixels: the network normalises them
    with torch.no_grad():
        logits = loaded.model(x, x).sem_before[0]
    trained = [c - 1 for c in loaded.metadata.trained_classes]
    predicted = np.array(loaded.metadata.trained_classes)[logits[trained].argmax(0).numpy()]
    assert (predicted == cover).mean() > 0.8  # chance is about 0.5
