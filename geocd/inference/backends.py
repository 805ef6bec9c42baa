"""Inference backends: one runner per model, PyTorch eager, ONNX Runtime or OpenVINO.

A runner (:data:`geocd.models.tta.Runner`) is called as ``runner(before, after)`` on raw pixel batches
``[B,C,H,W]`` (float32 numpy arrays) and returns the model's :class:`~geocd.models.ChangeLogits` as float32
arrays; the network normalises them with its own mean and std. Test-time augmentation and ensembles stay in
:func:`geocd.models.tta.predict_probabilities`, which transforms the inputs around any runner. Only the
PyTorch runner and the export of a graph import PyTorch (:mod:`geocd.inference.eager`).

ONNX Runtime and OpenVINO run the same ONNX graph. It is exported from the checkpoint at a fixed tile size (dynamic batch) and
cached under ``GEOCD_CACHE_DIR`` (default: the user's cache folder) ``/onnx/<key>.onnx``, the
key hashing the checkpoint's bytes, the tile size and the geocd version, so only the first
run with a checkpoint pays the export. A model without a file (built in memory) is exported
at each run and not cached, and so is every graph when the cache folder cannot be written.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import warnings
from collections.abc import Callable, Sequence
from functools import cache
from pathlib import Path
from typing import Any, Literal

import numpy as np

from geocd import __version__
from geocd.atomic import atomic_output
from geocd.checkpoint import LoadedModel
from geocd.errors import GeocdWarning, InputError, OutputError
from geocd.extras import install_hint, missing, require
from geocd.models.config import ChangeLogits
from geocd.models.tta import Runner, scaled_size
from geocd.options import Backend, Precision

CACHE_ENV = "GEOCD_CACHE_DIR"
OUTPUTS = ChangeLogits._fields
GRAPH_BACKENDS = ("openvino", "onnx")
"""The backends running the ONNX graph, each its own install extra (:mod:`geocd.extras`), in ``auto``'s order."""


def build_runners(models: Sequence[LoadedModel], device: str, backend: Backend, tile_size: int,
                  scales: Sequence[float] = (1.0,), precision: Precision = "auto") -> list[Runner]:
    """One runner per model for square tiles of ``tile_size`` pixels, resized by each of ``scales``.

    ``auto`` uses OpenVINO on the CPU when it is installed and the model has a file, else ONNX
    Runtime, else PyTorch (always PyTorch on CUDA); OpenVINO was measured faster than ONNX Runtime
    in fp32 and in bf16 (docs/benchmarks.md). ``onnx`` and ``openvino`` run on the CPU only.
    ``precision`` is OpenVINO's: ``auto`` is bf16 where the CPU supports it (AMX or AVX-512 BF16,
    as OpenVINO reports) and fp32 elsewhere; the other backends run fp32.
    """
    if backend in GRAPH_BACKENDS:
        require(backend, f"backend {backend}")
        if device != "cpu":
            raise InputError(None, f"backend {backend} runs on the CPU only, not on {device}")
    sizes = sorted({scaled_size((tile_size, tile_size), scale)[0] for scale in scales})
    return [_build_runner(m, device, backend, sizes, precision) for m in models]


def resolved_backend(model: LoadedModel, device: str, backend: Backend) -> Literal["torch", "onnx", "openvino"]:
    """The backend that ``backend`` means for ``model`` on ``device`` (see :func:`build_runners`)."""
    return checkpoint_backend(model.path, device, backend)


def checkpoint_backend(checkpoint: Path, device: str, backend: Backend) -> Literal["torch", "onnx", "openvino"]:
    """The backend that ``backend`` means for the model of file ``checkpoint`` on ``device``, without loading it."""
    if backend != "auto":
        return backend
    if device != "cpu" or not checkpoint.is_file():
        return "torch"
    return next((name for name in GRAPH_BACKENDS if missing(name) is None), "torch")


def runtime_line(checkpoint: Path, device: str, backend: Backend, precision: Precision) -> str:
    """Which runtime, precision and device run the network, in one line (e.g. ``running openvino (bf16) on cpu, 8 cores``)."""
    chosen = checkpoint_backend(checkpoint, device, backend)
    cuda = device != "cpu"  # predict runs CUDA under float16 autocast
    precision_used = openvino_precision(precision) if chosen == "openvino" else "fp16 autocast" if cuda else "fp32"
    if cuda:
        import torch

        where = f"{device} ({torch.cuda.get_device_name(device)})"
    else:
        where = f"{device}, {physical_cores()} cores"
    return f"running {chosen} ({precision_used}) on {where}"


