"""Which runtime and device run, said up front; the time left while tiles are predicted; ``geocd info``."""

from __future__ import annotations

import io
import json
import platform
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli.main import cli
from conftest import planted_pair
from geocd.inference.backends import openvino_precision, physical_cores
from geocd.progress import Progress


def expected_cpu_line() -> str:
    """The runtime line of the auto backend on this CPU, with OpenVINO installed (the test extra)."""
    return f"running openvino ({openvino_precision('auto')}) on cpu, {physical_cores()} cores"


def test_predict_says_runtime_and_device_before_the_first_tile_and_the_time_left(tmp_path: Path,
                                                                                  tiny_checkpoint: Path) -> None:
    before, after, _ = planted_pair(tmp_path)
    result = CliRunner().invoke(cli, ["predict", str(before), str(after), "--raster", str(tmp_path / "c.tif"), "--model",
                                      str(tiny_checkpoint), "--num-workers", "0", "--tile-size", "64", "--progress", "json"])
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.output.splitlines()]
    events = [(r["event"], r.get("text")) for r in records]
    first_progress = events.index(("progress", None))
    assert ("message", expected_cpu_line()) in events[:first_progress]
    progress = [r for r in records if r["event"] == "progress"]
    assert len(progress) > 1 and all(r["seconds_left"] >= 0 for r in progress) and progress[-1]["seconds_left"] == 0


def test_plain_output_names_the_runtime_too(tmp_path: Path, tiny_checkpoint: Path) -> None:
    before, after, _ = planted_pair(tmp_path)
    result = CliRunner().invoke(cli, ["predict", str(before), str(after), "--raster", str(tmp_path / "c.tif"), "--model",
                                      str(tiny_checkpoint), "--num-workers", "0", "--backend", "torch"])
    assert result.exit_code == 0, result.output
    assert f"running torch (fp32) on cpu, {physical_cores()} cores" in result.output.splitlines()
    quiet = CliRunner().invoke(cli, ["predict", str(before), str(after), "--raster", str(tmp_path / "d.tif"), "--model",
                                     str(tiny_checkpoint), "--num-workers", "0", "--quiet"])
    assert quiet.exit_code == 0 and quiet.output == ""


def test_json_time_left_is_the_elapsed_rate_times_the_tiles_left(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = iter([0.0, 100.0, 110.0, 130.0])  # made, started, two steps
    monkeypatch.setattr("geocd.progress.time.perf_counter", lambda: next(clock))
    stream = io.StringIO()
    progress = Progress("json", stream)
    progress.start(4, "predicting tiles")
    progress.advance(1, 10)  # 10 s for 1 tile: 3 left take 30 s
    progress.advance(1, 10)  # 30 s for 2 tiles: 2 left take 30 s
    records = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [r["seconds_left"] for r in records if r["event"] == "progress"] == [30.0, 30.0]


def test_info_names_versions_runtime_device_and_model_card(tiny_checkpoint: Path) -> None:
    from geocd import __version__

    result = CliRunner().invoke(cli, ["info", "--model", str(tiny_checkpoint), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == f"geocd {__version__} in {Path(__file__).resolve().parents[1] / 'geocd'}"
    assert lines[1] == f"python {platform.python_version()} at {sys.executable}"
    assert lines[2].startswith("torch ")
    assert lines[3].startswith("graph runtimes: openvino 20") and ", onnxruntime 1." in lines[3]
    assert lines[4] == f"predict: {expected_cpu_line()}"
    assert lines[5] == "model:" and lines[6].startswith(f"  {tiny_checkpoint.resolve()}, ")
    assert lines[7:] == [f"  name: {tiny_checkpoint.stem}", "  backbone: resnet18 (lightweight heads), tile 64 px, geocd 0.1.0",
                         "  input: red, green, blue (display8)", "  land-cover classes trained: none (change only)"]


def test_info_errors_are_one_line(tmp_path: Path) -> None:
    missing = tmp_path / "missing.safetensors"
    result = CliRunner().invoke(cli, ["info", "--model", str(missing), "--device", "cpu"])
    assert result.exit_code == 2 and result.output == f"geocd: error: {missing}: --model file does not exist\n"


def test_the_runtime_line_names_the_gpu_on_cuda(monkeypatch: pytest.MonkeyPatch, tiny_checkpoint: Path) -> None:
    import torch

    from geocd.inference.backends import runtime_line

    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device: "NVIDIA Test GPU")
    assert runtime_line(tiny_checkpoint, torch.device("cuda:0"), "auto", "auto") == "running torch (fp16 autocast) on cuda:0 (NVIDIA Test GPU)"
