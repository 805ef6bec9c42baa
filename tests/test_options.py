"""Options spoken once: each field of the option dataclasses is a flag, a ``--config`` key and a saved key."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import click
import numpy as np
import pytest
import rasterio
from click.testing import CliRunner

import geocd.training.train
from cli.main import cli
from conftest import synthetic_archive
from geocd.changemap import NODATA, is_changed
from geocd.data.archive import read_archive
from geocd.data.labels import IGNORE
from geocd.metrics import binary_scores, confusion_matrix
from geocd.options import PredictOptions, TrainOptions


def flagged(owner: type) -> list[str]:
    """The fields of ``owner`` that the command line speaks (not the library-only ones)."""
    return [f.name for f in dataclasses.fields(owner) if f.metadata.get("flag", True)]


def options_of(command: str) -> dict[str, click.Option]:
    """The click options of ``geocd command`` by parameter name."""
    return {p.name: p for p in cli.commands[command].params if isinstance(p, click.Option)}


@pytest.mark.parametrize(("owner", "commands"), [
    (TrainOptions, ["train"]),
    (PredictOptions, ["predict", "evaluate", "pseudo-label"]),
])
def test_every_option_field_is_a_flag_named_after_it(owner: type, commands: list[str]) -> None:
    for command in commands:
        options = options_of(command)
        for name in flagged(owner):
            assert f"--{name.replace('_', '-')}" in options[name].opts, (command, name)
            if owner.__dataclass_fields__[name].default is not dataclasses.MISSING and not options[name].callback:
                assert options[name].default == owner.__dataclass_fields__[name].default, (command, name)
    assert set(flagged(PredictOptions)) - set(options_of("predict-archive")) == {"num_workers"}


def test_every_train_field_is_a_config_key_and_saved(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def fake_train(archives, output, options, echo, progress, config):  # noqa: ANN001, ANN202 - records the call
        calls.append((options, config))
        return geocd.training.train.TrainResult(Path(output) / "last.safetensors", Path(output) / "best.safetensors", {})

    monkeypatch.setattr(geocd.training.train, "train", fake_train)
    assert CliRunner().invoke(cli, ["train", "a.csv", "-o", str(tmp_path / "one")]).exit_code == 0
    options, config = calls[0]
    assert options == TrainOptions()
    assert set(config) == {"archives", "output", *flagged(TrainOptions)} - {"resume"}
    (tmp_path / "old.yaml").write_text("landcover_resolution: 2.0\nclass_weights: 1,1,1,1,1,2\nlandcover: [lc]\n"
                                       "backbone_weights: w.safetensors\ndevices: 2\nfreeze: [encoder]\n")
    again = CliRunner().invoke(cli, ["train", "a.csv", "--config", str(tmp_path / "old.yaml"), "-o", str(tmp_path / "two")])
    assert again.exit_code == 0, again.output
    assert calls[1][0] == TrainOptions(landcover_resolution=2.0, class_weights=(1, 1, 1, 1, 1, 2), landcover=(Path("lc"),),
                                       backbone_weights=Path("w.safetensors"), devices=2, freeze=("encoder",))


def test_a_library_error_names_the_flag_of_a_field(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["train", "a.csv", "-o", str(tmp_path / "run"), "--synthetic-share", "0.5"])
    assert result.exit_code == 2
    assert result.output == ("geocd: error: --synthetic-share needs land-cover archives (--landcover ARCHIVE) to make "
                             "synthetic change pairs from\n")


FLAGS = ["--bands", "3,2,1", "--radiometry", "stretch", "--backend", "torch", "--threshold", "0.4", "--num-workers", "0"]


def test_evaluate_scores_what_predict_writes_with_the_same_flags(tmp_path: Path, tiny_checkpoint: Path) -> None:
    manifest = synthetic_archive(tmp_path / "archive", pairs=1, semantic=False)
    record = read_archive(manifest)[0]
    model = ["--model", str(tiny_checkpoint)]
    predicted = CliRunner().invoke(cli, ["predict", str(record.before), str(record.after), "--raster",
                                         str(tmp_path / "change.tif"), *model, *FLAGS])
    assert predicted.exit_code == 0, predicted.output
    with rasterio.open(tmp_path / "change.tif") as src, rasterio.open(record.change) as truth:
        probability, labels = src.read(1), truth.read(1)
    valid = probability != NODATA
    expected = confusion_matrix(np.where(valid, labels, IGNORE), is_changed(probability, 0.4).astype(np.int64), 2)

    def scored(*flags: str) -> dict:
        out = tmp_path / f"evaluation{len(flags)}"
        result = CliRunner().invoke(cli, ["evaluate", str(manifest), *model, "-o", str(out), *flags])
        assert result.exit_code == 0, result.output
        return json.loads((out / "evaluation.json").read_text())["pairs"][0]

    pair = scored(*FLAGS)
    assert pair["binary_confusion"] == expected.tolist() and expected[1].sum() and expected[:, 1].sum()
    assert pair["f1"] == binary_scores(expected).f1
    assert scored("--num-workers", "0")["binary_confusion"] != expected.tolist()
