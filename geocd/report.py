"""The run report of ``geocd predict``: inputs, model, options, timings and the change summary.

One JSON-ready dict, written to ``--report FILE.json`` and stored in the GeoPackage's layer
metadata under :data:`REPORT_KEY`. The counts and areas per change type come from the
polygon table that is written (:class:`geocd.vector.attributes.ChangeTypeSummary`), so they
add up to the polygons' total; with zones, a ``zones`` section has the areas by zone and
from→to pair (:func:`geocd.vector.zones.zones_report`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rasterio.io import DatasetReader

from geocd import __version__
from geocd.data.stac import stac_description
from geocd.vector.attributes import ChangeTypeSummary
from geocd.vector.zones import ZoneStatistics, zones_report

if TYPE_CHECKING:
    from geocd.changemap import ChangeRasterResult
    from geocd.checkpoint import LoadedModel
    from geocd.options import PredictOptions

REPORT_KEY = "GEOCD_REPORT"
_CARD_FIELDS = ("name", "input", "labels", "limits")


def build_report(
    models: Sequence[LoadedModel],
    options: PredictOptions,
    min_area_m2: float,
    change_raster: ChangeRasterResult,
    change_types: Sequence[ChangeTypeSummary],
    seconds: Mapping[str, float],
    outputs: Mapping[str, str | os.PathLike[str] | None],
    zones: ZoneStatistics | None = None,
) -> dict[str, Any]:
    """The report of one prediction (``change_raster``, whose pair describes the inputs as they were read);
    ``min_area_m2`` is the minimum blob area applied, ``seconds`` are stage timings, ``outputs`` the files
    written (by kind), ``zones`` the areas by zone (a ``zones`` section)."""
    meta = models[0].metadata
    pair = change_raster.pair
    radiometry = change_raster.info.extra.get("radiometry")
    return {
        "geocd_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "inputs": {
            "before": _describe_input(pair.paths[0], pair.sources[0], pair.bands_before),
            "after": _describe_input(pair.paths[1], pair.sources[1], pair.bands_after),
            "radiometry": None if radiometry is None else json.loads(radiometry),
        },
        "model": {
            "paths": [str(m.path) for m in models],
            "card": {k: v for k, v in meta.info.get("model_card", {}).items() if k in _CARD_FIELDS},
            "bands": list(meta.bands),
            "trained_classes": [meta.schema.name(c) for c in meta.trained_classes],
        },
        "options": {
            "threshold": options.threshold,
            "only": [change_raster.info.schema.name(c) for c in change_raster.info.only],
            "tta": options.tta,
            "scales": list(options.scales),
            "tile_size": change_raster.tile_size,
            "overlap": change_raster.overlap,
            "min_area_m2": min_area_m2,
            "device": change_raster.device,
            "backend": change_raster.backend,
        },
        "alignment": None if change_raster.alignment is None else change_raster.alignment.to_dict(),
        "outputs": {kind: os.fspath(path) for kind, path in outputs.items() if path is not None},
        "seconds": {stage: round(s, 3) for stage, s in seconds.items()},
        "changes": {
            "polygons": sum(t.polygons for t in change_types),
            "area_m2": sum(t.area_m2 for t in change_types),
            "by_type": [
                {"change_type": t.change_type, "color": list(t.color), "outline_color": list(t.outline),
                 "polygons": t.polygons, "area_m2": t.area_m2}
                for t in change_types
            ],
        },
        **({} if zones is None else {"zones": zones_report(zones)}),
    }


def write_report(path: Path, report: Mapping[str, Any]) -> None:
    """Write ``report`` as indented UTF-8 JSON."""
    path.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _describe_input(path: str, src: DatasetReader, bands: Sequence[int]) -> dict[str, Any]:
    """The header of one input, as opened, and the bands the prediction used; of a STAC item also its id
    and the href of each asset used."""
    stac = stac_description(src)
    return {
        "path": path,
        "crs": src.crs.to_string(),
        "width": src.width,
        "height": src.height,
        "resolution": list(src.res),
        "dtype": src.dtypes[0],
        "band_count": src.count,
        "bands_used": list(bands),
        **({} if stac is None else {"stac_item": stac["id"], "stac_assets": stac["assets"]}),
    }
