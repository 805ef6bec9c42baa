"""Test-time augmentation over the seed's 6 dihedral transforms (:mod:`geocd.models.dihedral`) and over
scales, and model ensembles.

Probabilities (softmax for land cover, sigmoid for change) are averaged over every
model, every transform and every scale, each output mapped back to the input orientation
and size first.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import torch
from torch.nn import functional as F

from geocd.models.dihedral import DIHEDRAL
from geocd.models.siamese import ChangeLogits


class ChangeProbabilities(NamedTuple):
    """Averaged probabilities: ``sem_before``/``sem_after`` ``[B,K,H,W]``, ``change`` ``[B,1,H,W]``."""

    sem_before: torch.Tensor
    sem_after: torch.Tensor
    change: torch.Tensor


@torch.no_grad()
def predict_probabilities(
    models: Sequence[Callable[[torch.Tensor, torch.Tensor], ChangeLogits]],
    before: torch.Tensor,
    after: torch.Tensor,
    tta: bool = False,
    scales: Sequence[float] = (1.0,),
) -> ChangeProbabilities:
    """Average land-cover and change probabilities over ``models`` (modules or any callable with their
    signature, e.g. :mod:`geocd.inference.backends` runners), ``scales`` (the inputs resized by each
    factor, antialiased, the outputs resized back bilinearly) and, with ``tta``, the 6 transforms."""
    transforms = list(DIHEDRAL.values()) if tta else [DIHEDRAL["identity"]]
    size = before.shape[-2:]
    totals: list[torch.Tensor] | None = None
    for scale in scales:
        scaled = [x if scale == 1 else resize(x, scaled_size(size, scale)) for x in (before, after)]
        for model in models:
            for forward, inverse in transforms:
                logits = model(*(forward(x) for x in scaled))
                probs = (logits.sem_before.softmax(1), logits.sem_after.softmax(1), logits.change.sigmoid())
                probs = [inverse(p.float()) for p in probs]
                if scale != 1:
                    probs = [resize(p, size) for p in probs]
                totals = probs if totals is None else [t + p for t, p in zip(totals, probs)]
    count = len(scales) * len(models) * len(transforms)
    return ChangeProbabilities(*(t if count == 1 else t / count for t in totals))


def scaled_size(size: Sequence[int], scale: float) -> tuple[int, int]:
    """The pixel size ``[h, w]`` of an input of ``size`` resized by ``scale``."""
    return tuple(max(1, round(n * scale)) for n in size)


def resize(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """``x`` ``[B,C,H,W]`` resized bilinearly to ``size``, antialiased when it shrinks."""
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False, antialias=size[0] < x.shape[-2])
