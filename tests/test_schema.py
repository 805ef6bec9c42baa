"""The SECOND class schema."""

import pytest

from geocd.schema import SECOND, ChangeClass, ClassSchema


def test_second_classes_in_order() -> None:
    assert [c.name for c in SECOND.classes] == [
        "unchanged", "water", "ground", "low vegetation", "tree", "building", "playground"
    ]
    assert SECOND.num_landcover == 6
    assert SECOND.classes[5].hex_color == "#800000"


def test_round_trip_through_dict() -> None:
    assert ClassSchema.from_dict(SECOND.to_dict()) == SECOND


def test_ids_must_be_contiguous_from_zero() -> None:
    with pytest.raises(ValueError, match="0..K"):
        ClassSchema((ChangeClass(0, "unchanged", (0, 0, 0)), ChangeClass(2, "x", (1, 1, 1))))
