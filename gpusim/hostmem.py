"""The host allocator's settings for a simulation process (docs/memory.md, "Freed memory is
kept"): glibc hands freed blocks back to the system and faults them in again on their next
allocation, which a NumPy step, allocating and freeing temporaries of a few MB many times, pays
for on every step.  No gpusim imports: the engine calls it from ``Simulation``.
"""

from __future__ import annotations

import os

#: the C allocator's settings :func:`keep_freed_memory` asks for (bytes): blocks up to this size
#: come from the heap, and up to twice it stays free at the heap's top before it is handed back
HEAP_BLOCK_MAX = 32 << 20
_kept: bool | None = None


def keep_freed_memory() -> bool:
    """Ask the C allocator (glibc's ``mallopt``) to serve blocks of up to :data:`HEAP_BLOCK_MAX`
    from its heap and keep up to twice that free there, instead of handing freed temporaries back
    to the system.  A NumPy step allocates and frees arrays of a few MB many times; each block
    handed back is faulted in and zeroed again when it is next allocated (about 10 000 page faults
    and 20-28 ms of system time a step at 75^3, 10-13 % of the step; about 45 with this).
    Process-wide and once; leaves the allocator alone where the C library is not glibc or the
    user has set ``MALLOC_MMAP_THRESHOLD_`` or ``MALLOC_TRIM_THRESHOLD_``.  Returns whether the
    settings are in force."""
    global _kept
    if _kept is None:
        _kept = False
        if not any(k in os.environ for k in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")):
            try:
                import ctypes

                mallopt = ctypes.CDLL("libc.so.6").mallopt
            except (OSError, AttributeError):
                return False
            m_trim_threshold, m_mmap_threshold = -1, -3   # glibc's <malloc.h>
            _kept = bool(mallopt(m_mmap_threshold, HEAP_BLOCK_MAX)) and bool(
                mallopt(m_trim_threshold, 2 * HEAP_BLOCK_MAX))
    return _kept
