"""The model card's v2 ablation table (markdown) from scripts/default_model_v2.sh's evaluations.

Usage: python3 scripts/default_model_table.py WORK_DIR [FROM_TO.json]
WORK_DIR/eval/<variant>/<dataset>/evaluation.json are ``geocd evaluate`` reports on the held-out
pairs and images; FROM_TO.json holds benchmarks/synthetic_fromto.py's figures per variant.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

VARIANTS = {"v1": "v1 (shipped)", "synthetic": "+ synthetic pairs", "invariance": "+ invariance",
            "s2": "+ Sentinel-2 pairs", "final": "+ Sentinel-2 pairs, 3x the steps",
            "landcover_head": "v1, land-cover head retrained (change maps kept)",
            "landcover_head_s2": "v1, land-cover head retrained, + Sentinel-2 land cover from NIR",
            "change_head": "v1, change head retrained"}
CHANGE_DATASETS = {"levir": "LEVIR-CD", "dsifn": "DSIFN-CD", "sztaki": "SZTAKI", "oscd": "OSCD RGB", "s2": "Sentinel-2 L1C"}
LANDCOVER_DATASETS = {"dubai": "Dubai", "loveda": "LoveDA"}


def overall(work: Path, variant: str, dataset: str) -> dict | None:
    """The 'all' group of one ``geocd evaluate`` report (None when it was not run)."""
    report = work / "eval" / variant / dataset / "evaluation.json"
    return json.loads(report.read_text())["groups"][-1] if report.is_file() else None


def row_cells(work: Path, variant: str, from_to: dict | None) -> list[str]:
    """F1 (precision/recall) per change dataset, mIoU per land-cover dataset, synthetic F1 / from-to right."""
    cells = []
    for dataset in CHANGE_DATASETS:
        s = overall(work, variant, dataset)
        cells.append(f"{s['f1']:.3f} ({s['precision']:.2f}/{s['recall']:.2f})" if s else "-")
    for dataset in LANDCOVER_DATASETS:
        s = overall(work, variant, dataset)
        cells.append(f"{s['miou']:.3f}" if s else "-")
    cells.append(f"{from_to['f1']:.3f} / {from_to['from_to']:.3f}" if from_to else "-")
    return cells


def main(work: str, from_to: str | None = None) -> None:
    figures = json.loads(Path(from_to).read_text()) if from_to else {}
    head = ["variant", *(f"{n} F1 (P/R)" for n in CHANGE_DATASETS.values()),
            *(f"{n} mIoU" for n in LANDCOVER_DATASETS.values()), "synthetic pairs: F1 / from-to right"]
    print("| " + " | ".join(head) + " |")
    print("|" + " --- |" * len(head))
    for variant, label in VARIANTS.items():
        print("| " + " | ".join([label, *row_cells(Path(work), variant, figures.get(variant))]) + " |")


if __name__ == "__main__":
    main(*sys.argv[1:])
