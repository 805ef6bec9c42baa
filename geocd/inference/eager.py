"""The PyTorch side of inference: the eager runner and the ONNX export of a model.

Only a run on PyTorch, or the first run of a checkpoint on a graph runtime (its export), imports this
module and PyTorch with it (:mod:`geocd.inference.backends` picks).
"""

from __future__ import annotations

import contextlib
import copy
import io
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from geocd.checkpoint import LoadedModel
from geocd.models.config import ChangeLogits

ONNX_OPSET = 17


class NormalizedModel(nn.Module):
    """A loaded model run in channels-last memory layout, about 1.3x faster for convolutions on CPU.

    The network normalises raw pixel values itself (:class:`~geocd.models.SiameseChangeNet`).
    """

    def __init__(self, loaded: LoadedModel) -> None:
        super().__init__()
        self.net = loaded.model.to(memory_format=torch.channels_last)
        self.in_channels = loaded.metadata.config.in_channels
        self.eval()

    def forward(self, before: torch.Tensor, after: torch.Tensor):  # noqa: ANN201 - the wrapped model's output
        layout = torch.channels_last
        return self.net(before.contiguous(memory_format=layout), after.contiguous(memory_format=layout))


class TorchRunner:
    """A model run by PyTorch on ``device``, called on numpy batches like the graph runners: under float16
    autocast on CUDA, the logits returned as float32 arrays."""

    def __init__(self, loaded: LoadedModel, device: str) -> None:
        self.device = torch.device(device)
        self.net = NormalizedModel(loaded).to(self.device)

    @torch.no_grad()
    def __call__(self, before: np.ndarray, after: np.ndarray) -> ChangeLogits:
        cuda = self.device.type == "cuda"
        x, y = (torch.from_numpy(np.ascontiguousarray(a, np.float32)).to(self.device, non_blocking=cuda) for a in (before, after))
        with torch.autocast("cuda", dtype=torch.float16) if cuda else contextlib.nullcontext():
            out = self.net(x, y)
        return ChangeLogits(*(o.float().cpu().numpy() for o in out))


def export_onnx(loaded: LoadedModel, tile_size: int, target: Path | None = None) -> bytes | None:
    """Export ``loaded`` for ``tile_size`` square tiles with a dynamic batch (TorchScript exporter) to ``target``;
    without one, return the graph's bytes."""
    net = NormalizedModel(loaded)
    exportable = copy.deepcopy(net).cpu()
    for name, module in list(exportable.named_modules()):
        if isinstance(module, nn.AdaptiveAvgPool2d):
            parent, _, child = name.rpartition(".")
            setattr(exportable.get_submodule(parent), child, _MatrixAdaptivePool(module.output_size))
    example = torch.zeros(2, net.in_channels, tile_size, tile_size)
    buffer = io.BytesIO() if target is None else None
    outputs = list(ChangeLogits._fields)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(exportable, (example, example), target if buffer is None else buffer, dynamo=False,
                          opset_version=ONNX_OPSET, input_names=["before", "after"], output_names=outputs,
                          dynamic_axes={name: {0: "batch"} for name in ("before", "after", *outputs)})
    return None if buffer is None else buffer.getvalue()


class _MatrixAdaptivePool(nn.Module):
    """Adaptive average pooling as two matrix products, exact for any fixed input size.

    The TorchScript ONNX exporter refuses adaptive pooling whose bins do not divide the
    input (the PSP head's 3 and 6 bins on most tile sizes); bin ``i`` of ``n`` input pixels
    averages pixels ``floor(i n / b)`` to ``ceil((i + 1) n / b)``, as PyTorch does.
    """

    def __init__(self, output_size: int | tuple[int, int]) -> None:
        super().__init__()
        self.bins = (output_size, output_size) if isinstance(output_size, int) else output_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows, cols = (_pool_matrix(int(n), b) for n, b in zip(x.shape[-2:], self.bins))
        return rows @ x @ cols.T


def _pool_matrix(n: int, bins: int) -> torch.Tensor:
    """``[bins, n]`` averaging weights of adaptive pooling over ``n`` pixels."""
    matrix = torch.zeros(bins, n)
    for i in range(bins):
        start, stop = (i * n) // bins, -((-(i + 1) * n) // bins)
        matrix[i, start:stop] = 1.0 / (stop - start)
    return matrix
