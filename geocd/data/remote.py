"""The one home of remote inputs: which paths are URLs, GDAL's options for reading them, and their errors.

geocd reads rasters named by URL (``http(s)://``, ``s3://``, ``gs://``, ``az://``) or by a GDAL
virtual file system path (``/vsicurl/...``, ``/vsis3/...``) through rasterio/GDAL, by byte
ranges. :func:`remote_reads` sets GDAL's options for such reads for the time of one run;
:func:`remote_problem` turns GDAL's failure to open one into the problem of a one-line error.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

if TYPE_CHECKING:
    import rasterio

URL_SCHEMES = {"http": "vsicurl", "https": "vsicurl", "s3": "vsis3", "gs": "vsigs", "az": "vsiaz"}
"""URL schemes geocd reads, and the GDAL virtual file system of each."""

F = TypeVar("F", bound=Callable[..., Any])
REMOTE_READ_OPTIONS: Mapping[str, str] = {
    "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
    "GDAL_HTTP_MERGE_CONSECUTIVE_RANGES": "YES",
    "GDAL_HTTP_MAX_RETRY": "3",
    "GDAL_HTTP_RETRY_DELAY": "0.5",
    "GDAL_HTTP_CONNECTTIMEOUT": "15",
}
"""GDAL's options for remote reads: no listing of the remote folder nor probing of side-car files
(``.aux.xml``, ``.ovr``) when a file opens, adjacent byte ranges fetched in one request, and at
most 3 retries (after about 0.5, 1 and 2.5 s: GDAL doubles the delay) of a request the server
answered 429 or 5xx; a host that does not answer in 15 s fails. An option set in the environment
wins. ``CPL_VSIL_CURL_ALLOWED_EXTENSIONS`` is left alone: it would refuse URLs without a file
extension (signed URLs, APIs), and ``EMPTY_DIR`` already stops the probes."""

_HTTP_PROBLEMS = {401: "needs credentials", 403: "access denied", 404: "not found"}


def is_remote(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a URL geocd reads (see :data:`URL_SCHEMES`) or a GDAL ``/vsi...`` path."""
    text = os.fspath(path)
    scheme, sep, _ = text.partition("://")
    return (bool(sep) and scheme.lower() in URL_SCHEMES) or text.startswith("/vsi")


def gdal_path(path: str | os.PathLike[str]) -> str:
    """``path`` as GDAL names it: a URL as its ``/vsi...`` path, anything else as it is."""
    text = os.fspath(path)
    scheme, sep, rest = text.partition("://")
    if sep and scheme.lower() in URL_SCHEMES:
        return f"/{URL_SCHEMES[scheme.lower()]}/{text if URL_SCHEMES[scheme.lower()] == 'vsicurl' else rest}"
    return text


def file_stem(path: str | os.PathLike[str]) -> str:
    """The file name of ``path`` without its extension; of a URL, that of its path (no query string)."""
    return PurePosixPath(urlsplit(os.fspath(path)).path).stem if is_remote(path) else Path(path).stem


def remote_reads() -> rasterio.Env:
    """A ``rasterio.Env`` with :data:`REMOTE_READ_OPTIONS` (those not set in the environment), for one run."""
    import rasterio

    return rasterio.Env(**{key: value for key, value in REMOTE_READ_OPTIONS.items() if key not in os.environ})


def with_remote_reads(function: F) -> F:
    """``function`` run inside :func:`remote_reads`: the GDAL environment of a public entry point that may read URLs
    (the outermost one's options hold; a nested entry point's are the same)."""

    @functools.wraps(function)
    def run(*args: Any, **kwargs: Any) -> Any:  # noqa: ANN401 - the wrapped function's own
        with remote_reads():
            return function(*args, **kwargs)

    return run  # type: ignore[return-value]


def remote_problem(error: Exception) -> str:
    """The problem of a remote raster GDAL failed to open, from its error: an HTTP status,
    a host that cannot be reached, or a response that is no raster."""
    text = (str(error).strip().splitlines() or [""])[0]
    status = re.search(r"HTTP response code: (\d+)", text)
    if status:
        code = int(status.group(1))
        return f"{_HTTP_PROBLEMS.get(code, 'refused by the server')} (HTTP {code})"
    if "CURL error" in text:
        return f"cannot be reached ({text.split('CURL error:', 1)[1].strip()})"
    if "not recognized as" in text and "supported file format" in text:
        return "is not a raster GDAL can read (the server sent something else)"
    if "does not exist" in text or "No such file" in text:
        return "not found"
    return f"cannot be opened ({text})"
