"""Score a model on the fixed validation set of ``../shared/README.md`` through ``geocd predict``.

Every validation scene is predicted whole, as a user runs it (``geocd predict BEFORE AFTER -o
... --raster ...`` in a subprocess, default options plus any given after ``--``; the Sentinel-2
and Landsat stacks get ``--bands 3,2,1``, their red, green and blue). The PNG chip datasets are
first given a local metric grid with ``geocd import-chips`` (LEVIR 0.5 m, EGY-BCD 0.25 m, DSIFN
2 m, SZTAKI 1.5 m, CDD 0.5 m). Pixels are pooled per dataset; the 95 % interval of each F1 is a
bootstrap over scenes, or over 256x256 blocks where a dataset has one scene. LEVIR-CD and
EGY-BCD label buildings only, so they are also scored as *building change* (changed pixels
whose before or after class is building). The no-change pair reports the share of its pixels
flagged. ``macro`` is the mean of the F1 rows.

    python3 benchmarks/validation.py --name v1 [--model M] [-- --tta]
    python3 benchmarks/validation.py --name v1 --reuse --clean open3   # a clean-up of the change masks, scored
    python3 benchmarks/validation.py --compare BASELINE.json CANDIDATE.json

Writes ``WORK/NAME.json`` and prints a table; ``--compare`` applies the ship rule of issue #25
(macro F1 up by at least 0.03, no dataset below the baseline by more than its interval, no more
false alarms on the no-change pair). Asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from scipy import ndimage

from geocd.changemap import ChangeMapInfo, changed_pixels
from geocd.data.labels import IGNORE
from geocd.metrics import BinaryScores, binary_scores

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
CHIPS = {"levir-full": 0.5, "egy-bcd": 0.25, "dsifn": 2.0, "sztaki": 1.5, "cdd": 0.5}
RGB_OF_STACK = ["--bands", "3,2,1"]
BLOCK = 256
BOOTSTRAP = 1000


@dataclass(frozen=True)
class Scene:
    """One validation scene: its dataset, files, and how its label is coded."""

    dataset: str
    name: str
    before: Path
    after: Path
    label: Path
    label_kind: str  # "archive" (1 change, 255 ignore), "binary" (255 change), "samples" (1 unchanged, 2 changed, 0 unlabelled)
    flags: tuple[str, ...] = ()


def scenes(data: Path, work: Path) -> list[Scene]:
    """The validation scenes, importing the chip datasets into ``work/archive`` on first use."""
    archives = {}
    for folder, resolution in CHIPS.items():
        archive = work / "archive" / folder
        if not (archive / "manifest.csv").is_file():
            subprocess.run(["geocd", "import-chips", str(data / folder), str(archive), "--resolution", str(resolution),
                            "--overwrite"], check=True, capture_output=True)
        archives[folder] = archive

    def chip(dataset: str, folder: str, name: str) -> Scene:
        archive, stem = archives[folder], f"{folder}_{name}"
        return Scene(dataset, name, archive / "before" / f"{stem}.tif", archive / "after" / f"{stem}.tif",
                     archive / "change" / f"{stem}.tif", "archive")

    chosen = [chip("LEVIR-CD", "levir-full", "test_101")]
    chosen += [chip("EGY-BCD", "egy-bcd", n) for n in ("val_1", "val_2", "val_3", "test_1", "test_2")]
    chosen += [chip("DSIFN", "dsifn", n) for n in ("5_3", "6_3")]
    chosen += [chip("SZTAKI", "sztaki", n) for n in ("Szada_train_6", "Tisza_train_40")]
    for city in ("brasilia", "milano", "montpellier"):
        folder = data / "oscd-s2" / city
        chosen.append(Scene("Sentinel-2", city, folder / "before.tif", folder / "after.tif", folder / "change.tif",
                            "binary", tuple(RGB_OF_STACK)))
    landsat = data / "landsat-taizhou"
    chosen.append(Scene("Landsat", "taizhou", landsat / "before_2000.tif", landsat / "after_2003.tif",
                        landsat / "reference_samples.tif", "samples", tuple(RGB_OF_STACK)))
    chosen.append(chip("no-change", "cdd", "00000"))
    return chosen


BUILDING_DATASETS = ("LEVIR-CD", "EGY-BCD")


def _without_regions_under(pixels: int) -> Callable[[np.ndarray], np.ndarray]:
    def clean(mask: np.ndarray) -> np.ndarray:
        regions, _ = ndimage.label(mask)
        keep = np.bincount(regions.ravel()) >= pixels
        keep[0] = False
        return keep[regions]

    return clean


CLEAN_UPS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "open3": lambda mask: ndimage.binary_opening(mask, np.ones((3, 3), bool)),
    "open5": lambda mask: ndimage.binary_opening(mask, np.ones((5, 5), bool)),
    "min50": _without_regions_under(50),
    "min200": _without_regions_under(200),
}
"""Object-level clean-ups of a change mask (issue 25's lever): morphological openings, small regions dropped."""


def predict(scene: Scene, out: Path, extra: list[str], model: str | None, reuse: bool) -> Path:
    """Run ``geocd predict`` on one scene (``reuse``: keep a change raster already there); the change raster's path."""
    raster = out / f"{scene.dataset}_{scene.name}.tif"
    if reuse and raster.is_file():
        return raster
    command = ["geocd", "predict", str(scene.before), str(scene.after), "-o", str(raster.with_suffix(".gpkg")),
               "--raster", str(raster), "--overwrite", "-q", *scene.flags, *extra]
    if model:
        command += ["--model", model]
    subprocess.run(command, check=True)
    return raster


def score_units(scene: Scene, raster: Path, split_blocks: bool, clean: str | None = None) -> dict[str, np.ndarray]:
    """``[units, 3]`` true positives, false positives and false negatives per scene or 256-pixel block.

    Keys: ``all`` (any change) and ``building`` (changes from or to building). ``clean`` names a
    :data:`CLEAN_UPS` entry applied to the change mask first.
    """
    with rasterio.open(raster) as src:
        bands = src.read()
        info = ChangeMapInfo.from_tags(src.tags())
    with rasterio.open(scene.label) as src:
        codes = src.read(1)  # change codes (see Scene.label_kind), not class ids
    if scene.label_kind == "samples":
        truth, scored = codes == 2, codes > 0
    elif scene.label_kind == "archive":
        truth, scored = codes == 1, codes != IGNORE
    else:
        truth, scored = codes > 127, np.ones(codes.shape, bool)
    changed = changed_pixels(bands[0], bands[1], info)
    if clean:
        changed = CLEAN_UPS[clean](changed)
    (building,) = info.schema.class_ids(["building"])
    predictions = {"all": changed, "building": changed & ((bands[1] == building) | (bands[2] == building))}
    rows, cols = codes.shape
    blocks = [(r, c) for r in range(0, rows, BLOCK) for c in range(0, cols, BLOCK)] if split_blocks else [(0, 0)]
    size = BLOCK if split_blocks else max(rows, cols)
    units = {}
    for key, pred in predictions.items():
        counts = []
        for r, c in blocks:
            window = (slice(r, r + size), slice(c, c + size))
            t, p, s = truth[window], pred[window], scored[window]
            counts.append(((t & p & s).sum(), (~t & p & s).sum(), (t & ~p & s).sum(), s.sum()))
        units[key] = np.array(counts, np.int64)
    return units


def scores(counts: np.ndarray) -> BinaryScores:
    """:func:`geocd.metrics.binary_scores` of pooled ``[tp, fp, fn, scored pixels]`` counts."""
    tp, fp, fn, scored = (int(v) for v in counts)
    return binary_scores(np.array([[scored - tp - fp - fn, fp], [fn, tp]]))


def f1(counts: np.ndarray) -> float:
    """F1 of pooled ``[tp, fp, fn, scored pixels]`` counts (0 when nothing is predicted or labelled)."""
    return scores(counts).f1


def interval(units: np.ndarray, rng: np.random.Generator) -> tuple[float, float]:
    """95 % bootstrap interval of the pooled F1 over ``units``."""
    picks = rng.integers(0, len(units), (BOOTSTRAP, len(units)))
    values = [f1(units[p].sum(0)) for p in picks]
    return float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))


