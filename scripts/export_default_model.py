"""Store a trained checkpoint as geocd's embedded default model: float16 weights, model card in the metadata.

Usage: python3 scripts/export_default_model.py MODEL.safetensors TARGET.safetensors WORK_DIR [FROM_TO.json]
WORK_DIR/eval/<variant>/<dataset>/evaluation.json are the ``geocd evaluate`` reports of
scripts/default_model_v2.sh on the held-out pairs and images (variants v1, synthetic,
invariance, s2, final); FROM_TO.json, when given, holds benchmarks/synthetic_fromto.py's figures per
variant. Prints the ablation table (markdown) and stores it, with the card, in the metadata.
"""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

from geocd.checkpoint import load_checkpoint, save_checkpoint

VARIANTS = {"v1": "v1 (session 1)", "synthetic": "+ synthetic pairs", "invariance": "+ invariance",
            "s2": "+ Sentinel-2 pairs", "final": "+ Sentinel-2 pairs, 3x the steps (shipped v2)"}
CHANGE_DATASETS = {"levir": "LEVIR-CD", "dsifn": "DSIFN-CD", "sztaki": "SZTAKI", "oscd": "OSCD RGB", "s2": "Sentinel-2 L1C"}
LANDCOVER_DATASETS = {"dubai": "Dubai", "loveda": "LoveDA"}

MODEL_CARD = {
    "name": "geocd default change model v2",
    "training_data": [
        {"dataset": "LEVIR-CD", "source": "Chen & Shi 2020, Google Earth, Texas", "resolution_m": 0.5, "licence": "research use"},
        {"dataset": "DSIFN-CD", "source": "Zhang et al. 2020, Google Earth, Chinese cities", "resolution_m": 2.0, "licence": "research use"},
        {"dataset": "SZTAKI AirChange", "source": "Benedek & Sziranyi, TGRS 2009, aerial photos of Hungary",
         "resolution_m": 1.5, "licence": "free for scientific use, cite Benedek & Sziranyi 2009"},
        {"dataset": "OSCD", "source": "Daudt et al. 2018, Sentinel-2 RGB composites", "resolution_m": 10.0, "licence": "research use"},
        {"dataset": "OSCD Sentinel-2 L1C (B04, B03, B02 as delivered, uint16)", "source": "Daudt et al. 2018; contains "
         "modified Copernicus Sentinel data", "resolution_m": 10.0, "licence": "labels CC BY-NC-SA 4.0, imagery free and open"},
        {"dataset": "Dubai aerial land cover", "source": "Humans in the Loop with MBRSC, satellite, Dubai", "resolution_m": 1.0,
         "licence": "released publicly (reported public domain)", "kind": "single-date land cover, synthetic pairs"},
        {"dataset": "LoveDA (mmsegmentation test data)", "source": "Wang et al. 2021, Google Earth", "resolution_m": 0.3,
         "licence": "CC BY-NC-SA 4.0", "kind": "single-date land cover, synthetic pairs"},
        {"dataset": "ISPRS Potsdam (mmsegmentation test data)", "source": "ISPRS, aerial", "resolution_m": 0.05,
         "licence": "research use", "kind": "single-date land cover, synthetic pairs"},
    ],
    "synthetic_pairs": "half of the land-cover tiles become change pairs with exact from/to labels: object paste, "
                       "removal, destruction to debris (Self-Pair/Changen) and unpaired images (STAR); invariance: half "
                       "of the change tiles get nuisance differences on one date (colour, gamma, haze, illumination, "
                       "blur, noise, JPEG, <= 2 px misregistration) and a quarter of the synthetic pairs are unchanged "
                       "pairs (geocd/training/synthetic.py, geocd/training/invariance.py)",
    "labels": "binary change from the change pairs; from/to land cover (water, ground, low vegetation, tree, building) from "
              "the single-date maps and synthetic pairs; playground is untrained and never predicted",
    "input": "RGB (red, green, blue), 8-bit display radiometry (other dtypes stretched by --radiometry); 0.5-10 m",
    "limits": [
        "trained on about 14 million labelled change pixels from 29 scene pairs: expect misses and false alarms on "
        "unfamiliar scenes",
        "land cover learnt from 67 single-date images, mostly Dubai: grass and fields are read as water or ground",
    ],
}


def overall(work: Path, variant: str, dataset: str) -> dict | None:
    """The 'all' group of one ``geocd evaluate`` report (None when it was not run)."""
    report = work / "eval" / variant / dataset / "evaluation.json"
    return json.loads(report.read_text())["groups"][-1] if report.is_file() else None


def ablation(work: Path, from_to: dict[str, dict]) -> list[dict]:
    """Per variant: change F1/precision/recall per held-out dataset, land-cover mIoU, synthetic from/to accuracy."""
    rows = []
    for variant in VARIANTS:
        row: dict = {"variant": variant}
        for dataset in CHANGE_DATASETS:
            scores = overall(work, variant, dataset)
            if scores is not None:
                row[dataset] = {k: round(scores[k], 4) for k in ("f1", "precision", "recall")} | {"pixels": scores["pixels"]}
        for dataset in LANDCOVER_DATASETS:
            scores = overall(work, variant, dataset)
            if scores is not None:
                row[dataset] = {"miou": round(scores["miou"], 4)}
        row["synthetic_from_to"] = from_to.get(variant)
        rows.append(row)
    return rows


def markdown(rows: list[dict]) -> str:
    """The ablation as a markdown table: F1 (precision/recall) per change dataset, mIoU per land-cover dataset."""
    head = ["variant", *(f"{n} F1 (P/R)" for n in CHANGE_DATASETS.values()), *(f"{n} mIoU" for n in LANDCOVER_DATASETS.values()),
            "synthetic pairs: F1 / from-to right"]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for row in rows:
        cells = [VARIANTS[row["variant"]]]
        for dataset in CHANGE_DATASETS:
            s = row.get(dataset)
            cells.append(f"{s['f1']:.3f} ({s['precision']:.2f}/{s['recall']:.2f})" if s else "-")
        cells += [f"{row[d]['miou']:.3f}" if d in row else "-" for d in LANDCOVER_DATASETS]
        f = row["synthetic_from_to"]
        cells.append(f"{f['f1']:.3f} / {f['from_to']:.3f}" if f else "-")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(source: str, target: str, work: str, from_to: str | None = None) -> None:
    rows = ablation(Path(work), json.loads(Path(from_to).read_text()) if from_to else {})
    print(markdown(rows))
    loaded = load_checkpoint(source)
    card = {**MODEL_CARD, "ablation": rows}
    metadata = replace(loaded.metadata, info={**loaded.metadata.info, "model_card": card})
    Path(target).parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(target, loaded.model, metadata, half=True)
    print(f"{target}: {Path(target).stat().st_size / 1e6:.1f} MB")


if __name__ == "__main__":
    main(*sys.argv[1:])
