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


def _needs(backbone: str) -> pytest.MarkDecorator:
    return pytest.mark.skipif(REGISTRY[backbone].path() is None, reason=f"{REGISTRY[backbone].package} not installed")


needs_lite0 = _needs(LITE0)
REGISTERED = [pytest.param(backbone, marks=_needs(backbone)) for backbone in REGISTRY]


@pytest.mark.parametrize("backbone", REGISTERED)
def test_registry_weights_fill_the_features_model(backbone: str) -> None:
    model = SiameseChangeNet(ModelConfig(backbone))
    before = {k: v.clone() for k, v in model.encoder.state_dict().items()}
    origin = load_imagenet_weights(model.encoder, backbone, 3)
    assert origin.startswith(f"package {REGISTRY[backbone].package} (")
    weights, _ = imagenet_state_dict(backbone)
    for name, tensor in model.encoder.state_dict().items():
        if not name.endswith("num_batches_tracked"):
            assert torch.equal(tensor, weights[name]), name
    assert not torch.equal(before["conv_stem.weight"], model.encoder.state_dict()["conv_stem.weight"])


@pytest.mark.parametrize("backbone", REGISTERED)
@pytest.mark.parametrize(("image", "label"), [("chelsea", 285), ("coffee", 967)])
def test_imagenet_sanity_through_geocd_loader(backbone: str, image: str, label: int) -> None:
    data = pytest.importorskip("skimage.data")
    classifier = timm.create_model(backbone, pretrained=False).eval()
    weights, _ = imagenet_state_dict(backbone)
    classifier.load_state_dict(weights)
    pixels = torch.from_numpy(getattr(data, image)().astype(np.float32) / 255).permute(2, 0, 1)[None]
    size = classifier.pretrained_cfg["input_size"][1:]
    pixels = F.interpolate(pixels, size=size, mode="bilinear", antialias=True, align_corners=False)
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
    with pytest.raises(CheckpointError, match=r"other\.safetensors: the backbone weights"):
        load_imagenet_weights(model.encoder, "resnet18", 3, path)


def test_unreadable_weights_file(tmp_path: Path) -> None:
    path = tmp_path / "w.pth"
    path.write_bytes(b"junk")
    with pytest.raises(CheckpointError, match=r"w\.pth: cannot be read as backbone weights"):
        imagenet_state_dict("resnet18", path)
