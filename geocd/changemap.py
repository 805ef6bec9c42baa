"""The change raster: the contract between prediction and vectorization.

A GeoTIFF on exactly the 'before' grid with three uint8 bands and nodata 255 outside
the valid area:

1. ``change_probability``: round(p * 254), with GDAL scale 1/254 so GIS tools show p;
2. ``from_class``: land-cover id in the before date (0 where unchanged or unknown);
3. ``to_class``: land-cover id in the after date (0 where unchanged or unknown).

A pixel is *changed* when its probability reaches the threshold stored in the tags
(:func:`is_changed`, used by both writer and reader). When the model's land-cover heads
were not trained, the class bands are 0 everywhere and the tags say so.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

import numpy as np

from geocd.schema import SECOND, ClassSchema

BANDS = ("change_probability", "from_class", "to_class")
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
            **{f"{TAG_PREFIX}{k.upper()}": v for k, v in self.extra.items()},
        }

    @classmethod
    def from_tags(cls, tags: dict[str, str]) -> ChangeMapInfo:
        """The inverse of :meth:`to_tags`; missing tags take the defaults.

        A malformed tag (threshold not in (0, 1], JSON that is not the expected list) raises
        ``ValueError`` naming the tag.
        """
        known = {"THRESHOLD", "SCHEMA", "TRAINED_CLASSES", "MODELS", "INPUTS"}
        schema, trained = _list_tag(tags, "SCHEMA", SECOND.to_dict()), _list_tag(tags, "TRAINED_CLASSES", [])
        try:
            schema, trained = ClassSchema.from_dict(schema), tuple(int(c) for c in trained)
        except (KeyError, TypeError, ValueError):
            raise ValueError(f"{TAG_PREFIX}SCHEMA or {TAG_PREFIX}TRAINED_CLASSES does not list geocd classes") from None
        return cls(
            threshold=_threshold_tag(tags),
            schema=schema,
            trained_classes=trained,
            models=tuple(str(m) for m in _list_tag(tags, "MODELS", [])),
            inputs=tuple(str(i) for i in _list_tag(tags, "INPUTS", [])),
            extra={
                k[len(TAG_PREFIX) :].lower(): v
                for k, v in tags.items()
                if k.startswith(TAG_PREFIX) and k[len(TAG_PREFIX) :] not in known
            },
        )


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
