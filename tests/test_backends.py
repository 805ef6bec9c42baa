"""Inference backends: ONNX Runtime and OpenVINO match PyTorch, the graph cache, the backend and precision choice."""

from __future__ import annotations

import importlib.util
import shutil
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from click.testing import CliRunner

from cli.main import cli
from conftest import intensity_model, planted_pair, random_checkpoint, write_raster
from geocd.changemap import is_changed
from geocd.checkpoint import LoadedModel, load_checkpoint, save_checkpoint
from geocd.inference import backends, eager
from geocd.inference.backends import build_runners, onnx_cache_path
from geocd.inference.eager import TorchRunner
from geocd.inference.predict import PredictOptions, PredictOutputs, predict
from geocd.models.tta import predict_probabilities

CPU = "cpu"
needs_openvino = pytest.mark.skipif(importlib.util.find_spec("openvino") is None, reason="needs openvino")
LEVIR = Path("/work/shared/data/levir-full")


def pixels(batch: int, tile: int) -> np.ndarray:
    """A random float32 batch ``[batch, 3, tile, tile]`` of 8-bit pixel values."""
    return np.random.default_rng().random((batch, 3, tile, tile), np.float32) * 255


@pytest.fixture(scope="module")
def small_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A geocd checkpoint of timm's smallest test backbone (random weights, PSP head, 64-pixel tiles): quick to export."""
    return random_checkpoint(tmp_path_factory.mktemp("models") / "small.safetensors", "test_efficientnet")


