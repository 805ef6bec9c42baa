"""The default QGIS style of the ``changes`` layer: a categorized renderer on ``change_type``
(fill: the to class's colour, outline: the from class's)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence

FIELD = "change_type"
FILL_ALPHA = 153
"""Fill opacity 0.6 of 255; outlines are opaque."""


def categorized_qml(categories: Sequence[tuple[str, tuple[int, int, int], tuple[int, int, int]]],
                    qgis_version: str = "3.22.0") -> str:
    """QML text with one semi-transparent fill category per ``(change_type value, RGB fill, RGB outline)``."""
    root = ET.Element("qgis", version=qgis_version, styleCategories="Symbology")
    renderer = ET.SubElement(
        root,
        "renderer-v2",
        type="categorizedSymbol",
        attr=FIELD,
        symbollevels="0",
        enableorderby="0",
        forceraster="0",
        referencescale="-1",
    )
    listing = ET.SubElement(renderer, "categories")
    symbols = ET.SubElement(renderer, "symbols")
    for index, (value, color, outline) in enumerate(categories):
        ET.SubElement(listing, "category", render="true", value=value, label=value, symbol=str(index), type="string")
        symbols.append(_fill_symbol(str(index), color, outline))
    ET.SubElement(root, "blendMode").text = "0"
    ET.SubElement(root, "featureBlendMode").text = "0"
    ET.SubElement(root, "layerGeometryType").text = "2"
    return "<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>\n" + ET.tostring(root, encoding="unicode")


def _fill_symbol(name: str, color: tuple[int, int, int], outline: tuple[int, int, int]) -> ET.Element:
    rgb, outline_rgb = (",".join(str(c) for c in colour) for colour in (color, outline))
    symbol = ET.Element("symbol", type="fill", name=name, alpha="1", clip_to_extent="1", force_rhr="0")
    layer = ET.SubElement(symbol, "layer", {"class": "SimpleFill", "enabled": "1", "locked": "0", "pass": "0"})
    options = ET.SubElement(layer, "Option", type="Map")
    properties = {
        "border_width_map_unit_scale": "3x:0,0,0,0,0,0",
        "color": f"{rgb},{FILL_ALPHA}",
        "joinstyle": "bevel",
        "offset": "0,0",
        "offset_map_unit_scale": "3x:0,0,0,0,0,0",
        "offset_unit": "MM",
        "outline_color": f"{outline_rgb},255",
        "outline_style": "solid",
        "outline_width": "0.8",
        "outline_width_unit": "MM",
        "style": "solid",
    }
    for key, value in properties.items():
        ET.SubElement(options, "Option", name=key, type="QString", value=value)
    return symbol
