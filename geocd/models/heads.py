"""Decoder heads of the SenseEarth 2020 winner: an FCN semantic head and a PSP change head.

``lightweight=True`` replaces each 3x3 convolution by a depthwise-separable one
(3x3 depthwise + 1x1 pointwise), as the seed's lightweight variant does.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def conv3x3(in_channels: int, out_channels: int, lightweight: bool) -> nn.Module:
    """A bias-free 3x3 convolution, depthwise-separable when ``lightweight``."""
    if not lightweight:
        return nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False)
    return nn.Sequential(
        nn.Conv2d(in_channels, in_channels, 3, padding=1, groups=in_channels, bias=False),
        nn.BatchNorm2d(in_channels),
        nn.ReLU(inplace=True),
        nn.Conv2d(in_channels, out_channels, 1, bias=False),
    )


def conv_bn_relu(in_channels: int, out_channels: int, lightweight: bool) -> nn.Sequential:
    """3x3 convolution, batch norm, ReLU."""
    return nn.Sequential(conv3x3(in_channels, out_channels, lightweight), nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True))


class FCNHead(nn.Module):
    """conv3x3 -> BN -> ReLU -> dropout -> 1x1 classifier; inner width ``in_channels // 4`` by default."""

    def __init__(self, in_channels: int, out_channels: int, lightweight: bool = False, inner: int | None = None) -> None:
        super().__init__()
        inner = inner or max(in_channels // 4, 16)
        self.block = conv_bn_relu(in_channels, inner, lightweight)
        self.classifier = nn.Sequential(nn.Dropout(0.1), nn.Conv2d(inner, out_channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.block(x))


class PyramidPooling(nn.Module):
    """PSPNet pyramid pooling over bins (1, 2, 3, 6); output has ``2 * in_channels`` channels."""

    def __init__(self, in_channels: int, bins: tuple[int, ...] = (1, 2, 3, 6)) -> None:
        super().__init__()
        branch = in_channels // len(bins)
        self.stages = nn.ModuleList(
            nn.Sequential(
                nn.AdaptiveAvgPool2d(b),
                nn.Conv2d(in_channels, branch, 1, bias=False),
                nn.BatchNorm2d(branch),
                nn.ReLU(inplace=True),
            )
            for b in bins
        )
        self.out_channels = in_channels + branch * len(bins)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        pooled = [F.interpolate(stage(x), size=size, mode="bilinear", align_corners=False) for stage in self.stages]
        return torch.cat([x, *pooled], dim=1)


class PSPHead(nn.Module):
    """Pyramid pooling followed by an FCN-style classifier of inner width ``in_channels // 4``."""

    def __init__(self, in_channels: int, out_channels: int, lightweight: bool = False) -> None:
        super().__init__()
        self.pool = PyramidPooling(in_channels)
        self.head = FCNHead(self.pool.out_channels, out_channels, lightweight, inner=max(in_channels // 4, 16))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(x))
