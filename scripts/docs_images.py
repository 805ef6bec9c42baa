"""Regenerate the README's picture: the quicklook of ``geocd demo`` predicted with the default model.

Runs, in a temporary folder, what the README's quick start runs plus ``--quicklook``:

    geocd demo DIR
    geocd predict DIR/before.tif DIR/after.tif -o DIR/changes.gpkg --quicklook DIR/quicklook.png

and writes the quicklook, downscaled to WIDTH pixels and palette-quantised so it stays small,
to ``docs/demo-quicklook.png``.

    python3 scripts/docs_images.py [--width 900]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image

DOCS = Path(__file__).resolve().parents[1] / "docs"
GEOCD = [sys.executable, "-m", "geocd.cli.main"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=900, help="Width of the PNG written, in pixels.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        demo = Path(tmp)
        subprocess.run([*GEOCD, "demo", str(demo), "--overwrite"], check=True)
        quicklook = demo / "quicklook.png"
        subprocess.run([*GEOCD, "predict", str(demo / "before.tif"), str(demo / "after.tif"),
                        "-o", str(demo / "changes.gpkg"), "--quicklook", str(quicklook), "--quiet"], check=True)
        image = Image.open(quicklook).convert("RGB")
    height = round(image.height * args.width / image.width)
    small = image.resize((args.width, height), Image.Resampling.LANCZOS).quantize(colors=128, dither=Image.Dither.NONE)
    target = DOCS / "demo-quicklook.png"
    target.parent.mkdir(exist_ok=True)
    small.save(target, optimize=True)
    print(f"wrote {target} ({args.width} x {height}, {target.stat().st_size / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
