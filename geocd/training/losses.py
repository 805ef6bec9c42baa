"""The SenseEarth 2020 winner's loss: ``2 * bce + ce_before + ce_after``.

* ``ce_before``/``ce_after``: cross-entropy of the shared semantic head per date over the
  changed pixels only (label 0 = unchanged and 255 = ignore are left out), with class
  weights (default 2 for water, low vegetation and tree, 1 otherwise). A label naming a
  *set* of classes (``SET_BASE`` + bitmask, from coarse land-cover maps) contributes the
  partial-label loss ``-log sum_{c in set} p_c`` with the largest weight in the set; for a
  single class this is the ordinary weighted cross-entropy;
* ``bce``: binary cross-entropy of the change logit, changed pixels weighted 2.

A term with no labelled pixel in the batch (e.g. binary-only archives, whose semantic
labels are all ignore) contributes 0, so such archives train the change head only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from geocd.data.labels import IGNORE, SET_BASE
from geocd.models.config import ChangeLogits
from geocd.options import SEED_CLASS_WEIGHTS

def allowed_classes(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """``[B, H, W]`` label values to ``[B, K, H, W]`` booleans: the head channels each label allows.

    1..K allow one class, ``SET_BASE`` + bitmask a set (bit c-1 for class c); 0 (unchanged)
    and 255 (ignore) allow none.
    """
    single = (labels >= 1) & (labels <= num_classes)
    in_set = (labels > SET_BASE) & (labels < SET_BASE + 2**num_classes)
    bits = torch.where(single, 1 << (labels - 1).clamp(min=0), torch.where(in_set, labels - SET_BASE, 0))
    shifts = torch.arange(num_classes, device=labels.device).view(1, -1, 1, 1)
    return ((bits.unsqueeze(1) >> shifts) & 1).bool()


class LossTerms(NamedTuple):
    """The total and its parts (for logging)."""

    total: torch.Tensor
    bce: torch.Tensor
    ce_before: torch.Tensor
    ce_after: torch.Tensor


class ChangeLoss(nn.Module):
    """``2 * bce + ce_before + ce_after`` with the seed's weights."""

    def __init__(self, class_weights: Sequence[float] = SEED_CLASS_WEIGHTS, changed_weight: float = 2.0) -> None:
        super().__init__()
        self.register_buffer("class_weights", torch.tensor(class_weights, dtype=torch.float32))
        self.changed_weight = changed_weight

    def semantic(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Weighted (partial-label) CE over pixels whose label allows one or more classes."""
        allowed = allowed_classes(labels, logits.shape[1])
        known = allowed.any(1)
        if not known.any():
            return logits.sum() * 0.0
        log_p = logits.float().log_softmax(1).masked_fill(~allowed, float("-inf"))
        nll = -torch.logsumexp(log_p, dim=1)[known]
        weights = (self.class_weights.view(1, -1, 1, 1) * allowed).amax(1)[known]
        return (weights * nll).sum() / weights.sum()

    def change(self, logits: torch.Tensor, change: torch.Tensor) -> torch.Tensor:
        """BCE of the change logit over pixels labelled 0 or 1, changed pixels weighted."""
        known = change != IGNORE
        if not known.any():
            return logits.sum() * 0.0
        target = change[known].float()
        weights = torch.where(target > 0, self.changed_weight, 1.0)
        return F.binary_cross_entropy_with_logits(logits[:, 0][known].float(), target, weight=weights)

    def forward(self, out: ChangeLogits, label_before: torch.Tensor, label_after: torch.Tensor, change: torch.Tensor) -> LossTerms:
        bce = self.change(out.change, change)
        ce_before = self.semantic(out.sem_before, label_before)
        ce_after = self.semantic(out.sem_after, label_after)
        return LossTerms(2 * bce + ce_before + ce_after, bce, ce_before, ce_after)
