"""The one home of user-facing errors and warnings.

Library code raises a :class:`GeocdError` kind naming the file and the problem; only the
command line turns it into ``geocd: error: FILE: problem`` and exit code 2. A problem names a
Python parameter, never a flag: as its first word (``threshold 1.5 must be in (0, 1]``) or as
``name=value`` (``use overwrite=True to replace it``); the command line speaks them as its flags. Any other
exception is a bug and keeps its traceback, except in the per-pair loops of archive commands:
there :func:`pair_failure` makes it that pair's one-line error and keeps the traceback aside.
A likely mistake, or a fallback the run survives, is a :class:`GeocdWarning`
(``warnings.warn``), which the command line shows as ``geocd: warning: FILE: problem``.
"""

from __future__ import annotations

import os
import traceback


class _FileProblem:
    """A problem with a file (``path``, None when no file is concerned), shown as ``FILE: problem``."""

    def __init__(self, path: str | os.PathLike[str] | None, problem: str) -> None:
        self.path = None if path is None else os.fspath(path)
        self.problem = problem
        super().__init__(str(self))

    def __str__(self) -> str:
        return self.problem if self.path is None else f"{self.path}: {self.problem}"

    def __reduce__(self) -> tuple[type, tuple[str | None, str]]:
        """Pickle as (path, problem), so it crosses process boundaries intact."""
        return type(self), (self.path, self.problem)


class GeocdError(_FileProblem, Exception):
    """A problem with something the user gave us, reported as one line."""


class InputError(GeocdError):
    """An input raster, archive or option value cannot be used."""


class CheckpointError(GeocdError):
    """A model file is not a usable geocd checkpoint."""


class OutputError(GeocdError):
    """An output cannot be written (exists, or its folder is not writable)."""


def pair_failure(error: Exception, path: str | os.PathLike[str] | None, name: str) -> tuple[GeocdError, str | None]:
    """Pair ``name``'s failure as a one-line error (a :class:`GeocdError` as it is, any other exception
    naming ``path`` and the pair) and, for an unexpected exception, its traceback."""
    if isinstance(error, GeocdError):
        return error, None
    reason = (str(error).strip().splitlines() or [""])[0]
    line = GeocdError(path, f"pair {name!r} failed ({type(error).__name__}{': ' + reason if reason else ''})")
    return line, "".join(traceback.format_exception(error))


class GeocdWarning(_FileProblem, UserWarning):
    """A likely mistake, or a fallback the run survives, reported as one line."""
