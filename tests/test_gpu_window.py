"""The GPU-window recipe: the bundle it packs, the pairs it draws, and a CPU dry run of its training."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from PIL import Image
from safetensors import safe_open

from geocd.checkpoint import DEFAULT_MODEL, load_checkpoint
from geocd.data.labels import IGNORE, encode_set
from geocd.inference.predict import PredictOutputs, predict
from geocd.schema import LandCover
from geocd.training.bundle import BundleEntry, read_bundle, write_bundle
from geocd.training.gpu_window import (MAX_CHECKPOINT_BYTES, DevicePairs, WindowOptions, nuisance, sampling_weights,
                                       train_window)
from geocd.training.synthetic import unpaired_labels

from conftest import planted_pair, smooth_scene

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
from gpu_window import main  # noqa: E402


def write_png(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny data folder laid out as ../shared/data: two LEVIR chips, one validation tile, one Potsdam map."""
    root = tmp_path_factory.mktemp("data")
    scene = smooth_scene(64, 64).astype(np.uint8).transpose(1, 2, 0)
    change = np.zeros((64, 64), np.uint8)
    change[10:30, 20:40] = 255
    for folder, name in (("levir", "train_1"), ("levir", "val_2"), ("levir-full", "test_101")):
        write_png(root / folder / "A" / f"{name}.png", scene)
        write_png(root / folder / "B" / f"{name}.png", np.where(change[..., None] > 0, 250, scene).astype(np.uint8))
        write_png(root / folder / "label" / f"{name}.png", change)
    mask = np.ones((64, 64), np.uint8)  # potsdam: 1 impervious -> ground
    mask[:, 32:] = 2  # building
    mask[40:, :] = 4  # tree
    write_png(root / "landcover" / "potsdam" / "image" / "tile.png", scene)
    write_png(root / "landcover" / "potsdam" / "mask" / "tile.png", mask)
    return root


