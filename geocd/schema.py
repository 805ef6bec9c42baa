"""Class schemas: ids, names and display colours of the change classes.

Id 0 is always "unchanged"; ids 1..K are the land-cover classes the semantic heads
predict (head channel ``k`` is class id ``k + 1``). :class:`LandCover` is the one place
where a class id is a number: code names a class by its member, e.g. ``LandCover.BUILDING``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Any


class LandCover(IntEnum):
    """The ids of :data:`SECOND`'s classes (0 unchanged, then the land-cover classes in head-channel order)."""

    UNCHANGED = 0
    WATER = 1
    GROUND = 2
    LOW_VEGETATION = 3
    TREE = 4
    BUILDING = 5
    PLAYGROUND = 6


@dataclass(frozen=True)
class ChangeClass:
    """One class: its id in label rasters, a human name and an RGB colour."""

    id: int
    name: str
    color: tuple[int, int, int]

    @property
    def hex_color(self) -> str:
        """The colour as ``#rrggbb``."""
        return "#{:02x}{:02x}{:02x}".format(*self.color)


@dataclass(frozen=True)
class ClassSchema:
    """An ordered set of classes; ``classes[0]`` is "unchanged", the rest are land cover."""

    classes: tuple[ChangeClass, ...]

    def __post_init__(self) -> None:
        ids = [c.id for c in self.classes]
        if ids != list(range(len(ids))) or len(ids) < 2:
            raise ValueError(f"class ids must be 0..K with K >= 1, got {ids}")

    @property
    def landcover(self) -> tuple[ChangeClass, ...]:
        """The land-cover classes (ids 1..K), in head-channel order."""
        return self.classes[1:]

    @property
    def num_landcover(self) -> int:
        """K, the number of semantic-head output channels."""
        return len(self.classes) - 1

    def name(self, class_id: int) -> str:
        """The name of a class id."""
        return self.classes[class_id].name

    def class_ids(self, names: Sequence[str], among: Sequence[int] | None = None) -> tuple[int, ...]:
        """The ids of land-cover class ``names`` (each once, in id order), chosen ``among`` these ids
        (default: every land-cover class); ``ValueError`` naming the valid names for any other name."""
        valid = {self.name(c): c for c in (among if among is not None else range(1, len(self.classes)))}
        unknown = [n for n in names if n not in valid]
        if unknown:
            listing = ", ".join(valid)
            raise ValueError(f"names no class {unknown[0]!r}: use {listing}" if valid else "names a class, but there are none")
        return tuple(sorted({valid[n] for n in names}))

    def to_dict(self) -> list[dict[str, Any]]:
        """A JSON-ready list of ``{id, name, color}``."""
        return [{"id": c.id, "name": c.name, "color": list(c.color)} for c in self.classes]

    @classmethod
    def from_dict(cls, items: list[dict[str, Any]]) -> ClassSchema:
        """The inverse of :meth:`to_dict`."""
        return cls(tuple(ChangeClass(int(d["id"]), str(d["name"]), tuple(d["color"])) for d in items))


SECOND = ClassSchema(
    tuple(
        ChangeClass(int(member), name, color)
        for member, name, color in (
            (LandCover.UNCHANGED, "unchanged", (255, 255, 255)),
            (LandCover.WATER, "water", (0, 0, 255)),
            (LandCover.GROUND, "ground", (128, 128, 128)),
            (LandCover.LOW_VEGETATION, "low vegetation", (0, 128, 0)),
            (LandCover.TREE, "tree", (0, 255, 0)),
            (LandCover.BUILDING, "building", (128, 0, 0)),
            (LandCover.PLAYGROUND, "playground", (255, 0, 0)),
        )
    )
)
"""The SECOND / SenseEarth 2020 schema, geocd's default."""
