"""Radiometry: bring each date's stored pixel values to what a checkpoint's network expects.

A checkpoint declares its input radiometry (:attr:`geocd.checkpoint.ModelMetadata.radiometry`).
Every geocd model so far expects ``display8``: 8-bit display imagery (0..255), like the PNG and
JPEG chips it learnt from. A date is brought there in three steps:

1. the GDAL scale and offset of each band are applied (physical values, e.g. reflectance);
2. NaN and infinite values are nodata;
3. a linear stretch maps ``[low, high]`` to ``[0, 255]`` (clipped).

The stretch puts the 2 % and 98 % percentiles of the pixels valid in both dates (a decimated
read of the overlap, all bands together) where they sit in 8-bit display imagery like the
chips the models learnt from (:data:`DISPLAY_PERCENTILES`: 30 and 200), one range common to
the bands, so colours keep their balance as in a true-colour rendering (water stays blue,
vegetation green), which the land-cover heads rely on. Mapping them to 0 and 255 instead
would give more contrast than any training chip has (measured on the Sentinel-2 pairs of
``benchmarks/s2_radiometry.py``: change F1 0.335 against 0.359).

When both dates are stored alike (same dtype, same scale/offset) they share one range, fitted
on both dates' pixels: their values are then on one radiometric scale already, and a shared
range keeps a real brightening or darkening (new roofs, cleared land) as the change it is,
whereas a range per date would move with the changed pixels in its tails and shift every
unchanged pixel too. Dates stored differently (a uint8 'before' and a 12-bit 'after', float
reflectance against digital numbers) cannot share a range, so each gets its own and the two
then read alike; there a change covering much of the scene can shift the ranges.

Modes (:data:`RadiometryMode`): ``"auto"`` keeps pairs whose two dates are both uint8 without
scale/offset exactly as stored (they already are display imagery) and stretches every other
pair; ``"stretch"`` stretches always; ``"none"`` feeds stored values as they are; a pair
``(low, high)`` maps that fixed range of physical values (after scale/offset) to 0..255 in both
dates (e.g. ``(0, 3000)`` for Sentinel-2 L1C digital numbers).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import Literal, Union

import numpy as np

from geocd.errors import CheckpointError, InputError

DISPLAY8 = "display8"
"""Checkpoint radiometry: 8-bit display imagery, values 0..255."""

DISPLAY_MAX = 255.0
PERCENTILES = (2.0, 98.0)
DISPLAY_PERCENTILES = (30.0, 200.0)
"""Where :data:`PERCENTILES` of the pixels land after the stretch: the medians of the 2 % and 98 %
percentiles (lowest and highest band) of the chips of LEVIR-CD, DSIFN, SZTAKI and OSCD, 17-58 and
192-210 per dataset."""

RadiometryMode = Union[Literal["auto", "stretch", "none"], tuple[float, float]]
Calibration = tuple[Sequence[float], Sequence[float]]
"""Per-band GDAL ``(scales, offsets)`` of a date's chosen bands."""


