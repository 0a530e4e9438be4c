"""Counter-based random numbers: Philox4x32-10 (Salmon et al., SC'11, "Random123").

Nothing here carries generator state: every 32-bit random word in a run is addressed by

    key     = (seed, replicate)                    two 32-bit words
    counter = (entity, draw, step, stream)         four 32-bit words

where ``replicate`` is the *global* replicate index (``first_replicate + r``), ``step`` the time
step, ``stream`` a :class:`Stream` id naming the phase that draws, ``entity`` the voxel index (for
tissue cells) or agent slot (for CAR-T cells) and ``draw`` a small index for a second or later
block of the same entity in the same phase.  Each block gives four words.  Because a word depends
on nothing but its address, a replicate's trajectory does not depend on which replicates share a
batch, on the backend, or on where a run was resumed.

The CUDA twin is ``kernels/philox.cuh``; :class:`Stream` is mirrored there (a test checks it).

Decisions compare a word with an integer threshold: an event of probability ``p`` (float32) happens
when ``word < threshold(p)`` with ``threshold(p) = floor(float64(p) * 2**32)`` held as uint64, so
``p = 0`` never fires and ``p = 1`` always does (:func:`threshold`).
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np

PHILOX_M0 = np.uint64(0xD2511F53)
PHILOX_M1 = np.uint64(0xCD9E8D57)
PHILOX_W0 = 0x9E3779B9
PHILOX_W1 = 0xBB67AE85
_MASK32 = np.uint64(0xFFFFFFFF)
_SHIFT32 = np.uint64(32)
TWO32 = 4294967296.0


class Stream(IntEnum):
    """Stream ids: one per phase that draws random numbers (mirrored in kernels/philox.cuh)."""

    INIT_TISSUE = 1  #: per voxel: vessel, healthy cell, fibroblast, subclone, antigen levels
    INIT_SEPTA = 2  #: per septum: direction and length
    INIT_PATCHES = 3  #: per patch: centre and subclone
    EXTRAVASATION = 10  #: per vessel voxel: does a circulating CAR-T cell enter here
    ENTRY_PRODUCT = 11  #: per entry voxel: which product's pool the entering CAR-T cell comes from
    TUMOUR_EVENT = 20  #: per tissue voxel, word (voxel & 3) of block (voxel >> 2): the cell's event
    TUMOUR_DIVISION = 21  #: per dividing cell: neighbour, claim priority, antigen loss A and B
    CLEARANCE = 22  #: per dead-cell voxel, word (voxel & 3) of block (voxel >> 2): debris cleared
    CAR_T_ENGAGE = 30  #: per CAR-T slot: target choice, claim priority, recognition, kill
    CAR_T_FATE = 31  #: per CAR-T slot: division, death, daughter's neighbour, claim priority
    CAR_T_MOVE = 32  #: per CAR-T slot, draw = sub-move: move, mode, direction, entry; priority


def _mulhilo(a: np.ndarray, m: np.uint64) -> tuple[np.ndarray, np.ndarray]:
    p = a.astype(np.uint64) * m
    return (p >> _SHIFT32).astype(np.uint32), (p & _MASK32).astype(np.uint32)


def philox4x32(counter, key, rounds: int = 10) -> tuple[np.ndarray, ...]:
    """Philox4x32 with ``rounds`` rounds (10 is the standard).

    Parameters
    ----------
    counter : sequence of 4 uint32 arrays or ints
        ``(c0, c1, c2, c3)``, broadcast together.
    key : sequence of 2 uint32 arrays or ints
        ``(k0, k1)``, broadcast with the counter.
    rounds : int
        Number of rounds (10 is the standard).

    Returns
    -------
    tuple of 4 numpy.ndarray
        uint32 arrays of the broadcast shape.
    """
    c = [np.asarray(w, dtype=np.uint32) for w in counter]
    shape = np.broadcast_shapes(*(w.shape for w in c), *(np.shape(k) for k in key))
    c0, c1, c2, c3 = (np.broadcast_to(w, shape) for w in c)
    k0 = np.broadcast_to(np.asarray(key[0], dtype=np.uint32), shape)
    k1 = np.broadcast_to(np.asarray(key[1], dtype=np.uint32), shape)
    w0 = np.uint32(PHILOX_W0)
    w1 = np.uint32(PHILOX_W1)
    with np.errstate(over="ignore"):  # the key schedule wraps modulo 2**32 by design
        for r in range(rounds):
            if r:
                k0 = k0 + w0
                k1 = k1 + w1
            hi0, lo0 = _mulhilo(c0, PHILOX_M0)
            hi1, lo1 = _mulhilo(c2, PHILOX_M1)
            c0, c1, c2, c3 = hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0
    return c0, c1, c2, c3


def blocks(seed: int, replicate, step: int, stream: Stream, entity, draw: int = 0) -> np.ndarray:
    """Random blocks for many entities: uint32 array of shape ``broadcast(replicate, entity) + (4,)``.

    ``replicate`` and ``entity`` are integer arrays (broadcast together); ``seed``, ``step``,
    ``stream`` and ``draw`` are scalars.
    """
    rep = np.asarray(replicate, dtype=np.uint32)
    ent = np.asarray(entity, dtype=np.uint32)
    out = philox4x32((ent, np.uint32(draw), np.uint32(step), np.uint32(int(stream))),
                     (np.uint32(seed), rep))
    return np.stack(out, axis=-1)


def words(seed: int, replicate, step: int, stream: Stream, entity) -> np.ndarray:
    """One uint32 word per entity: word ``entity & 3`` of block ``entity >> 2``.

    Sharing one Philox block between four neighbouring entities (voxels) makes a quarter of the
    blocks serve a whole lattice.  ``replicate`` and ``entity`` must be 1-D arrays of equal length,
    sorted by (replicate, entity) as ``np.nonzero`` returns them; each distinct block is computed
    once.
    """
    rep = np.asarray(replicate, dtype=np.int64)
    ent = np.asarray(entity, dtype=np.int64)
    if ent.size == 0:
        return np.zeros(0, dtype=np.uint32)
    blk = ent >> 2
    new = np.empty(ent.size, dtype=bool)
    new[0] = True
    np.not_equal(blk[1:], blk[:-1], out=new[1:])
    new[1:] |= rep[1:] != rep[:-1]
    first = np.flatnonzero(new)
    b = blocks(seed, rep[first], step, stream, blk[first])  # (U, 4)
    which = np.cumsum(new) - 1
    return b[which, (ent & 3)]


def threshold(p) -> np.ndarray:
    """uint64 threshold for a float32 probability: an event fires when ``word < threshold(p)``."""
    p32 = np.asarray(p, dtype=np.float32)
    return np.floor(p32.astype(np.float64) * TWO32).astype(np.uint64)


def below(word: np.ndarray, p) -> np.ndarray:
    """Bernoulli decisions: ``word < threshold(p)`` (``p`` float32, broadcast)."""
    return word.astype(np.uint64) < threshold(p)


def choose(word: np.ndarray, n) -> np.ndarray:
    """Uniform choice in ``0 .. n-1`` from a 32-bit word, exactly: ``(word * n) >> 32``."""
    return ((word.astype(np.uint64) * np.asarray(n, dtype=np.uint64)) >> _SHIFT32).astype(np.int64)


def uniform01(word: np.ndarray) -> np.ndarray:
    """float64 in [0, 1) from a word (for initial conditions only, never inside a decision)."""
    return word.astype(np.float64) / TWO32
