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
"""Colour of plain "change" and of pairs whose after-class is unknown."""


def encode_pairs(from_class: np.ndarray, to_class: np.ndarray, changed: np.ndarray) -> np.ndarray:
    """int32 labels: ``1 + 256 * from + to`` on changed pixels, 0 elsewhere."""
    where = np.flatnonzero(changed)
    labels = np.zeros(changed.size, np.int32)
    labels[where] = (from_class.ravel()[where].astype(np.int32) << 8 | to_class.ravel()[where]) + 1
    return labels.reshape(changed.shape)


def decode_pairs(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(from_class, to_class)`` of labels made by :func:`encode_pairs`."""
    values = np.asarray(labels, np.int64) - 1
    return values >> 8, values & 0xFF


@dataclass(frozen=True)
class PairNames:
    """Class fields of one (from, to) pair as written to the GeoPackage (None = null)."""

    from_class: int | None
    from_name: str | None
    to_class: int | None
    to_name: str | None
    change_type: str
    color: tuple[int, int, int]


def name_pair(from_class: int, to_class: int, info: ChangeMapInfo) -> PairNames:
    """Names, change-type label (``"building → water"``) and display colour of a pair."""
    if not info.landcover_trained:
        return PairNames(None, None, None, None, UNTRAINED_TYPE, CHANGE_COLOR)
    before, after = (_known(info, c) for c in (from_class, to_class))
    before_name = None if before is None else info.schema.name(before)
    after_name = None if after is None else info.schema.name(after)
    label = f"{before_name or UNKNOWN_NAME} {ARROW} {after_name or UNKNOWN_NAME}"
    color = CHANGE_COLOR if after is None else info.schema.classes[after].color
    return PairNames(before, before_name, after, after_name, label, color)


def _known(info: ChangeMapInfo, class_id: int) -> int | None:
    return class_id if 1 <= class_id <= info.schema.num_landcover else None