@pytest.fixture
def exports(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """The targets of every ONNX export made during the test."""
    made: list[Path | None] = []
    export = eager.export_onnx

    def counting(loaded: LoadedModel, tile_size: int, target: Path | None = None) -> bytes | None:
        made.append(target)
        return export(loaded, tile_size, target)

    monkeypatch.setattr(eager, "export_onnx", counting)
    return made


@pytest.fixture
def no_onnxruntime(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make ``import onnxruntime`` fail, as on an install without it."""
    monkeypatch.setitem(sys.modules, "onnxruntime", None)


def test_onnx_probabilities_match_torch_with_tta_and_an_ensemble(tmp_path: Path, small_checkpoint: Path) -> None:
    tile = 80  # features of 20 pixels, which PSP bins of 3 and 6 do not divide
    other = load_checkpoint(small_checkpoint)
    other.model.change_head.head.classifier[1].bias.data += 0.5
    models = [load_checkpoint(small_checkpoint), load_checkpoint(save_checkpoint(tmp_path / "other.safetensors", other.model, other.metadata))]
    before, after = (pixels(2, tile) for _ in range(2))
    expected = predict_probabilities(build_runners(models, CPU, "torch", tile), before, after, tta=True)
    runners = build_runners(models, CPU, "onnx", tile)
    assert not any(isinstance(r, TorchRunner) for r in runners)
    got = predict_probabilities(runners, before, after, tta=True)
    for a, b in zip(expected, got):
        assert a.shape == b.shape
        assert np.allclose(a, b, atol=1e-4, rtol=0)


def test_onnx_runs_every_scale_like_torch(small_checkpoint: Path) -> None:
    models = [load_checkpoint(small_checkpoint)]
    before, after = (pixels(1, 64) for _ in range(2))
    scales = (1.0, 0.5)
    expected = predict_probabilities(build_runners(models, CPU, "torch", 64, scales), before, after, scales=scales)
    runners = build_runners(models, CPU, "onnx", 64, scales)
    assert sorted(runners[0].sessions) == [32, 64]
    got = predict_probabilities(runners, before, after, scales=scales)
    for a, b in zip(expected, got):
        assert np.allclose(a, b, atol=1e-4, rtol=0)


def test_onnx_and_torch_write_the_same_change_raster(tmp_path: Path, small_checkpoint: Path) -> None:
    before, after, _ = planted_pair(tmp_path)
    model = load_checkpoint(small_checkpoint)
    bands = {}
    for backend in ("torch", "onnx"):
        out = tmp_path / f"{backend}.tif"
        predict(before, after, models=[model], outputs=PredictOutputs(raster=out), options=PredictOptions(backend=backend))
        with rasterio.open(out) as src:
            bands[backend] = src.read().astype(int)
    assert np.abs(bands["torch"][0] - bands["onnx"][0]).max() <= 1  # probability, 1/254 steps
    assert (bands["torch"][1:] == bands["onnx"][1:]).all()


def test_the_cached_graph_is_reused_and_a_changed_checkpoint_gets_a_new_one(
    tmp_path: Path, small_checkpoint: Path, exports: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GEOCD_CACHE_DIR", str(tmp_path / "cache"))
    checkpoint = shutil.copy(small_checkpoint, tmp_path / "model.safetensors")
    model = load_checkpoint(checkpoint)
    build_runners([model], CPU, "onnx", 64)
    cached = onnx_cache_path(checkpoint, 64)
    assert cached.parent == tmp_path / "cache" / "onnx" and cached.is_file() and len(exports) == 1
    assert [p.name for p in cached.parent.iterdir()] == [cached.name]  # the temporary name is gone
    stamp = cached.stat().st_mtime_ns
    build_runners([model], CPU, "onnx", 64)
    assert len(exports) == 1 and cached.stat().st_mtime_ns == stamp
    assert onnx_cache_path(checkpoint, 96) != cached
    model.model.change_head.head.classifier[1].bias.data += 1.0
    save_checkpoint(checkpoint, model.model, model.metadata)
    changed = onnx_cache_path(checkpoint, 64)
    assert changed != cached
    build_runners([model], CPU, "onnx", 64)
    assert len(exports) == 2 and changed.is_file()


@pytest.mark.parametrize("backend", ["onnx", pytest.param("openvino", marks=needs_openvino)])
def test_a_cached_graph_runs_without_building_the_network(tmp_path: Path, small_checkpoint: Path,
                                                          monkeypatch: pytest.MonkeyPatch, backend: str) -> None:
    """The PyTorch network (and timm) is built only to export a graph; with the graph cached it never is."""
    monkeypatch.setenv("GEOCD_CACHE_DIR", str(tmp_path / "cache"))
    before, after = (pixels(1, 64) for _ in range(2))
    first = load_checkpoint(small_checkpoint)
    expected = build_runners([first], CPU, backend, 64, precision="fp32")[0](before, after)
    assert "model" in vars(first)  # built to export the graph
    again = load_checkpoint(small_checkpoint)
    got = build_runners([again], CPU, backend, 64, precision="fp32")[0](before, after)
    assert "model" not in vars(again)
    assert all(np.array_equal(e, g) for e, g in zip(expected, got))


@needs_openvino
def test_openvino_caches_its_compiled_graph_beside_the_onnx_cache(tmp_path: Path, small_checkpoint: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GEOCD_CACHE_DIR", str(tmp_path / "cache"))
    build_runners([load_checkpoint(small_checkpoint)], CPU, "openvino", 64, precision="fp32")
    blobs = list((tmp_path / "cache" / "openvino").iterdir())
    assert [b.suffix for b in blobs] == [".blob"]
    stamp = blobs[0].stat().st_mtime_ns
    build_runners([load_checkpoint(small_checkpoint)], CPU, "openvino", 64, precision="fp32")
    assert list((tmp_path / "cache" / "openvino").iterdir()) == blobs and blobs[0].stat().st_mtime_ns == stamp


@needs_openvino
def test_openvino_batches_give_each_stream_a_tile_and_match_one_request(tmp_path: Path, small_checkpoint: Path) -> None:
    """A batch is split over OpenVINO's streams, and predict's default batch holds a tile for each of them
    (at least 2): with 4 streams, the 6 tiles of the pair go as 4 + 2, one tile per request, and the
    change raster is that of one request doing every tile."""
    before, after, _ = planted_pair(tmp_path)
    model = load_checkpoint(small_checkpoint)
    options = PredictOptions(tile_size=64, overlap=16, backend="openvino", precision="fp32")
    rasters, start, init = {}, backends._Streams.start, backends._Streams.__init__

    class Compiled:  # the compiled model, saying that n requests are optimal
        def __init__(self, compiled: object, n: int) -> None:
            self.compiled, self.n = compiled, n

        def get_property(self, name: str) -> object:
            return self.n if name == "OPTIMAL_NUMBER_OF_INFER_REQUESTS" else self.compiled.get_property(name)

        def create_infer_request(self) -> object:
            return self.compiled.create_infer_request()

    for streams in (1, 4):
        batches = []
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(backends._Streams, "__init__", lambda self, compiled, n=streams: init(self, Compiled(compiled, n)))
            patch.setattr(backends._Streams, "start",
                          lambda self, feeds: (batches.append(len(feeds["before"])), start(self, feeds))[1])
            predict(before, after, models=[model], outputs=PredictOutputs(raster=tmp_path / f"{streams}.tif"),
                    options=options)
        assert batches == ([2, 2, 2] if streams == 1 else [4, 2])
        with rasterio.open(tmp_path / f"{streams}.tif") as src:
            rasters[streams] = src.read()
    assert np.abs(rasters[1].astype(int) - rasters[4]).max() <= 1


@needs_openvino
def test_openvino_batches_started_before_any_is_collected_get_their_own_outputs(small_checkpoint: Path) -> None:
    """Batches in flight (predict starts the next before collecting one) each run on requests of their own:
    their outputs equal those of batches run one at a time, whatever order they are collected in."""
    runner = build_runners([load_checkpoint(small_checkpoint)], CPU, "openvino", 64, precision="fp32")[0]
    assert backends.batches_in_flight(runner) == 2
    assert backends.batches_in_flight(build_runners([load_checkpoint(small_checkpoint)], CPU, "onnx", 64)[0]) == 1
    inputs = [(pixels(2, 64), pixels(2, 64)) for _ in range(3)]
    alone = [runner(*pair) for pair in inputs]
    started = [runner.start(*pair) for pair in inputs]
    together = [collect() for collect in reversed(started)][::-1]
    for a, b in zip(alone, together):
        assert all(np.array_equal(x, y) for x, y in zip(a, b))


@needs_openvino
def test_auto_uses_openvino_then_onnx_for_a_checkpoint_on_cpu_and_torch_otherwise(small_checkpoint: Path,
                                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    model = load_checkpoint(small_checkpoint)
    assert backends.resolved_backend(model, CPU, "auto") == "openvino"
    assert not isinstance(build_runners([model], CPU, "auto", 64)[0], TorchRunner)
    assert isinstance(build_runners([intensity_model()], CPU, "auto", 64)[0], TorchRunner)  # no file to cache
    assert backends.resolved_backend(model, "cuda", "auto") == "torch"
    monkeypatch.setitem(sys.modules, "openvino", None)
    assert backends.resolved_backend(model, CPU, "auto") == "onnx"
    assert not isinstance(build_runners([model], CPU, "auto", 64)[0], TorchRunner)
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    assert isinstance(build_runners([model], CPU, "auto", 64)[0], TorchRunner)



def test_without_the_onnx_exporter_auto_runs_torch_and_a_graph_backend_names_its_extra(
        tmp_path: Path, small_checkpoint: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Both graph backends need ``onnx`` (PyTorch's exporter imports it): without it ``auto`` is PyTorch."""
    monkeypatch.setitem(sys.modules, "onnx", None)
    model = load_checkpoint(small_checkpoint)
    assert backends.resolved_backend(model, CPU, "auto") == "torch"
    assert isinstance(build_runners([model], CPU, "auto", 64)[0], TorchRunner)
    assert run_predict(tmp_path, small_checkpoint, "--backend", "onnx") == (
        'geocd: error: --backend onnx needs onnx, which is not installed (pip install "geocd[onnx]")\n', 2)
    assert not (tmp_path / "c.tif").exists()

def test_onnx_exports_a_model_without_a_file_in_memory(tmp_path: Path, exports: list[Path]) -> None:
    before, after, changed = planted_pair(tmp_path)
    result = {}
    for backend in ("torch", "onnx"):
        predict(before, after, models=[intensity_model()], outputs=PredictOutputs(raster=tmp_path / f"{backend}.tif"),
                options=PredictOptions(tile_size=48, backend=backend))
        with rasterio.open(tmp_path / f"{backend}.tif") as src:
            result[backend] = src.read()
    assert len(exports) == 1 and not isinstance(exports[0], Path)
    assert (result["torch"] == result["onnx"]).all() and (result["onnx"][1] > 0).sum() == changed.sum()


def test_backend_onnx_without_onnxruntime_is_a_one_line_error(tmp_path: Path, small_checkpoint: Path, no_onnxruntime: None) -> None:
    before, after, _ = planted_pair(tmp_path)
    result = CliRunner().invoke(cli, ["predict", str(before), str(after), "--raster", str(tmp_path / "c.tif"),
                                      "--model", str(small_checkpoint), "--backend", "onnx", "--num-workers", "0", "--quiet"])
    assert result.exit_code == 2
    assert result.output == ('geocd: error: --backend onnx needs onnxruntime, which is not installed (pip install "geocd[onnx]")\n')
    assert not (tmp_path / "c.tif").exists()


@needs_openvino
def test_openvino_fp32_probabilities_match_torch_at_every_scale_with_tta(small_checkpoint: Path) -> None:
    models = [load_checkpoint(small_checkpoint)]
    before, after = (pixels(2, 80) for _ in range(2))
    scales = (1.0, 0.5)
    expected = predict_probabilities(build_runners(models, CPU, "torch", 80, scales), before, after, tta=True, scales=scales)
    runners = build_runners(models, CPU, "openvino", 80, scales, precision="fp32")
    assert sorted(runners[0].sessions) == [40, 80]
    got = predict_probabilities(runners, before, after, tta=True, scales=scales)
    for a, b in zip(expected, got):
        assert a.shape == b.shape
        assert np.allclose(a, b, atol=1e-4, rtol=0)


def run_predict(tmp_path: Path, checkpoint: Path, *flags: str) -> tuple[str, int]:
    """``geocd predict`` of a planted pair to ``c.tif`` with ``flags``: its output and exit code."""
    before, after, _ = planted_pair(tmp_path)
    result = CliRunner().invoke(cli, ["predict", str(before), str(after), "--raster", str(tmp_path / "c.tif"),
                                      "--model", str(checkpoint), "--num-workers", "0", "--quiet", *flags])
    return result.output, result.exit_code


def test_backend_openvino_without_openvino_is_a_one_line_error(tmp_path: Path, small_checkpoint: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "openvino", None)
    assert run_predict(tmp_path, small_checkpoint, "--backend", "openvino") == (
        'geocd: error: --backend openvino needs openvino, which is not installed (pip install "geocd[openvino]")\n', 2)
    assert run_predict(tmp_path, small_checkpoint, "--precision", "bf16") == (
        'geocd: error: --precision bf16 runs on backend openvino only, not onnx (pip install "geocd[openvino]")\n', 2)
    assert not (tmp_path / "c.tif").exists()


def test_bf16_on_a_cpu_without_it_or_off_openvino_is_a_one_line_error(tmp_path: Path, small_checkpoint: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    class Core:  # OpenVINO on a CPU without AMX or AVX-512 BF16
        def get_property(self, device: str, name: str) -> list[str]:
            assert (device, name) == ("CPU", "OPTIMIZATION_CAPABILITIES")
            return ["WINOGRAD", "FP32", "INT8", "BIN", "EXPORT_IMPORT"]

    monkeypatch.setitem(sys.modules, "openvino", types.SimpleNamespace(Core=Core))
    monkeypatch.setattr(backends, "_openvino_core", Core)  # the process keeps one Core: stand in for it
    assert run_predict(tmp_path, small_checkpoint, "--backend", "openvino", "--precision", "bf16") == (
        "geocd: error: --precision bf16 is not supported by this CPU (it has neither AMX nor AVX-512 BF16); "
        "use fp32 or auto\n", 2)
    assert backends.openvino_precision("auto") == "fp32"
    assert run_predict(tmp_path, small_checkpoint, "--backend", "torch", "--precision", "bf16") == (
        "geocd: error: --precision bf16 runs on backend openvino only, not torch\n", 2)
    assert not (tmp_path / "c.tif").exists()


@needs_openvino
@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")
@pytest.mark.skipif(not (LEVIR / "A" / "test_101.png").is_file(), reason="needs /work/shared/data/levir-full")
def test_bf16_change_mask_agrees_with_fp32_on_a_levir_pair(tmp_path: Path) -> None:
    """A 512-pixel LEVIR-CD crop (given a 0.5 m grid), default model: bf16 and fp32 change masks agree on >= 99 % of pixels."""
    from geocd.checkpoint import load_models

    if backends.openvino_precision("auto") != "bf16":
        pytest.skip("this CPU has no bf16")
    transform = rasterio.transform.from_origin(500_000, 5_400_000, 0.5, 0.5)
    pair = []
    for date in ("A", "B"):
        with rasterio.open(LEVIR / date / "test_101.png") as src:
            pair.append(write_raster(tmp_path / f"{date}.tif", src.read(window=((256, 768), (256, 768))), transform=transform))
    masks = {}
    for precision in ("fp32", "bf16"):
        out = tmp_path / f"{precision}.tif"
        predict(*pair, models=load_models(), outputs=PredictOutputs(raster=out),
                options=PredictOptions(backend="openvino", precision=precision, num_workers=0))
        with rasterio.open(out) as src:
            masks[precision] = is_changed(src.read(1), 0.5)
    agreement = (masks["fp32"] == masks["bf16"]).mean()
    print(f"bf16/fp32 change mask agreement {agreement:.4%}, changed {masks['fp32'].mean():.2%} / {masks['bf16'].mean():.2%}")
    assert masks["fp32"].any() and agreement >= 0.99


def test_backend_onnx_on_cuda_is_refused(small_checkpoint: Path) -> None:
    from geocd.errors import InputError

    with pytest.raises(InputError, match="^backend onnx runs on the CPU only, not on cuda"):
        build_runners([load_checkpoint(small_checkpoint)], "cuda", "onnx", 64)


@pytest.mark.parametrize("size", [16, 17, 23])
def test_matrix_pooling_equals_adaptive_pooling(size: int) -> None:
    x = torch.randn(2, 4, size, size + 3)
    for bins in (1, 2, 3, 6):
        expected = torch.nn.AdaptiveAvgPool2d(bins)(x)
        assert torch.allclose(eager._MatrixAdaptivePool(bins)(x), expected, atol=1e-5)


def test_onnx_runtime_threads_are_the_physical_cores_we_may_use() -> None:
    import os

    assert 1 <= backends.physical_cores() <= len(os.sched_getaffinity(0))


def test_an_unwritable_cache_folder_costs_one_warning_not_the_run(tmp_path: Path, small_checkpoint: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """A read-only or missing home (containers, HPC jobs): the graph is exported for this run only.

    The cache is put under a regular file, which even root cannot turn into a folder.
    """
    (tmp_path / "home").write_text("a file, not a folder")
    monkeypatch.setenv("GEOCD_CACHE_DIR", str(tmp_path / "home" / "cache"))
    before, after, _ = planted_pair(tmp_path)
    out = tmp_path / "c.tif"
    result = CliRunner().invoke(cli, ["predict", str(before), str(after), "--raster", str(out), "--model",
                                      str(small_checkpoint), "--backend", "onnx", "--num-workers", "0", "--quiet"])
    assert result.exit_code == 0, result.output
    assert result.output == (f"geocd: warning: {tmp_path / 'home' / 'cache' / 'onnx'}: the ONNX cache folder cannot be "
                             "written (Not a directory); the graph is exported for this run only (set GEOCD_CACHE_DIR "
                             "to keep it)\n")
    with rasterio.open(out) as src:
        assert src.count == 3
