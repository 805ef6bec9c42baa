"""The ``geocd`` command line: a thin click shell over library calls.

Each command parses its options and calls one ``geocd`` function. Heavy libraries
(torch, torchgeo) are imported inside the commands so ``geocd --help`` stays fast.
A :class:`geocd.errors.GeocdError` becomes one line on stderr and exit code 2.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import signal
import threading
import sys
import warnings
from collections.abc import Callable, Collection, Sequence
from pathlib import Path
from typing import Any

import click

from geocd import __version__
from geocd.errors import GeocdError, GeocdWarning
from geocd.options import PredictOptions, TrainOptions

from .options import field_option, options_from_fields, parse_bands, stacked

ERROR_EXIT_CODE = 2
MIN_AREA_HELP = ("Drop changes smaller than this (m², true ground area). "
                 "Default: 3.5 pixels' area at the raster's centre (blobs of 1-3 pixels go); 0 keeps all.")
VECTOR_FORMATS = ".gpkg (styled for QGIS), .fgb, .geojson (WGS84), .parquet (GeoParquet) or .shp, by extension"


class GeocdClickError(click.ClickException):
    """A user-facing error: ``geocd: error: FILE: problem`` on stderr, exit code 2."""

    exit_code = ERROR_EXIT_CODE

    def show(self, file: Any = None) -> None:
        click.echo(f"geocd: error: {self.format_message()}", err=True)


PARAMETER_VALUE = re.compile(r"\b([a-z][a-z0-9_]*)=([^\s,;)]+)")
"""``name=value`` in a library problem: a Python parameter and the value to give it."""


def error_line(error: GeocdError, command: click.Command) -> str:
    """The CLI's line for a library error: ``FILE: problem``, each Python parameter it names spoken as ``command``'s flag.

    A problem names a parameter as its first word (``threshold 1.5 must be in (0, 1]``) or as
    ``name=value`` (``use overwrite=True``, ``pass resolution=METRES``): the first becomes the flag
    (``--threshold``), the second the flag and its value, a flag for True and its ``--no-`` form for False
    (``--overwrite``, ``--resolution METRES``). The flags are the option's own (click's ``opts``); a
    name that is no option of ``command`` stays as it is.
    """
    options = {p.name: p for p in command.params if isinstance(p, click.Option)}

    def flag(names: Sequence[str]) -> str:
        return max(names, key=len)

    def spoken(match: re.Match[str]) -> str:
        option, value = options.get(match[1]), match[2].strip("'\"")
        if option is None:
            return match[0]
        if option.is_flag and value in ("True", "False"):
            names = option.opts if value == "True" else option.secondary_opts
            return flag(names) if names else match[0]
        return f"{flag(option.opts)} {value}"

    name, _, rest = error.problem.partition(" ")
    problem = f"{flag(options[name].opts)} {rest}" if name in options and rest else error.problem
    return str(type(error)(error.path, PARAMETER_VALUE.sub(spoken, problem)))


def stderr_is_terminal() -> bool:
    """Whether stderr is a terminal (a person watching): bars and status lines, else plain lines."""
    return sys.stderr.isatty()


def reports_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """Turn library :class:`GeocdError` raised by ``command`` into a one-line CLI error."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except GeocdError as error:
            raise GeocdClickError(error_line(error, click.get_current_context().command)) from None

    return wrapper


PYTHON_SHOWWARNING = warnings.showwarning
"""Python's own ``warnings.showwarning``, for every warning not geocd's."""


def show_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int, file: Any = None,
                 line: str | None = None) -> None:
    """``warnings.showwarning`` of the command line: a :class:`GeocdWarning` as one ``geocd: warning:`` line."""
    if issubclass(category, GeocdWarning):
        click.echo(f"geocd: warning: {message}", err=True)
    else:
        PYTHON_SHOWWARNING(message, category, filename, lineno, file, line)


def route_messages(verbose: bool) -> None:
    """Every :class:`GeocdWarning` as one line on stderr; GDAL's and libtiff's messages
    (:mod:`geocd.native_messages`) on stderr only when ``verbose``, else only in the log."""
    from geocd.native_messages import GDAL_LOGGERS, log_native_messages

    warnings.showwarning = show_warning
    warnings.simplefilter("always", GeocdWarning)
    log_native_messages()
    for name in GDAL_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(h, logging.NullHandler) for h in logger.handlers):
            logger.addHandler(logging.NullHandler())
        logger.propagate = verbose
    if verbose:
        logging.basicConfig(level=logging.INFO, format="%(name)s: %(levelname)s: %(message)s", stream=sys.stderr)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100, "terminal_width": 100})
