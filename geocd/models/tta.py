"""Test-time augmentation over the seed's 6 dihedral transforms (:mod:`geocd.models.dihedral`) and over
scales, and model ensembles, on numpy arrays around inference runners (:mod:`geocd.inference.backends`).

Probabilities (softmax for land cover, sigmoid for change) are averaged over every
model, every transform and every scale, each output mapped back to the input orientation
and size first.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import NamedTuple

import numpy as np

from geocd.models.config import ChangeLogits
from geocd.models.dihedral import DIHEDRAL

Runner = Callable[[np.ndarray, np.ndarray], ChangeLogits]
"""A network called on raw pixel batches ``[B,C,H,W]`` (float32) that returns its logits as float32 arrays. A
runner that can run in the background (OpenVINO's) also has ``start(before, after)``, which returns at once a
call that collects the logits."""


class ChangeProbabilities(NamedTuple):
    """Averaged probabilities: ``sem_before``/``sem_after`` ``[B,K,H,W]``, ``change`` ``[B,1,H,W]`` (float32)."""

    sem_before: np.ndarray
    sem_after: np.ndarray
    change: np.ndarray


def predict_probabilities(
    models: Sequence[Runner], before: np.ndarray, after: np.ndarray, tta: bool = False, scales: Sequence[float] = (1.0,),
) -> ChangeProbabilities:
    """Average land-cover and change probabilities over ``models`` (runners), ``scales`` (the inputs resized by
    each factor, antialiased, the outputs resized back bilinearly) and, with ``tta``, the 6 transforms."""
    return predict_logits(models, before, after, tta, scales)()


def predict_logits(
    models: Sequence[Runner], before: np.ndarray, after: np.ndarray, tta: bool = False, scales: Sequence[float] = (1.0,),
) -> PendingProbabilities:
    """The networks' part of :func:`predict_probabilities`: every model started on every transform and scale of
    the inputs. Collecting their outputs (:meth:`PendingProbabilities.collect`) and averaging them are left to the
    returned object: a caller may start the next inputs before collecting these, and average in another thread
    while the networks go on."""
    transforms = list(DIHEDRAL.values()) if tta else [DIHEDRAL["identity"]]
    size = tuple(before.shape[-2:])
    outputs = []
    for scale in scales:
        scaled = [x if scale == 1 else resize(x, scaled_size(size, scale)) for x in (before, after)]
        for model in models:
            for forward, inverse in transforms:
                outputs.append((_start(model, *(forward(x) for x in scaled)), inverse, scale != 1))
    return PendingProbabilities(outputs, size)


def _start(model: Runner, before: np.ndarray, after: np.ndarray) -> Callable[[], ChangeLogits]:
    """``model`` started on a batch (run now where it cannot run in the background); the call collects its logits."""
    start = getattr(model, "start", None)
    if start is not None:
        return start(before, after)
    logits = model(before, after)
    return lambda: logits


class PendingProbabilities:
    """The started networks of :func:`predict_logits`; :meth:`collect` waits for their logits, and called,
    the averaged :class:`ChangeProbabilities`."""

    def __init__(self, started: list[tuple[Callable[[], ChangeLogits], Callable[[np.ndarray], np.ndarray], bool]],
                 size: tuple[int, int]) -> None:
        self.started, self.size = started, size
        self.outputs: list[tuple[ChangeLogits, Callable[[np.ndarray], np.ndarray], bool]] | None = None

    def collect(self) -> PendingProbabilities:
        """Wait for every network's logits (once); returns self."""
        if self.outputs is None:
            self.outputs = [(collect(), inverse, resized) for collect, inverse, resized in self.started]
        return self

    def __call__(self) -> ChangeProbabilities:
        classes = self.collect().outputs[0][0].sem_before.shape[1]
        total = self.stacked(range(classes))
        return ChangeProbabilities(total[:, 1 : 1 + classes], total[:, 1 + classes :], total[:, :1])

    def stacked(self, heads: Sequence[int]) -> np.ndarray:
        """The averaged probabilities in one float32 array ``[B, 1 + 2T, H, W]``: the change, then the classes
        ``heads`` (T indices of the land-cover outputs) of the before date, then of the after date. Each output's
        probabilities are written straight into their place: the other classes are never divided, nothing is
        concatenated."""
        heads = list(heads)
        t = len(heads)
        total = None
        for logits, inverse, resized in self.collect().outputs:
            first = total is None
            if first:
                total = np.empty((len(logits.change), 1 + 2 * t, *self.size), np.float32)
            pieces = (partial(_sigmoid, inverse(logits.change)), partial(_softmax, inverse(logits.sem_before), heads),
                      partial(_softmax, inverse(logits.sem_after), heads))
            for piece, slot in zip(pieces, (total[:, :1], total[:, 1 : 1 + t], total[:, 1 + t :])):
                if first and not resized:
                    piece(out=slot)
                    continue
                probs = resize(piece(), self.size) if resized else piece()
                if first:
                    slot[...] = probs
                else:
                    slot += probs
        if len(self.outputs) > 1:
            total /= np.float32(len(self.outputs))
        return total


def _softmax(logits: np.ndarray, heads: list[int], out: np.ndarray | None = None) -> np.ndarray:
    """Softmax over axis 1 (float32), of the classes ``heads`` only (into ``out`` if given)."""
    e = logits - logits.max(axis=1, keepdims=True)
    np.exp(e, out=e)
    return np.divide(e[:, heads], e.sum(axis=1, keepdims=True), out=out)


def _sigmoid(logits: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """The logistic function as ``(1 + tanh(x / 2)) / 2``, float32 (no overflow for any logit; into ``out`` if given)."""
    p = np.multiply(logits, np.float32(0.5), out=out)
    np.tanh(p, out=p)
    p *= np.float32(0.5)
    p += np.float32(0.5)
    return p


def scaled_size(size: Sequence[int], scale: float) -> tuple[int, int]:
    """The pixel size ``[h, w]`` of an input of ``size`` resized by ``scale``."""
    return tuple(max(1, round(n * scale)) for n in size)


def resize(x: np.ndarray, size: Sequence[int]) -> np.ndarray:
    """``x`` ``[B,C,H,W]`` resized bilinearly to ``size``, antialiased when it shrinks (PyTorch's interpolation)."""
    import torch
    from torch.nn import functional as F

    resized = F.interpolate(torch.from_numpy(np.ascontiguousarray(x)), size=tuple(size), mode="bilinear",
                            align_corners=False, antialias=size[0] < x.shape[-2])
    return resized.numpy()
