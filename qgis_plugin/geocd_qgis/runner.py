"""Run the ``geocd`` command line out of process, relaying its JSON progress to Processing."""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import subprocess
import threading
from pathlib import Path
from typing import IO, Optional

from qgis.core import QgsProcessingException, QgsProcessingFeedback

from .environment import clean_environment

ERROR_PREFIX = "geocd: error: "
WARNING_PREFIX = "geocd: warning: "
POLL_SECONDS = 0.1
GRACE_SECONDS = 5.0


def find_executable(configured: str = "") -> str:
    """The configured ``geocd`` executable, else the one on PATH."""
    if configured:
        if not Path(configured).is_file():
            raise QgsProcessingException(f"geocd executable '{configured}' (set in the Processing options) does not exist")
        return configured
    found = shutil.which("geocd")
    if found is None:
        raise QgsProcessingException(
            "geocd executable not found on PATH: install it with the algorithm geocd > Install geocd (or by hand, "
            "the README's section QGIS plugin) or set an installed geocd in "
            "Settings > Options > Processing > Providers > geocd")
    return found


def geocd_available(configured: str = "") -> bool:
    """Whether :func:`find_executable` finds a geocd."""
    return Path(configured).is_file() if configured else shutil.which("geocd") is not None


def run_geocd(executable: str, arguments: list[str], feedback: QgsProcessingFeedback, output: Path) -> None:
    """Run ``executable arguments`` with ``--progress json`` handling and cancel support.

    Raises :class:`QgsProcessingException` with geocd's one-line error when it fails, and
    when ``feedback`` is canceled (after stopping the child and removing any file it left
    at or beside ``output``).
    """
    previous = _identity(output)
    try:
        process = subprocess.Popen(
            [executable, *arguments], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            env=clean_environment(), text=True, encoding="utf-8", errors="replace", **_group_options())
    except OSError as error:
        raise QgsProcessingException(f"cannot run geocd executable '{executable}': {error.strerror}") from None
    with process:
        error = _follow(process, feedback, output, previous)
    if process.returncode != 0:
        raise QgsProcessingException(error or f"geocd failed with exit code {process.returncode}")


def _follow(process: subprocess.Popen, feedback: QgsProcessingFeedback, output: Path,
            previous: Optional[tuple[int, int]]) -> str:
    """Relay the child's stderr until it ends; stop it on cancel. Returns geocd's error line, if any."""
    lines: queue.Queue[Optional[str]] = queue.Queue()
    reader = threading.Thread(target=_read_lines, args=(process.stderr, lines), daemon=True)
    reader.start()
    relay = _Relay(feedback)
    while True:
        if feedback.isCanceled():
            _stop(process)
            reader.join(GRACE_SECONDS)
            _remove_leftovers(output, previous)
            raise QgsProcessingException("Canceled: geocd was stopped and no output was written")
        try:
            line = lines.get(timeout=POLL_SECONDS)
        except queue.Empty:
            continue
        if line is None:
            process.wait()
            return relay.error
        relay(line)


class _Relay:
    """Passes geocd's stderr lines to ``feedback``: JSON progress as progress and time left, messages as
    information, warnings and errors as such; keeps geocd's error line."""

    def __init__(self, feedback: QgsProcessingFeedback) -> None:
        self.feedback = feedback
        self.error = ""
        self.told_time_left = False

    def __call__(self, line: str) -> None:
        try:
            record = json.loads(line)
        except ValueError:
            record = None
        if isinstance(record, dict) and record.get("event") == "progress":
            self._progress(record)
        elif isinstance(record, dict) and record.get("event") in ("message", "done"):
            self.feedback.pushInfo(str(record.get("text", "")))
        elif line.startswith(WARNING_PREFIX):
            self.feedback.pushWarning(line)
        elif line.startswith(ERROR_PREFIX):
            self.feedback.reportError(line)
            self.error = line
        elif line.strip():
            self.feedback.pushConsoleInfo(line)

    def _progress(self, record: dict) -> None:
        """Progress in percent; tiles done and time left as the progress text, and once, after the first tiles, as information."""
        self.feedback.setProgress(float(record.get("percent", 0.0)))
        if "seconds_left" not in record:
            return
        text = f"{record.get('done')}/{record.get('total')} tiles, about {time_left(float(record['seconds_left']))} left"
        self.feedback.setProgressText(text)
        if not self.told_time_left and record.get("done", 0) < record.get("total", 0):
            self.told_time_left = True
            self.feedback.pushInfo(text)


def time_left(seconds: float) -> str:
    """``seconds`` for people: ``40 s``, ``12 min``, ``2 h 05 min``."""
    if seconds < 59.5:
        return f"{seconds:.0f} s"
    minutes = round(seconds / 60)
    return f"{minutes} min" if minutes < 60 else f"{minutes // 60} h {minutes % 60:02d} min"


def _read_lines(stream: IO[str], lines: "queue.Queue[Optional[str]]") -> None:
    """Queue each line of ``stream`` without its newline, then ``None`` at its end."""
    for line in stream:
        lines.put(line.rstrip("\r\n"))
    lines.put(None)


def _group_options() -> dict:
    """Start the child in its own process group so its worker processes stop with it."""
    if os.name == "nt":
        return {"creationflags": subprocess.CREATE_NEW_PROCESS_GROUP | subprocess.CREATE_NO_WINDOW}
    return {"start_new_session": True}


def _stop(process: subprocess.Popen) -> None:
    """Interrupt the child (it cleans its temporary files), kill it after a grace period."""
    _signal(process, interrupt=True)
    try:
        process.wait(GRACE_SECONDS)
    except subprocess.TimeoutExpired:
        _signal(process, interrupt=False)
        process.wait()


def _signal(process: subprocess.Popen, interrupt: bool) -> None:
    """SIGINT or SIGKILL to the child's process group (terminate/kill on Windows)."""
    if process.poll() is not None:
        return
    if os.name == "nt":
        if interrupt:
            process.terminate()
        else:
            process.kill()
        return
    try:
        os.killpg(process.pid, signal.SIGINT if interrupt else signal.SIGKILL)
    except ProcessLookupError:
        pass


def _identity(path: Path) -> Optional[tuple[int, int]]:
    """Inode and modification time of ``path``, or None when it does not exist."""
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_ino, stat.st_mtime_ns


def _remove_leftovers(output: Path, previous: Optional[tuple[int, int]]) -> None:
    """Remove geocd's temporary files beside ``output`` and ``output`` itself when this run wrote it."""
    for leftover in output.parent.glob(f".{output.stem}.*.part{output.suffix}*"):
        leftover.unlink(missing_ok=True)
    if _identity(output) not in (None, previous):
        output.unlink(missing_ok=True)
