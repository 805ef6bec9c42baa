"""The Siamese semantic change network of the SenseEarth 2020 winner.

One shared ``timm`` backbone encodes both dates. Its feature levels of stride >= 4 are
upsampled to the finest of them and concatenated (HRNetV2-style fusion). A shared FCN
head labels land cover in each date; a PSP head on ``|f_before - f_after|`` gives the
change logit. All outputs are logits at input resolution.

The network takes raw pixel values and normalises each band itself, ``(x - mean) / std``,
with its ``mean``/``std`` buffers (``[1,C,1,1]``, float32, pixel units); they are saved with
its weights, so training and inference cannot disagree on them.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from geocd.models.config import NORMALISATION, ChangeLogits, ModelConfig
from geocd.models.heads import FCNHead, PSPHead

MIN_FEATURE_STRIDE = 4
"""Feature levels finer than this (the stride-2 stem) are not used, as in HRNetV2."""


def create_encoder(backbone: str, in_channels: int) -> nn.Module:
    """A ``timm`` feature extractor; HRNets return their raw branch outputs (HRNetV2)."""
    import timm  # here, not at the top: a run of a cached ONNX graph builds no network, so it spares timm's import

    extra = {"feature_location": ""} if backbone.startswith("hrnet") else {}
    return timm.create_model(backbone, pretrained=False, features_only=True, in_chans=in_channels, **extra)


class SiameseChangeNet(nn.Module):
    """Siamese network: shared encoder, shared FCN semantic head, PSP change head.

    ``mean``/``std``: per-band normalisation in pixel units (default 0 and 1: none).
    """

    def __init__(self, config: ModelConfig, mean: Sequence[float] | None = None, std: Sequence[float] | None = None) -> None:
        super().__init__()
        self.config = config
        n = config.in_channels
        self.register_buffer("mean", torch.zeros(1, n, 1, 1))
        self.register_buffer("std", torch.ones(1, n, 1, 1))
        self.set_normalisation([0.0] * n if mean is None else mean, [1.0] * n if std is None else std)
        self.encoder = create_encoder(config.backbone, config.in_channels)
        info = self.encoder.feature_info
        self.levels = [i for i, r in enumerate(info.reduction()) if r >= MIN_FEATURE_STRIDE]
        fused = sum(info.channels()[i] for i in self.levels)
        self.semantic_head = FCNHead(fused, config.num_classes, config.lightweight)
        self.change_head = PSPHead(fused, 1, config.lightweight)

    def part(self, name: str) -> nn.Module:
        """The module of a part named in :data:`geocd.options.FREEZABLE`: the encoder or a head."""
        return {"encoder": self.encoder, "semantic": self.semantic_head, "change": self.change_head}[name]

    def set_normalisation(self, mean: Sequence[float], std: Sequence[float]) -> None:
        """Set the per-band ``mean`` and ``std`` (pixel units, one per input band)."""
        for name, values in zip(NORMALISATION, (mean, std)):
            buffer = getattr(self, name)
            buffer.copy_(torch.as_tensor(values, dtype=torch.float32).view(buffer.shape))

    def normalise(self, images: torch.Tensor) -> torch.Tensor:
        """Raw pixel values ``[B,C,H,W]`` in normalised units, ``(x - mean) / std``."""
        return (images - self.mean) / self.std

    def fused_features(self, images: torch.Tensor) -> torch.Tensor:
        """Backbone levels of stride >= 4, upsampled to the finest and concatenated."""
        features = self.encoder(images)
        used = [features[i] for i in self.levels]
        size = used[0].shape[-2:]
        return torch.cat(
            [used[0], *(F.interpolate(f, size=size, mode="bilinear", align_corners=False) for f in used[1:])], dim=1
        )

    def forward(self, before: torch.Tensor, after: torch.Tensor) -> ChangeLogits:
        """Logits for two co-registered batches of raw pixel values ``[B,C,H,W]``."""
        size = before.shape[-2:]
        features = self.fused_features(torch.cat([self.normalise(before), self.normalise(after)], dim=0))
        f_before, f_after = features.chunk(2, dim=0)
        semantic = self.semantic_head(features)
        change = self.change_head(torch.abs(f_before - f_after))
        semantic, change = (F.interpolate(t, size=size, mode="bilinear", align_corners=False) for t in (semantic, change))
        sem_before, sem_after = semantic.chunk(2, dim=0)
        return ChangeLogits(sem_before, sem_after, change)
