"""The change raster: the contract between prediction and vectorization.

A GeoTIFF on exactly the 'before' grid with three uint8 bands and nodata 255 outside
the valid area:

1. ``change_probability``: round(p * 254), with GDAL scale 1/254 so GIS tools show p;
2. ``from_class``: land-cover id in the before date (0 where unchanged or unknown);
3. ``to_class``: land-cover id in the after date (0 where unchanged or unknown).

A pixel is *changed* when its probability reaches the threshold stored in the tags
(:func:`is_changed`, used by both writer and reader) and, when the tags restrict the change
types (``GEOCD_ONLY``: class names), its change is one of them (:func:`changed_pixels`; a change
left out is written with class 0). A changed pixel's from and to classes are the most likely
pair of *different* classes (:func:`joint_classes`), so "water -> water" never appears. When the model's land-cover heads
were not trained, the class bands are 0 everywhere and the tags say so. A land-cover map
(:data:`LANDCOVER_BANDS`) has both dates' classes on the same grid.

This module owns the format: encoding finished rows (:func:`encode_rows`, :func:`encode_landcover`), the row sinks
that write it (:func:`raster_sink`), and reading it back (:func:`open_change_raster`,
:func:`read_strips`). Prediction hands every row of the grid, top to bottom, to its sinks
as :class:`ChangeRows`; a sink may write a file or consume the rows directly.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np
import rasterio
from pyproj import CRS
from rasterio.errors import RasterioIOError
from rasterio.windows import Window

from geocd.atomic import write_failure
from geocd.data.rasters import Grid, geotiff_profile, row_windows
from geocd.data.remote import is_remote, remote_problem
from geocd.errors import InputError
from geocd.schema import SECOND, ClassSchema, LandCover

if TYPE_CHECKING:
    from geocd.data.alignment import Alignment
    from geocd.data.pair import PairDataset

BANDS = ("change_probability", "from_class", "to_class")
LANDCOVER_BANDS = ("landcover_before", "landcover_after")
NODATA = 255
PROBABILITY_SCALE = 254
TAG_PREFIX = "GEOCD_"


@dataclass(frozen=True)
class ChangeMapInfo:
    """What a change raster records besides its pixels."""

    threshold: float = 0.5
    schema: ClassSchema = SECOND
    trained_classes: tuple[int, ...] = ()
    models: tuple[str, ...] = ()
    inputs: tuple[str, ...] = ()
    only: tuple[int, ...] = ()
    """Class ids of the changes kept (a change whose from or to class is one of them); empty keeps all."""
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def landcover_trained(self) -> bool:
        """Whether the class bands hold real land-cover predictions."""
        return bool(self.trained_classes)

    def to_tags(self) -> dict[str, str]:
        """GDAL metadata tags (dataset level)."""
        return {
            f"{TAG_PREFIX}THRESHOLD": repr(self.threshold),
            f"{TAG_PREFIX}SCHEMA": json.dumps(self.schema.to_dict()),
            f"{TAG_PREFIX}TRAINED_CLASSES": json.dumps(list(self.trained_classes)),
            f"{TAG_PREFIX}MODELS": json.dumps(list(self.models)),
            f"{TAG_PREFIX}INPUTS": json.dumps(list(self.inputs)),
            f"{TAG_PREFIX}ONLY": json.dumps([self.schema.name(c) for c in self.only]),
            **{f"{TAG_PREFIX}{k.upper()}": v for k, v in self.extra.items()},
        }

    @classmethod
    def from_tags(cls, tags: dict[str, str]) -> ChangeMapInfo:
        """The inverse of :meth:`to_tags`; missing tags take the defaults.

        A malformed tag (threshold not in (0, 1], JSON that is not the expected list) raises
        ``ValueError`` naming the tag.
        """
        known = {"THRESHOLD", "SCHEMA", "TRAINED_CLASSES", "MODELS", "INPUTS", "ONLY"}
        schema, trained = _list_tag(tags, "SCHEMA", SECOND.to_dict()), _list_tag(tags, "TRAINED_CLASSES", [])
        try:
            schema, trained = ClassSchema.from_dict(schema), tuple(int(c) for c in trained)
        except (KeyError, TypeError, ValueError):
            raise ValueError(f"{TAG_PREFIX}SCHEMA or {TAG_PREFIX}TRAINED_CLASSES does not list geocd classes") from None
        try:
            only = schema.class_ids([str(n) for n in _list_tag(tags, "ONLY", [])])
        except ValueError as error:
            raise ValueError(f"{TAG_PREFIX}ONLY {error}") from None
        return cls(
            threshold=_threshold_tag(tags),
            schema=schema,
            trained_classes=trained,
            models=tuple(str(m) for m in _list_tag(tags, "MODELS", [])),
            inputs=tuple(str(i) for i in _list_tag(tags, "INPUTS", [])),
            only=only,
            extra={
                k[len(TAG_PREFIX) :].lower(): v
                for k, v in tags.items()
                if k.startswith(TAG_PREFIX) and k[len(TAG_PREFIX) :] not in known
            },
        )


@dataclass(frozen=True)
class ChangeRasterResult:
    """What :func:`geocd.inference.predict.predict_change_raster` did (``info``: the change map's tags), and the tile size,
    overlap (pixels), device and network runtime (:func:`~geocd.inference.backends.resolved_backend`) it used, and
    the shift measured between the dates (:func:`geocd.data.alignment.measure_alignment`; None where not measured),
    and the pair it read."""

    info: ChangeMapInfo
    tiles: int
    megapixels: float
    seconds: float
    model_seconds: float
    tile_size: int
    overlap: int
    device: str
    backend: str
    alignment: Alignment | None = None
    pair: PairDataset | None = field(default=None, repr=False, compare=False)
    """The pair as the run opened and read it (files, grid, band choice, stretches); its files stay open while
    it is referenced (:meth:`~geocd.data.pair.PairDataset.close`)."""


def valid_threshold(threshold: float) -> bool:
    """Whether a change threshold (a probability) is in (0, 1]; NaN is not."""
    return 0 < threshold <= 1


def _threshold_tag(tags: dict[str, str]) -> float:
    text = tags.get(f"{TAG_PREFIX}THRESHOLD", "0.5")
    try:
        threshold = float(text)
    except ValueError:
        threshold = math.nan
    if not valid_threshold(threshold):
        raise ValueError(f"{TAG_PREFIX}THRESHOLD is {text!r}, not a number in (0, 1]")
    return threshold


def _list_tag(tags: dict[str, str], key: str, default: list) -> list:
    text = tags.get(f"{TAG_PREFIX}{key}")
    if text is None:
        return default
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        value = None
    if not isinstance(value, list):
        raise ValueError(f"{TAG_PREFIX}{key} is not a JSON list: {text[:60]!r}")
    return value


def encode_probability(probability: np.ndarray) -> np.ndarray:
    """Probabilities in [0, 1] to uint8 0..254."""
    return np.rint(np.clip(probability, 0.0, 1.0) * PROBABILITY_SCALE).astype(np.uint8)


def decode_probability(encoded: np.ndarray) -> np.ndarray:
    """uint8 0..254 back to float32 probabilities (nodata is not masked here)."""
    return encoded.astype(np.float32) / PROBABILITY_SCALE


def is_changed(encoded: np.ndarray, threshold: float) -> np.ndarray:
    """Changed pixels of an encoded probability band: p >= threshold, nodata excluded."""
    cutoff = math.ceil(threshold * PROBABILITY_SCALE - 1e-9)
    return (encoded >= cutoff) & (encoded != NODATA)


def changed_pixels(probability: np.ndarray, from_class: np.ndarray, info: ChangeMapInfo) -> np.ndarray:
    """Changed pixels of a change raster's bands: :func:`is_changed`, and with ``info.only`` a kept change.

    A change left out by ``info.only`` is written with from class unchanged, so any other from class
    marks the kept ones.
    """
    changed = is_changed(probability, info.threshold)
    return changed & (from_class != LandCover.UNCHANGED) if info.only else changed


@dataclass(frozen=True)
class ChangeRows:
    """Finished rows of a change map on its grid, full width, uint8 with :data:`NODATA` outside the valid area.

    ``bands`` ``[3, rows, width]`` are the change raster's :data:`BANDS`; :attr:`landcover` is made by
    ``make_landcover`` when a sink first asks for it (most runs write no land-cover map).
    """

    window: Window
    bands: np.ndarray
    make_landcover: Callable[[], np.ndarray | None] = field(default=lambda: None, repr=False, compare=False)

    @cached_property
    def landcover(self) -> np.ndarray | None:
        """``[2, rows, width]`` both dates' trained classes (:data:`LANDCOVER_BANDS`), None when the model's
        land-cover heads were not trained."""
        return self.make_landcover()


ChangeSink = Callable[[ChangeRows], None]
SinkFactory = Callable[[Grid, ChangeMapInfo], AbstractContextManager[ChangeSink]]
"""Opens a sink for a change map on a grid (e.g. a file writer); the sink sees every row once, top to bottom."""


def encode_rows(probabilities: np.ndarray, valid: np.ndarray, info: ChangeMapInfo) -> np.ndarray:
    """Change-raster bands ``[3, h, w]`` of blended model outputs.

    ``probabilities`` ``[1 + 2K, h, w]`` are the change probability then both dates' class
    probabilities over the K trained classes; ``valid`` ``[h, w]`` marks predicted pixels. A changed
    pixel's classes are :func:`joint_classes`' pair (0 with fewer than two trained classes, and
    for a change ``info.only`` leaves out).
    """
    trained = np.asarray(info.trained_classes, np.uint8)
    probability = encode_probability(probabilities[0])
    changed = is_changed(probability, info.threshold) & valid
    bands = np.empty((len(BANDS), *valid.shape), np.uint8)
    bands[0] = np.where(valid, probability, NODATA)
    bands[1:] = np.where(valid, 0, NODATA)
    t = trained.size
    if t >= 2:
        pair = joint_classes(probabilities[1 : 1 + t, changed], probabilities[1 + t :, changed])
        from_class, to_class = trained[pair[0]], trained[pair[1]]
        if info.only:
            kept = np.isin(from_class, info.only) | np.isin(to_class, info.only)
            from_class, to_class = np.where(kept, from_class, 0), np.where(kept, to_class, 0)
        bands[1][changed], bands[2][changed] = from_class, to_class
    return bands


def encode_landcover(probabilities: np.ndarray, valid: np.ndarray, info: ChangeMapInfo) -> np.ndarray | None:
    """Land cover ``[2, h, w]`` (each date's most likely trained class) of the blended model outputs of
    :func:`encode_rows`; None when the land-cover heads were not trained."""
    trained = np.asarray(info.trained_classes, np.uint8)
    if not trained.size:
        return None
    t = trained.size
    classes = [trained[probs.argmax(0)] for probs in (probabilities[1 : 1 + t], probabilities[1 + t :])]
    return np.where(valid, np.stack(classes), NODATA).astype(np.uint8)


def joint_classes(before: np.ndarray, after: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The class indices ``(i, j)`` with ``i != j`` maximising ``before[i] * after[j]`` at each pixel.

    ``before`` and ``after`` ``[K, ...]`` (K >= 2) are one pixel's class probabilities per date. When
    the dates' most likely classes differ they are the answer; when they agree, the better of keeping
    the before class (with the after date's second class) or the after class (with the before date's
    second class). Within one date a tie goes to the lower class index; a tie between those two pairs
    keeps the before date's class.
    """
    first = [probs.argmax(0) for probs in (before, after)]
    second = []
    for probs, top in zip((before, after), first):
        masked = probs.copy()
        np.put_along_axis(masked, top[None], -np.inf, axis=0)
        second.append(masked.argmax(0))
    value = [np.take_along_axis(p, i[None], axis=0)[0] for p, i in ((before, first[0]), (after, second[1]),
                                                                    (before, second[0]), (after, first[1]))]
    keep_before = value[0] * value[1] >= value[2] * value[3]
    same = first[0] == first[1]
    from_index = np.where(same & ~keep_before, second[0], first[0])
    to_index = np.where(same & keep_before, second[1], first[1])
    return from_index, to_index


def nodata_rows(window: Window, info: ChangeMapInfo) -> ChangeRows:
    """Rows of ``window`` with no prediction at all."""
    shape = (int(window.height), int(window.width))
    cover = np.full((len(LANDCOVER_BANDS), *shape), NODATA, np.uint8) if info.landcover_trained else None
    return ChangeRows(window, np.full((len(BANDS), *shape), NODATA, np.uint8), lambda: cover)


@contextmanager
def open_output_raster(path: str | os.PathLike[str], grid: Grid, bands: Sequence[str], info: ChangeMapInfo,
                       ) -> Iterator[rasterio.io.DatasetWriter]:
    """Create a tiled, compressed uint8 GeoTIFF on ``grid`` with nodata 255 and geocd tags.

    A ``change_probability`` band gets the GDAL scale 1/254. A failed creation or write
    (a full disk, found by reading every block back after closing) is an :class:`OutputError`.
    """
    try:
        dst = rasterio.open(path, "w", **geotiff_profile(grid, len(bands), "uint8", NODATA))
    except RasterioIOError as error:
        raise write_failure(path, error) from None
    with dst:
        dst.descriptions = tuple(bands)
        dst.scales = tuple(1.0 / PROBABILITY_SCALE if b == "change_probability" else 1.0 for b in bands)
        dst.update_tags(**info.to_tags())
        yield dst
    _check_written(path)


def raster_sink(path: str | os.PathLike[str], landcover: bool = False) -> SinkFactory:
    """A sink factory writing the change raster to ``path`` (which must not exist), or with
    ``landcover`` the land-cover map."""

    @contextmanager
    def sink(grid: Grid, info: ChangeMapInfo) -> Iterator[ChangeSink]:
        with open_output_raster(path, grid, LANDCOVER_BANDS if landcover else BANDS, info) as dst:
            yield lambda rows: write_rows(dst, rows.landcover if landcover else rows.bands, rows.window)

    return sink


def write_rows(dst: rasterio.io.DatasetWriter, data: np.ndarray, window: Window) -> None:
    """Write ``data`` ``[bands, rows, columns]`` into ``window`` of ``dst``; a failure is an :class:`OutputError`."""
    try:
        dst.write(data, window=window)
    except RasterioIOError as error:
        raise write_failure(dst.name, error) from None


def _check_written(path: str | os.PathLike[str]) -> None:
    """Read back every block of a closed raster: GDAL only logs write errors at closing (a full disk)."""
    try:
        with rasterio.open(path) as src:
            for _, window in src.block_windows(1):
                src.read(window=window)
    except RasterioIOError as error:
        raise write_failure(path, error) from None


STRIP_PIXELS = 1 << 22
"""Preferred strip size in pixels when reading (4 MP: ~60 MB of working arrays)."""
MAX_STRIP_PIXELS = 1 << 25
"""Largest default strip (32 MP); strips of wider rasters cut the file's blocks."""


@dataclass(frozen=True)
class Strip:
    """Rows ``row_offset .. row_offset + height`` of the three bands."""

    row_offset: int
    probability: np.ndarray
    from_class: np.ndarray
    to_class: np.ndarray


@contextmanager
def open_change_raster(path: str | os.PathLike[str]) -> Iterator[tuple[rasterio.DatasetReader, ChangeMapInfo]]:
    """The open dataset and its :class:`ChangeMapInfo`; :class:`InputError` if it is not a change raster."""
    try:
        dataset = rasterio.open(path)
    except RasterioIOError as error:
        raise InputError(path, remote_problem(error) if is_remote(path) else f"cannot be read as a raster ({error})") from None
    with dataset:
        if dataset.count != len(BANDS) or set(dataset.dtypes) != {"uint8"}:
            found = f"{dataset.count} band(s) of {', '.join(sorted(set(dataset.dtypes)))}"
            raise InputError(path, f"is not a geocd change raster: expected 3 uint8 bands {BANDS}, found {found}")
        tags = dataset.tags()
        if not any(key.startswith(TAG_PREFIX) for key in tags):
            raise InputError(path, "is not a geocd change raster: it has no GEOCD_* metadata tags")
        if dataset.crs is None:
            raise InputError(path, "has no coordinate reference system")
        if CRS.from_user_input(dataset.crs).geodetic_crs is None:
            raise InputError(path, "has a CRS without an ellipsoid: ground areas cannot be measured")
        try:
            info = ChangeMapInfo.from_tags(tags)
        except ValueError as error:
            raise InputError(path, f"has a bad metadata tag: {error}") from None
        yield dataset, info


def default_strip_rows(dataset: rasterio.DatasetReader) -> int:
    """Whole rows of the file's blocks, about :data:`STRIP_PIXELS` (at least one block row);
    an equal share of a block row only when one block row exceeds :data:`MAX_STRIP_PIXELS`."""
    block = dataset.block_shapes[0][0]
    block_row = block * max(dataset.width, 1)
    if block_row > MAX_STRIP_PIXELS:
        return block // math.ceil(block_row / MAX_STRIP_PIXELS)
    return max(STRIP_PIXELS // block_row, 1) * block


def read_strips(dataset: rasterio.DatasetReader, rows: int) -> Iterator[Strip]:
    """The raster top to bottom in strips of ``rows`` rows (the last may be shorter).

    The next strip is read in a background thread while the caller works on the current
    one. Each strip is read through its own short-lived handle, so GDAL's block cache
    does not keep decompressed blocks of strips already done: memory stays per strip.
    """
    windows = row_windows(dataset, rows)
    with ThreadPoolExecutor(max_workers=1) as reader:
        upcoming = [reader.submit(_read, dataset.name, w) for w in windows[:1]]
        for index, window in enumerate(windows):
            data = upcoming.pop().result()
            if index + 1 < len(windows):
                upcoming.append(reader.submit(_read, dataset.name, windows[index + 1]))
            yield Strip(int(window.row_off), data[0], data[1], data[2])


def _read(path: str, window: Window) -> np.ndarray:
    try:
        with rasterio.open(path) as dataset:
            return dataset.read(window=window)
    except RasterioIOError as error:
        raise InputError(path, f"cannot read rows {int(window.row_off)}.. ({error})") from None