@click.version_option(__version__, prog_name="geocd")
@click.option("-v", "--verbose", is_flag=True,
              help="Also show GDAL's, libtiff's and the libraries' own messages, and the traceback of a pair that "
                   "failed unexpectedly, on stderr.")
@click.pass_context
def cli(ctx: click.Context, verbose: bool) -> None:
    """Find what changed, and into what, between two georeferenced images.

    Rasters may be local files, URLs (http(s)://, s3://, gs://, az://) or GDAL /vsi paths.

    \b
    Quick start:
      geocd demo demo/
      geocd predict demo/before.tif demo/after.tif -o demo/changes.gpkg
    """
    route_messages(verbose)


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


@cli.command("qgis-install")
@click.option("--profile", default="default", show_default=True, help="QGIS user profile to install into.")
@click.option("--executable", type=click.Path(dir_okay=False), default=None,
              help="geocd executable the plugin runs. Default: this installation's geocd.")
@reports_errors
def qgis_install(profile: str, executable: str | None) -> None:
    """Install the QGIS plugin into a QGIS 3 profile, enabled and pointed at this geocd.

    Then qgis_process (or QGIS) finds geocd:detectchanges. Close QGIS first. The profile
    lives under QGIS_CUSTOM_CONFIG_PATH when that is set.

    \b
    Example:
      geocd qgis-install && qgis_process.bin list | grep geocd
    """
    from geocd.qgis_install import install_qgis_plugin

    done = install_qgis_plugin(profile, executable)
    click.echo(f"installed {done.plugin}, enabled in {done.settings}, running {done.executable}")


MODEL_OPTION = click.option("--model", "models", multiple=True, type=click.Path(dir_okay=False),
                            help="Model checkpoint; repeat for an ensemble. Default (or 'default'): the model bundled "
                                 "with geocd (geocd models shows it).")
DEVICE_OPTION = field_option(PredictOptions, "device")


