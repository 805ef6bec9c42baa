"""Build the installable QGIS plugin zip: ``python3 scripts/build_qgis_plugin.py`` -> dist/geocd_qgis-<version>.zip.

The zip holds one top-level folder (``geocd_qgis``) without caches or hidden files, as the
QGIS plugin repository requires.
"""

from __future__ import annotations

import argparse
import configparser
import sys
import zipfile
from pathlib import Path

PLUGIN = Path(__file__).resolve().parents[1] / "qgis_plugin" / "geocd_qgis"
MAX_BYTES = 25 * 1024 * 1024
SKIPPED_SUFFIXES = {".pyc", ".pyo", ".zip"}


def plugin_version(plugin: Path = PLUGIN) -> str:
    """The ``version`` field of the plugin's metadata.txt."""
    metadata = configparser.ConfigParser(interpolation=None)
    metadata.read(plugin / "metadata.txt", encoding="utf-8")
    return metadata["general"]["version"]


def plugin_files(plugin: Path = PLUGIN) -> list[Path]:
    """The files to ship: everything but caches, compiled Python and hidden files."""
    return sorted(
        path for path in plugin.rglob("*")
        if path.is_file() and path.suffix not in SKIPPED_SUFFIXES
        and not any(part == "__pycache__" or part.startswith(".") for part in path.relative_to(plugin).parts)
    )


def build(output_dir: Path, plugin: Path = PLUGIN) -> Path:
    """Write ``output_dir/<folder>-<version>.zip`` and return its path."""
    output_dir.mkdir(parents=True, exist_ok=True)
    target = output_dir / f"{plugin.name}-{plugin_version(plugin)}.zip"
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in plugin_files(plugin):
            archive.write(path, Path(plugin.name) / path.relative_to(plugin))
    if target.stat().st_size > MAX_BYTES:
        target.unlink()
        raise SystemExit(f"{target.name} would be over the plugin repository's 25 MB limit")
    return target


def main() -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output-dir", type=Path, default=Path("dist"), help="folder for the zip (default: dist)")
    target = build(parser.parse_args().output_dir)
    print(f"wrote {target}", file=sys.stderr)


if __name__ == "__main__":
    main()
