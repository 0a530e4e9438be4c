"""Case 1, ``rng``: Philox4x32-10 known answers, uniformity and independence."""

from __future__ import annotations

import math

import numpy as np

from ... import rng
from ..core import CaseResult, Check, TWO32, chi2_check, z_check
from ..phases import NUMPY, Phases


# ---------------------------------------------------------------------------------------------
# 1. random numbers
KAT = [  # Random123 kat_vectors: philox4x32 10 CTR[4] KEY[2] -> OUT[4]
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
     (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)),
]


def case_rng(quick: bool, seed: int, phases: Phases = NUMPY) -> CaseResult:
    res = CaseResult("rng", "Random numbers: Philox4x32-10",
                     "Salmon et al. SC'11 (Random123 kat_vectors); chi-square and correlation tests")
    ok = 0
    for ctr, key, out in KAT:
        got = tuple(int(w) for w in rng.philox4x32(ctr, key))
        ok += got == out
    res.checks.append(Check("known-answer vectors (of 3)", 3, ok, 0, "exact"))

    R, E = (16, 1024) if quick else (64, 4096)
    streams = list(rng.Stream)
    reps = np.arange(R)[:, None]
    ent = np.arange(E)[None, :]
    w = np.stack([rng.blocks(seed, reps, 0, s, ent) for s in streams])  # (S, R, E, 4)
    w_next = rng.blocks(seed, reps, 1, streams[0], ent)  # step + 1
    # uniformity: top 8 bits of every word, 256 bins
    top = (w >> np.uint32(24)).ravel()
    n = top.size
    obs = np.bincount(top, minlength=256)
    res.checks.append(chi2_check(f"uniformity: 256 bins, {n} words", obs, np.full(256, n / 256)))
    # engine's uniform choice among 26 neighbours (choose)
    ch = rng.choose(rng.words(seed, np.zeros(R * E, np.int64), 0, rng.Stream.TUMOUR_DIVISION,
                              np.arange(R * E)), 26)
    res.checks.append(chi2_check(f"choose(word, 26): {ch.size} draws",
                                  np.bincount(ch, minlength=26), np.full(26, ch.size / 26)))
    # independence: Pearson correlation of uniforms at neighbouring addresses; under independence
    # r ~ N(0, 1/n), so SE = 1/sqrt(n)
    u = w.astype(np.float64) / TWO32 - 0.5
    pairs = {"streams (s, s+1)": (u[:-1], u[1:]),
             "replicates (r, r+1)": (u[:, :-1], u[:, 1:]),
             "entities (e, e+1)": (u[:, :, :-1], u[:, :, 1:]),
             "steps (t, t+1)": (u[0], w_next.astype(np.float64) / TWO32 - 0.5)}
    corr = {}
    for name, (a, b) in pairs.items():
        a, b = a.ravel(), b.ravel()
        r = float(np.corrcoef(a, b)[0, 1])
        corr[name] = r
        res.checks.append(z_check(f"correlation across {name}", 0.0, r, 1.0 / math.sqrt(a.size)))
    res.data = {"hist": obs, "n": n, "corr": corr}
    return res
