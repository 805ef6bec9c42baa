"""A training bundle: change pairs and land-cover maps in one small zip that needs no GDAL to read.

The bundle carries training data to a machine that has torch but not the data folders (a GPU
window, :mod:`geocd.training.gpu_window`). It is a zip (entries stored, not deflated: they are
compressed already) of ``manifest.json`` and, per entry, its images as JPEG (RGB, 8-bit display
radiometry) and its labels as PNG (uint8): a *pair* has ``NAME/before.jpg``, ``NAME/after.jpg``
and ``NAME/change.png`` (0 unchanged, 1 changed, 255 ignore); a *land-cover* entry has
``NAME/image.jpg`` and ``NAME/landcover.png`` (:mod:`geocd.data.labels` values). Every entry records
its ground resolution in metres. Writing is deterministic: the same entries give the same bytes.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from PIL import Image

from geocd.atomic import atomic_output

FORMAT_NAME = "geocd-bundle"
FORMAT_VERSION = 1
MAX_BUNDLE_BYTES = 50 * 2**20
"""The largest bundle :func:`write_bundle` writes (it travels with the checkout to a GPU machine)."""
JPEG_QUALITY = 90
ZIP_TIME = (1980, 1, 1, 0, 0, 0)
"""The time stamp of every zip member, so the bytes depend on the content only."""


@dataclass(frozen=True)
class BundleEntry:
    """A change pair (``after`` and ``change`` set) or a land-cover map (``landcover`` set).

    Images are ``[H, W, 3]`` uint8, labels ``[H, W]`` uint8 on the same pixels.
    """

    name: str
    dataset: str
    resolution_m: float
    before: np.ndarray
    after: np.ndarray | None = None
    change: np.ndarray | None = None
    landcover: np.ndarray | None = None

    @property
    def is_pair(self) -> bool:
        """Whether the entry is a change pair (else a single-date land-cover map)."""
        return self.after is not None


def coarsened(entry: BundleEntry, min_resolution_m: float, min_side: int) -> BundleEntry:
    """``entry`` resampled to ``min_resolution_m`` when its pixels are finer, its short side kept at ``min_side``
    pixels or more (images area-averaged, labels nearest); coarser entries are returned as they are."""
    height, width = entry.before.shape[:2]
    factor = min(min_resolution_m / entry.resolution_m, min(height, width) / min_side)
    if factor <= 1:
        return entry
    size = (round(width / factor), round(height / factor))

    def resize(array: np.ndarray | None, label: bool) -> np.ndarray | None:
        if array is None:
            return None
        return np.asarray(Image.fromarray(array).resize(size, Image.NEAREST if label else Image.BOX))

    return replace(entry, resolution_m=entry.resolution_m * width / size[0], before=resize(entry.before, False),
                   after=resize(entry.after, False), change=resize(entry.change, True),
                   landcover=resize(entry.landcover, True))


def write_bundle(entries: Sequence[BundleEntry], path: str | os.PathLike[str],
                 max_bytes: int = MAX_BUNDLE_BYTES) -> int:
    """Write ``entries`` to the bundle ``path`` atomically and return its size in bytes; a bundle over
    ``max_bytes`` is not written (``ValueError``)."""
    buffer = io.BytesIO()
    manifest = []
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for entry in entries:
            files = {"before": "before.jpg", "after": "after.jpg", "change": "change.png"} if entry.is_pair else \
                {"before": "image.jpg", "landcover": "landcover.png"}
            for field, file in files.items():
                archive.writestr(zipfile.ZipInfo(f"{entry.name}/{file}", ZIP_TIME), _encode(getattr(entry, field)))
            manifest.append({"name": entry.name, "dataset": entry.dataset, "resolution_m": entry.resolution_m,
                             "files": files})
        text = json.dumps({"format": FORMAT_NAME, "version": FORMAT_VERSION, "entries": manifest}, indent=1)
        archive.writestr(zipfile.ZipInfo("manifest.json", ZIP_TIME), text)
    data = buffer.getvalue()
    if len(data) > max_bytes:
        raise ValueError(f"the bundle would be {len(data) / 2**20:.1f} MiB, over the limit of {max_bytes / 2**20:.1f} MiB")
    with atomic_output(path) as tmp:
        Path(tmp).write_bytes(data)
    return len(data)


def read_bundle(path: str | os.PathLike[str]) -> list[BundleEntry]:
    """The entries of a bundle written by :func:`write_bundle`."""
    with zipfile.ZipFile(path) as archive:
        manifest = json.loads(archive.read("manifest.json"))
        if manifest.get("format") != FORMAT_NAME or manifest.get("version") != FORMAT_VERSION:
            raise ValueError(f"{path} is not a {FORMAT_NAME} version {FORMAT_VERSION} file")
        return [BundleEntry(item["name"], item["dataset"], item["resolution_m"],
                            **{field: np.asarray(Image.open(io.BytesIO(archive.read(f"{item['name']}/{file}"))))
                               for field, file in item["files"].items()})
                for item in manifest["entries"]]


def _encode(array: np.ndarray) -> bytes:
    """An RGB image as JPEG, a label array as PNG."""
    buffer = io.BytesIO()
    if array.ndim == 3:
        Image.fromarray(array).save(buffer, "JPEG", quality=JPEG_QUALITY)
    else:
        Image.fromarray(array).save(buffer, "PNG", optimize=True)
    return buffer.getvalue()
