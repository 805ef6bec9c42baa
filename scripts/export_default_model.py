"""Store a trained checkpoint as geocd's embedded default model: float16 weights, model card in the metadata.

Usage: python3 scripts/export_default_model.py RUN/best.safetensors TARGET.safetensors EVAL_DIR
EVAL_DIR holds ``eval``, ``eval_tta`` and ``eval_change_only`` (change pairs) and
``eval_landcover`` (land-cover images) folders of ``geocd evaluate`` reports on the held-out
pairs and images, one sub-folder per dataset; their figures go into the model card.
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
        {"dataset": "Dubai aerial land cover", "source": "Humans in the Loop with MBRSC, satellite, Dubai", "resolution_m": 1.0,
         "licence": "released publicly (reported public domain)", "kind": "single-date land cover"},
        {"dataset": "LoveDA (mmsegmentation test data)", "source": "Wang et al. 2021, Google Earth", "resolution_m": 0.3,
         "licence": "CC BY-NC-SA 4.0", "kind": "single-date land cover"},
        {"dataset": "ISPRS Potsdam (mmsegmentation test data)", "source": "ISPRS, aerial", "resolution_m": 0.05,
         "licence": "research use", "kind": "single-date land cover"},
    ],
    "labels": "binary change from the change pairs; land cover (water, ground, low vegetation, tree, building) from the "
              "single-date maps; playground is untrained and never predicted",
    "input": "RGB (red, green, blue), 8-bit; works best at 0.5-2 m ground resolution",
    "limits": [
        "trained on about 9.5 million labelled pixels from 21 scene pairs: expect misses and false alarms on unfamiliar scenes",
        "seasonal and illumination differences can be reported as change",
        "land cover learnt from 67 single-date images, mostly Dubai: low vegetation and tree are often confused",
    ],
}


def overall(folder: Path, kind: str, dataset: str) -> dict:
    """The 'all' group of one ``geocd evaluate`` report."""
    return json.loads((folder / kind / dataset / "evaluation.json").read_text())["groups"][-1]


def validation_figures(folder: Path) -> list[dict]:
    """Per dataset: validation pair count, pixels, change F1/IoU/precision/recall without and with TTA,
    and the F1 of the change-only stage on the same pairs."""
    figures = []
    for report in sorted((folder / "eval").glob("*/evaluation.json")):
        name = report.parent.name
        plain, tta, before = (overall(folder, kind, name) for kind in ("eval", "eval_tta", "eval_change_only"))
        figures.append({
            "dataset": name, "pairs": plain["pairs"], "pixels": plain["pixels"],
            **{f"{k}": round(plain[k], 4) for k in ("f1", "iou_changed", "precision", "recall")},
            **{f"{k}_tta": round(tta[k], 4) for k in ("f1", "iou_changed")},
            "f1_change_only": round(before["f1"], 4),
        })
    return figures


def landcover_figures(folder: Path) -> list[dict]:
    """Per land-cover dataset: held-out images, per-class IoU and mIoU."""
    return [{"dataset": report.parent.name, **{k: (None if v is None else round(v, 4)) if isinstance(v, float | None) else v
                                              for k, v in overall(folder, "eval_landcover", report.parent.name).items()
                                              if k != "confusion"}}
            for report in sorted((folder / "eval_landcover").glob("*/evaluation.json"))]


def main(source: str, target: str, evaluations: str) -> None:
    loaded = load_checkpoint(source)
    card = {**MODEL_CARD, "validation": validation_figures(Path(evaluations)),
            "landcover_validation": landcover_figures(Path(evaluations))}
    metadata = replace(loaded.metadata, info={**loaded.metadata.info, "model_card": card})
    Path(target).parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(target, loaded.model, metadata, half=True)
    print(f"{target}: {Path(target).stat().st_size / 1e6:.1f} MB")


if __name__ == "__main__":
    main(*sys.argv[1:])
