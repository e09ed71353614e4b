"""Atomic file output: an interrupted run leaves the old file (or nothing), never half a file.

Every CLI that writes a result goes through `atomic_writer` / `atomic_directory`: output goes to a
temporary sibling (same directory, so the final `os.replace` is a rename on one filesystem and
atomic on POSIX) and only replaces the target once the block finished without an exception.
On any exception, KeyboardInterrupt and SystemExit included, the temporary is removed;
`exit_cleanly_on_sigterm` makes SIGTERM and SIGHUP such an exception.

A replaced file keeps its permission bits; a new one gets 0666 minus the umask (never
mkstemp's 0600). `same_file` tells whether an output is one of the inputs (same path, a
symlink or a hard link to it), which every CLI refuses.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import stat
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

__all__ = [
    "atomic_directory",
    "atomic_writer",
    "exit_cleanly_on_sigterm",
    "same_file",
]


def _read_umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


# Read once at import: os.umask can only be read by setting it, which races with other threads.
_UMASK = _read_umask()


def same_file(a: str | os.PathLike[str], b: str | os.PathLike[str] | int) -> bool:
    """Whether `a` names the same file as `b` (a path, or an open file descriptor).

    Existing files are compared by device and inode, so a symlink or a hard link to the input
    counts as the input; a path that does not exist yet is compared by its resolved form.
    """
    try:
        first = os.stat(a)
        second = os.fstat(b) if isinstance(b, int) else os.stat(b)
    except OSError:
        if isinstance(b, int):
            return False
        return Path(a).resolve() == Path(b).resolve()
    return (first.st_dev, first.st_ino) == (second.st_dev, second.st_ino)


def _output_mode(target: Path, default: int) -> int:
    # A replaced file keeps its permission bits; a new one gets the usual mode minus the umask.
    try:
        return stat.S_IMODE(os.stat(target).st_mode)
    except OSError:
        return default & ~_UMASK


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
        os.chmod(tmp, _output_mode(target, 0o666))  # mkstemp creates 0600 files
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


_AT_FDCWD, _RENAME_EXCHANGE = -100, 2


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths (Linux renameat2); False where that is not available."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):  # glibc older than 2.28, musl: no wrapper
        return False
    status = renameat2(
        _AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), ctypes.c_uint(_RENAME_EXCHANGE)
    )
    return bool(status == 0)  # EINVAL/ENOSYS (a filesystem without it): use two renames


@contextlib.contextmanager
def atomic_directory(
    path: str | os.PathLike[str], may_replace: Callable[[Path], bool]
) -> Iterator[Path]:
    """Yield a fresh temporary directory beside `path`; on success it becomes `path`.

    For outputs that are directories (a `datasets` save_to_disk). An existing `path` is only
    replaced when `may_replace(path)` says so, checked again right before the swap (a
    FileExistsError otherwise, and the temporary is removed). The two directories are swapped
    in one step where the system can (Linux renameat2 RENAME_EXCHANGE), so `path` is always
    either the old or the new directory; elsewhere the old one is renamed aside first, leaving
    `path` missing for the time between two renames. The old directory is then removed.
    """
    target = Path(path)
    parent = target.parent
    tmp = Path(tempfile.mkdtemp(prefix=_temp_name(target), suffix=".tmp", dir=parent))
    try:
        yield tmp
        os.chmod(tmp, _output_mode(target, 0o777))  # mkdtemp makes 0700
        if target.exists() or target.is_symlink():
            if target.is_symlink() or not may_replace(target):
                raise FileExistsError(f"will not replace {target}: not an output of ours")
            if _exchange(tmp, target):
                shutil.rmtree(tmp, ignore_errors=True)  # it now holds the old directory
                return
            old = Path(tempfile.mkdtemp(prefix=_temp_name(target), suffix=".old", dir=parent))
            os.replace(target, old / "previous")
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def exit_cleanly_on_sigterm() -> None:
    """Turn SIGTERM and SIGHUP into SystemExit(128 + signal) so `finally` blocks clean up.

    Python's default action for both kills the process without unwinding, which would leave the
    temporary files behind. Call it once at the start of a CLI's main. (SIGINT already raises
    KeyboardInterrupt.)
    """

    def _handler(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    for name in ("SIGTERM", "SIGHUP"):
        number = getattr(signal, name, None)
        if number is not None:
            with contextlib.suppress(ValueError):  # not in the main thread: leave the default
                signal.signal(number, _handler)
