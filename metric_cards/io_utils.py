"""Atomic file output: an interrupted run leaves the old file (or nothing), never half a file.

Every CLI that writes a result goes through `atomic_writer` / `atomic_directory`: output goes to a
temporary sibling (same directory, so the final `os.replace` is a rename on one filesystem and
atomic on POSIX) and only replaces the target once the block finished without an exception.
On any exception, KeyboardInterrupt and SystemExit included, the temporary is removed.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

try:  # orjson: ~5x faster than json for the JSONL rows the data scripts write
    import orjson
except ImportError:  # pragma: no cover - orjson is optional; stdlib json gives the same output
    orjson = None  # type: ignore[assignment]

__all__ = [
    "atomic_directory",
    "atomic_writer",
    "dump_json_line",
    "exit_cleanly_on_sigterm",
]


def _read_umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


# Read once at import: os.umask can only be read by setting it, which races with other threads.
_UMASK = _read_umask()


def _temp_name(path: Path) -> str:
    # A dot-prefixed name so a glob like *.jsonl never picks a temporary up.
    return f".{path.name}."


@contextlib.contextmanager
def atomic_writer(
    path: str | os.PathLike[str],
    mode: str = "w",
    *,
    encoding: str | None = "utf-8",
    newline: str | None = None,
    fsync: bool = True,
) -> Iterator[IO[Any]]:
    """Open a temporary file beside `path`; on success rename it onto `path`.

    `mode` is "w" (text) or "wb" (binary). The parent directory must exist. If the block raises
    (KeyboardInterrupt and SystemExit too) the temporary is deleted and `path` is left untouched.

        with atomic_writer("out.jsonl") as f:
            f.write(...)
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_writer mode must be 'w' or 'wb', not {mode!r}")
    target = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=_temp_name(target), suffix=".tmp", dir=target.parent)
    try:
        if mode == "wb":
            handle: IO[Any] = os.fdopen(fd, "wb")
        else:
            handle = os.fdopen(fd, "w", encoding=encoding, newline=newline)
        with handle:
            yield handle
            handle.flush()
            if fsync:
                # Without it a crash right after the rename can leave an empty file on some
                # filesystems; one fsync per output file costs nothing measurable.
                os.fsync(handle.fileno())
        # mkstemp creates 0600 files; a finished output gets the usual 0666 & ~umask.
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a fresh temporary directory beside `path`; on success it becomes `path`.

    For outputs that are directories (a `datasets` save_to_disk). A directory cannot be renamed
    over a non-empty one, so an existing `path` is first renamed aside and removed afterwards;
    the window in which `path` is missing is two renames long.
    """
    target = Path(path)
    parent = target.parent
    tmp = Path(tempfile.mkdtemp(prefix=_temp_name(target), suffix=".tmp", dir=parent))
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_UMASK)  # mkdtemp makes 0700
        if target.exists() or target.is_symlink():
            old = Path(tempfile.mkdtemp(prefix=_temp_name(target), suffix=".old", dir=parent))
            os.replace(target, old / "previous")
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def dump_json_line(obj: Any) -> bytes:
    """One JSONL row as UTF-8 bytes with its newline; non-ASCII kept as is, as the env writes."""
    if orjson is not None:
        return orjson.dumps(obj, option=orjson.OPT_APPEND_NEWLINE)
    return (json.dumps(obj, ensure_ascii=False) + "\n").encode("utf-8")


def exit_cleanly_on_sigterm() -> None:
    """Turn SIGTERM into SystemExit(143) so `finally` blocks (and atomic_writer) clean up.

    Python's default SIGTERM action kills the process without unwinding, which would leave the
    temporary files behind. Call it once at the start of a CLI's main.
    """

    def _handler(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    if hasattr(signal, "SIGTERM"):
        with contextlib.suppress(ValueError):  # not in the main thread: leave the default
            signal.signal(signal.SIGTERM, _handler)


class JsonlGroupWriter:
    """The env's rollout output: one complete JSON line per group, flushed at once, so a reader
    (or a run killed mid-way) never leaves half a group. The file is created by the first write:
    a run that fails or is interrupted before its first group leaves no empty file behind.

    Model text can hold lone surrogates ("\\ud800", from a JSON escape), which UTF-8 cannot
    encode; such a line is written with ASCII escapes instead (the same JSON value).
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = str(path)
        self.lines = 0
        self._file: IO[str] | None = None

    @classmethod
    def beside_existing(cls, path: str | os.PathLike[str]) -> JsonlGroupWriter:
        """A writer for `path`, or for `name_1.jsonl`, `name_2.jsonl`, ... when it exists (as
        atroposlib names its outputs): an earlier run's file is never overwritten."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        candidate, counter = target, 1
        while candidate.exists() or candidate.is_symlink():
            candidate = target.with_stem(f"{target.stem}_{counter}")
            counter += 1
        return cls(candidate)

    def write(self, group: Any) -> None:
        line = json.dumps(group, ensure_ascii=False, separators=(",", ":"))
        try:
            line.encode("utf-8")
        except UnicodeEncodeError:
            line = json.dumps(group, ensure_ascii=True, separators=(",", ":"))
        if self._file is None:
            # "x": fail rather than overwrite a file that appeared since the name was chosen.
            self._file = open(self.path, "x", encoding="utf-8")  # noqa: SIM115 - closed in close()
        self._file.write(line + "\n")
        self._file.flush()
        self.lines += 1

    def close(self) -> None:
        if self._file is not None and not self._file.closed:
            self._file.close()
