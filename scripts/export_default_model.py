"""Store a trained checkpoint as geocd's embedded default model: float16 weights, model card in the metadata.

Usage: python3 scripts/export_default_model.py RUN/best.safetensors geocd/models/default/geocd-default.safetensors
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

from geocd.checkpoint import load_checkpoint, save_checkpoint

MODEL_CARD = {
    "name": "geocd default change model",
    "training_data": [
        {"dataset": "LEVIR-CD", "source": "Chen & Shi 2020, Google Earth, Texas", "resolution_m": 0.5, "licence": "research use"},
        {"dataset": "DSIFN-CD", "source": "Zhang et al. 2020, Google Earth, Chinese cities", "resolution_m": 2.0, "licence": "research use"},
        {"dataset": "SZTAKI AirChange", "source": "Benedek & Sziranyi, TGRS 2009, aerial photos of Hungary",
         "resolution_m": 1.5, "licence": "free for scientific use, cite Benedek & Sziranyi 2009"},
        {"dataset": "OSCD", "source": "Daudt et al. 2018, Sentinel-2 RGB composites", "resolution_m": 10.0, "licence": "research use"},
    ],
    "labels": "binary change only: the land-cover heads are untrained, so no class labels are reported",
    "input": "RGB (red, green, blue), 8-bit; works best at 0.5-2 m ground resolution",
    "limits": [
        "trained on about 9.5 million labelled pixels from 21 scene pairs: expect misses and false alarms on unfamiliar scenes",
        "seasonal and illumination differences can be reported as change",
        "land-cover classes are not predicted (untrained heads)",
    ],
}


def main(source: str, target: str) -> None:
    loaded = load_checkpoint(source)
    metadata = replace(loaded.metadata, info={**loaded.metadata.info, "model_card": MODEL_CARD})
    Path(target).parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(target, loaded.model, metadata, half=True)
    print(f"{target}: {Path(target).stat().st_size / 1e6:.1f} MB")


if __name__ == "__main__":
    main(*sys.argv[1:])
