"""Test-time augmentation over the seed's 6 dihedral transforms (:mod:`geocd.models.dihedral`), and model ensembles.

Probabilities (softmax for land cover, sigmoid for change) are averaged over every
model and every transform, each output mapped back to the input orientation first.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import torch

from geocd.models.dihedral import DIHEDRAL
from geocd.models.siamese import ChangeLogits


class ChangeProbabilities(NamedTuple):
    """Averaged probabilities: ``sem_before``/``sem_after`` ``[B,K,H,W]``, ``change`` ``[B,1,H,W]``."""

    sem_before: torch.Tensor
    sem_after: torch.Tensor
    change: torch.Tensor


@torch.no_grad()
def predict_probabilities(
    models: Sequence[Callable[[torch.Tensor, torch.Tensor], ChangeLogits]], before: torch.Tensor, after: torch.Tensor, tta: bool = False
) -> ChangeProbabilities:
    """Average land-cover and change probabilities over ``models`` (modules or any callable with their
    signature, e.g. :mod:`geocd.inference.backends` runners) and, with ``tta``, the 6 transforms."""
    transforms = list(DIHEDRAL.values()) if tta else [DIHEDRAL["identity"]]
    totals: list[torch.Tensor] | None = None
    for model in models:
        for forward, inverse in transforms:
            logits = model(forward(before), forward(after))
            probs = (logits.sem_before.softmax(1), logits.sem_after.softmax(1), logits.change.sigmoid())
            probs = [inverse(p.float()) for p in probs]
            totals = probs if totals is None else [t + p for t, p in zip(totals, probs)]
    count = len(models) * len(transforms)
    return ChangeProbabilities(*(t / count for t in totals))
