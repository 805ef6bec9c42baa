"""GDAL's and libtiff's own messages go to Python logging, never straight to the terminal.

rasterio and pyogrio already send GDAL's errors through logging (loggers ``rasterio`` and
``pyogrio``). libtiff, under GDAL's GeoTIFF driver, reports some I/O failures through its own
global handlers, which print to stderr (a full disk: ``_tiffWriteProc: No space left on
device.``); :func:`log_native_messages` hands those to the logger ``geocd.libtiff``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging
import sys
from collections.abc import Callable
from pathlib import Path

GDAL_LOGGERS = ("rasterio", "pyogrio", "geocd.libtiff")
"""The loggers that carry GDAL's and libtiff's messages."""
LIBTIFF_LOGGER = logging.getLogger("geocd.libtiff")
MESSAGE_BYTES = 1024
"""Longest libtiff message kept (longer ones are cut)."""

_Handler = ctypes.CFUNCTYPE(None, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_void_p)
_installed: list[object] = []
"""The handlers given to libtiff, kept alive for as long as libtiff may call them."""


def log_native_messages() -> None:
    """Give libtiff's global error and warning handlers to :data:`LIBTIFF_LOGGER` (once per process).

    Does nothing where the libtiff that GDAL loaded cannot be found.
    """
    if _installed:
        return
    import rasterio  # noqa: F401 - loads GDAL, and with it the libtiff to configure

    libtiff = _loaded_libtiff()
    if libtiff is None:
        return
    for setter, level in ((libtiff.TIFFSetErrorHandler, logging.ERROR), (libtiff.TIFFSetWarningHandler, logging.WARNING)):
        handler = _Handler(functools.partial(_log, level))
        setter.restype = ctypes.c_void_p
        setter(handler)
        _installed.append(handler)


def _log(level: int, module: bytes | None, fmt: bytes | None, args: int | None) -> None:
    """Log one libtiff message as ``module: message``; the C library formats it where a ``va_list``
    is one pointer (Linux, macOS), elsewhere the format is logged as it is."""
    text = fmt or b""
    if fmt is not None and sys.platform in ("linux", "darwin"):
        buffer = ctypes.create_string_buffer(MESSAGE_BYTES)
        _vsnprintf()(buffer, MESSAGE_BYTES, fmt, args)
        text = buffer.value
    LIBTIFF_LOGGER.log(level, "%s: %s", (module or b"libtiff").decode(errors="replace"), text.decode(errors="replace"))


@functools.cache
def _vsnprintf() -> Callable[..., int]:
    """The C library's ``vsnprintf``."""
    function = ctypes.CDLL(None).vsnprintf
    function.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_void_p]
    return function


def _loaded_libtiff() -> ctypes.CDLL | None:
    """The libtiff that rasterio's GDAL writes GeoTIFFs with (Linux: from the memory map), else the system's,
    else None.

    Wheels bundle their own: rasterio's beside its libgdal in ``rasterio.libs``, pyogrio's in
    ``pyogrio.libs``, Pillow's in ``pillow.libs``; the one beside rasterio's wheel comes first, then
    one beside any libgdal (a system GDAL), then any.
    """
    import rasterio

    maps = Path("/proc/self/maps")
    paths = {line.split()[-1] for line in maps.read_text().splitlines()} if maps.exists() else set()
    libtiffs = sorted(p for p in paths if "/libtiff" in p)
    rasterio_libs = Path(rasterio.__file__).parent.with_name("rasterio.libs")
    gdal_folders = {Path(p).parent for p in paths if "/libgdal" in p}
    loaded = ([p for p in libtiffs if Path(p).parent == rasterio_libs]
              or [p for p in libtiffs if Path(p).parent in gdal_folders] or libtiffs)
    name = loaded[0] if loaded else ctypes.util.find_library("tiff")
    try:
        return ctypes.CDLL(name) if name else None
    except OSError:
        return None
