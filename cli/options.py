"""The flags of the option dataclasses (:mod:`geocd.options`): one click option per field, and the parsers of
the comma-separated texts some flags take.

A field's flag is ``--`` and its name with dashes; its help, choices, range and syntax come from the field
(:func:`geocd.options.option`). A new flag of ``geocd train`` or of the prediction commands is a new field there.
"""

from __future__ import annotations

import dataclasses
import sys
import types
import typing
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

import click


def parse_bands(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[int, ...] | None:
    """``--bands 4,3,2`` -> (4, 3, 2), 1-based band indexes."""
    bands = parse_band_names(ctx, param, value)
    if bands is not None and not all(isinstance(b, int) for b in bands):
        raise click.BadParameter("use comma-separated 1-based band numbers, e.g. 4,3,2")
    return bands  # type: ignore[return-value]


def parse_band_names(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[int | str, ...] | None:
    """``--bands 4,3,2`` -> (4, 3, 2), 1-based band indexes; ``--bands red,green,blue`` -> band names."""
    if value is None:
        return None
    bands = tuple(int(v) if v.strip().lstrip("-").isdigit() else v.strip() for v in value.split(","))
    if any(b == "" for b in bands):
        raise click.BadParameter("use comma-separated band numbers or names, e.g. 4,3,2 or red,green,blue")
    if any(isinstance(b, int) and b < 1 for b in bands):
        raise click.BadParameter("band numbers start at 1")
    return bands


def parse_scales(ctx: click.Context, param: click.Parameter, value: str) -> tuple[float, ...]:
    """``--scales 1,0.5`` -> (1.0, 0.5), each in (0, 4]."""
    try:
        scales = tuple(float(v) for v in value.split(","))
    except ValueError:
        raise click.BadParameter("use comma-separated resize factors, e.g. 1,0.5") from None
    if not all(0 < s <= 4 for s in scales):
        raise click.BadParameter("each scale must be more than 0 and at most 4")
    return scales


def parse_radiometry(ctx: click.Context, param: click.Parameter, value: str) -> str | tuple[float, float]:
    """``auto``/``stretch``/``none`` as they are; ``LOW,HIGH`` -> (low, high)."""
    if value in ("auto", "stretch", "none"):
        return value
    try:
        low, high = (float(v) for v in value.split(","))
    except ValueError:
        raise click.BadParameter("use auto, stretch, none or LOW,HIGH (e.g. 0,3000)") from None
    return low, high


def parse_numbers(ctx: click.Context, param: click.Parameter, value: str) -> tuple[float, ...]:
    """``--class-weights 2,1,2`` -> (2.0, 1.0, 2.0)."""
    try:
        return tuple(float(v) for v in value.split(","))
    except ValueError:
        raise click.BadParameter("comma-separated numbers") from None


def parse_devices(ctx: click.Context, param: click.Parameter, value: str) -> str | int:
    """``--devices 2`` -> 2; ``auto`` or a list like ``0,1`` as they are."""
    return int(value) if value.isdigit() else value


SYNTAXES: dict[str, Callable[[click.Context, click.Parameter, str], Any]] = {
    "bands": parse_bands, "band_names": parse_band_names, "numbers": parse_numbers, "scales": parse_scales,
    "radiometry": parse_radiometry, "devices": parse_devices,
}
"""The text a flag takes, by the ``syntax`` an option field names (:func:`geocd.options.option`)."""


def field_type(owner: type, item: dataclasses.Field) -> Any:
    """The type of ``owner``'s field ``item``: its annotation, or its default's type where the annotation
    names what only type checkers import (``torch.device``)."""
    try:
        return eval(item.type, vars(sys.modules[owner.__module__]))  # noqa: S307 - an annotation of geocd's own
    except NameError:
        return type(item.default)


def click_type(hint: Any, spoken: typing.Mapping[str, Any]) -> Any:
    """The click type of a flag for a value of type ``hint``: choices of a ``Literal``, a range of numbers, a path."""
    bounds = {key: spoken[key] for key in ("min", "max", "min_open") if key in spoken}
    if typing.get_origin(hint) is typing.Literal:
        return click.Choice(typing.get_args(hint))
    if hint is int and bounds:
        return click.IntRange(**bounds)
    if hint is float and bounds:
        return click.FloatRange(**bounds)
    if hint is Path:
        return click.Path(path_type=Path, file_okay=spoken.get("path") != "dir", dir_okay=spoken.get("path") != "file")
    return hint


def field_option(owner: type, name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The click option of the field ``name`` of the options dataclass ``owner`` (:func:`geocd.options.option`):
    ``--`` and the name with dashes (a boolean with an ``off`` name: ``--name/--off``), the field's default and help;
    a tuple repeats the flag unless a ``syntax`` reads it from one comma-separated text."""
    item = next(f for f in dataclasses.fields(owner) if f.name == name)
    spoken, default = item.metadata, item.default
    flag = "--" + name.replace("_", "-")
    common = {"help": spoken["help"] or None, "metavar": spoken.get("metavar")}
    if "syntax" in spoken:
        parse = SYNTAXES[spoken["syntax"]]

        def callback(ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
            return default if value is None else parse(ctx, param, value)

        text = default if isinstance(default, str) else None
        return click.option(flag, name, default=text, show_default=text is not None, callback=callback, **common)
    hint = field_type(owner, item)
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        hint = next(arg for arg in typing.get_args(hint) if arg is not type(None))
    multiple = typing.get_origin(hint) is tuple
    if multiple:
        hint = typing.get_args(hint)[0]
    if hint is bool:
        off = spoken.get("off")
        return click.option(f"{flag}/--{off}" if off else flag, name, is_flag=True, default=default,
                            show_default=off is not None, **common)
    return click.option(flag, name, type=click_type(hint, spoken), multiple=multiple, default=default,
                        show_default=default not in (None, ()), **common)


def options_from_fields(owner: type, exclude: Collection[str] = ()) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Add to a click command one option per field of the options dataclass ``owner`` (:func:`field_option`), in
    field order, but those of ``exclude`` and the library's only; the command builds ``owner(**those values)``."""
    return stacked(*(field_option(owner, f.name) for f in dataclasses.fields(owner)
                     if f.metadata.get("flag", True) and f.name not in exclude))


def stacked(*decorators: Callable[[Callable[..., Any]], Callable[..., Any]]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """One decorator applying ``decorators`` as if written one above the other, in this order (click options in
    the order ``--help`` shows them)."""

    def add(command: Callable[..., Any]) -> Callable[..., Any]:
        for decorator in reversed(decorators):
            command = decorator(command)
        return command

    return add
