"""The one home of per-pair file names: a pair name from a manifest (someone else's data) becomes a file
name that stays inside the output folder on every system.

A name that is already a plain, portable file name is used as it is. Any other is rewritten
(path separators, Windows-forbidden and control characters become ``_``; leading dots and
spaces, trailing dots and spaces go; a Windows device name such as ``CON`` gets a ``_``; over-long
names are cut) and gets ``-`` and 8 hex digits of the SHA-256 of the original name, so two
different names never end up sharing a file. Names that differ only by case get that suffix too,
so they do not collide on case-insensitive file systems.
"""

from __future__ import annotations

import hashlib
import os
import re
import unicodedata
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from geocd.errors import OutputError

MAX_STEM_BYTES = 120
"""Longest file stem (UTF-8 bytes): with a suffix such as ``_change.tif`` and the temporary name
:func:`geocd.atomic.atomic_output` writes first, still under the 255 bytes file systems allow."""
HASH_DIGITS = 8
_RESERVED = {"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$",
             *(f"{port}{n}" for port in ("COM", "LPT") for n in (*"0123456789", "¹", "²", "³"))}
"""Windows device names: reserved whatever the extension and case."""
_FORBIDDEN = re.compile(r'[/\\<>:"|?*]')
_CONTROL = {"Cc", "Cf", "Cs", "Zl", "Zp"}


class FileNameClash(ValueError):
    """Two names (by their positions) that would still share the file stem ``stem``."""

    def __init__(self, first: int, second: int, stem: str) -> None:
        super().__init__(f"names {first} and {second} would share the file name {stem!r}")
        self.first, self.second, self.stem = first, second, stem


def file_stem(name: str, hashed: bool = False) -> str:
    """The file stem of pair ``name``: ``name`` itself when it is a plain portable file name (and not
    ``hashed``), else a rewritten, readable form with a hash of ``name`` appended."""
    text = "".join("_" if unicodedata.category(c) in _CONTROL else c for c in _FORBIDDEN.sub("_", name))
    text = text.lstrip(". ").rstrip(". ")
    base = text.split(".", 1)[0]
    if base.rstrip(" ").upper() in _RESERVED:
        text = f"{base}_{text[len(base):]}"
    if text and text == name and not hashed and len(name.encode("utf-8", "surrogatepass")) <= MAX_STEM_BYTES:
        return name
    digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:HASH_DIGITS]
    room = MAX_STEM_BYTES - HASH_DIGITS - 1
    text = text.encode("utf-8", "replace")[:room].decode("utf-8", "ignore").rstrip(". ") or "pair"
    return f"{text}-{digest}"


def file_stems(names: Sequence[str], taken: Sequence[str] = ()) -> list[str]:
    """The file stems of distinct ``names``, distinct even case-insensitively and from the ``taken`` stems
    (e.g. ``index``): names whose plain stems would collide that way get hashed ones.

    Two stems that still collide (a name literally equal to another's hashed stem) raise :class:`FileNameClash`.
    """
    stems = [file_stem(name) for name in names]
    counts = Counter(map(_key, [*stems, *taken]))
    stems = [file_stem(name, hashed=True) if counts[_key(stem)] > 1 else stem for name, stem in zip(names, stems)]
    seen: dict[str, int] = {_key(stem): -1 for stem in taken}
    for position, stem in enumerate(stems):
        first = seen.setdefault(_key(stem), position)
        if first != position:
            raise FileNameClash(first, position, stem)
    return stems


def pair_file(folder: str | os.PathLike[str], stem: str, suffix: str, root: str | os.PathLike[str] | None = None) -> Path:
    """``folder / (stem + suffix)``, refused with an :class:`OutputError` unless it is one plain file name
    whose resolved path (symbolic links followed, the output's own included) lies inside ``root``
    (default: ``folder``), resolved."""
    path = Path(folder) / f"{stem}{suffix}"
    if file_stem(stem) != stem or _FORBIDDEN.search(suffix) or len(suffix) > 16:
        raise OutputError(path, "is not a plain file name; pair file names come from geocd.safe_names.file_stem")
    inside = Path(root if root is not None else folder).resolve()
    if not path.resolve().is_relative_to(inside):
        raise OutputError(path, f"leads outside the output folder {inside} (a symbolic link?); remove it or choose another folder")
    return path


def _key(stem: str) -> str:
    """What a case-insensitive, normalising file system (Windows, macOS) compares of a stem."""
    return unicodedata.normalize("NFC", stem).casefold()
