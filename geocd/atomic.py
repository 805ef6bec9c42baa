"""Atomic outputs: write to a temporary name beside the target, rename on success."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from geocd.errors import OutputError


def check_output_path(path: str | os.PathLike[str], overwrite: bool, suffix: str | None = None) -> Path:
    """Refuse an existing output (unless ``overwrite``), a folder we cannot write to, or (given
    ``suffix``, e.g. ``".png"``) a name with another extension."""
    target = Path(path)
    if suffix is not None and target.suffix.lower() != suffix:
        raise OutputError(target, f"must be a {suffix} file")
    if target.is_dir():
        raise OutputError(target, "is a directory, expected an output file name")
    if target.exists() and not overwrite:
        raise OutputError(target, "already exists (use --overwrite to replace it)")
    folder = target.parent if str(target.parent) else Path(".")
    if not folder.is_dir():
        raise OutputError(target, f"folder {folder} does not exist")
    if not os.access(folder, os.W_OK):
        raise OutputError(target, f"folder {folder} is not writable")
    return target


@contextmanager
def atomic_output(path: str | os.PathLike[str], overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; move it onto ``path`` only if the block succeeds.

    The temporary file keeps the target's suffix so GDAL picks the right driver. The output
    gets the usual permissions (0666 less the umask), whatever the writer created it with.
    """
    target = check_output_path(path, overwrite)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=f".part{target.suffix}", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    tmp.unlink()
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, target)
    finally:
        for leftover in (tmp, *tmp.parent.glob(tmp.name + "-*")):
            leftover.unlink(missing_ok=True)


def _umask() -> int:
    """The process umask (read by setting and restoring it)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