def openvino_precision(precision: Precision) -> Literal["fp32", "bf16"]:
    """What ``precision`` means for OpenVINO on this CPU: ``auto`` is bf16 where OpenVINO reports BF16 support."""
    supported = "BF16" in _openvino_core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    if precision == "bf16" and not supported:
        raise InputError(None, "precision bf16 is not supported by this CPU (it has neither AMX nor AVX-512 BF16); "
                               "use fp32 or auto")
    return "bf16" if precision == "bf16" or (precision == "auto" and supported) else "fp32"


def onnx_cache_path(checkpoint: str | os.PathLike[str], tile_size: int) -> Path:
    """Where the ONNX graph of ``checkpoint`` at ``tile_size`` pixels is cached."""
    with open(checkpoint, "rb") as f:
        digest = hashlib.file_digest(f, "sha256")
    digest.update(f"tile={tile_size};geocd={__version__}".encode())
    return _cache_dir() / f"{digest.hexdigest()}.onnx"


def physical_cores() -> int:
    """Physical CPU cores this process may run on (hyper-threads of one core count once)."""
    cpus = os.sched_getaffinity(0)
    cores = set()
    for cpu in cpus:
        topology = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology")
        try:
            cores.add(((topology / "physical_package_id").read_text(), (topology / "core_id").read_text()))
        except OSError:
            return len(cpus)
    return len(cores)


def _build_runner(model: LoadedModel, device: str, backend: Backend, sizes: Sequence[int],
                  precision: Precision) -> Runner:
    chosen = resolved_backend(model, device, backend)
    if chosen != "openvino" and precision == "bf16":
        raise InputError(None, f"precision bf16 runs on backend openvino only, not {chosen}"
                               + ("" if missing("openvino") is None else f" ({install_hint('openvino')})"))
    if chosen == "torch":
        from geocd.inference.eager import TorchRunner

        return TorchRunner(model, device)
    if chosen == "onnx":
        return _GraphRunner({size: _ort_session(_onnx_graph(model, size)) for size in sizes})
    hint = {"fp32": "f32", "bf16": "bf16"}[openvino_precision(precision)]
    streams = {size: _openvino_model(_onnx_graph(model, size), hint) for size in sizes}
    return _GraphRunner(streams)


def parallel_tiles(runner: Runner) -> int:
    """How many tiles ``runner`` infers at once: OpenVINO's streams (:class:`_Streams`), else 1."""
    return runner.parallel if isinstance(runner, _GraphRunner) else 1


def batches_in_flight(runner: Runner) -> int:
    """How many batches a caller should start before collecting the first (``runner.start``): 2 for OpenVINO
    (:class:`_Streams`: its streams never wait for each other's part of a batch, nor for the caller), else 1."""
    return 2 if isinstance(runner, _GraphRunner) and runner.background else 1


GraphSession = Callable[[dict[str, np.ndarray]], Sequence[np.ndarray]]
"""A compiled graph of one input size: input arrays by name -> the outputs, in :data:`OUTPUTS` order."""


class _GraphRunner:
    """Compiled ONNX graphs (ONNX Runtime or OpenVINO), one per square input size, called like the PyTorch model they were exported from."""

    def __init__(self, sessions: dict[int, GraphSession]) -> None:
        self.sessions = sessions
        self.background = all(isinstance(session, _Streams) for session in sessions.values())
        self.parallel = max((s.streams for s in sessions.values() if isinstance(s, _Streams)), default=1)

    def __call__(self, before: np.ndarray, after: np.ndarray) -> ChangeLogits:
        return self.start(before, after)()

    def start(self, before: np.ndarray, after: np.ndarray) -> Callable[[], ChangeLogits]:
        """Start the graph on a batch (OpenVINO runs it in the background); the returned call collects the logits."""
        feeds = {name: np.ascontiguousarray(x, np.float32) for name, x in (("before", before), ("after", after))}
        session = self.sessions[before.shape[-1]]
        if isinstance(session, _Streams):
            collect = session.start(feeds)
            return lambda: ChangeLogits(*collect())
        logits = ChangeLogits(*session(feeds))
        return lambda: logits


def _ort_session(graph: Path | bytes) -> GraphSession:
    """An ONNX Runtime CPU session of ``graph``: one thread per physical core, idle threads not spinning."""
    ort = require("onnx", "backend onnx")
    options = ort.SessionOptions()
    options.intra_op_num_threads = physical_cores()
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")  # waiting threads yield the core to the reader
    session = ort.InferenceSession(graph if isinstance(graph, bytes) else os.fspath(graph), options,
                                   providers=["CPUExecutionProvider"])
    return lambda feeds: session.run(None, feeds)


@cache
def _openvino_core():  # noqa: ANN202 - openvino.Core, imported only when OpenVINO runs
    """The process's one OpenVINO ``Core``: creating a second one in a process can crash it (a segfault
    seen when a later PyTorch training ran in the same process)."""
    return require("openvino", "backend openvino").Core()