@dataclass(frozen=True)
class Stretch:
    """How one date's stored values become network input: ``v = stored * scale + offset`` per band,
    then ``(v - low) * 255 / (high - low)`` clipped to 0..255 (skipped when ``low`` is ``None``)."""

    scale: tuple[float, ...]
    offset: tuple[float, ...]
    low: float | None = None
    high: float | None = None

    def apply(self, data: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(values, finite)`` of float32 ``data [C, h, w]``: mapped values (0 where not finite) and a
        boolean ``[h, w]`` mask of pixels finite in every band."""
        values = data if self.low is None and self.is_unscaled else self.physical(data)
        if self.low is not None:
            values = np.clip((values - self.low) * (DISPLAY_MAX / (self.high - self.low)), 0.0, DISPLAY_MAX)
        finite = np.isfinite(values).all(0)
        return np.where(finite, values, 0.0).astype(np.float32, copy=False), finite

    @property
    def is_unscaled(self) -> bool:
        """Whether the GDAL scale/offset are 1 and 0 for every band."""
        return all(s == 1 for s in self.scale) and not any(self.offset)

    def physical(self, data: np.ndarray) -> np.ndarray:
        """Stored values ``[C, ...]`` with the GDAL scale/offset applied."""
        if self.is_unscaled:
            return data
        return data * _column(self.scale, data.ndim) + _column(self.offset, data.ndim)

    def to_dict(self) -> dict[str, object]:
        """JSON-ready description (recorded in the outputs' metadata)."""
        return asdict(self)


def _check_mode(mode: RadiometryMode) -> RadiometryMode:
    """``mode`` itself when valid, else :class:`InputError`."""
    if isinstance(mode, str):
        if mode in ("auto", "stretch", "none"):
            return mode
        raise InputError(None, f"radiometry {mode!r} is not one of auto, stretch, none or a (low, high) range")
    low, high = (float(v) for v in mode)
    if not (math.isfinite(low) and math.isfinite(high) and high > low):
        raise InputError(None, f"radiometry range ({low:g}, {high:g}) must be finite with high > low")
    return (low, high)


def check_target(radiometry: str, path: object) -> None:
    """Refuse a checkpoint whose declared input radiometry this geocd cannot produce."""
    if radiometry != DISPLAY8:
        raise CheckpointError(path, f"expects input radiometry {radiometry!r}; this geocd produces only {DISPLAY8!r}")


def fits_samples(mode: RadiometryMode, dtypes: Sequence[str], calibrations: Sequence[Calibration]) -> bool:
    """Whether :func:`fit_stretches` fits its ranges to the samples: with ``stretch``, and with ``auto`` unless both
    dates are uint8 without a GDAL scale or offset (those are used as stored)."""
    mode = _check_mode(mode)
    if mode == "stretch":
        return True
    stored_as_is = all(d == "uint8" for d in dtypes) and all(s.is_unscaled for s in _calibrated(calibrations))
    return mode == "auto" and not stored_as_is


def _calibrated(calibrations: Sequence[Calibration]) -> list[Stretch]:
    """Each date's :class:`Stretch` of its GDAL scale and offset alone."""
    return [Stretch(*(tuple(map(float, v)) for v in c)) for c in calibrations]


def fit_stretches(mode: RadiometryMode, dtypes: Sequence[str], calibrations: Sequence[Calibration],
                  samples: Sequence[np.ndarray]) -> tuple[Stretch, Stretch]:
    """The :class:`Stretch` of each date of a pair.

    ``dtypes`` and ``calibrations`` (per-band GDAL ``(scales, offsets)``) describe how each date
    is stored; ``samples`` ``[C, n]`` hold each date's stored values at the same pixels, valid in
    both dates (a decimated read of the overlap).
    """
    mode = _check_mode(mode)
    stretches = _calibrated(calibrations)
    if mode == "none":
        return tuple(Stretch((1.0,) * len(s.scale), (0.0,) * len(s.scale)) for s in stretches)  # type: ignore[return-value]
    if isinstance(mode, tuple):
        return tuple(replace(s, low=mode[0], high=mode[1]) for s in stretches)  # type: ignore[return-value]
    if not fits_samples(mode, dtypes, calibrations):
        return tuple(stretches)  # type: ignore[return-value]
    values = [s.physical(sample) for s, sample in zip(stretches, samples)]
    if dtypes[0] == dtypes[1] and stretches[0] == stretches[1]:
        values = [np.concatenate(values, axis=1)] * 2
    return tuple(replace(s, **_percentile_range(v)) for s, v in zip(stretches, values))  # type: ignore[return-value]


def radiometry_tag(mode: RadiometryMode, stretches: Sequence[Stretch]) -> str:
    """JSON of the radiometry applied to each date: the change raster's ``GEOCD_RADIOMETRY`` tag."""
    before, after = (s.to_dict() for s in stretches)
    return json.dumps({"mode": mode if isinstance(mode, str) else list(mode), "before": before, "after": after})


def stretches_from_tag(text: str) -> tuple[Stretch, Stretch]:
    """The (before, after) stretches recorded by :func:`radiometry_tag`."""
    data = json.loads(text)
    return tuple(  # type: ignore[return-value]
        Stretch(tuple(d["scale"]), tuple(d["offset"]), d["low"], d["high"]) for d in (data["before"], data["after"])
    )


def _percentile_range(values: np.ndarray) -> dict[str, float]:
    """``low``/``high`` (the values mapped to 0 and 255) putting the lowest 2 % and the highest 98 %
    percentile over the bands of ``values [C, n]`` at :data:`DISPLAY_PERCENTILES`."""
    values = values[:, np.isfinite(values).all(0)]
    if values.size == 0:
        return {"low": 0.0, "high": DISPLAY_MAX}
    p_low, p_high = np.percentile(values, PERCENTILES, axis=1)
    p_low, p_high = float(p_low.min()), float(p_high.max())
    span = max(p_high - p_low, 1e-6) / (DISPLAY_PERCENTILES[1] - DISPLAY_PERCENTILES[0])
    low = p_low - DISPLAY_PERCENTILES[0] * span
    return {"low": low, "high": low + DISPLAY_MAX * span}


def _column(values: Sequence[float], ndim: int = 3) -> np.ndarray:
    return np.asarray(values, np.float32).reshape(-1, *([1] * (ndim - 1)))
