"""The ``geocd`` command line: a thin click shell over library calls.

Each command parses its options and calls one ``geocd`` function. Heavy libraries
(torch, torchgeo) are imported inside the commands so ``geocd --help`` stays fast.
A :class:`geocd.errors.GeocdError` becomes one line on stderr and exit code 2.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any

import click

from geocd import __version__
from geocd.errors import GeocdError

ISSUE_EXIT_CODE = 2


class GeocdClickError(click.ClickException):
    """A user-facing error: ``geocd: error: FILE: problem`` on stderr, exit code 2."""

    exit_code = ISSUE_EXIT_CODE

    def show(self, file: Any = None) -> None:
        click.echo(f"geocd: error: {self.format_message()}", err=True)


def reports_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """Turn library :class:`GeocdError` raised by ``command`` into a one-line CLI error."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except GeocdError as error:
            raise GeocdClickError(str(error)) from None

    return wrapper


def not_built_yet(name: str) -> None:
    """Say that a command exists in the plan but is not implemented, and exit 2."""
    raise GeocdClickError(f"'geocd {name}' is not built yet in geocd {__version__}")


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100, "terminal_width": 100})
@click.version_option(__version__, prog_name="geocd")
def cli() -> None:
    """Find what changed, and into what, between two georeferenced images.

    \b
    Quick start:
      geocd demo demo/
      geocd predict demo/before.tif demo/after.tif -o demo/changes.gpkg
    """


@cli.command()
@click.argument("folder", type=click.Path(file_okay=False))
@click.option("--size", default=512, show_default=True, help="Width and height of the scene in pixels.")
@click.option("--overwrite", is_flag=True, help="Replace existing files in FOLDER.")
@reports_errors
def demo(folder: str, size: int, overwrite: bool) -> None:
    """Write a small synthetic before/after pair with planted changes.

    \b
    Example:
      geocd demo demo/
    """
    from geocd.demo import write_demo_pair

    pair = write_demo_pair(folder, size=size, overwrite=overwrite)
    click.echo(f"wrote {pair.before}, {pair.after} and {pair.truth} (planted changes)")
    click.echo(f"next: geocd predict {pair.before} {pair.after} -o {pair.before.parent / 'changes.gpkg'}")


@cli.command()
@click.argument("before", type=click.Path())
@click.argument("after", type=click.Path())
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Output GeoPackage of change polygons.")
def predict(before: str, after: str, output: str | None) -> None:
    """Detect changes between BEFORE and AFTER rasters and write polygons.

    \b
    Example:
      geocd predict before.tif after.tif -o changes.gpkg
    """
    not_built_yet("predict")


@cli.command()
@click.argument("archive", type=click.Path())
@click.option("-o", "--output", type=click.Path(file_okay=False), help="Run folder for checkpoints and logs.")
def train(archive: str, output: str | None) -> None:
    """Train a change model on an archive of scene pairs.

    \b
    Example:
      geocd train archive/manifest.csv -o runs/first
    """
    not_built_yet("train")


@cli.command()
@click.argument("archive", type=click.Path())
@click.option("--model", "models", multiple=True, type=click.Path(dir_okay=False), help="Model checkpoint.")
def evaluate(archive: str, models: tuple[str, ...]) -> None:
    """Score a model on the labelled pairs of an archive (mIoU, SeK, Score, F_scd).

    \b
    Example:
      geocd evaluate archive/manifest.csv --model runs/first/best.safetensors
    """
    not_built_yet("evaluate")


@cli.command("pseudo-label")
@click.argument("archive", type=click.Path())
@click.option("--model", "models", multiple=True, type=click.Path(dir_okay=False), help="Model checkpoint (repeat).")
@click.option("-o", "--output", type=click.Path(file_okay=False), help="Folder for pseudo-label rasters.")
def pseudo_label(archive: str, models: tuple[str, ...], output: str | None) -> None:
    """Label unchanged areas of an archive with an ensemble, for retraining.

    \b
    Example:
      geocd pseudo-label archive/manifest.csv --model a.safetensors --model b.safetensors -o pseudo/
    """
    not_built_yet("pseudo-label")


@cli.command("import-chips")
@click.argument("source", type=click.Path())
@click.argument("destination", type=click.Path())
def import_chips(source: str, destination: str) -> None:
    """Turn a public chip dataset (A/B/label or im1/im2/label1/label2) into a geocd archive.

    \b
    Example:
      geocd import-chips LEVIR-CD/train archive/levir
    """
    not_built_yet("import-chips")


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="geocd")


if __name__ == "__main__":
    sys.exit(main())