def _openvino_model(graph: Path | bytes, hint: str) -> _Streams:
    """``graph`` compiled by OpenVINO for the CPU at inference precision ``hint`` (f32 or bf16), in
    throughput mode on the physical cores (:class:`_Streams`).

    A cached graph file's compiled form is cached too, in ``openvino`` beside the graph cache (where it
    can be written): a later run loads it in a tenth of the compile time.
    """
    core = _openvino_core()
    config = {"INFERENCE_PRECISION_HINT": hint, "INFERENCE_NUM_THREADS": physical_cores(), "PERFORMANCE_HINT": "THROUGHPUT"}
    if isinstance(graph, bytes):
        return _Streams(core.compile_model(core.read_model(graph), "CPU", config))
    compiled_cache = graph.parent.with_name("openvino")
    with contextlib.suppress(OSError):
        compiled_cache.mkdir(exist_ok=True)
    if os.access(compiled_cache, os.W_OK):
        config["CACHE_DIR"] = os.fspath(compiled_cache)
    return _Streams(core.compile_model(os.fspath(graph), "CPU", config))


class _Streams:
    """An OpenVINO compiled model in throughput mode, called like a session: each batch is split over
    its streams' requests (OpenVINO's optimal number, one per core on a small CPU), run at once.

    A stream runs its layers on its own cores, so a core taken by reading or stitching delays one
    request instead of stalling every layer of a network spread over all cores: on 2 cores beside a
    busy thread, 1.9 MP/s against 1.4 MP/s for one request on both cores (docs/benchmarks.md).
    :meth:`start` returns at once, so a caller can queue the next batch before collecting this one
    (each started batch has a set of requests of its own): a stream that finished its part of a batch
    goes on with the next instead of waiting for the other. Calls come from one thread: OpenVINO's Python
    API deadlocked with two threads starting requests of one model at once.
    """

    def __init__(self, compiled: Any) -> None:  # noqa: ANN401 - openvino.CompiledModel, imported only when OpenVINO runs
        self.compiled = compiled
        self.streams = compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS")
        self.free: list[list[Any]] = []  # request sets not in use, one made whenever none is free

    def __call__(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        return self.start(feeds)()

    def start(self, feeds: dict[str, np.ndarray]) -> Callable[[], list[np.ndarray]]:
        """Start a batch (``feeds`` must stay unchanged until collected); the returned call waits for its outputs."""
        requests = self.free.pop() if self.free else [self.compiled.create_infer_request() for _ in range(self.streams)]
        batch = len(next(iter(feeds.values())))
        running = [(request, {name: x[part[0] : part[-1] + 1] for name, x in feeds.items()})
                   for request, part in zip(requests, np.array_split(np.arange(batch), min(batch, len(requests))))]
        for request, inputs in running:  # read in place: ``running`` keeps them alive until collected
            request.start_async(inputs, share_inputs=True)

        def collect() -> list[np.ndarray]:
            for request, _ in running:
                request.wait()
            outputs = [np.concatenate([request.get_output_tensor(i).data for request, _ in running]) for i in range(len(OUTPUTS))]
            self.free.append(requests)
            return outputs

        return collect


def _onnx_graph(model: LoadedModel, tile_size: int) -> Path | bytes:
    """The cached graph file of a checkpoint (exported on a miss: only then is the network built), or the
    bytes of a model without a file.

    A cache folder that cannot be written (read-only or missing home, full disk) costs a
    warning and an export for this run only, in memory.
    """
    path = onnx_cache_path(model.path, tile_size) if model.path.is_file() else None
    if path is not None and path.is_file():
        return path
    from geocd.inference.eager import export_onnx  # a cache miss: PyTorch builds the network to export it

    if path is None:
        return export_onnx(model, tile_size)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_output(path, overwrite=True) as tmp:
            export_onnx(model, tile_size, tmp)
    except (OSError, OutputError) as error:
        reason = error.problem if isinstance(error, OutputError) else error.strerror or str(error)
        warnings.warn(GeocdWarning(path.parent, f"the ONNX cache folder cannot be written ({reason}); the graph is "
                                                f"exported for this run only (set {CACHE_ENV} to keep it)"), stacklevel=2)
        return export_onnx(model, tile_size)
    return path


def _cache_dir() -> Path:
    """``$GEOCD_CACHE_DIR/onnx``, or ``onnx`` in the user's cache folder."""
    root = os.environ.get(CACHE_ENV)
    if not root:
        import platformdirs

        root = platformdirs.user_cache_dir("geocd")
    return Path(root) / "onnx"

