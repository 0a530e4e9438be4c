"""Where a result file may be written, and who is writing it: output-path checks, the one-writer
lock (``.<name>.lock`` next to the file), the check whether a file's writer process still runs,
and the atomic move of a newly built file into place."""

from __future__ import annotations

import errno
import fcntl
import os
import socket
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from gpusim.errors import OutputError

# How long a new writer retries the output lock (a reader probing it holds it for microseconds).
_LOCK_WAIT_S = 0.5


def writer_alive(attrs: Mapping[str, Any]) -> bool:
    """True if the process that created the file (root attrs writer_host/writer_pid) still runs
    on this host.  A different host cannot be checked, and counts as not alive."""
    pid = attrs.get("writer_pid")
    if attrs.get("writer_host") != socket.gethostname() or pid is None or int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


_HELD = (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES)  # flock's "another holds it"


def lock_path(path: str | os.PathLike) -> Path:
    """The lock file of the writer of ``path``: ``.<name>.lock`` in the same directory."""
    path = Path(path)
    return path.parent / f".{path.name}.lock"


def writer_active(path: str | os.PathLike) -> bool:
    """True while a live :class:`ResultWriter` (any process on this host, or on a file system
    with working ``flock``) holds the lock of ``path``.  Takes the lock for a moment to test it."""
    try:
        fd = os.open(lock_path(path), os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        return exc.errno in _HELD  # else a file system without flock: cannot tell, say no
    finally:
        os.close(fd)  # also releases a lock taken just now
    return False


def acquire_lock(path: Path) -> int:
    """Take the writer lock of ``path`` (an ``flock`` on its lock file); returns the descriptor.

    OutputError if another live writer holds it.  The lock file is removed when the writer
    releases it; the identity check after locking covers a writer that removed it meanwhile.
    """
    lp = lock_path(path)
    deadline = time.monotonic() + _LOCK_WAIT_S
    while True:
        try:
            fd = os.open(lp, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise OutputError(f"cannot create the lock file '{lp}' of output '{path}': "
                              f"{exc.strerror or exc}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in _HELD:  # a file system without flock: write without the lock
                return fd
            os.close(fd)
            if time.monotonic() > deadline:
                raise OutputError(f"output file '{path}' is being written by another gpusim process "
                                  f"(lock '{lp}'); wait for it or choose another output") from None
            time.sleep(0.02)
            continue
        try:
            same = os.fstat(fd).st_ino == os.stat(lp).st_ino
        except OSError:
            same = False
        if same:
            return fd
        os.close(fd)  # the holder removed the lock file before we locked it: take a fresh one


def release_lock(path: Path, fd: int | None) -> None:
    """Release the writer lock of ``path`` taken by :func:`acquire_lock` (descriptor ``fd``; None:
    none held) and remove its lock file."""
    if fd is None:
        return
    try:
        lock_path(path).unlink(missing_ok=True)
    except OSError:
        pass
    os.close(fd)



def check_output_path(path: str | os.PathLike) -> None:
    """OutputError for an output name that cannot be a file: empty, a directory name, or a
    dangling symbolic link."""
    raw = os.fspath(path)
    path = Path(raw)
    if not raw.strip() or raw.endswith(("/", os.sep)) or path.name in ("", ".", ".."):
        raise OutputError(f"output path {raw!r} is not a file name; give one such as 'results/run.h5'")
    if path.is_symlink() and not path.exists():
        raise OutputError(f"output path '{path}' is a dangling symbolic link (to '{os.readlink(path)}'); "
                          "remove it or choose another output")



def check_new_output(path: Path, force: bool) -> Path:
    """OutputError unless ``path`` can become a new result file: a file name, not existing
    (unless ``force``), not a directory, in an existing writable directory.  Returns that
    directory."""
    check_output_path(path)
    if path.exists() and not force:
        raise OutputError(f"output file '{path}' exists; pass --force to overwrite it")
    if path.is_dir():
        raise OutputError(f"output path '{path}' is a directory")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise OutputError(f"output directory '{parent}' does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"output directory '{parent}' is not writable")
    return parent


def move_into_place(tmp: Path, path: Path, force: bool) -> None:
    """Move the built file ``tmp`` to ``path`` atomically; without ``force`` never over an
    existing file (OutputError if one appeared meanwhile)."""
    if force:
        os.replace(tmp, path)
        return
    try:
        os.link(tmp, path)  # atomic, fails if the target appeared meanwhile
    except FileExistsError:
        raise OutputError(f"output file '{path}' exists; pass --force to overwrite it") from None
    except OSError:
        # File system without hard links: check-then-rename.
        if path.exists():
            raise OutputError(f"output file '{path}' exists; pass --force to overwrite it") from None
        os.replace(tmp, path)
    else:
        tmp.unlink()
