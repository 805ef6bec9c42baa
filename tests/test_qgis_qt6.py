"""The plugin's sources avoid Qt5-only idioms, so QGIS 4 (Qt6, PyQt6) can load them; its metadata opens QGIS 4.

A static check (no QGIS needed): PyQt6 accepts only scoped enums (``Qt.AlignmentFlag.AlignLeft``,
not ``Qt.AlignLeft``), has no ``exec_()``, moved ``QAction`` to QtGui and dropped ``QRegExp`` and
``QDesktopWidget``; QGIS's own enums moved (``Qgis.ProcessingNumberParameterType`` ...). The plugin
imports Qt only through ``qgis.PyQt`` and takes moved names from ``compat.py``, the one file that
may spell both versions' names.
"""

from __future__ import annotations

import ast
import configparser
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PLUGIN = ROOT / "qgis_plugin" / "geocd_qgis"
COMPAT = "compat.py"
DIRECT_BINDINGS = ("PyQt5", "PyQt6", "sip", "PySide2", "PySide6")
QT5_ONLY_NAMES = ("QRegExp", "QDesktopWidget")
MOVED_TO_QTGUI = ("QAction", "QActionGroup", "QShortcut")
QT_CLASS = re.compile(r"^(Qt|Qgis|Qgs\w+|Q[A-Z]\w*)$")


def qt5_idioms(source: str, name: str) -> list[str]:
    """Problems in one plugin file: ``LINE: what`` for each Qt5-only idiom (``name`` ``compat.py`` may name moved enums)."""
    problems = []
    tree = ast.parse(source)
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            modules = [alias.name for alias in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            for module in modules:
                if module.split(".")[0] in DIRECT_BINDINGS:
                    problems.append(f"{node.lineno}: imports {module} directly (use qgis.PyQt)")
            if isinstance(node, ast.ImportFrom) and name != COMPAT:
                moved = [a.name for a in node.names if a.name in MOVED_TO_QTGUI and (node.module or "").endswith("QtWidgets")]
                problems += [f"{node.lineno}: {m} from QtWidgets (QtGui in Qt6: use compat)" for m in moved]
            problems += [f"{node.lineno}: {a.name} does not exist in Qt6" for a in node.names if a.name in QT5_ONLY_NAMES]
        elif isinstance(node, ast.Attribute) and node.attr in ("exec_", "print_"):
            problems.append(f"{node.lineno}: {node.attr}() (use {node.attr[:-1]}())")
        elif (isinstance(node, ast.Attribute) and name != COMPAT and isinstance(node.value, ast.Name)
              and QT_CLASS.match(node.value.id) and node.attr[:1].isupper()
              and not isinstance(parents.get(node), ast.Attribute)
              and not (isinstance(parents.get(node), ast.Call) and parents[node].func is node)):
            problems.append(f"{node.lineno}: unscoped enum {node.value.id}.{node.attr} (scope it, or use compat)")
    return sorted(problems, key=lambda problem: int(problem.split(":")[0]))


def test_plugin_sources_have_no_qt5_only_idioms() -> None:
    problems = {path.name: qt5_idioms(path.read_text(encoding="utf-8"), path.name) for path in sorted(PLUGIN.glob("*.py"))}
    assert {name: found for name, found in problems.items() if found} == {}


def test_the_check_finds_each_idiom() -> None:
    sample = ("from PyQt5.QtCore import Qt\nfrom qgis.PyQt.QtWidgets import QAction, QDialog\n"
              "from qgis.PyQt.QtCore import QRegExp\n"
              "dialog.exec_()\nalign = Qt.AlignLeft\nscoped = Qt.AlignmentFlag.AlignLeft\n"
              "kind = QgsProcessingParameterNumber.Double\npolygons = QgsProcessing.TypeVectorPolygon\n"
              "layer = QgsMapLayerType.RasterLayer\nregistry = QgsApplication.processingRegistry()\n")
    assert qt5_idioms(sample, "algorithm.py") == [
        "1: imports PyQt5.QtCore directly (use qgis.PyQt)", "2: QAction from QtWidgets (QtGui in Qt6: use compat)",
        "3: QRegExp does not exist in Qt6", "4: exec_() (use exec())", "5: unscoped enum Qt.AlignLeft (scope it, or use compat)",
        "7: unscoped enum QgsProcessingParameterNumber.Double (scope it, or use compat)",
        "8: unscoped enum QgsProcessing.TypeVectorPolygon (scope it, or use compat)",
        "9: unscoped enum QgsMapLayerType.RasterLayer (scope it, or use compat)"]


def test_metadata_opens_qgis_4() -> None:
    metadata = configparser.ConfigParser(interpolation=None)
    metadata.read(PLUGIN / "metadata.txt", encoding="utf-8")
    general = metadata["general"]
    assert general["qgisMinimumVersion"] == "3.22" and general["qgisMaximumVersion"] == "4.99"
    assert general["supportsQt6"] == "True"


def test_readme_says_qgis_4_is_untested() -> None:
    assert "QGIS 4 (Qt6) is untested" in " ".join((ROOT / "README.md").read_text(encoding="utf-8").split())