@pytest.fixture(scope="module")
def bundle(data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("bundle") / "bundle.zip"
    main(["pack", str(data), str(path)])
    return path


@pytest.fixture
def one_thread() -> Iterator[None]:
    """Torch on one CPU thread meanwhile: on tiny tensors, threads cost more than they save (20x on a busy machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_pack_leaves_out_validation_scenes_and_keeps_labels(bundle: Path) -> None:
    entries = {e.name: e for e in read_bundle(bundle)}
    assert sorted(entries) == ["levir/train_1", "levir/val_2", "potsdam/tile"]
    pair = entries["levir/train_1"]
    assert pair.resolution_m == 0.5 and pair.before.shape == (64, 64, 3) and pair.after.dtype == np.uint8
    assert np.array_equal(np.unique(pair.change), [0, 1]) and pair.change[10:30, 20:40].all()
    landcover = entries["potsdam/tile"]
    assert landcover.after is None and landcover.resolution_m == 0.05
    assert (landcover.landcover[0, 0], landcover.landcover[0, 40], landcover.landcover[50, 0]) == (
        LandCover.GROUND, LandCover.BUILDING, LandCover.TREE)


def test_pack_is_deterministic_and_respects_the_size_limit(data: Path, bundle: Path, tmp_path: Path) -> None:
    again = tmp_path / "again.zip"
    main(["pack", str(data), str(again)])
    assert again.read_bytes() == bundle.read_bytes()
    small = tmp_path / "small.zip"
    with pytest.raises(ValueError, match="over the limit of"):
        write_bundle(read_bundle(bundle), small, max_bytes=2**10)
    assert list(tmp_path.iterdir()) == [again]


def test_unpaired_labels_follow_the_star_rule() -> None:
    vegetation = encode_set((3, 4))
    before = torch.tensor([[5, 5, 3, IGNORE, vegetation]], dtype=torch.uint8)
    after = torch.tensor([[5, 2, vegetation, 2, 2]], dtype=torch.uint8)
    labels = unpaired_labels(before, after)
    assert labels[2].tolist() == [[0, 1, IGNORE, IGNORE, 1]]
    assert labels[0].tolist() == [[5, 5, IGNORE, IGNORE, vegetation]]
    assert labels[1].tolist() == [[5, 2, IGNORE, IGNORE, 2]]


def test_batches_label_invariance_pairs_unchanged_and_keep_real_change(bundle: Path) -> None:
    entries = read_bundle(bundle)
    invariance = DevicePairs(entries, torch.device("cpu"), WindowOptions(tile_size=32, shares=(0, 1, 0))).batch(6)
    assert (invariance["change"] == 0).all() and torch.equal(invariance["label_before"], invariance["label_after"])
    assert not torch.equal(invariance["image_before"], invariance["image_after"])
    real = DevicePairs(entries, torch.device("cpu"), WindowOptions(tile_size=32, shares=(1, 0, 0))).batch(6)
    assert set(real["change"].unique().tolist()) <= {0, 1} and real["change"].any()
    assert (real["label_before"] == IGNORE).all() and (real["label_after"] == IGNORE).all()
    assert real["image_before"].shape == (6, 3, 32, 32) and real["image_before"].dtype == torch.float32


def test_datasets_are_drawn_by_the_square_root_of_their_pixels() -> None:
    def entry(dataset: str, side: int) -> BundleEntry:
        return BundleEntry(dataset, dataset, 1.0, np.zeros((side, side, 3), np.uint8), landcover=np.zeros((side, side), np.uint8))

    weights = sampling_weights([entry("big", 80), entry("big", 60), entry("small", 20)])
    assert np.allclose(weights, [0.64 * 100 / 120, 0.36 * 100 / 120, 20 / 120])  # datasets: sqrt(10000) : sqrt(400)


def test_nuisance_keeps_shape_and_range() -> None:
    images = torch.from_numpy(np.stack([smooth_scene(32, 32, seed) for seed in range(4)]))
    out = nuisance(images, torch.Generator().manual_seed(0))
    assert out.shape == images.shape and out.min() >= 0 and out.max() <= 255
    assert not torch.equal(out, images)


@pytest.mark.usefixtures("one_thread")
def test_cpu_dry_run_writes_checkpoints_geocd_predicts_with(bundle: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    main(["train", str(bundle), str(run), "--max-steps", "2", "--batch-size", "2", "--tile-size", "64",
          "--checkpoint-at", "0"])
    assert sorted(p.name for p in run.iterdir()) == ["last.safetensors", "minute-0.safetensors", "summary.json"]
    for path in run.glob("*.safetensors"):
        assert path.stat().st_size <= MAX_CHECKPOINT_BYTES
        with safe_open(str(path), framework="pt") as f:
            assert f.get_tensor("change_head.head.classifier.1.weight").dtype == torch.float16
    loaded = load_checkpoint(run / "last.safetensors")
    assert loaded.metadata.info["gpu_window"]["steps"] == 2 and loaded.metadata.tile_size == 64
    start = load_checkpoint(DEFAULT_MODEL).model.state_dict()
    assert any(not torch.equal(t, start[name]) for name, t in loaded.model.state_dict().items())
    before, after, _ = planted_pair(tmp_path)
    predict(before, after, models=[loaded], outputs=PredictOutputs(raster=tmp_path / "change.tif"))
    with rasterio.open(tmp_path / "change.tif") as src:
        assert (src.width, src.height) == (128, 96)


@pytest.mark.usefixtures("one_thread")
def test_training_stops_within_its_budget(bundle: Path, tmp_path: Path) -> None:
    result = train_window(bundle, tmp_path / "run", WindowOptions(minutes=0.05, reserve_s=3.0, batch_size=2,
                                                                   tile_size=64, checkpoint_minutes=()), echo=lambda _: None)
    assert result.seconds < 3.0 and list(result.checkpoints) == ["last"]
