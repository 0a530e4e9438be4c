"""Philox4x32-10 against the Random123 known-answer vectors, and the decision helpers."""

import numpy as np
import pytest

from gpusim import rng
from gpusim.rng import Stream

# Random123 kat_vectors: philox4x32_10
KAT = [
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
     (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)),
]


@pytest.mark.parametrize("ctr,key,expected", KAT)
def test_known_answer_vectors(ctr, key, expected):
    out = rng.philox4x32(ctr, key)
    assert tuple(int(x) for x in out) == expected


def test_vectorised_equals_scalar():
    ent = np.arange(50)
    b = rng.blocks(7, 3, 11, Stream.TUMOUR_EVENT, ent, draw=2)
    for e in (0, 17, 49):
        one = rng.philox4x32((e, 2, 11, int(Stream.TUMOUR_EVENT)), (7, 3))
        assert tuple(int(x) for x in b[e]) == tuple(int(x) for x in one)


def test_words_take_word_v_and_3_of_block_v_shr_2():
    rep = np.array([0, 0, 0, 0, 0, 2, 2])
    ent = np.array([0, 1, 3, 4, 9, 4, 5])
    w = rng.words(5, rep, 8, Stream.CLEARANCE, ent)
    for r, e, x in zip(rep, ent, w):
        blk = rng.blocks(5, r, 8, Stream.CLEARANCE, e >> 2)
        assert x == blk[e & 3]


def test_address_components_all_matter():
    base = rng.blocks(1, 0, 0, Stream.CAR_T_MOVE, 0)
    variants = [rng.blocks(2, 0, 0, Stream.CAR_T_MOVE, 0), rng.blocks(1, 1, 0, Stream.CAR_T_MOVE, 0),
                rng.blocks(1, 0, 1, Stream.CAR_T_MOVE, 0), rng.blocks(1, 0, 0, Stream.CAR_T_FATE, 0),
                rng.blocks(1, 0, 0, Stream.CAR_T_MOVE, 1), rng.blocks(1, 0, 0, Stream.CAR_T_MOVE, 0, draw=1)]
    for v in variants:
        assert not np.array_equal(base, v)


def test_stream_ids_unique():
    vals = [int(s) for s in Stream]
    assert len(vals) == len(set(vals))
    assert all(0 < v < 2**32 for v in vals)


def test_threshold_edges():
    w = np.array([0, 1, 2**31, 2**32 - 1], dtype=np.uint32)
    assert not rng.below(w, np.float32(0)).any()
    assert rng.below(w, np.float32(1)).all()
    assert rng.threshold(np.float32(0.5)) == 2**31
    # p is rounded to float32 first, then floor(p * 2^32)
    assert rng.threshold(0.1) == int(np.floor(float(np.float32(0.1)) * 2**32))


def test_choose_is_exact_and_in_range():
    w = np.array([0, 2**32 - 1, 2**31], dtype=np.uint32)
    assert list(rng.choose(w, 3)) == [0, 2, 1]
    # every residue of n = 7 gets floor or ceil of 2^32/7 words: check on a strided sample
    words = (np.arange(0, 2**32, 4099, dtype=np.uint64)).astype(np.uint32)
    c = np.bincount(rng.choose(words, 7), minlength=7)
    assert c.max() - c.min() <= 1


def test_uniformity_chi_square():
    # 2^18 words in 256 bins: chi-square with 255 dof; the 1 - 1e-6 quantile is about 401
    # (Wilson–Hilferty), so a correct generator fails this with probability 1e-6.
    w = rng.blocks(3, np.arange(4)[:, None], 0, Stream.TUMOUR_EVENT, np.arange(2**14)[None, :]).ravel()
    counts = np.bincount(w >> 24, minlength=256)
    e = w.size / 256
    chi2 = ((counts - e) ** 2 / e).sum()
    assert chi2 < 401
