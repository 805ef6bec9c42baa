"""The dihedral transforms of a tile, each with its inverse, on the last two (spatial) axes.

One table serves training augmentation (a random element of the whole group per sample)
and test-time augmentation (the seed's 6 transforms). Every transform only permutes
pixels, so values are kept exactly. They apply to PyTorch tensors (training, on any device) and to
numpy arrays (test-time augmentation before an inference runner) alike.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, NamedTuple, TypeVar

import numpy as np

if TYPE_CHECKING:
    import torch

Array = TypeVar("Array", np.ndarray, "torch.Tensor")
Transform = Callable[[Array], Array]


class Dihedral(NamedTuple):
    """A transform and its inverse."""

    forward: Transform
    inverse: Transform


def _element(turns: int, flip: bool) -> Dihedral:
    """``turns`` quarter turns (as :func:`torch.rot90`), then a horizontal flip when ``flip``."""

    def forward(x: Array) -> Array:
        x = _rot90(x, turns) if turns else x
        return _flip(x) if flip else x

    def inverse(x: Array) -> Array:
        x = _flip(x) if flip else x
        return _rot90(x, -turns) if turns else x

    return Dihedral(forward, inverse)


def _rot90(x: Array, turns: int) -> Array:
    """``x`` turned by ``turns`` quarter turns on its last two axes (a view of a numpy array)."""
    return np.rot90(x, turns, (-2, -1)) if isinstance(x, np.ndarray) else x.rot90(turns, (-2, -1))


def _flip(x: Array) -> Array:
    """``x`` flipped along its last axis (a view of a numpy array)."""
    return np.flip(x, -1) if isinstance(x, np.ndarray) else x.flip(-1)


GROUP: tuple[Dihedral, ...] = tuple(_element(turns, flip) for flip in (False, True) for turns in range(4))
"""All 8 elements; element ``turns + 4 * flip`` is ``turns`` quarter turns, then a horizontal flip when ``flip``."""

DIHEDRAL: dict[str, Dihedral] = {
    "identity": GROUP[0],
    "hflip": GROUP[4],
    "vflip": GROUP[6],
    "rot90": GROUP[1],
    "rot180": GROUP[2],
    "rot270": GROUP[3],
}
"""The seed's 6 test-time transforms by name (the two transposes of :data:`GROUP` are left out)."""


def transform_each(x: torch.Tensor, elements: list[int]) -> torch.Tensor:
    """Sample ``i`` of ``x`` ``[B, ..., H, W]`` under ``GROUP[elements[i]]`` (square tiles keep their shape)."""
    import torch

    return torch.stack([GROUP[e].forward(sample) for sample, e in zip(x, elements)])