def evaluate(data: Path, work: Path, name: str, extra: list[str], model: str | None, reuse: bool = False,
             clean: str | None = None) -> dict:
    """Predict and score every validation scene (change masks cleaned up by ``clean``); the table as a dict."""
    out = work / "runs" / name
    out.mkdir(parents=True, exist_ok=True)
    all_scenes = scenes(data, work)
    by_dataset: dict[str, list[Scene]] = {}
    for scene in all_scenes:
        by_dataset.setdefault(scene.dataset, []).append(scene)
    rng = np.random.default_rng(0)
    rows, start = {}, time.perf_counter()
    for dataset, members in by_dataset.items():
        split_blocks = len(members) == 1
        units: dict[str, list[np.ndarray]] = {"all": [], "building": []}
        for scene in members:
            for key, counts in score_units(scene, predict(scene, out, extra, model, reuse), split_blocks, clean).items():
                units[key].append(counts)
        keys = ("all", "building") if dataset in BUILDING_DATASETS else ("all",)
        for key in keys:
            stacked = np.concatenate(units[key])
            pooled = stacked.sum(0)
            label = dataset if key == "all" else f"{dataset} (building)"
            if dataset == "no-change":
                rows[label] = {"flagged": float(pooled[1] / pooled[3])}
                continue
            low, high = interval(stacked, rng)
            pooled_scores = scores(pooled)
            rows[label] = {"f1": pooled_scores.f1, "low": low, "high": high, "precision": pooled_scores.precision,
                           "recall": pooled_scores.recall}
    f1s = [r["f1"] for r in rows.values() if "f1" in r]
    flags = extra + ([f"(clean-up {clean})"] if clean else [])
    return {"name": name, "model": model or "default", "flags": flags, "rows": rows, "macro": float(np.mean(f1s)),
            "seconds": time.perf_counter() - start}


