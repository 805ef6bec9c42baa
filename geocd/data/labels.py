"""Label codes shared by archives, training and evaluation.

Label rasters are uint8: 0 = unchanged (change archives), ``1..K`` = one SECOND land-cover
class, ``SET_BASE + bitmask`` = any of a set of classes (bit ``c - 1`` for class ``c``, for
coarse source classes such as "vegetation" = {low vegetation, tree}), :data:`IGNORE` = not labelled.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from geocd.schema import SECOND

IGNORE = 255
SET_BASE = 64


def encode_set(classes: Iterable[int]) -> int:
    """The label value allowing any of ``classes`` (ids 1..K); one class encodes as its id."""
    ids = sorted(set(classes))
    if not ids or not all(1 <= c <= SECOND.num_landcover for c in ids):
        raise ValueError(f"a class set needs ids in 1..{SECOND.num_landcover}, got {ids}")
    if len(ids) == 1:
        return ids[0]
    return SET_BASE + sum(1 << (c - 1) for c in ids)


def decode_value(value: int) -> tuple[int, ...]:
    """The class ids a label value allows, ascending; ``()`` for :data:`IGNORE`."""
    value = int(value)
    if value == IGNORE:
        return ()
    if 1 <= value <= SECOND.num_landcover:
        return (value,)
    bits = value - SET_BASE
    if 0 < bits < 1 << SECOND.num_landcover:
        return tuple(c for c in range(1, SECOND.num_landcover + 1) if bits & (1 << (c - 1)))
    raise ValueError(f"{value} is not a land-cover label value")


def class_bits(labels: np.ndarray) -> np.ndarray:
    """Per pixel, the bitmask of the classes a label value allows (bit ``c - 1`` for class ``c``); 0 for
    0 (unchanged), :data:`IGNORE` and any other value."""
    k = SECOND.num_landcover
    single = (labels >= 1) & (labels <= k)
    in_set = (labels > SET_BASE) & (labels < SET_BASE + (1 << k))
    return np.where(single, 1 << np.clip(labels - 1, 0, None), np.where(in_set, labels - SET_BASE, 0)).astype(np.int64)
