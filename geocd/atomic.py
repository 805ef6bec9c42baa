"""Atomic outputs: write to a temporary name beside the target, rename on success.

Temporary files are named ``.NAME.geocd-HOST-PID-RANDOM.partSUFFIX`` so a later run writing
the same target can recognise, and remove, those whose process has died.
"""

from __future__ import annotations

import errno
import glob
import os
import re
import shutil
import socket
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from geocd.data.remote import is_remote
from geocd.errors import OutputError

FULL_DISK_BYTES = 1 << 20
"""A write failing with less free space than this (bytes) is reported as a full disk."""


def check_output_path(path: str | os.PathLike[str], overwrite: bool, suffix: str | None = None) -> Path:
    """Refuse an existing output (unless ``overwrite``), a folder we cannot write to, or (given
    ``suffix``, e.g. ``".png"``) a name with another extension."""
    target = Path(path)
    if suffix is not None and target.suffix.lower() != suffix:
        raise OutputError(target, f"must be a {suffix} file")
    if target.is_dir():
        raise OutputError(target, "is a directory, expected an output file name")
    if target.exists() and not overwrite:
        raise OutputError(target, "already exists (use overwrite=True to replace it)")
    folder = target.parent if str(target.parent) else Path(".")
    if not folder.is_dir():
        raise OutputError(target, f"folder {folder} does not exist")
    if not os.access(folder, os.W_OK):
        raise OutputError(target, f"folder {folder} is not writable")
    return target


def check_outputs(
    outputs: Sequence[str | os.PathLike[str] | None], inputs: Sequence[str | os.PathLike[str]], overwrite: bool
) -> None:
    """Check every given output with :func:`check_output_path`, refusing one that is another output or an input.

    Paths are compared resolved (symbolic links followed) and as files (hard links); remote inputs
    (:func:`geocd.data.remote.is_remote`) cannot be outputs.
    """
    taken = [(Path(p), f"the input {p}") for p in inputs if not is_remote(p)]
    for path in filter(None, outputs):
        for other, what in taken:
            if _same_file(Path(path), other):
                raise OutputError(path, f"is also {what}; choose another file name")
        check_output_path(path, overwrite)
        taken.append((Path(path), "another output"))


def write_failure(path: str | os.PathLike[str], error: Exception) -> OutputError:
    """The one-line error for a failed write of ``path`` (a full disk is named as such)."""
    folder = Path(path).parent
    full = isinstance(error, OSError) and error.errno == errno.ENOSPC
    full = full or (folder.is_dir() and shutil.disk_usage(folder).free < FULL_DISK_BYTES)
    reason = os.strerror(errno.ENOSPC) if full else str(error).strip().splitlines()[0]
    return OutputError(path, f"could not be written ({reason})")


@contextmanager
def atomic_output(
    path: str | os.PathLike[str], overwrite: bool = False, sidecars: Sequence[str] = ()
) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; move it onto ``path`` only if the block succeeds.

    The temporary file keeps the target's suffix so GDAL picks the right driver, and is
    flushed to disk before the rename. ``sidecars`` are the suffixes of files the writer makes
    beside it (a shapefile's ``.dbf``, ...): they are moved to the target's name with it, the
    main file last, and removed on failure. Without ``overwrite``, a target that appeared during
    the block is never replaced. An :class:`OutputError` about the temporary file is reported
    for ``path``. The outputs get the usual permissions (0666 less the umask), whatever the
    writer created them with.
    """
    target = check_output_path(path, overwrite)
    _remove_stale_temporaries(target)
    fd, tmp_name = tempfile.mkstemp(prefix=f"{_temporary_prefix(target)}{os.getpid()}-", suffix=f".part{target.suffix}",
                                    dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    tmp.unlink()
    moves = [(tmp.with_suffix(s), target.with_suffix(s)) for s in sidecars] + [(tmp, target)]
    try:
        yield tmp
        for part, _ in moves:
            _flush(part)
            os.chmod(part, 0o666 & ~_umask())
        for part, final in moves:
            _move(part, final, overwrite)
    except OutputError as error:
        if error.path != str(tmp):
            raise
        raise OutputError(target, f"{error.problem}; nothing was replaced") from None
    finally:
        for part, _ in moves:
            _remove_with_sidecars(part)


def _same_file(a: Path, b: Path) -> bool:
    """Whether two paths name the same file, resolved, or the same existing file."""
    if a.resolve() == b.resolve():
        return True
    return a.exists() and b.exists() and os.path.samefile(a, b)


def _temporary_prefix(target: Path) -> str:
    """Start of the temporary names of ``target`` made on this host; the owning PID follows."""
    return f".{target.name}.geocd-{socket.gethostname()}-"


def _remove_stale_temporaries(target: Path) -> None:
    """Remove temporaries of ``target`` left by dead geocd processes of this host (never anything else)."""
    prefix = _temporary_prefix(target)
    pattern = re.compile(rf"{re.escape(prefix)}(\d+)-[A-Za-z0-9_]+\.part\.[A-Za-z0-9]+(-[a-z]+)?$")
    for leftover in target.parent.glob(f"{glob.escape(prefix)}*"):
        match = pattern.match(leftover.name)
        if match and not _alive(int(match.group(1))):
            leftover.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    """Whether a process with this PID exists (on this host)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _flush(tmp: Path) -> None:
    """Force the written file to disk (a late write error shows here)."""
    try:
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as error:
        raise write_failure(tmp, error) from None


def _move(tmp: Path, target: Path, overwrite: bool) -> None:
    """Rename ``tmp`` onto ``target``; without ``overwrite`` never replace a file that exists now."""
    if overwrite:
        os.replace(tmp, target)
        return
    try:
        os.link(tmp, target)
        return
    except FileExistsError:
        pass
    except OSError:  # a file system without hard links: check, then rename
        if not target.exists():
            os.replace(tmp, target)
            return
    raise OutputError(target, "appeared while geocd was writing it and was kept (use overwrite=True to replace it)")


def _remove_with_sidecars(tmp: Path) -> None:
    """Remove a temporary file and what its writer kept beside it (``-wal``, ``-journal``, ...)."""
    for leftover in (tmp, *tmp.parent.glob(glob.escape(tmp.name) + "-*")):
        leftover.unlink(missing_ok=True)


def _umask() -> int:
    """The process umask (read by setting and restoring it)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
