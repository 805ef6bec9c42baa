"""(from, to) class pairs: one integer label per pair, and how each pair is named and coloured.

Class ids outside the schema's land-cover ids (0 = unknown) get no name. When the
change raster says land cover was not trained, every pair is plain "change".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from geocd.changemap import ChangeMapInfo

ARROW = "\u2192"
UNTRAINED_TYPE = "change"
UNKNOWN_NAME = "unknown"
CHANGE_COLOR = (255, 0, 255)
"""Colour of plain "change" and of unknown classes."""


def encode_pairs(from_class: np.ndarray, to_class: np.ndarray) -> np.ndarray:
    """int64 pair labels ``1 + 256 * from + to``."""
    return (np.asarray(from_class, np.int64) << 8 | np.asarray(to_class, np.int64)) + 1


def decode_pairs(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(from_class, to_class)`` of labels made by :func:`encode_pairs`."""
    values = np.asarray(labels, np.int64) - 1
    return values >> 8, values & 0xFF


def pair_indices(from_class: np.ndarray, to_class: np.ndarray, num_classes: int) -> np.ndarray:
    """Dense pair indices ``from * (K + 1) + to`` (below ``(K + 1)²``; uint16, which holds them for any
    uint8 class id) for K = ``num_classes``; a class id above K counts as 0 (unknown)."""
    known = [np.where(c <= num_classes, c, 0).astype(np.uint16) for c in (from_class, to_class)]
    return known[0] * np.uint16(num_classes + 1) + known[1]


def majority_pairs(pair_counts: np.ndarray, num_classes: int) -> tuple[np.ndarray, ...]:
    """Per row of ``pair_counts`` ``[n, (K + 1)²]`` (pixels per pair index): the most frequent pair's
    label (:func:`encode_pairs`; a tie goes to the lower from, then to class), its pixels, and the
    pixels sharing its from class and its to class."""
    side = num_classes + 1
    best = pair_counts.argmax(1) if len(pair_counts) else np.empty(0, np.int64)
    from_class, to_class = best // side, best % side
    square = pair_counts.reshape(-1, side, side)
    rows = np.arange(len(pair_counts))
    return (encode_pairs(from_class, to_class), pair_counts[rows, best], square[rows, from_class].sum(1),
            square[rows, :, to_class].sum(1))


@dataclass(frozen=True)
class PairNames:
    """Class fields of one (from, to) pair as written to the GeoPackage (None = null)."""

    from_class: int | None
    from_name: str | None
    to_class: int | None
    to_name: str | None
    change_type: str
    color: tuple[int, int, int]
    """Fill: the to class's colour."""
    outline: tuple[int, int, int]
    """The from class's colour."""


def name_pair(from_class: int, to_class: int, info: ChangeMapInfo) -> PairNames:
    """Names, change-type label (``"building → water"``) and display colours of a pair."""
    if not info.landcover_trained:
        return PairNames(None, None, None, None, UNTRAINED_TYPE, CHANGE_COLOR, CHANGE_COLOR)
    before, after = (_known(info, c) for c in (from_class, to_class))
    before_name = None if before is None else info.schema.name(before)
    after_name = None if after is None else info.schema.name(after)
    label = f"{before_name or UNKNOWN_NAME} {ARROW} {after_name or UNKNOWN_NAME}"
    color, outline = (CHANGE_COLOR if c is None else info.schema.classes[c].color for c in (after, before))
    return PairNames(before, before_name, after, after_name, label, color, outline)


def _known(info: ChangeMapInfo, class_id: int) -> int | None:
    return class_id if 1 <= class_id <= info.schema.num_landcover else None
