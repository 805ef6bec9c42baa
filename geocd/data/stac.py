"""STAC items as rasters: the chosen single-band assets of an item, stacked as one virtual raster.

A STAC item (a local ``.json`` file or an http(s) URL; pystac models it) stands for the raster made
of the assets that ``bands`` names, by asset key or by ``eo:bands`` name or common name
(``red,green,blue``, ``B04,B03,B02``). :func:`stac_raster` stacks them as a GDAL VRT on the grid of
the finest one (coarser bands upsampled nearest-neighbour by GDAL as it reads), kept in GDAL's memory
file system (a rasterio ``MemoryFile``) of the process: nothing is downloaded whole, each asset is
read by ranges when and where its pixels are needed. The VRT names the item and each band its asset
(:data:`ITEM_TAG`, :data:`ASSET_TAG`, :data:`HREF_TAG`), so errors and reports can name them.
"""

from __future__ import annotations

import functools
import json
import os
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

import rasterio
from rasterio.dtypes import dtype_rev, typename_fwd
from rasterio.errors import RasterioIOError
from rasterio.io import MemoryFile

from geocd.data.remote import gdal_path, is_remote, remote_problem
from geocd.errors import InputError

ITEM_TAG = "GEOCD_STAC_ITEM"
"""Dataset tag of a stacked item: the item's path or URL as given."""
ITEM_ID_TAG = "GEOCD_STAC_ID"
"""Dataset tag of a stacked item: its id."""
ASSET_TAG = "GEOCD_STAC_ASSET"
"""Band tag: the asset key of the band."""
HREF_TAG = "GEOCD_STAC_HREF"
"""Band tag: the asset's absolute href."""
NAMES_TAG = "GEOCD_BAND_NAMES"
"""Band tag: the names the band answers to (asset key, eo:bands name and common name), comma-separated."""

ITEM_RETRIES = 3
"""Retries of a failed connection when fetching an item."""
ITEM_TIMEOUT_S = 30
"""Seconds to wait for an item's server."""
_RASTER_TYPES = ("image/tiff", "image/jp2", "image/vnd.stac.geotiff")
_NOT_DATA = {"thumbnail", "overview", "visual", "metadata"}