def predict_options(exclude: Collection[str] = ()) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Add the options of every prediction command to a click command: the model, the :class:`PredictOptions`
    (but ``exclude``'s), the smallest change polygon, overwrite and progress."""
    return stacked(
        MODEL_OPTION,
        options_from_fields(PredictOptions, exclude),
        click.option("--min-area", type=click.FloatRange(0), help=MIN_AREA_HELP),
        click.option("--overwrite", is_flag=True, help="Replace existing outputs."),
        click.option("--progress", "progress_mode", type=click.Choice(["bar", "json", "none"]), default="bar",
                     show_default=True, help="Progress on stderr: a bar, JSON lines (for programs), or nothing."),
        click.option("-q", "--quiet", is_flag=True, help="No progress output (same as --progress none)."),
    )


@cli.command()
@click.argument("before", type=click.Path())
@click.argument("after", type=click.Path())
@click.option("-o", "--output", type=click.Path(dir_okay=False), help=f"Change polygons to write: {VECTOR_FORMATS}.")
@click.option("--raster", type=click.Path(dir_okay=False), help="Also write the change raster (probability, from, to).")
@click.option("--landcover", type=click.Path(dir_okay=False),
              help="Also write both dates' land-cover maps (2 bands; needs a model with trained land-cover heads).")
@click.option("--quicklook", type=click.Path(dir_okay=False),
              help="Also write a PNG: before | after | changes coloured by type, with legend and scale bar.")
@click.option("--report", type=click.Path(dir_okay=False),
              help="Also write a JSON report: inputs, model, options, timings, count and area per change type.")
@click.option("--zones", type=click.Path(dir_okay=False),
              help="Polygon vector file (any CRS): cut the polygons at its zones, give them a 'zone' attribute, and "
                   "write the changed area per zone and from→to pair (m², ha) to the report and to STEM_zones.csv "
                   "beside the first output (changes_zones.csv for -o changes.gpkg).")
@click.option("--zone-field", metavar="NAME", help="Field of --zones that names each zone. Default: the feature id.")
@predict_options()
@reports_errors
def predict(before: str, after: str, output: str | None, raster: str | None, landcover: str | None, zones: str | None,
            zone_field: str | None, models: tuple[str, ...], min_area: float | None, overwrite: bool,
            progress_mode: str, quiet: bool, quicklook: str | None, report: str | None, **fields: Any) -> None:
    """Detect changes between BEFORE and AFTER rasters and write polygons.

    AFTER is warped onto the BEFORE grid when their CRS or resolution differ; only
    their overlap is processed.

    \b
    Example:
      geocd predict before.tif after.tif -o changes.gpkg --raster change.tif --tta
    """
    if output is None and raster is None and landcover is None and quicklook is None and report is None:
        raise click.UsageError("give -o/--output changes.gpkg, --raster change.tif, --landcover landcover.tif, "
                               "--quicklook quicklook.png and/or --report report.json")
    if zone_field is not None and zones is None:
        raise click.UsageError("--zone-field names a field of --zones: give --zones too")
    from geocd.data.rasters import check_rasters

    check_rasters(before, after, bands=fields["bands"])
    if not quiet and progress_mode == "bar" and stderr_is_terminal():
        click.echo(f"loading {'model ' + ', '.join(models) if models else 'the default model'} …", err=True)
    from geocd.inference.predict import PredictOutputs, predict as run_predict
    from geocd.progress import Progress
    outputs = PredictOutputs(vectors=output, raster=raster, landcover=landcover, quicklook=quicklook, report=report,
                             overwrite=overwrite, min_area_m2=min_area, zones=zones, zone_field=zone_field)
    progress = Progress("none" if quiet else progress_mode)
    result = run_predict(before, after, models=list(models), outputs=outputs, options=PredictOptions(**fields),
                         progress=progress)
    stats = result.change_raster
    written = [str(p) for p in (result.vectors, result.raster, result.landcover, result.quicklook, result.report,
                                result.zones_table) if p]
    polygons = f"{result.polygons} change polygons, " if result.polygons is not None else ""
    line = f"{polygons}{stats.megapixels:.2f} MP in {stats.seconds:.1f} s -> {', '.join(written)}"
    progress.done(line, polygons=result.polygons, megapixels=round(stats.megapixels, 4),
                  seconds=round(stats.seconds, 3), outputs=written)
    if not quiet and progress_mode != "json":
        click.echo(line, err=True)
    _NOTHING_TO_FINALIZE.set()


@cli.command("predict-archive")
@click.argument("manifest", type=click.Path())
@click.option("-o", "--output", required=True, type=click.Path(file_okay=False),
              help="Folder for each pair's outputs (named after the pair) and index.gpkg.")
@click.option("--format", "vector_format", default="gpkg", show_default=True,
              help="Extension of each pair's change polygons: gpkg, fgb, geojson, parquet or shp.")
@click.option("--raster", is_flag=True, help="Also write each pair's change raster, NAME_change.tif.")
@click.option("--quicklook", is_flag=True, help="Also write each pair's quicklook, NAME.png.")
@click.option("--report", is_flag=True, help="Also write each pair's JSON report, NAME.json.")
@click.option("--scheduler", help="Dask scheduler: tcp://host:port or a scheduler file. Default: a local cluster.")
@click.option("--workers", type=click.IntRange(1), help="Worker processes of the local cluster. Default: one per physical core.")
@predict_options(exclude=("num_workers",))
@reports_errors
def predict_archive(manifest: str, output: str, vector_format: str, raster: bool, quicklook: bool, report: bool,
                    scheduler: str | None, workers: int | None, models: tuple[str, ...], min_area: float | None,
                    overwrite: bool, progress_mode: str, quiet: bool, **fields: Any) -> None:
    """Detect changes in every pair of an archive on a Dask cluster, one task per pair.

    MANIFEST is an archive as train reads it (labels are ignored). OUTPUT gets each
    pair's outputs, named after the pair (a name that is not a plain, portable file name
    is made one, with a short hash), and index.gpkg: one row per pair with its footprint,
    name, file_stem, status, error, outputs and changes. A rerun skips the pairs done with
    the same inputs and options. A failed pair is named in one error line after all others
    finished; the exit code is 2.

    \b
    Example:
      geocd predict-archive archive/manifest.csv -o results/ --workers 2
      geocd predict-archive archive/manifest.csv -o results/ --scheduler tcp://10.0.0.5:8786
    """
    from geocd.inference.archive import ArchiveOutputs, dask_client, predict_archive as run_archive
    from geocd.progress import Progress

    kinds = {"vectors", *(kind for kind, wanted in (("raster", raster), ("quicklook", quicklook), ("report", report))
                          if wanted)}
    outputs = ArchiveOutputs(Path(output), frozenset(kinds), vector_suffix=f".{vector_format}", overwrite=overwrite,
                             min_area_m2=min_area)
    options = PredictOptions(**fields)
    progress = Progress("none" if quiet else progress_mode)
    with dask_client(scheduler, workers, gpu=options.device.startswith("cuda")) as client:
        result = run_archive(manifest, client, models=models, outputs=outputs, options=options, progress=progress)
    failed = result.failed
    predicted = len(result.pairs) - len(failed) - result.skipped
    line = (f"{len(result.pairs)} pairs: {predicted} predicted, {result.skipped} already done, {len(failed)} failed "
            f"-> {result.index}")
    progress.done(line, predicted=predicted, skipped=result.skipped, failed=len(failed), index=str(result.index))
    click.echo(line, err=True)
    show_failures([(pair.error, pair.traceback) for pair in failed])


def show_failures(failures: list[tuple[GeocdError, str | None]]) -> None:
    """One error line per failed pair (after it, with ``geocd --verbose``, the traceback of an unexpected failure);
    exit 2 if any."""
    verbose = click.get_current_context().find_root().params.get("verbose", False)
    for error, trace in failures:
        GeocdClickError(error_line(error, click.get_current_context().command)).show()
        if verbose and trace:
            click.echo(trace.rstrip("\n"), err=True)
    if failures:
        raise click.exceptions.Exit(ERROR_EXIT_CODE)


@cli.command()
@click.argument("raster", type=click.Path())
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help=f"Change polygons to write: {VECTOR_FORMATS}.")
@click.option("--min-area", type=click.FloatRange(0), help=MIN_AREA_HELP)
@click.option("--simplify", type=click.FloatRange(0, min_open=True),
              help="Simplify polygons by this tolerance (map units), keeping shared edges.")
