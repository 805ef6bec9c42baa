"""The SECOND class schema."""

import ast
import re
from pathlib import Path

import pytest

from geocd.schema import SECOND, ChangeClass, ClassSchema, LandCover

ROOT = Path(__file__).resolve().parents[1]


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


def test_land_cover_names_the_schema_ids_and_the_seed_weights_cover_every_class() -> None:
    from geocd.options import SEED_CLASS_WEIGHTS

    assert [(c.id, c.name) for c in SECOND.classes] == [(m.value, m.name.lower().replace("_", " ")) for m in LandCover]
    assert len(SEED_CLASS_WEIGHTS) == SECOND.num_landcover


CLASS_WORDS = re.compile(r"class|label|cover", re.I)
"""Parts of a variable's name saying that it holds class ids (``PASTE_CLASSES``, ``labels``, ``cover``)."""


def numeric_class_ids(path: Path) -> list[int]:
    """The line of each integer literal in ``path`` used as a class id: assigned to a name of a
    :class:`LandCover` member or one holding classes (alone or in a tuple/list), compared with such a
    name, or stored into one (``labels[...] = 5``). An assigned 0 is taken for a counter; a compared
    0 is the class unchanged. A heuristic: an id in a name that says nothing of classes escapes it."""
    members = {m.name for m in LandCover}

    def holds_classes(node: ast.AST) -> bool:
        name = node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else None
        if isinstance(node, ast.Subscript):
            return holds_classes(node.value)
        return name is not None and (name.upper() in members or bool(CLASS_WORDS.search(name)))

    def literals(node: ast.AST) -> list[ast.Constant]:
        items = node.elts if isinstance(node, (ast.Tuple, ast.List, ast.Set)) else [node]
        return [i for i in items if isinstance(i, ast.Constant) and type(i.value) is int and 0 <= i.value < len(LandCover)]

    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Assign):
            for target in node.targets:
                pairs = (zip(target.elts, node.value.elts) if isinstance(target, ast.Tuple) and isinstance(node.value, ast.Tuple)
                         else [(target, node.value)])
                found += [c for t, v in pairs if holds_classes(t) for c in literals(v) if c.value]  # 0: a counter
        elif isinstance(node, ast.Compare) and any(isinstance(op, (ast.Eq, ast.NotEq, ast.In)) for op in node.ops):
            sides = [node.left, *node.comparators]
            if any(holds_classes(s) for s in sides):
                found += [c for s in sides for c in literals(s)]
    return [c.lineno for c in found]


def test_no_class_id_is_a_number_outside_the_schema() -> None:
    """Class ids are :class:`LandCover` members everywhere in geocd/, cli/, scripts/ and benchmarks/ but ``schema.py``."""
    files = [p for folder in ("geocd", "cli", "scripts", "benchmarks") for p in sorted((ROOT / folder).rglob("*.py"))
             if p != ROOT / "geocd" / "schema.py"]
    assert [f"{path.relative_to(ROOT)}:{line}" for path in files for line in numeric_class_ids(path)] == []


def test_the_class_id_check_finds_numbers(tmp_path: Path) -> None:
    (tmp_path / "spots.py").write_text("GROUND = 2\nPASTE_CLASSES = (1, 4)\nGRASS, TREE = 3, 4\nhit = labels == 5\n"
                                       "labels[mask] = 6\nlabels[edge] = 255\nGROUND = LandCover.GROUND\nx = size == 3\nlabelled = 0\nkept = cover != 0\n")
    assert sorted(numeric_class_ids(tmp_path / "spots.py")) == [1, 2, 2, 3, 4, 5, 10]
