"""The dihedral transforms of a tile, each with its inverse, on the last two (spatial) axes.

One table serves training augmentation (a random element of the whole group per sample)
and test-time augmentation (the seed's 6 transforms). Every transform only permutes
pixels, so values are kept exactly.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch

Transform = Callable[[torch.Tensor], torch.Tensor]


class Dihedral(NamedTuple):
    """A transform and its inverse."""

    forward: Transform
    inverse: Transform


def _element(turns: int, flip: bool) -> Dihedral:
    """``turns`` quarter turns (as :func:`torch.rot90`), then a horizontal flip when ``flip``."""

    def forward(x: torch.Tensor) -> torch.Tensor:
        x = x.rot90(turns, (-2, -1)) if turns else x
        return x.flip(-1) if flip else x

    def inverse(x: torch.Tensor) -> torch.Tensor:
        x = x.flip(-1) if flip else x
        return x.rot90(-turns, (-2, -1)) if turns else x

    return Dihedral(forward, inverse)


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
    return torch.stack([GROUP[e].forward(sample) for sample, e in zip(x, elements)])