@click.option("--threshold", type=click.FloatRange(0, 1), help="Change probability cut-off. Default: the one stored in RASTER.")
@click.option("--overwrite", is_flag=True, help="Replace an existing output.")
@reports_errors
def vectorize(raster: str, output: str, min_area: float | None, simplify: float | None, threshold: float | None, overwrite: bool) -> None:
    """Turn a change raster (from geocd predict --raster) into styled GeoPackage polygons.

    \b
    Example:
      geocd vectorize change.tif -o changes.gpkg --min-area 25
    """
    from geocd.vector import vectorize as run_vectorize

    result = run_vectorize(raster, output, min_area_m2=min_area, simplify=simplify, threshold=threshold, overwrite=overwrite)
    click.echo(f"{result.polygons} change polygons, {result.changed_area_m2:.0f} m² -> {result.path}", err=True)


def read_config(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """``--config run.yaml``: its keys (option names, ``-`` or ``_``) become the command's defaults."""
    if value is None:
        return None
    import yaml

    try:
        loaded = yaml.safe_load(Path(value).read_text()) or {}
    except (OSError, yaml.YAMLError) as error:
        raise click.BadParameter(f"{value}: {error}") from None
    if not isinstance(loaded, dict):
        raise click.BadParameter(f"{value}: not a mapping of option names to values")
    config = {str(key).replace("-", "_"): item for key, item in loaded.items()}
    known = {p.name for p in ctx.command.params} - {param.name}
    unknown = sorted(config.keys() - known)
    if unknown:
        raise click.BadParameter(f"{value}: unknown option {unknown[0]!r}")
    ctx.default_map = {**(ctx.default_map or {}), **config}
    return value


def written(value: Any) -> Any:
    """A value as a YAML configuration holds it: a path as its text."""
    return os.fspath(value) if isinstance(value, Path) else value


def resolved_config(ctx: click.Context) -> dict[str, Any]:
    """The command's parameter values as ``--config`` reads them back: repeatable ones as lists, other
    tuples (``bands``) comma-separated as their flag takes them; without config, resume and progress."""
    config = {}
    for param in ctx.command.params:
        value = ctx.params[param.name]
        if param.name in ("config", "resume", "progress_mode"):
            continue
        if isinstance(value, tuple):
            value = list(map(written, value)) if param.multiple or param.nargs == -1 else ",".join(map(str, value))
        config[param.name] = written(value)
    return config


@cli.command()
@click.argument("archives", nargs=-1, required=True, type=click.Path())
@click.option("--config", type=click.Path(dir_okay=False), is_eager=True, expose_value=True, callback=read_config,
              help="YAML file of options (names as here, e.g. max_epochs: 30; archives: [a, b]); flags given override it. "
                   "Each run writes its resolved configuration to OUTPUT/config.yaml.")
@click.option("-o", "--output", required=True, type=click.Path(file_okay=False), help="Run folder for checkpoints and logs.")
@options_from_fields(TrainOptions)
@click.option("--progress", "progress_mode", type=click.Choice(["bar", "json", "none"]), default="bar", show_default=True,
              help="Progress of each epoch on stderr: a bar (plain lines every 10 s when stderr is not a terminal), "
                   "JSON lines (for programs), or nothing.")
@click.pass_context
@reports_errors
def train(ctx: click.Context, archives: tuple[str, ...], config: str | None, output: str, progress_mode: str,
          **fields: Any) -> None:
    """Train a change model on archives of scene pairs.

    Each ARCHIVE is a manifest (CSV or YAML) or a folder holding manifest.csv; see
    geocd import-chips to make one from public chip datasets. Pairs are split into
    training and validation per dataset, by pair.

    \b
    Example:
      geocd train archive/levir archive/sztaki -o runs/first --max-epochs 30
      geocd train --config runs/first/config.yaml -o runs/again
    """
    from geocd.progress import Progress
    from geocd.training.train import train as run_train

    options = TrainOptions(**fields)
    lines = progress_mode == "bar" and not stderr_is_terminal()
    progress = Progress("lines" if lines else progress_mode)
    echo = progress.message if progress_mode == "json" else lambda line: click.echo(line, err=True)
    result = run_train(archives, output, options, echo=echo, progress=progress, config=resolved_config(ctx))
    if result.main_process:
        line = f"best checkpoint: {result.best} ({', '.join(f'{k} {v:.3f}' for k, v in result.best_scores.items())})"
        progress.done(line, best=str(result.best), scores=result.best_scores)
        click.echo(line)


@cli.command()
@click.argument("archive", type=click.Path())
@MODEL_OPTION
@click.option("-o", "--output", type=click.Path(file_okay=False), default="evaluation", show_default=True,
              help="Folder for evaluation.json and confusion.png.")
@click.option("--pairs", help="Comma-separated pair names to evaluate (e.g. the validation pairs). Default: all.")
@options_from_fields(PredictOptions)
@click.option("--overwrite", is_flag=True, help="Replace an existing evaluation.json and confusion.png in OUTPUT.")
@reports_errors
def evaluate(archive: str, models: tuple[str, ...], output: str, pairs: str | None, overwrite: bool,
             **fields: Any) -> None:
    """Score a model on the labelled pairs of an archive (mIoU, SeK, Score, F_scd).

    Runs the full predict path (tiling, blending) on every pair, prints a table and
    writes evaluation.json and confusion.png. On a land-cover archive (geocd
    import-landcover) it reports per-class IoU and mIoU of the land-cover maps.
    Only labelled pixels are scored; the table's 'scored' column says which share of
    each pair's predicted pixels that is. A pair that cannot be scored (e.g. its label
    does not overlap it) is named in one error line and left out; the others are still
    scored and written, and the exit code is 2.

    \b
    Example:
      geocd evaluate archive/manifest.csv --model runs/first/best.safetensors --tta
    """
    from geocd.checkpoint import load_models
    from geocd.data.archive import open_archive
    from geocd.evaluation import evaluate as run_evaluate, evaluate_landcover, report_paths, save_report
    from geocd.inference.predict import resolve_device

    report_paths(output, overwrite)
    options = PredictOptions(**fields)
    loaded = load_models(list(models), resolve_device(options.device))
    run = evaluate_landcover if open_archive(archive).kind == "landcover" else run_evaluate
    report = run(archive, loaded, options, pairs.split(",") if pairs else None)
    json_path, png_path = save_report(report, output, overwrite)
    click.echo(report.table())
    click.echo(f"wrote {json_path} and {png_path}", err=True)
    show_failures([(error, None) for _, error in report.failed])


@cli.command("pseudo-label")
@click.argument("archive", type=click.Path())
@click.option("--model", "models", multiple=True, type=click.Path(dir_okay=False),
              help="Model checkpoint with trained land-cover heads; repeat for an ensemble. Default (or 'default'): "
                   "the model bundled with geocd.")
@click.option("-o", "--output", required=True, type=click.Path(file_okay=False), help="Folder for pseudo-label rasters.")
@click.option("--pair", "pairs", multiple=True, help="Only this pair (repeatable). Default: every pair but the test split's.")
@click.option("--include-test", is_flag=True, help="Also label the pairs of the archive's test split (never trained on).")
@options_from_fields(PredictOptions)
@click.option("--overwrite", is_flag=True, help="Replace existing pseudo labels in OUTPUT.")
@reports_errors
def pseudo_label(archive: str, models: tuple[str, ...], output: str, pairs: tuple[str, ...], include_test: bool,
                 overwrite: bool, **fields: Any) -> None:
    """Label unchanged areas of an archive with an ensemble, for retraining.

    Where the ground truth says unchanged and the ensemble's land cover agrees in both
    dates, both dates get that class; ground-truth classes are kept. Pairs with a binary
    change mask only get pseudo land cover where unchanged (changed pixels stay ignored
    for the land-cover loss) and keep their change mask. Test-split pairs are left out.
    Retrain with geocd train ... --pseudo-labels OUTPUT (validation pairs keep their
    ground truth). Rasters are named after the pair (made a plain, portable file name where
    needed). A pair that fails is named in one error line after the others are done; the
    exit code is 2.

    \b
    Example:
      geocd pseudo-label archive/levir -o pseudo/ --tta
      geocd pseudo-label archive/manifest.csv --model a.safetensors --model b.safetensors -o pseudo/ --tta
    """
    from geocd.training.pseudo import pseudo_label as run_pseudo_label

    options = PredictOptions(**fields)
    report = run_pseudo_label(archive, models, output, options, overwrite=overwrite, pairs=list(pairs) or None,
                              include_test=include_test)
    click.echo(report.table())
    show_failures([(f.error, f.traceback) for f in report.failed])


@cli.command("models")
@click.argument("model", required=False)
@reports_errors
def show_models(model: str | None) -> None:
    """Show where the bundled default model lives and its card (or MODEL's).

    The card comes from the checkpoint's metadata: name, backbone, input, trained classes,
    training data, validation scores and limits. --model default (or no --model) names the
    bundled model in predict, predict-archive, evaluate, pseudo-label and train --init-from.

    \b
    Example:
      geocd models
      geocd models runs/first/best.safetensors
    """
    from geocd.checkpoint import model_card

    click.echo("\n".join(model_card(model)))


@cli.command("info")
@click.option("--model", help="Model whose card to show and run (default: geocd's default model).")
@DEVICE_OPTION
@reports_errors
def info(model: str | None, device: str) -> None:
    """Show geocd's version and folder, the Python, the runtime and device predict would use, and the model card.

    \b
    Example:
      geocd info
    """
    from geocd.diagnostics import diagnostics

    click.echo("\n".join(diagnostics(model, device)))


@cli.command("import-chips")
@click.argument("source", type=click.Path())
@click.argument("destination", type=click.Path(file_okay=False))
@click.option("--resolution", type=click.FloatRange(0, min_open=True),
              help="Pixel size in metres for chips without georeferencing (they get a local metric grid).")
@click.option("--dataset", help="Dataset name recorded in the manifest. Default: SOURCE's folder name.")
@click.option("--overwrite", is_flag=True, help="Replace an existing archive in DESTINATION.")
@reports_errors
def import_chips(source: str, destination: str, resolution: float | None, dataset: str | None, overwrite: bool) -> None:
    """Turn a public chip dataset (A/B/label or im1/im2/label1/label2) into a geocd archive.

    Writes GeoTIFFs and DESTINATION/manifest.csv. Splits come from train/val/test sub-folders,
    or in a flat folder from train_/val_/test_ file-name prefixes; test pairs are never trained on.

    \b
    Example:
      geocd import-chips LEVIR-CD/ archive/levir --resolution 0.5
    """
    from collections import Counter

    from geocd.data.archive import read_archive
    from geocd.data.chips import import_chips as run_import

    imported = run_import(source, destination, resolution=resolution, dataset=dataset, overwrite=overwrite)
    records = read_archive(imported.manifest)
    kinds = "semantic" if all(r.semantic for r in records) else "binary"
    click.echo(f"imported {len(records)} {kinds} pairs into {imported.manifest}")
    counts = Counter(r.split for r in records)
    if imported.splits_from:
        shown = ", ".join(f"{split} {counts[split]}" for split in ("train", "val", "test") if counts[split])
        undecided = f", {counts['']} without (drawn by train)" if counts[""] else ""
        click.echo(f"splits from {imported.splits_from}: {shown}{undecided}")
    else:
        click.echo("no split folders or train_/val_/test_ prefixes: train draws the validation pairs")


@cli.command("import-landcover")
@click.argument("source", type=click.Path())
@click.argument("destination", type=click.Path(file_okay=False))
@click.option("--mapping", required=True,
              help="Mask coding: a shipped name (chesapeake, deepglobe, dubai, gid, loveda, potsdam) or a YAML file mapping values/colours to classes.")
@click.option("--resolution", type=click.FloatRange(0, min_open=True),
              help="Pixel size in metres for images without georeferencing (they get a local metric grid).")
@click.option("--dataset", help="Dataset name recorded in the manifest. Default: SOURCE's folder name.")
@click.option("--bands", callback=parse_bands,
              help="Image bands to keep, 1-based, comma-separated (e.g. 1,2,3 for R,G,B,NIR images). Default: all.")
@click.option("--overwrite", is_flag=True, help="Replace an existing archive in DESTINATION.")
@reports_errors
def import_landcover(source: str, destination: str, mapping: str, resolution: float | None, dataset: str | None,
                     bands: tuple[int, ...] | None, overwrite: bool) -> None:
    """Turn image/ + mask/ land-cover maps into a georeferenced land-cover archive.

    Masks are coded by grey value or RGB colour; the mapping sends each to a class, a set
    of classes (coarse labels) or ignore. An unknown value or colour is an error.

    \b
    Example:
      geocd import-landcover LoveDA/ archive/loveda --mapping loveda --resolution 0.3
    """
    from geocd.data.landcover_import import import_landcover as run_import

    records = run_import(source, destination, mapping, resolution=resolution, dataset=dataset, bands=bands,
                         overwrite=overwrite)
    click.echo(f"imported {len(records)} land-cover images into {destination}/manifest.csv")


class _Stopped(BaseException):
    """Raised in the main process on SIGTERM or SIGINT, so cleanup code runs (a BaseException: not caught as an error)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _stop_on_signals() -> None:
    """Make SIGTERM and SIGINT raise :class:`_Stopped` in this process; child processes ignore them
    (their parent stops them). Once stopping, errors of background threads that lose their peer
    process (multiprocessing's resource sharer, in parent and workers) are consequences of the
    stop and stay silent."""
    owner = os.getpid()

    def handler(signum: int, frame: Any) -> None:
        report = sys.excepthook

        def main_thread_only(*exc_info: Any) -> None:
            if threading.current_thread() is threading.main_thread():
                report(*exc_info)

        sys.excepthook, threading.excepthook = main_thread_only, lambda args: None
        if os.getpid() == owner:
            raise _Stopped(signum)

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, handler)


_NOTHING_TO_FINALIZE = threading.Event()
"""Set by a command that ended with every output in place and every thread and file closed."""


def main() -> None:
    """Console-script entry point: exit 128 + N on signal N (130 on SIGINT, 143 on SIGTERM), temporary files removed.

    After a command that leaves nothing to finalize (``predict``), the process exits without Python's
    teardown of its modules (0.7 s of every run: PyTorch's, GDAL's, OpenVINO's).
    """
    _stop_on_signals()
    _NOTHING_TO_FINALIZE.clear()
    try:
        cli(prog_name="geocd")
    except _Stopped as stop:
        click.echo(f"geocd: stopped by {signal.Signals(stop.signum).name}", err=True)
        sys.exit(128 + stop.signum)
    except SystemExit as done:
        if done.code in (0, None) and _NOTHING_TO_FINALIZE.is_set():
            logging.shutdown()
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(0)
        raise


if __name__ == "__main__":
    sys.exit(main())
