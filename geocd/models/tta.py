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
    return predict_logits(models, before, after, tta, scales)()


@torch.no_grad()
def predict_logits(
    models: Sequence[Callable[[torch.Tensor, torch.Tensor], ChangeLogits]],
    before: torch.Tensor,
    after: torch.Tensor,
    tta: bool = False,
    scales: Sequence[float] = (1.0,),
) -> PendingProbabilities:
    """The networks' part of :func:`predict_probabilities`: every model run on every transform and scale of
    the inputs. Averaging their probabilities is left to the returned call, which a caller may run in
    another thread while the networks go on with the next inputs."""
    transforms = list(DIHEDRAL.values()) if tta else [DIHEDRAL["identity"]]
    size = tuple(before.shape[-2:])
    outputs = []
    for scale in scales:
        scaled = [x if scale == 1 else resize(x, scaled_size(size, scale)) for x in (before, after)]
        for model in models:
            for forward, inverse in transforms:
                outputs.append((model(*(forward(x) for x in scaled)), inverse, scale != 1))
    return PendingProbabilities(outputs, size)


class PendingProbabilities:
    """Raw outputs of :func:`predict_logits`; called, their averaged :class:`ChangeProbabilities`."""

    def __init__(self, outputs: list[tuple[ChangeLogits, Callable[[torch.Tensor], torch.Tensor], bool]],
                 size: tuple[int, int]) -> None:
        self.outputs, self.size = outputs, size

    @torch.no_grad()
    def __call__(self) -> ChangeProbabilities:
        totals: list[torch.Tensor] | None = None
        for logits, inverse, resized in self.outputs:
            probs = (logits.sem_before.float().softmax(1), logits.sem_after.float().softmax(1), logits.change.float().sigmoid())
            probs = [inverse(p) for p in probs]
            if resized:
                probs = [resize(p, self.size) for p in probs]
            totals = probs if totals is None else [t + p for t, p in zip(totals, probs)]
        count = len(self.outputs)
        return ChangeProbabilities(*(t if count == 1 else t / count for t in totals))


def scaled_size(size: Sequence[int], scale: float) -> tuple[int, int]:
    """The pixel size ``[h, w]`` of an input of ``size`` resized by ``scale``."""
    return tuple(max(1, round(n * scale)) for n in size)


def resize(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """``x`` ``[B,C,H,W]`` resized bilinearly to ``size``, antialiased when it shrinks."""
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False, antialias=size[0] < x.shape[-2])
