"""The click shell: help that teaches, fast start, honest placeholders, one-line errors."""

import subprocess
import sys
from pathlib import Path

import pytest
import rasterio
from click.testing import CliRunner

from cli.main import cli, error_line
from geocd.errors import CheckpointError, InputError

COMMANDS = ["demo", "predict", "vectorize", "train", "evaluate", "pseudo-label", "import-chips", "import-landcover"]


def test_help_lists_every_command_with_a_description() -> None:
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    for name in COMMANDS:
        line = next(line for line in result.output.splitlines() if line.strip().startswith(name + " "))
        assert len(line.split(maxsplit=1)[1]) > 10


@pytest.mark.parametrize("name", COMMANDS)
def test_each_command_help_has_an_example(name: str) -> None:
    result = CliRunner().invoke(cli, [name, "--help"])
    assert result.exit_code == 0
    assert "Example:" in result.output and f"geocd {name}" in result.output


def test_version() -> None:
    from geocd import __version__

    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0 and __version__ in result.output


def test_help_does_not_import_torch() -> None:
    code = "import sys; import geocd.cli.main; assert 'torch' not in sys.modules and 'torchgeo' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_cli_is_installed_under_the_geocd_namespace_only() -> None:
    import geocd.cli.main

    assert Path(geocd.cli.main.__file__).parent.name == "cli"
    top_level = Path(sys.prefix) / "lib"
    assert not list(top_level.glob("python3*/site-packages/cli/__init__.py"))


def test_demo_writes_a_georeferenced_pair(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["demo", str(tmp_path / "d"), "--size", "128"])
    assert result.exit_code == 0, result.output
    with rasterio.open(tmp_path / "d" / "before.tif") as before, rasterio.open(tmp_path / "d" / "after.tif") as after:
        assert before.crs.to_epsg() == 32633 and before.crs == after.crs
        assert before.transform == after.transform and before.transform.a == 0.5
        assert (before.count, before.width, before.height) == (3, 128, 128)
    with rasterio.open(tmp_path / "d" / "truth.tif") as truth:
        changed = truth.read(1) > 0
        assert 0.02 < changed.mean() < 0.5


def test_demo_refuses_to_overwrite_with_exit_2(tmp_path: Path) -> None:
    runner = CliRunner()
    assert runner.invoke(cli, ["demo", str(tmp_path), "--size", "64"]).exit_code == 0
    result = runner.invoke(cli, ["demo", str(tmp_path), "--size", "64"])
    assert result.exit_code == 2
    assert result.output.strip() == f"geocd: error: {tmp_path / 'before.tif'}: already exists (use --overwrite to replace it)"


def test_train_on_a_missing_archive_is_one_line_exit_2(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["train", str(tmp_path / "none.csv"), "-o", str(tmp_path / "run")])
    assert result.exit_code == 2
    assert result.output.strip() == f"geocd: error: {tmp_path / 'none.csv'}: archive does not exist"


def test_import_chips_from_the_command_line(tmp_path: Path) -> None:
    import numpy as np
    from PIL import Image

    for folder in ("A", "B", "label"):
        (tmp_path / "src" / folder).mkdir(parents=True)
    Image.fromarray(np.full((8, 8, 3), 50, np.uint8)).save(tmp_path / "src" / "A" / "c.png")
    Image.fromarray(np.full((8, 8, 3), 90, np.uint8)).save(tmp_path / "src" / "B" / "c.png")
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "src" / "label" / "c.png")
    result = CliRunner().invoke(cli, ["import-chips", str(tmp_path / "src"), str(tmp_path / "dst"), "--resolution", "0.5"])
    assert result.exit_code == 0, result.output
    assert "imported 1 binary pairs" in result.output and (tmp_path / "dst" / "manifest.csv").is_file()


def test_library_parameters_reach_the_command_line_as_its_flags() -> None:
    """The library names parameters (leading, or ``name=value``); each command's own click options give the flags."""
    train, predict = cli.commands["train"], cli.commands["predict"]
    offline = CheckpointError(None, "no ImageNet weights for backbone 'b' offline: pass backbone_weights=FILE, or pretrained=False")
    assert error_line(offline, train) == "no ImageNet weights for backbone 'b' offline: pass --backbone-weights FILE, or --no-pretrained"
    assert error_line(InputError("p.tif", "tile_size 3 is too small"), predict) == "p.tif: --tile-size 3 is too small"
    assert error_line(InputError("run", "holds a run (use resume=True)"), predict) == "run: holds a run (use resume=True)"


def test_a_training_option_error_names_the_flags(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["train", str(tmp_path / "archive"), "-o", str(tmp_path / "run"), "--max-epochs", "3",
                                      "--val-every", "2"])
    assert (result.exit_code, result.output) == (2, "geocd: error: --val-every 2 must divide --max-epochs 3: the last "
                                                    "epoch is validated\n")
    assert not (tmp_path / "run").exists()