def is_stac_item(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` names a STAC item: a ``.json`` file or URL, or a STAC API's item URL
    (``.../collections/ID/items/ID``)."""
    text = os.fspath(path)
    if not is_remote(text):
        return text.lower().endswith(".json")
    parts = urlsplit(text).path.rstrip("/").split("/")
    return parts[-1].lower().endswith(".json") or (len(parts) >= 4 and parts[-2] == "items" and parts[-4] == "collections")


def stac_raster(path: str | os.PathLike[str], bands: Sequence[int | str] | None) -> str:
    """The GDAL path of a VRT stacking the single-band assets of STAC item ``path`` that ``bands``
    names, in that order; :class:`InputError` naming the item when it cannot be read or an asset
    cannot be found or stacked. Built once per process for the same item and bands."""
    if not bands or not all(isinstance(b, str) for b in bands):
        raise InputError(path, "bands must name the STAC item's assets or bands (asset keys, eo:bands names or "
                               "common names, e.g. red,green,blue)")
    return _stacked(os.fspath(path), tuple(bands)).name


def stac_description(src: rasterio.DatasetReader) -> dict[str, Any] | None:
    """The item id and the href of each asset of a stacked STAC item (by asset key), else None."""
    tags = src.tags()
    if ITEM_TAG not in tags:
        return None
    return {"item": tags[ITEM_TAG], "id": tags[ITEM_ID_TAG],
            "assets": {src.tags(i)[ASSET_TAG]: src.tags(i)[HREF_TAG] for i in src.indexes}}


@functools.cache
def _stacked(path: str, bands: tuple[str, ...]) -> MemoryFile:
    """The VRT of :func:`stac_raster`, kept open by the cache (closing a MemoryFile deletes its file)."""
    item = _read_item(path)
    sources = [_source(path, *_asset(path, item, name)) for name in bands]
    if len({s["crs"] for s in sources}) > 1:
        raise InputError(path, f"assets {', '.join(bands)} lie in different CRS; choose assets of one projection")
    finest = min(sources, key=lambda s: s["transform"].a)
    return MemoryFile(_vrt_xml(path, item.id, sources, finest).encode(), filename=f"{item.id}.vrt")


def _read_item(path: str) -> Any:
    """The pystac Item at ``path`` (a local file, or an http(s) URL fetched with requests after at most
    :data:`ITEM_RETRIES` retries); :class:`InputError` naming it when it cannot be read or is no item."""
    import pystac
    import requests

    if is_remote(path) and urlsplit(path).scheme.lower() not in ("http", "https"):
        raise InputError(path, "a STAC item is read from a local file or an http(s) URL")
    try:
        if is_remote(path):
            with requests.Session() as session:
                session.mount(path, requests.adapters.HTTPAdapter(max_retries=ITEM_RETRIES))
                response = session.get(path, timeout=ITEM_TIMEOUT_S)
            if response.status_code >= 400:
                raise InputError(path, remote_problem(OSError(f"HTTP response code: {response.status_code}")))
            text = response.content
        elif not os.path.exists(path):
            raise InputError(path, "file does not exist")
        else:
            with open(path, "rb") as f:
                text = f.read()
        data = json.loads(text)
        if not isinstance(data, dict):
            raise InputError(path, "is not a STAC item (not a JSON object)")
        return pystac.Item.from_dict(data, href=path)
    except requests.RequestException as error:
        raise InputError(path, f"cannot be reached ({type(error).__name__})") from None
    except (OSError, ValueError, UnicodeDecodeError):  # JSONDecodeError is a ValueError
        raise InputError(path, "is not a STAC item (not JSON)") from None
    except (pystac.STACError, pystac.STACTypeError, KeyError, TypeError, AttributeError) as error:
        raise InputError(path, f"is not a STAC item ({type(error).__name__}: {str(error).strip()})") from None


def _band_names(key: str, asset: Any) -> list[str]:
    """The names an asset answers to: its key, and the name and common name of its one band."""
    fields = asset.extra_fields
    listed = fields.get("eo:bands") or fields.get("bands") or []
    names = [key]
    if len(listed) == 1 and isinstance(listed[0], dict):
        names += [listed[0][k] for k in ("name", "common_name", "eo:common_name") if isinstance(listed[0].get(k), str)]
    return names


def _is_data(asset: Any) -> bool:
    """Whether an asset may be a raster band: a GeoTIFF or JPEG 2000 type (or none given), and no
    thumbnail, overview, visual or metadata role."""
    media = (asset.media_type or "").lower()
    return (not media or media.startswith(_RASTER_TYPES)) and not _NOT_DATA & set(asset.roles or ())


def _asset(path: str, item: Any, name: str) -> tuple[str, Any]:
    """The (key, asset) that ``name`` names: the asset of that key, else the one data asset whose band has
    that name or common name (a cloud-optimized GeoTIFF preferred over other copies); case-insensitive."""
    wanted = name.strip().lower()
    assets = {key: asset for key, asset in item.assets.items() if _is_data(asset)}
    by_key = [key for key in assets if key.lower() == wanted]
    found = by_key or [key for key, asset in assets.items() if wanted in map(str.lower, _band_names(key, asset))]
    if len(found) > 1:
        found = [key for key in found if "cloud-optimized" in (assets[key].media_type or "")] or found
    if not found:
        known = ", ".join(sorted(assets)) or "none"
        raise InputError(path, f"has no asset or band named {name!r} (its raster assets: {known})")
    if len(found) > 1:
        raise InputError(path, f"band name {name!r} fits assets {', '.join(found)}; name one by its asset key")
    return found[0], assets[found[0]]


def _source(path: str, key: str, asset: Any) -> dict[str, Any]:
    """The grid, data type, nodata value and blocks of an asset's one band, from its header."""
    href = asset.get_absolute_href() or asset.href
    try:
        with rasterio.open(gdal_path(href)) as src:
            if src.count != 1:
                raise InputError(path, f"asset {key!r} has {src.count} bands; geocd stacks single-band assets")
            if src.crs is None:
                raise InputError(path, f"asset {key!r} ({href}) has no georeferencing")
            return {"key": key, "href": href, "names": _band_names(key, asset), "crs": src.crs.to_wkt(),
                    "transform": src.transform, "width": src.width, "height": src.height, "dtype": src.dtypes[0],
                    "nodata": src.nodata, "block": src.block_shapes[0]}
    except RasterioIOError as error:
        problem = remote_problem(error) if is_remote(href) else "is not a raster GDAL can read"
        raise InputError(path, f"asset {key!r} ({href}): {problem}") from None


def _vrt_xml(path: str, item_id: str, sources: Sequence[dict[str, Any]], finest: dict[str, Any]) -> str:
    """A VRT of ``sources`` (one band each) on the grid of ``finest``."""
    grid = finest["transform"]
    root = ET.Element("VRTDataset", rasterXSize=str(finest["width"]), rasterYSize=str(finest["height"]))
    ET.SubElement(root, "SRS", dataAxisToSRSAxisMapping="1,2").text = finest["crs"]
    ET.SubElement(root, "GeoTransform").text = ", ".join(repr(float(v)) for v in grid.to_gdal())
    _metadata(root, {ITEM_TAG: path, ITEM_ID_TAG: item_id})
    for number, source in enumerate(sources, start=1):
        gdal_type = typename_fwd[dtype_rev[source["dtype"]]]
        band = ET.SubElement(root, "VRTRasterBand", dataType=gdal_type, band=str(number))
        ET.SubElement(band, "Description").text = source["key"]
        _metadata(band, {ASSET_TAG: source["key"], HREF_TAG: source["href"], NAMES_TAG: ",".join(source["names"])})
        if source["nodata"] is not None:
            ET.SubElement(band, "NoDataValue").text = repr(float(source["nodata"]))
        simple = ET.SubElement(band, "ComplexSource")
        ET.SubElement(simple, "SourceFilename", relativeToVRT="0").text = gdal_path(source["href"])
        ET.SubElement(simple, "SourceBand").text = "1"
        block_y, block_x = source["block"]
        ET.SubElement(simple, "SourceProperties", RasterXSize=str(source["width"]), RasterYSize=str(source["height"]),
                      DataType=gdal_type, BlockXSize=str(block_x), BlockYSize=str(block_y))
        ET.SubElement(simple, "SrcRect", xOff="0", yOff="0", xSize=str(source["width"]), ySize=str(source["height"]))
        t = source["transform"]
        ET.SubElement(simple, "DstRect", xOff=repr((t.c - grid.c) / grid.a), yOff=repr((t.f - grid.f) / grid.e),
                      xSize=repr(source["width"] * t.a / grid.a), ySize=repr(source["height"] * t.e / grid.e))
        if source["nodata"] is not None:
            ET.SubElement(simple, "NODATA").text = repr(float(source["nodata"]))
    return ET.tostring(root, encoding="unicode")


def _metadata(parent: ET.Element, items: dict[str, str]) -> None:
    node = ET.SubElement(parent, "Metadata")
    for key, value in items.items():
        ET.SubElement(node, "MDI", key=key).text = value
