"""Keeping a result file readable after a write error: closing an HDF5 handle without writing
another byte, clearing the superblock's consistency flags, and short one-line reasons."""

from __future__ import annotations

import os
import re
from pathlib import Path

import h5py


def _lookup3(data: bytes) -> int:
    """Bob Jenkins' lookup3 ``hashlittle`` with initval 0: the HDF5 metadata checksum."""
    M = 0xFFFFFFFF
    rot = lambda x, k: ((x << k) | (x >> (32 - k))) & M
    n = len(data)
    a = b = c = (0xDEADBEEF + n) & M
    i = 0
    word = lambda j: int.from_bytes(data[j:j + 4].ljust(4, b"\0"), "little")
    while n - i > 12:
        a, b, c = (a + word(i)) & M, (b + word(i + 4)) & M, (c + word(i + 8)) & M
        a = (a - c) & M; a ^= rot(c, 4); c = (c + b) & M  # noqa: E702
        b = (b - a) & M; b ^= rot(a, 6); a = (a + c) & M  # noqa: E702
        c = (c - b) & M; c ^= rot(b, 8); b = (b + a) & M  # noqa: E702
        a = (a - c) & M; a ^= rot(c, 16); c = (c + b) & M  # noqa: E702
        b = (b - a) & M; b ^= rot(a, 19); a = (a + c) & M  # noqa: E702
        c = (c - b) & M; c ^= rot(b, 4); b = (b + a) & M  # noqa: E702
        i += 12
    if n == i:
        return c
    a, b, c = (a + word(i)) & M, (b + word(i + 4)) & M, (c + word(i + 8)) & M
    c ^= b; c = (c - rot(b, 14)) & M  # noqa: E702
    a ^= c; a = (a - rot(c, 11)) & M  # noqa: E702
    b ^= a; b = (b - rot(a, 25)) & M  # noqa: E702
    c ^= b; c = (c - rot(b, 16)) & M  # noqa: E702
    a ^= c; a = (a - rot(c, 4)) & M  # noqa: E702
    b ^= a; b = (b - rot(a, 14)) & M  # noqa: E702
    c ^= b; c = (c - rot(b, 24)) & M  # noqa: E702
    return c


def clear_status_flags(path: Path) -> bool:
    """Clear the file-consistency flags of a version 2/3 superblock (what ``h5clear -s`` does).

    A writer abandoned after a write error leaves them set ("file is already open for write");
    the file content is that of its last flush.  Also extends a file shorter than its recorded
    end of allocation (sparse, no disk space).  Returns False, changing nothing, when the
    superblock is not one this function knows (its checksum must verify).
    """
    with open(path, "r+b") as fh:
        head = fh.read(12)
        if len(head) < 12 or head[:8] != b"\x89HDF\r\n\x1a\n" or head[8] not in (2, 3):
            return False
        o = head[9]
        rest = fh.read(4 * o + 4)
        sb = bytearray(head + rest)
        if len(sb) != 16 + 4 * o or int.from_bytes(sb[-4:], "little") != _lookup3(bytes(sb[:-4])):
            return False
        eoa = int.from_bytes(sb[12 + 2 * o:12 + 3 * o], "little")
        sb[11] = 0
        sb[-4:] = _lookup3(bytes(sb[:-4])).to_bytes(4, "little")
        fh.seek(0)
        fh.write(bytes(sb))
        fh.flush()
        if os.fstat(fh.fileno()).st_size < eoa:
            fh.truncate(eoa)
    return True


def abandon(f: h5py.File) -> None:
    """Close ``f`` without writing another byte to the file: its descriptor is first pointed at
    an anonymous in-memory file, so HDF5 closes cleanly (its last writes land there) and the
    file on disk stays exactly as it was at its last successful flush."""
    try:
        fd = f.id.get_vfd_handle()
        sink = os.memfd_create("gpusim-abandoned")
        try:
            os.dup2(sink, fd)
        finally:
            os.close(sink)
    except Exception:  # pragma: no cover - no descriptor to replace; close as best we can
        pass
    try:
        f.close()
    except Exception:
        pass


def first_line(exc: BaseException) -> str:
    """An exception's message on one line (HDF5 messages span several)."""
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def reason(exc: BaseException) -> str:
    """What went wrong in an I/O error, short: the system's message (from HDF5's long text)."""
    m = re.search(r"errno = (\d+), error message = '([^']*)'", str(exc))
    if isinstance(exc, OSError) and exc.strerror and not m:
        return exc.strerror
    if m:
        return f"{m.group(2)} (errno {m.group(1)})"
    return first_line(exc)


def recover_flags(path: Path) -> None:
    """:func:`clear_status_flags` of ``path``, ignoring a file that cannot be opened."""
    try:
        clear_status_flags(path)
    except OSError:
        pass


def record_failure(path: Path, error: str, ended_utc: str) -> bool:
    """Set ``status="failed"``, ``ended_utc`` and ``error`` in the closed file ``path`` (without
    the HDF5 file lock).  Returns whether that worked; on a failed write the handle is abandoned
    and the consistency flags cleared, so the file stays readable as of its last flush."""
    try:
        g = h5py.File(path, "r+", locking=False)
    except OSError:
        return False
    try:
        g.attrs["status"] = "failed"
        g.attrs["ended_utc"] = ended_utc
        g.attrs["error"] = error
        g.close()
    except (OSError, RuntimeError):
        abandon(g)
        recover_flags(path)
        return False
    return True