def print_table(result: dict) -> None:
    """The table of one scored model."""
    print(f"\n{result['name']} (model {result['model']}, flags {' '.join(result['flags']) or 'none'}, "
          f"{result['seconds']:.0f} s)")
    print("| dataset | F1 [95 % interval] | precision | recall |\n|---|---|---|---|")
    for label, row in result["rows"].items():
        if "f1" in row:
            print(f"| {label} | {row['f1']:.3f} [{row['low']:.3f}, {row['high']:.3f}] | {row['precision']:.3f} | "
                  f"{row['recall']:.3f} |")
        else:
            print(f"| {label} | flagged {row['flagged']:.3%} | | |")
    print(f"| macro F1 | {result['macro']:.3f} | | |")


def ship_rule(baseline: dict, candidate: dict) -> list[str]:
    """Why ``candidate`` may not replace ``baseline`` (an empty list: it may)."""
    reasons = []
    if candidate["macro"] < baseline["macro"] + 0.03:
        reasons.append(f"macro F1 {candidate['macro']:.3f} is not >= {baseline['macro']:.3f} + 0.03")
    for label, base in baseline["rows"].items():
        new = candidate["rows"][label]
        if "f1" in base and new["f1"] < base["low"]:
            reasons.append(f"{label}: F1 {new['f1']:.3f} below its interval [{base['low']:.3f}, {base['high']:.3f}]")
        if "flagged" in base and new["flagged"] > base["flagged"]:
            reasons.append(f"{label}: {new['flagged']:.3%} flagged, more than {base['flagged']:.3%}")
    return reasons


def main() -> None:
    """Score one model, or compare two scored ones."""
    argv = sys.argv[1:]
    extra = argv[argv.index("--") + 1 :] if "--" in argv else []
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", default="default")
    parser.add_argument("--model")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--work", type=Path, default=Path("validation"))
    parser.add_argument("--reuse", action="store_true", help="score the change rasters of an earlier run of NAME")
    parser.add_argument("--clean", choices=sorted(CLEAN_UPS), help="clean up each change mask before scoring")
    parser.add_argument("--compare", nargs=2, type=Path, metavar=("BASELINE", "CANDIDATE"))
    args = parser.parse_args(argv[: argv.index("--")] if "--" in argv else argv)
    if args.compare:
        baseline, candidate = (json.loads(p.read_text()) for p in args.compare)
        for result in (baseline, candidate):
            print_table(result)
        reasons = ship_rule(baseline, candidate)
        print("\nship rule: " + ("met" if not reasons else "not met: " + "; ".join(reasons)))
        return
    result = evaluate(args.data, args.work, args.name, extra, args.model, args.reuse, args.clean)
    (args.work / f"{args.name}{'_' + args.clean if args.clean else ''}.json").write_text(json.dumps(result, indent=1))
    print_table(result)


if __name__ == "__main__":
    main()
