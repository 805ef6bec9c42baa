"""Store a trained checkpoint as geocd's embedded default model: float16 weights, model card in the metadata.

Usage: python3 scripts/export_default_model.py RUN/best.safetensors TARGET.safetensors EVAL_DIR
EVAL_DIR holds ``eval/<dataset>/evaluation.json`` and ``eval_tta/<dataset>/evaluation.json``
from ``geocd evaluate`` on the validation pairs; their figures go into the model card.
"""

from __future__ import annotations

import json
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


def validation_figures(folder: Path) -> list[dict]:
    """Per dataset: validation pair count, pixels, and change F1/IoU/precision/recall without and with TTA."""
    figures = []
    for report in sorted((folder / "eval").glob("*/evaluation.json")):
        rows = {}
        for kind in ("eval", "eval_tta"):
            overall = json.loads((folder / kind / report.parent.name / "evaluation.json").read_text())["groups"][-1]
            rows[kind] = overall
        plain, tta = rows["eval"], rows["eval_tta"]
        figures.append({
            "dataset": report.parent.name, "pairs": plain["pairs"], "pixels": plain["pixels"],
            **{f"{k}": round(plain[k], 4) for k in ("f1", "iou_changed", "precision", "recall")},
            **{f"{k}_tta": round(tta[k], 4) for k in ("f1", "iou_changed")},
        })
    return figures


def main(source: str, target: str, evaluations: str) -> None:
    loaded = load_checkpoint(source)
    card = {**MODEL_CARD, "validation": validation_figures(Path(evaluations))}
    metadata = replace(loaded.metadata, info={**loaded.metadata.info, "model_card": card})
    Path(target).parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(target, loaded.model, metadata, half=True)
    print(f"{target}: {Path(target).stat().st_size / 1e6:.1f} MB")


if __name__ == "__main__":
    main(*sys.argv[1:])
