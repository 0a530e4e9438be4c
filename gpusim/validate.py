"""``gpusim validate``: the engine's stochastic machinery against exact and published answers.

Every case drives the engine's own code (``gpusim.rng``, ``tumour_phase``, ``car_t_phase``,
``FieldSolver``) on a state built for the purpose, and compares what it measures with a reference
computed independently here from the *scenario* values (never from the engine's derived
parameter objects, so that a planted error in the engine shows as a failure):

1. ``rng``: Philox4x32-10 known-answer vectors (Random123 ``kat_vectors``); uniformity
   (chi-square) and independence (correlation) across streams, replicates, entities and steps.
2. ``birth_death``: tumour division and apoptosis only, room to spare (lineages stirred within
   their blocks between steps, see ``stir``): a Galton-Watson process per step; mean, variance,
   distribution and extinction against its exact law (probability generating function iterated
   on the unit circle), extinction against the continuous-time limit within the stated
   discretisation error.
3. ``antigen_loss``: pure birth with antigen loss: P(no antigen-negative cell | N) =
   (1 - mu)^(N - 1) exactly, loss events given D divisions ~ Binomial(D, mu), the negative-cell
   count against its exact law (pgf) for one founder and for cultures of 64, and a
   Luria-Delbrück fluctuation analysis (Ma-Sandri-Sarkar likelihood) recovering m = mu x D.
4. ``motility``: CAR-T random walk: mean squared displacement, chemotactic drift and the time to
   cross a slab of stroma against exact Markov-chain values of the lattice walk.
5. ``fields``: steady oxygen in a slab and a spheroid against the exact discrete solution and the
   analytic profiles (first-order uptake: cosh and sinh(r)/r; zero-order consumption: the
   discrete obstacle problem and Greenspan's necrotic radius); second-order convergence.
6. ``well_mixed``: ensemble means of tumour, effector and memory CAR-T counts against the
   explicit-Euler solution of the CARTmath ODE (Barros et al. 2021): growth, expansion and death
   alone (exact Galton-Watson means), then with killing, memory conversion, reactivation and
   memory death in a stirred lattice (against the engine's mean-field map and CARTmath).

False-failure budget: ``ALPHA_SUITE`` = 1e-3 for the whole suite, Bonferroni-split over at most
``STAT_CHECKS`` statistical checks: each two-sided z-test uses z = Phi^-1(1 - alpha/2) with
alpha = ALPHA_SUITE / STAT_CHECKS, each chi-square test the (1 - alpha) quantile.  Standard errors
come from the exact reference law where it is known, else from the sample.  Deterministic checks
(known answers, numerical solutions) carry a stated numerical tolerance.  See docs/validation.md.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from statistics import NormalDist
from typing import Callable

import numpy as np

from . import rng
from .analysis import chi2_sf
from .errors import GpusimError

ALPHA_SUITE = 1e-3  #: probability that a correct engine fails any check of the full suite
STAT_CHECKS = 32  #: upper bound on the number of statistical checks in the suite (Bonferroni)
ALPHA_CHECK = ALPHA_SUITE / STAT_CHECKS
Z_CHECK = NormalDist().inv_cdf(1.0 - ALPHA_CHECK / 2.0)  # ~ 4.17
Z95 = NormalDist().inv_cdf(0.975)
TWO32 = rng.TWO32
F32 = np.float32


class ValidationError(GpusimError):
    """Bad arguments to the validation suite (unknown case name, bad figure directory)."""


# ---------------------------------------------------------------------------------------------
# results
@dataclass
class Check:
    """One comparison.  ``kind``: "stat" (tolerance = Z_CHECK x SE, or a chi-square quantile),
    "exact" (bitwise / integer equality), "numeric" (a stated numerical tolerance) or "info"
    (shown, not part of the verdict)."""

    name: str
    expected: float
    measured: float
    tol: float
    kind: str = "stat"
    se: float = float("nan")  # standard error of measured (the +- shown is 1.96 se)
    passed: bool | None = None
    note: str = ""

    def __post_init__(self):
        if self.passed is None:
            if self.kind == "exact":
                self.passed = bool(self.measured == self.expected)
            else:
                self.passed = bool(abs(self.measured - self.expected) <= self.tol)
        if self.kind == "info":
            self.passed = True


@dataclass
class CaseResult:
    name: str
    title: str
    reference: str
    checks: list[Check] = field(default_factory=list)
    figure: str | None = None
    seconds: float = 0.0
    data: dict = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)



def _chi2_quantile(df: int, alpha: float) -> float:
    """Upper (1 - alpha) quantile of chi-square(df): bisection on Q(df/2, x/2) = alpha."""
    lo, hi = 0.0, df + 10.0 * math.sqrt(2 * df) + 100.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if chi2_sf(mid, df) > alpha:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def _chi2_check(name: str, observed: np.ndarray, expected: np.ndarray, note: str = "") -> Check:
    """Pearson chi-square goodness of fit; bins are merged left to right until each expects >= 5."""
    o, e = _merge_bins(np.asarray(observed, float), np.asarray(expected, float), 5.0)
    x2 = float(((o - e) ** 2 / e).sum())
    df = o.size - 1
    q = _chi2_quantile(df, ALPHA_CHECK)
    return Check(name, float(df), x2, q - df, "stat", se=math.sqrt(2 * df),
                 passed=bool(x2 <= q), note=note or f"chi-square, {df} df; pass if <= {q:.1f}")


def _merge_bins(o, e, emin):
    oo, ee, co, ce = [], [], 0.0, 0.0
    for a, b in zip(o, e):
        co += a
        ce += b
        if ce >= emin:
            oo.append(co)
            ee.append(ce)
            co = ce = 0.0
    if ce > 0 or co > 0:
        if ee:
            oo[-1] += co
            ee[-1] += ce
        else:
            oo.append(co)
            ee.append(ce)
    return np.array(oo), np.array(ee)


def _z_check(name: str, expected: float, measured: float, se: float, note: str = "",
             extra_tol: float = 0.0) -> Check:
    return Check(name, float(expected), float(measured), Z_CHECK * se + extra_tol, "stat",
                 se=float(se), note=note)


def _p_step(rate_per_min: float, dt_min: float) -> float:
    """The exact per-step probability the engine uses for a rate: threshold(float32(1-exp(-r dt)))
    / 2^32 (gpusim.rng decision rule)."""
    return float(rng.threshold(F32(-np.expm1(-rate_per_min * dt_min)))) / TWO32


def _p_exact(p: float) -> float:
    """The exact probability of ``word < threshold(float32(p))``."""
    return float(rng.threshold(F32(p))) / TWO32


def _scenario(overrides: dict):
    from .scenario import load_scenario

    return load_scenario({"scenario": {"name": "validate"}}, overrides)


# ---------------------------------------------------------------------------------------------
# how the cases advance the engine: the NumPy phase functions, or the CuPy backend's kernels
class Phases:
    """The engine's phases as the cases call them, each advancing an engine State in place: the
    NumPy reference engine's own phase functions and field solver."""

    name = "numpy"

    def tumour(self, sc, st, tp, seed: int, step: int, events: dict) -> None:
        from .model import tumour as tumour_mod

        tumour_mod.tumour_phase(st, tp, seed, step, events)

    def car_t(self, sc, st, cp, seed: int, step: int, events: dict) -> None:
        from .model import car_t as car_t_mod

        car_t_mod.car_t_phase(st, cp, seed, step, events)

    def fields(self, sc, st) -> tuple[int, int]:
        """FieldsPhase.solve on ``st``; returns (oxygen sweeps of replicate 0, max_iter)."""
        from .model.environment import FieldsPhase

        fp = FieldsPhase(sc, st.kind.shape[0])
        fp.solve(st)
        return int(fp.iterations["oxygen"][0]), fp.o2.max_iter

    def solve(self, fs, c, a, s, fixed, fixed_value) -> np.ndarray:
        return fs.solve(c, a, s, fixed, fixed_value)


class DevicePhases(Phases):
    """The same calls on a device backend (``cupy``, or ``emulated``: the same device step with
    the kernels compiled for the host): the State is uploaded into a device Simulation, the
    backend's own phases (``gpusim.backends.cupy_backend.DevicePhases``) run their kernels, and
    the result is copied back into the State, so the cases (stirring included) run unchanged.  The
    parameters come from the scenario (as ``TumourParams`` / ``CarTParams.from_scenario`` of the
    NumPy path); the seed and step are the call's."""

    def __init__(self, runtime):
        self.rt = runtime
        self.name = runtime.name
        self._key = self._cached = None

    def _sim(self, sc, st, seed: int, step: int):
        """A device Simulation of ``sc`` holding ``st`` (built once per scenario and shape)."""
        from .backends.cupy_backend import device_phases
        from .engine import Simulation

        key = (id(sc), st.kind.shape, st.t_state.shape, int(st.replicates[0]))
        if key != self._key:
            self._cached = Simulation(sc, replicates=st.kind.shape[0],
                                      first_replicate=int(st.replicates[0]), state=st,
                                      phases=device_phases(self.rt))
            self._key = key
        sim = self._cached
        sim.state = st
        sim.seed = int(seed)
        sim.work.step = int(step)
        return sim

    @staticmethod
    def _back(sim, st, events: dict, ev: dict) -> None:
        from .engine import STATE_ARRAYS

        new = sim.state
        for k in STATE_ARRAYS:
            np.copyto(getattr(st, k), getattr(new, k))
        for k, v in ev.items():
            if v.any():
                events[k] = events.get(k, 0) + v

    def _phase(self, name, sc, st, seed, step, events) -> None:
        from .engine import EVENTS

        sim = self._sim(sc, st, seed, step)
        ev = {k: np.zeros(st.kind.shape[0], np.int64) for k in EVENTS}
        getattr(sim.phases, name)(sim.work, ev)
        self._back(sim, st, events, ev)

    def tumour(self, sc, st, tp, seed, step, events):
        self._phase("tumour", sc, st, seed, step, events)

    def car_t(self, sc, st, cp, seed, step, events):
        self._phase("car_t", sc, st, seed, step, events)

    def fields(self, sc, st):
        sim = self._sim(sc, st, sc["run.seed"], st.step)
        sim.phases.fields(sim.work)
        self._back(sim, st, {}, {})
        return int(sim.fields.iterations["oxygen"][0]), sim.fields.o2.max_iter

    def solve(self, fs, c, a, s, fixed, fixed_value):
        from .backends.cupy_backend import device_solve

        xp = self.rt.xp
        cd = xp.asarray(c)
        fx = None if fixed is None else xp.asarray(np.asarray(fixed, np.uint8))
        iters = device_solve(self.rt, fs, cd, xp.asarray(np.asarray(a, np.float32)),
                             xp.asarray(np.asarray(s, np.float32)), fx, fixed_value)
        np.copyto(c, cd.get())
        return iters


PHASES: Phases = Phases()


_TEMPLATE: dict = {}


def _state_template():
    """dtype, kind (lattice / agent / per replicate) and fill value of every state array, read off
    a tiny engine Simulation, so that states built here follow the engine's layout."""
    if not _TEMPLATE:
        from .engine import STATE_ARRAYS, Simulation

        sc = _scenario({"domain.x_voxels": 3, "domain.y_voxels": 3, "domain.z_voxels": 1,
                        "tumour.radius_um": 0.0, "healthy.cell_fraction": 0.0,
                        "vessels.density_normal_fraction": 0.0, "vessels.density_tumour_fraction": 0.0,
                        "car_t.capacity_per_replicate": 2, "delivery.dose_cells": 0.0})
        st = Simulation(sc, replicates=1).state
        lat = st.kind.shape
        for k in STATE_ARRAYS:
            a = np.asarray(getattr(st, k))
            if a.shape == lat:
                _TEMPLATE[k] = ("lattice", a.dtype, 0)
            elif a.ndim == 2 and a.shape[1] == st.t_state.shape[1]:
                _TEMPLATE[k] = ("agent", a.dtype, a[0, -1])  # padding value of an empty slot
            else:
                _TEMPLATE[k] = ("replicate", a.dtype, 0, a.shape[1:])
    return _TEMPLATE


def _blank_state(shape, R: int, capacity: int = 1, o2: float = 38.0, glucose: float = 5.0,
                 first: int = 0):
    """An engine State with no cells, no ECM, no signals, uniform oxygen and glucose."""
    from .engine import State

    arrays = {}
    for k, spec in _state_template().items():
        if spec[0] == "lattice":
            arrays[k] = np.zeros((R,) + tuple(shape), spec[1])
        elif spec[0] == "agent":
            arrays[k] = np.full((R, capacity), spec[2], spec[1])
        else:
            arrays[k] = np.zeros((R,) + spec[3], spec[1])
    arrays["o2"][:] = o2
    arrays["glucose"][:] = glucose
    return State(arrays, np.arange(first, first + R, dtype=np.int64), 0)


# ---------------------------------------------------------------------------------------------
# 1. random numbers
KAT = [  # Random123 kat_vectors: philox4x32 10 CTR[4] KEY[2] -> OUT[4]
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
     (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)),
]


def case_rng(quick: bool, seed: int) -> CaseResult:
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
    res.checks.append(_chi2_check(f"uniformity: 256 bins, {n} words", obs, np.full(256, n / 256)))
    # engine's uniform choice among 26 neighbours (choose)
    ch = rng.choose(rng.words(seed, np.zeros(R * E, np.int64), 0, rng.Stream.TUMOUR_DIVISION,
                              np.arange(R * E)), 26)
    res.checks.append(_chi2_check(f"choose(word, 26): {ch.size} draws",
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
        res.checks.append(_z_check(f"correlation across {name}", 0.0, r, 1.0 / math.sqrt(a.size)))
    res.data = {"hist": obs, "n": n, "corr": corr}
    return res


# ---------------------------------------------------------------------------------------------
# 2. birth and death (Galton-Watson per step)
def gw_distribution(pb: float, pd: float, steps: int, M: int = 4096) -> np.ndarray:
    """Exact law of Z_steps from Z_0 = 1 for offspring 0 (pd), 1 (1-pb-pd), 2 (pb): the pgf
    composed ``steps`` times, evaluated at the M-th roots of unity, inverted by FFT (the mass
    beyond M is negligible for the sizes used; checked by the total)."""
    s = np.exp(2j * np.pi * np.arange(M) / M)
    g = s.copy()
    for _ in range(steps):
        g = pd + (1.0 - pb - pd) * g + pb * g * g
    p = np.fft.fft(g).real / M
    p = np.clip(p, 0.0, None)
    return p


def _lineage_lattice(G: int, s: int, R: int, first: int):
    """3D lattice of G^3 blocks of edge s per replicate, one founder at each block centre."""
    shape = (G * s,) * 3
    st = _blank_state(shape, R, first=first)
    c = np.arange(G) * s + s // 2
    v = np.ravel_multi_index(np.meshgrid(c, c, c, indexing="ij"), shape).ravel()
    _place_tumour(st, np.arange(R)[:, None], v[None, :])
    return st


def _place_tumour(st, r, v) -> None:
    """Put antigen-A+B+ tumour cells (levels and baselines 1.0) at the flat voxels ``v`` of
    replicates ``r`` (index arrays broadcast together)."""
    R = st.kind.shape[0]
    st.kind.reshape(R, -1)[r, v] = 1  # Kind.TUMOUR
    for k in ("antigen_a", "antigen_b", "antigen_a_base", "antigen_b_base"):
        getattr(st, k).reshape(R, -1)[r, v] = 100


def _per_block(mask: np.ndarray, G: int, s: int) -> np.ndarray:
    R = mask.shape[0]
    return mask.reshape(R, G, s, G, s, G, s).sum(axis=(2, 4, 6)).reshape(-1)


#: per-cell lattice arrays: what a tissue cell carries when it is moved
CELL_ARRAYS = ("kind", "antigen_a", "antigen_b", "antigen_a_base", "antigen_b_base", "pdl1")


def stir(st, gen: np.random.Generator, block: int, margin: int = 0) -> None:
    """The well-mixed limit realised on the lattice: move every tissue cell (with its per-cell
    arrays, ``CELL_ARRAYS``) to a uniformly random voxel of its own cubic block of edge
    ``block`` (``block`` = the lattice edge: one block), at least ``margin`` voxels inside the
    block's faces; all cells of a replicate end on distinct voxels.

    Called between two engine steps, it removes the spatial structure that the non-spatial
    references lack (clusters of relatives, whose daughters compete for the same free voxels,
    and cells boxed in by their relatives); the engine's phases still do all the biology.  With
    ``margin`` >= 1 a cell's daughter lands inside its block, so lineages grown in separate
    blocks never mix.  ``gen`` is the validation's own generator, not an engine stream."""
    R = st.kind.shape[0]
    shape = st.kind.shape[1:]
    V = st.nvox
    kind = st.kind.reshape(R, V)
    r, v = np.nonzero(kind)
    if r.size == 0:
        return
    coords = np.stack(np.unravel_index(v, shape), axis=-1)
    edge = np.minimum(block, np.array(shape))
    inner = edge - 2 * margin
    if (inner < 1).any():
        raise ValueError(f"block {block} leaves no interior with margin {margin}")
    base = (coords // edge) * edge + margin
    new = np.full(r.size, -1, dtype=np.int64)
    taken = np.zeros(R * V, dtype=bool)
    todo = np.arange(r.size)
    while todo.size:  # rejection: redraw the cells whose voxel another cell took
        c = base[todo] + gen.integers(0, inner, size=(todo.size, 3))
        g = r[todo] * V + np.ravel_multi_index(tuple(c.T), shape)
        ok = np.zeros(todo.size, dtype=bool)
        ok[np.unique(g, return_index=True)[1]] = True
        ok &= ~taken[g]
        taken[g[ok]] = True
        new[todo[ok]] = g[ok] - r[todo[ok]] * V
        todo = todo[~ok]
    for k in CELL_ARRAYS:
        a = getattr(st, k).reshape(R, V)
        vals = a[r, v].copy()
        a[r, v] = 0
        a[r, new] = vals


def _run_lineages(sc, tp, seed: int, steps: int, R: int, s: int, batch: int, G: int = 4):
    """Grow G^3 single-founder lineages per replicate with the engine's tumour phase, stirred
    within their blocks after every step (``stir``, margin 1, so lineages never mix), R
    replicates in batches; returns per-lineage cell counts and antigen-A-negative counts and the
    event totals."""
    from .model import tumour as tumour_mod

    out = {"N": [], "neg": [], "div": 0, "loss_a": 0, "loss_b": 0}
    for first in range(0, R, batch):
        nb = min(batch, R - first)
        st = _lineage_lattice(G, s, nb, first)
        gen = np.random.default_rng([seed, first, s])
        for k in range(steps):
            ev = {}
            PHASES.tumour(sc, st, tp, seed, k, ev)
            stir(st, gen, s, margin=1)
            for key, name in (("div", "tumour_divisions"), ("loss_a", "antigen_a_loss"),
                              ("loss_b", "antigen_b_loss")):
                out[key] += int(np.sum(ev.get(name, 0)))
        tum = st.kind == 1
        out["N"].append(_per_block(tum, G, s))
        out["neg"].append(_per_block(tum & (st.antigen_a == 0), G, s))
    out["N"] = np.concatenate(out["N"])
    out["neg"] = np.concatenate(out["neg"])
    return out


BD_RATES = {"division": 0.01, "apoptosis": 0.0075}  # 1/min; per step (6 min) ~0.058 and ~0.044
BD_STEPS = 80
BD_BLOCK = 16  # block edge: stirred lineages of up to ~100 cells in a 14^3 interior (density < 4 %)


def _tumour_only(overrides: dict):
    base = {"tumour.glucose_half_mM": 0.0, "tumour.necrosis_max_rate_per_min": 0.0,
            "tumour.apoptotic_clearance_min": 1.0, "tumour.antigen_loss_per_division": 0.0}
    base.update(overrides)
    return _scenario(base)


def case_birth_death(quick: bool, seed: int) -> CaseResult:
    from .model import tumour as tumour_mod

    res = CaseResult("birth_death", "Birth and death: tumour division and apoptosis only",
                     "Galton-Watson process per step (exact pgf); continuous-time linear "
                     "birth-death extinction (Kendall 1948)")
    b, d = BD_RATES["division"], BD_RATES["apoptosis"]
    sc = _tumour_only({"tumour.division_rate_per_min": b, "tumour.apoptosis_rate_per_min": d,
                       "run.seed": seed})
    dt = sc["run.dt_min"]
    n = BD_STEPS
    R = 64 if quick else 192
    tp = tumour_mod.TumourParams.from_scenario(sc)
    lin = _run_lineages(sc, tp, seed, n, R, s=BD_BLOCK, batch=8)
    z = lin["N"]
    N = z.size
    # exact reference from the scenario's rates
    pb, pd = _p_step(b, dt), _p_step(d, dt)
    p = gw_distribution(pb, pd, n)
    k = np.arange(p.size)
    mean = float((k * p).sum())
    var = float(((k - mean) ** 2 * p).sum())
    mu4 = float(((k - mean) ** 4 * p).sum())
    m = 1 + pb - pd
    mean_formula = m ** n
    res.checks.append(_z_check(f"mean lineage size after {n} steps", mean, z.mean(),
                               math.sqrt(var / N), note=f"{N} lineages; exact m^n = {mean_formula:.6g}"))
    sv = float(z.var(ddof=1))
    se_var = math.sqrt(max(mu4 - var * var * (N - 3) / (N - 1), 0) / N)
    res.checks.append(_z_check("variance of lineage size", var, sv, se_var))
    q = float(p[0])
    qm = float(np.mean(z == 0))
    res.checks.append(_z_check("extinction probability (discrete, exact)", q, qm,
                               math.sqrt(q * (1 - q) / N)))
    # continuous-time limit at t = n dt: q(t) = d(e^{(b-d)t} - 1)/(b e^{(b-d)t} - d)
    t = n * dt
    e = math.exp((b - d) * t)
    qc = d * (e - 1) / (b * e - d)
    res.checks.append(_z_check("extinction vs continuous-time limit", qc, qm,
                               math.sqrt(q * (1 - q) / N), extra_tol=abs(q - qc),
                               note=f"tolerance adds the discretisation error |q_dt - q| = {abs(q - qc):.2e}"))
    res.checks.append(Check("ultimate extinction pd/pb vs d/b", d / b, pd / pb,
                            (d / b) * ((b - d) * dt / 2 + (b * dt) ** 2), "numeric",
                            note="discretisation error (d/b)((b-d)dt/2 + O((b dt)^2))"))
    kmax = int(z.max()) + 1
    obs = np.bincount(z, minlength=kmax)
    expct = N * p[:kmax].copy()
    expct[-1] += N * p[kmax:].sum()
    res.checks.append(_chi2_check("distribution of lineage sizes", obs, expct))
    res.data = {"z": z, "p": p, "N": N, "q_path": _gw_extinction_path(pb, pd, n),
                "qc_path": [d * (math.exp((b - d) * j * dt) - 1) / (b * math.exp((b - d) * j * dt) - d)
                            for j in range(n + 1)], "dt": dt}
    return res


def _gw_extinction_path(pb, pd, n):
    q, out = 0.0, [0.0]
    for _ in range(n):
        q = pd + (1 - pb - pd) * q + pb * q * q
        out.append(q)
    return out


# ---------------------------------------------------------------------------------------------
# 3. antigen loss
AL_PB = 0.2  # per-step division probability (pure birth)
AL_MU = 0.01  # antigen loss per division
AL_STEPS = 22
AL_BLOCK = 20  # block edge: stirred lineages of up to ~300 cells in an 18^3 interior (mean density 1 %)
# Luria-Delbrück regime: cultures of LD_N0 founders grow ~18-fold in LD_STEPS steps of division
# probability LD_PB, with LD_M expected loss events per culture
LD_N0, LD_PB, LD_STEPS, LD_M, LD_EDGE = 64, 0.1, 30, 1.0, 40


def pure_birth_mutants(p: float, mu: float, steps: int, n0: int = 1, M: int = 4096) -> np.ndarray:
    """Exact law of the number of antigen-negative cells after ``steps`` steps of the engine's
    pure-birth process from ``n0`` antigen-positive founders: per step a cell divides with
    probability p; a positive parent's daughter is negative with probability mu; a negative
    parent's daughters are negative.  First-step decomposition of the probability generating
    functions in y (negative cells): a negative lineage G_{n+1} = (1-p) G_n + p G_n^2, G_0 = y;
    a positive one W_{n+1} = (1-p) W_n + p W_n ((1-mu) W_n + mu G_n), W_0 = 1; n0 founders:
    W^n0.  Evaluated at the M-th roots of unity and inverted by FFT (mass beyond M aliases; M
    is chosen far above the counts that occur)."""
    y = np.exp(2j * np.pi * np.arange(M) / M)
    W = np.ones(M, dtype=complex)
    G = y.copy()
    for _ in range(steps):
        W = (1 - p) * W + p * W * ((1 - mu) * W + mu * G)
        G = (1 - p) * G + p * G * G
    return np.clip(np.fft.fft(W ** n0).real / M, 0.0, None)


def ld_distribution(m: float, kmax: int) -> np.ndarray:
    """Luria-Delbrück mutant-count law for expected mutations m: Ma, Sandri & Sarkar (1992)
    recursion p_0 = e^-m, p_n = (m/n) sum_{i<n} p_i / (n - i + 1)."""
    p = np.zeros(kmax + 1)
    p[0] = math.exp(-m)
    for nn in range(1, kmax + 1):
        i = np.arange(nn)
        p[nn] = m / nn * float((p[:nn] / (nn - i + 1)).sum())
    return p


def _golden_max(f, lo: float, hi: float, tol: float = 1e-5) -> float:
    g = (math.sqrt(5) - 1) / 2
    a, b = lo, hi
    c, d = b - g * (b - a), a + g * (b - a)
    fc, fd = f(c), f(d)
    while b - a > tol * max(1.0, abs(a)):
        if fc > fd:
            b, d, fd = d, c, fc
            c = b - g * (b - a)
            fc = f(c)
        else:
            a, c, fc = c, d, fd
            d = a + g * (b - a)
            fd = f(d)
    return 0.5 * (a + b)


def ld_fit(weights: np.ndarray, m0: float) -> float:
    """The m maximising sum_k weights[k] log p_k(m) under the Luria-Delbrück law: with weights =
    observed count frequencies, the maximum-likelihood estimate of m (fluctuation analysis);
    with weights = a law, the m an infinite sample from that law would give."""
    w = np.asarray(weights, dtype=float)
    k = np.flatnonzero(w > 0)
    kmax = int(k.max()) if k.size else 0

    def ll(m):
        p = ld_distribution(m, kmax)
        return float((w[k] * np.log(np.maximum(p[k], 1e-300))).sum())

    return _golden_max(ll, m0 / 8.0, m0 * 8.0)


def ld_information(m: float, kmax: int = 4000) -> float:
    """Fisher information about m of one Luria-Delbrück count: sum_k p_k (d log p_k / dm)^2
    (central differences; the tail beyond kmax, mass ~ m/kmax, adds about 1/(m kmax))."""
    h = 1e-4 * max(m, 1e-3)
    p = ld_distribution(m, kmax)
    dp = (ld_distribution(m + h, kmax) - ld_distribution(m - h, kmax)) / (2 * h)
    ok = p > 0
    return float((dp[ok] ** 2 / p[ok]).sum())


def _run_cultures(sc, tp, seed: int, R: int, batch: int):
    """LD_N0 founders at random voxels of a 3D LD_EDGE^3 lattice per replicate (one culture),
    grown LD_STEPS steps by the engine's tumour phase and stirred over the whole lattice after
    every step; returns per-culture antigen-A-negative counts and divisions."""
    from .model import tumour as tumour_mod

    neg, div = [], []
    shape = (LD_EDGE,) * 3
    V = LD_EDGE ** 3
    for first in range(0, R, batch):
        nb = min(batch, R - first)
        st = _blank_state(shape, nb, first=first)
        gen = np.random.default_rng([seed, first, LD_EDGE])
        for r in range(nb):
            _place_tumour(st, r, gen.choice(V, LD_N0, replace=False))
        d = np.zeros(nb, dtype=np.int64)
        for k in range(LD_STEPS):
            ev = {}
            PHASES.tumour(sc, st, tp, seed, k, ev)
            stir(st, gen, LD_EDGE)
            d += ev.get("tumour_divisions", 0)
        tum = st.kind.reshape(nb, V) == 1
        neg.append((tum & (st.antigen_a.reshape(nb, V) == 0)).sum(axis=1))
        div.append(d)
    return np.concatenate(neg), np.concatenate(div)


def case_antigen_loss(quick: bool, seed: int) -> CaseResult:
    from .model import tumour as tumour_mod

    res = CaseResult("antigen_loss", "Antigen loss at division (pure birth)",
                     "(1-mu)^(N-1), Binomial(D, mu) and the mutant-count law (pgf) exactly; "
                     "Luria & Delbrück 1943 via Ma, Sandri & Sarkar 1992")
    rate = -math.log(1 - AL_PB) / 6.0
    sc = _tumour_only({"tumour.division_rate_per_min": rate, "tumour.apoptosis_rate_per_min": 0.0,
                       "tumour.antigen_loss_per_division": AL_MU, "run.seed": seed})
    dt = sc["run.dt_min"]
    R = 48 if quick else 192
    tp = tumour_mod.TumourParams.from_scenario(sc)
    lin = _run_lineages(sc, tp, seed, AL_STEPS, R, s=AL_BLOCK, batch=8)
    Ncell, neg = lin["N"], lin["neg"]
    mu = _p_exact(AL_MU)  # exact probability the engine realises
    p0 = (1 - mu) ** (Ncell - 1)
    none = (neg == 0).astype(float)
    res.checks.append(_z_check("lineages with no antigen-negative cell", p0.sum(), none.sum(),
                               math.sqrt(float((p0 * (1 - p0)).sum())),
                               note=f"{Ncell.size} lineages, sizes {Ncell.min()}..{Ncell.max()}; "
                                    "sum of (1-mu)^(N-1)"))
    D = lin["div"]
    for name, L in (("A", lin["loss_a"]), ("B", lin["loss_b"])):
        res.checks.append(_z_check(f"antigen {name} loss events given D = {D} divisions", D * mu,
                                   L, math.sqrt(D * mu * (1 - mu)),
                                   note="Binomial(D, mu)"))
    # the whole law of the negative count per lineage (marginal over the lineage size)
    pb = _p_step(rate, dt)
    law1 = pure_birth_mutants(pb, mu, AL_STEPS)
    K = int(neg.max()) + 1
    obs = np.bincount(neg, minlength=K).astype(float)
    expct = neg.size * law1[:K]
    expct[-1] += neg.size * law1[K:].sum()
    res.checks.append(_chi2_check("negative cells per lineage vs exact law (pgf)", obs, expct))

    # Luria-Delbrück regime: many founders, growth >> 1, m = O(1) expected loss events
    ldr = -math.log(1 - LD_PB) / dt
    pl = _p_step(ldr, dt)
    ED = LD_N0 * ((1 + pl) ** LD_STEPS - 1)  # expected divisions per culture
    mu_ld_param = LD_M / ED
    sc2 = _tumour_only({"tumour.division_rate_per_min": ldr, "tumour.apoptosis_rate_per_min": 0.0,
                        "tumour.antigen_loss_per_division": mu_ld_param, "run.seed": seed})
    mu_ld = _p_exact(mu_ld_param)
    Rc = 128 if quick else 512
    cneg, cdiv = _run_cultures(sc2, tumour_mod.TumourParams.from_scenario(sc2), seed, Rc, batch=16)
    lawc = pure_birth_mutants(pl, mu_ld, LD_STEPS, n0=LD_N0, M=16384)
    Kc = int(cneg.max()) + 1
    obs_c = np.bincount(cneg, minlength=Kc).astype(float)
    exp_c = Rc * lawc[:Kc]
    exp_c[-1] += Rc * lawc[Kc:].sum()
    res.checks.append(_chi2_check(f"negatives per culture ({LD_N0} founders) vs exact law",
                                  obs_c, exp_c))
    # fluctuation analysis: the Luria-Delbrück maximum-likelihood m against mu x divisions; the
    # Lea-Coulson law is the limit (N0 large, N/N0 large, continuous time) of the exact law, and
    # the m an infinite sample of the exact law would give (m_inf) differs from mu E[D] by the
    # stated approximation error, added to the tolerance
    m_exact = mu_ld * ED
    m_inf = ld_fit(lawc[:4000], m_exact)
    m_hat = ld_fit(obs_c, m_exact)
    m_ref = mu_ld * float(cdiv.mean())
    se = 1.0 / math.sqrt(Rc * ld_information(m_exact))
    res.checks.append(_z_check("Luria-Delbrück MLE of m (MSS) vs mu x divisions", m_ref, m_hat, se,
                               extra_tol=abs(m_inf - m_exact),
                               note=f"{Rc} cultures, N0 = {LD_N0} -> ~{LD_N0 * (1 + pl) ** LD_STEPS:.0f} "
                                    f"cells; SE from the Fisher information; LD approximation "
                                    f"error |m_inf - mu E[D]| = {abs(m_inf - m_exact):.3f}"))
    ldl = ld_distribution(m_exact, lawc.size - 1)
    res.checks.append(Check("total variation: exact law vs Luria-Delbrück", 0.0,
                            0.5 * float(np.abs(lawc - ldl).sum()), 0.0, "info",
                            note="how far the Lea-Coulson limit is from the engine's exact law here"))
    res.data = {"Ncell": Ncell, "neg": neg, "mu": mu, "law1": law1, "cneg": cneg, "lawc": lawc,
                "ld": ldl, "m_hat": m_hat}
    return res



# ---------------------------------------------------------------------------------------------
# 4. motility
def _walk_params(sc):
    """Per-sub-move probabilities of the CAR-T walk, from the scenario (exact realised values)."""
    step_um = sc["car_t.speed_um_per_min"] * sc["run.dt_min"] / sc["domain.voxel_um"]
    n_sub = max(1, math.ceil(step_um))
    return (n_sub, _p_exact(step_um / n_sub), _p_exact(sc["car_t.persistence"]),
            _p_exact(sc["car_t.chemotaxis_bias"]))


MOORE2 = np.array([(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0)],
                  dtype=float)


def walk_moments(pm, rho, chemo, best, n_moves_max: int):
    """Exact mean displacement and mean squared displacement after k sub-moves (k = 0..n) of the
    free lattice walk (no boundary, no obstacles), by propagating the joint law of (last
    direction) with first and second moments: state 0..7 = last direction, 8 = none."""
    K = 8
    e = MOORE2
    # transition given a move attempt: new direction distribution from state i
    T = np.zeros((K + 1, K))
    for i in range(K + 1):
        keep = rho if i < K else 0.0
        if i < K:
            T[i, i] += keep
        rest = 1 - keep
        T[i, best] += rest * chemo
        T[i] += rest * (1 - chemo) / K
    # P[i] = prob(state i); M1[i] = E[X 1{state i}] (2-vector); M2[i] = E[|X|^2 1{state i}]
    P = np.zeros(K + 1)
    P[K] = 1
    M1 = np.zeros((K + 1, 2))
    M2 = np.zeros(K + 1)
    mean, msd = [np.zeros(2)], [0.0]
    sq = (e ** 2).sum(1)
    for _ in range(n_moves_max):
        nP = (1 - pm) * P
        nM1 = (1 - pm) * M1
        nM2 = (1 - pm) * M2
        # moving: from state i to direction j with prob pm T[i, j]
        W = pm * T  # (K+1, K)
        nP[:K] += P @ W
        nM1[:K] += W.T @ M1 + (P @ W)[:, None] * e
        nM2[:K] += W.T @ M2 + 2 * (W.T @ M1 * e).sum(1) + (P @ W) * sq
        P, M1, M2 = nP, nM1, nM2
        mean.append(M1.sum(0))
        msd.append(M2.sum())
    return np.array(mean), np.array(msd)


def _slab_mfpt(n_sub, pm, rho, pe_slab, L: int, max_steps: int):
    """Exact E[min(T, max_steps)] (and the survival curve) in steps, T the first step at whose end
    a cell started at x = 0 (last direction none) stands at x >= L, on a row 0..L with no
    neighbour rows: entry into x in 1..L-1 succeeds with pe_slab, into x = L with 1.  States
    (x, last dir in {-1, +1, none})."""
    S = L * 3 + 1  # absorbing state last
    A = S - 1

    def idx(x, dcode):
        return x * 3 + dcode  # dcode 0: -1, 1: +1, 2: none

    P = np.zeros((S, S))
    P[A, A] = 1
    for x in range(L):
        for dc in range(3):
            i = idx(x, dc)
            P[i, i] += 1 - pm
            keep = rho if dc < 2 else 0.0
            tries = {}
            if dc < 2:
                tries[dc] = tries.get(dc, 0) + pm * keep
            for dd in (0, 1):
                tries[dd] = tries.get(dd, 0) + pm * (1 - keep) / 8
            p_invalid = pm * (1 - keep) * 6 / 8
            P[i, i] += p_invalid
            for dd, pr in tries.items():
                xn = x + (1 if dd == 1 else -1)
                if xn < 0:
                    P[i, i] += pr
                    continue
                pe = 1.0 if (xn >= L or xn == 0) else pe_slab
                j = A if xn >= L else idx(xn, dd)
                P[i, j] += pr * pe
                P[i, i] += pr * (1 - pe)
    Pstep = np.linalg.matrix_power(P, n_sub)
    v = np.zeros(S)
    v[idx(0, 2)] = 1
    surv = [1.0]
    for _ in range(max_steps):
        v = v @ Pstep
        surv.append(1 - v[A])
    surv = np.array(surv)
    return float(surv[:-1].sum()), surv


def _place_grid(st, spacing: int):
    """One CAR-T cell at the centre of every spacing x spacing block of a 2D lattice."""
    R = st.kind.shape[0]
    _, Y, X = st.kind.shape[1:]
    ys = np.arange(Y // spacing) * spacing + spacing // 2
    xs = np.arange(X // spacing) * spacing + spacing // 2
    pos = (ys[:, None] * X + xs[None, :]).ravel()
    n = pos.size
    st.t_state[:, :n] = 1  # TState.EFFECTOR
    st.t_pos[:, :n] = pos
    st.t_count[:] = n
    return pos


def _movement_only(extra: dict):
    base = {"car_t.kill_rate_per_min": 0.0, "car_t.division_rate_per_min": 0.0,
            "car_t.costimulation": "4-1BB", "car_t.generation": "second",
            "car_t.lifespan_days": 1e5, "car_t.starvation_death_rate_per_min": 0.0,
            "car_t.exhaustion_hypoxia_per_day": 0.0}
    base.update(extra)
    return _scenario(base)


def _run_walkers(sc, seed, R, spacing, steps, chem_slope=0.0):
    from .model import car_t as car_t_mod

    cp = car_t_mod.CarTParams.from_scenario(sc)
    Y = X = 4 * spacing
    st = _blank_state((1, Y, X), R, capacity=16)
    if chem_slope:
        st.chemokine[:] = (np.arange(X, dtype=np.float32) * F32(chem_slope))[None, None, None, :]
    pos0 = _place_grid(st, spacing)
    y0, x0 = pos0 // X, pos0 % X
    disp = []
    for k in range(steps):
        PHASES.car_t(sc, st, cp, seed, k, {})
        p = st.t_pos[:, :pos0.size].astype(np.int64)
        disp.append(np.stack([p // X - y0, p % X - x0], axis=-1).reshape(-1, 2))
    return np.array(disp, dtype=float)  # (steps, cells, 2)


def case_motility(quick: bool, seed: int) -> CaseResult:
    from .model import car_t as car_t_mod

    res = CaseResult("motility", "CAR-T motility: random walk, chemotaxis, stroma crossing",
                     "exact moments of the persistent Moore-lattice walk (Markov chain on the "
                     "last direction); exact mean first-passage time across a slab")
    steps = 20
    spacing = 64
    R = 96 if quick else 384
    # (a) random walk, no chemokine
    sc = _movement_only({"run.seed": seed})
    n_sub, pm, rho, chemo = _walk_params(sc)
    disp = _run_walkers(sc, seed, R, spacing, steps)
    _, msd_exact = walk_moments(pm, rho, 0.0, 0, steps * n_sub)
    sq = (disp ** 2).sum(-1)
    msd_t = msd_exact[n_sub::n_sub]
    res.checks.append(_z_check(f"MSD after {steps} steps (voxel^2)", msd_t[-1], sq[-1].mean(),
                               sq[-1].std(ddof=1) / math.sqrt(sq.shape[1]),
                               note=f"{sq.shape[1]} cells, {n_sub} sub-moves/step, p_move {pm:.4f}, "
                                    f"persistence {rho:.4f}; SE from the sample"))
    # (b) chemotaxis up a linear gradient along +x; ties between the three x+1 neighbours go to the
    # lowest neighbour index, (dy, dx) = (-1, +1)
    disp_c = _run_walkers(sc, seed + 1, R, spacing, steps, chem_slope=1e-3)
    best = 2
    mean_c, _ = walk_moments(pm, rho, chemo, best, steps * n_sub)
    mc = mean_c[steps * n_sub]
    for axis, nm in ((1, "x"), (0, "y")):
        v = disp_c[-1, :, axis]
        res.checks.append(_z_check(f"chemotactic drift along {nm} after {steps} steps", mc[axis],
                                   v.mean(), v.std(ddof=1) / math.sqrt(v.size),
                                   note=f"bias {chemo:.4f}; SE from the sample"))
    # (c) crossing a slab of stroma: a single row (1 x 1 x L+1 lattice, one cell per replicate)
    L, rho_s = 8, 0.8
    perm = sc["stroma.permeability"]
    pe = _p_exact(float(F32(1) - F32(rho_s) * F32(1.0 - perm)))
    Tmax = 400
    mfpt, surv = _slab_mfpt(n_sub, pm, rho, pe, L, Tmax)
    Rs = 400 if quick else 2000
    cp = car_t_mod.CarTParams.from_scenario(sc)
    st = _blank_state((1, 1, L + 1), Rs)
    st.ecm[:, 0, 0, 1:L] = F32(rho_s)
    st.t_state[:, 0] = 1
    st.t_count[:] = 1
    hit = np.full(Rs, Tmax, np.int64)
    for k in range(Tmax):
        PHASES.car_t(sc, st, cp, seed + 2, k, {})
        newly = (st.t_pos[:, 0] >= L) & (hit == Tmax)
        hit[newly] = k + 1
        if (hit < Tmax).all():
            break
    # variance of min(T, Tmax) from the exact survival curve: E[T^2] = sum (2k+1) P(T > k)
    ks = np.arange(Tmax)
    et2 = float(((2 * ks + 1) * surv[:-1]).sum())
    sd = math.sqrt(max(et2 - mfpt ** 2, 0))
    res.checks.append(_z_check(f"steps to cross {L - 1} voxels of stroma (density {rho_s})", mfpt,
                               hit.mean(), sd / math.sqrt(Rs),
                               note=f"entry probability {pe:.4f} (permeability {perm}); exact SE; "
                                    f"truncated at {Tmax} steps"))
    t = np.arange(1, steps + 1)
    res.data = {"t": t, "msd": sq.mean(1), "msd_se": sq.std(1, ddof=1) / math.sqrt(sq.shape[1]),
                "msd_exact": msd_t, "drift": disp_c.mean(1), "drift_exact": mean_c[n_sub::n_sub],
                "hit": hit, "surv": surv, "mfpt": mfpt}
    return res


# ---------------------------------------------------------------------------------------------
# 5. fields
def _o2_sink(sc) -> float:
    """Oxygen sink of a tumour voxel (1/min): decay + tumour uptake, as float32 sum."""
    return float(F32(sc["oxygen.decay_per_min"]) + F32(sc["oxygen.uptake_tumour_per_min"]))


def _slab_engine(sc, h: float, L_um: float, tol: float = 0.0, omega: float = 1.0):
    """Oxygen on a 1-D row of tumour cells between two vessels, solved by the engine's
    FieldSolver (by default plain Gauss-Seidel to its float32 fixed point, so that the solver's
    stopping error does not hide the discretisation error). Returns (x_um, c)."""
    from .model.fields import FieldSolver

    X = int(round(L_um / h)) + 1
    a = np.full((1, 1, 1, X), _o2_sink(sc), np.float32)
    fixed = np.zeros((1, 1, 1, X), bool)
    fixed[..., 0] = fixed[..., -1] = True
    c = np.full((1, 1, 1, X), sc["oxygen.vessel_mmHg"], np.float32)
    fs = FieldSolver(c.shape, diffusion_um2_per_min=sc["oxygen.diffusion_um2_per_min"], voxel_um=h,
                     boundary="neumann", omega=omega, tol=tol, max_iter=200_000)
    PHASES.solve(fs, c, a, np.zeros_like(a), fixed, sc["oxygen.vessel_mmHg"])
    return np.arange(X) * h, c[0, 0, 0].astype(np.float64)


def _slab_exact_discrete(D, h, k, cv, X):
    """Exact solution of the discrete slab problem (float64 dense solve)."""
    n = X - 2
    A = np.zeros((n, n))
    rhs = np.zeros(n)
    dh = D / (h * h)
    for i in range(n):
        A[i, i] = 2 * dh + k
        if i > 0:
            A[i, i - 1] = -dh
        if i < n - 1:
            A[i, i + 1] = -dh
    rhs[0] += dh * cv
    rhs[-1] += dh * cv
    return np.concatenate([[cv], np.linalg.solve(A, rhs), [cv]])


def greenspan_necrotic_radius(R: float, q: float, D: float, cv: float) -> float:
    """Greenspan (1972) necrotic radius of a ball of radius R (um) with zero-order consumption q
    (mmHg/min) where O2 > 0, diffusion D (um^2/min) and O2 held at cv (mmHg) on its surface:
    the root Rn in [0, R) of cv = q/(6D) (R^2 - 3 Rn^2 + 2 Rn^3 / R) (c and c' vanish at Rn);
    0 when cv >= q R^2 / (6D) (no necrosis).  Bisection on rho = Rn/R, where
    1 - 3 rho^2 + 2 rho^3 falls monotonically from 1 to 0."""
    if not (R > 0 and q > 0 and D > 0 and cv >= 0):
        raise ValueError("R, q, D must be > 0 and cv >= 0")
    target = 6.0 * D * cv / (q * R * R)
    if target >= 1.0:
        return 0.0
    lo, hi = 0.0, 1.0
    for _ in range(100):
        mid = 0.5 * (lo + hi)
        if 1.0 - 3.0 * mid * mid + 2.0 * mid ** 3 > target:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi) * R


def greenspan_profile(r, R: float, q: float, D: float, cv: float) -> np.ndarray:
    """Greenspan's steady O2 (mmHg) at radius r (um) in the ball: 0 in the core r <= Rn, else
    c = cv - q/(6D) (R^2 - r^2) + q Rn^3/(3D) (1/r - 1/R)."""
    Rn = greenspan_necrotic_radius(R, q, D, cv)
    r = np.maximum(np.asarray(r, dtype=np.float64), 1e-12)
    c = cv - q / (6.0 * D) * (R * R - r * r) + q * Rn ** 3 / (3.0 * D) * (1.0 / r - 1.0 / R)
    return np.where(r <= Rn, 0.0, c)


def _nb_sum(x: np.ndarray) -> np.ndarray:
    """Sum of the six face neighbours of every voxel of a 3-D array (zero outside)."""
    s = np.zeros_like(x)
    for ax in range(3):
        lo = [slice(None)] * 3
        hi = [slice(None)] * 3
        lo[ax], hi[ax] = slice(0, -1), slice(1, None)
        s[tuple(lo)] += x[tuple(hi)]
        s[tuple(hi)] += x[tuple(lo)]
    return s


def obstacle_exact_discrete(inside: np.ndarray, dh: float, q: float, cv: float,
                            rtol: float = 1e-14, max_outer: int = 100) -> tuple[np.ndarray, int]:
    """Exact solution (float64) of the discrete obstacle problem of a zero-order consumer: on the
    voxels of ``inside`` (3-D bool; every other voxel held at cv)

        c >= 0,  w = A c - b >= 0,  c w = 0,   A c = dh (6 c - sum_nb c),  b = dh cv n_out - q

    (n_out: the voxel's neighbours outside; the equation holds where c > 0, consumption stops
    where c = 0).  Primal-dual active set (Hintermueller, Ito & Kunisch 2003; finite for an
    M-matrix): contact set I = {c < 0 of the last solve} + {w > 0 of I}, the free voxels solved
    by matrix-free conjugate gradients to a relative residual ``rtol``.  Written independently of
    the engine's solver.  Returns (c on the full array, 0 outside, outer iterations)."""
    inside = np.asarray(inside, bool)
    n_out = 6.0 - _nb_sum(inside.astype(np.float64))
    b = np.where(inside, dh * cv * n_out - q, 0.0)

    def A(x):  # x zero outside the free set
        return dh * (6.0 * x - _nb_sum(x))

    contact = np.zeros_like(inside)
    c = np.zeros(inside.shape)
    for it in range(1, max_outer + 1):
        free = inside & ~contact
        x = np.where(free, c, 0.0)
        r = np.where(free, b - A(x), 0.0)
        p = r.copy()
        rr = float((r * r).sum())
        stop = (rtol * float(np.sqrt((b[free] ** 2).sum()))) ** 2
        for _ in range(20 * inside.sum() + 100):
            if rr <= stop:
                break
            Ap = np.where(free, A(p), 0.0)
            alpha = rr / float((p * Ap).sum())
            x += alpha * p
            r -= alpha * Ap
            rr_new = float((r * r).sum())
            p = r + (rr_new / rr) * p
            rr = rr_new
        c = x
        w = np.where(inside, A(c) - b, 0.0)
        new = (contact & (w > 0)) | (free & (c < 0))
        if np.array_equal(new, contact):
            return c, it
        contact = new
    raise RuntimeError("obstacle_exact_discrete: the active set did not settle")


def _greenspan_engine(R0: int, h: float, D: float, cv: float, q: float):
    """O2 of a ball of tumour voxels (radius R0 voxels, centre on a voxel) with zero-order
    consumption q only (no first-order uptake, no decay), VESSEL voxels held at cv outside, solved
    by the engine's FieldsPhase on a blank state (plain Gauss-Seidel, omega = 1, to its float32
    fixed point).  Returns (o2 (n, n, n) float32, inside mask, distance from the centre in
    voxels, oxygen sweeps, max_iter)."""
    from .model.lattice import Kind

    n = 2 * R0 + 3
    sc = _scenario({"domain.x_voxels": n, "domain.y_voxels": n, "domain.z_voxels": n,
                    "domain.voxel_um": h, "oxygen.diffusion_um2_per_min": D,
                    "oxygen.vessel_mmHg": cv, "run.field_omega": 1.0, "run.field_tolerance": 1e-9,
                    "oxygen.decay_per_min": 0.0, "oxygen.uptake_tumour_per_min": 0.0,
                    "oxygen.consumption_tumour_mmHg_per_min": q,
                    # the other fields become trivial (converged in one sweep)
                    "glucose.uptake_tumour_per_min": 0.0, "chemokine.secretion_tumour_per_min": 0.0,
                    "tgfb.secretion_tumour_per_min": 0.0})
    ax = np.arange(n) - n // 2
    dist = np.sqrt(ax[:, None, None] ** 2 + ax[None, :, None] ** 2 + ax[None, None, :] ** 2)
    inside = dist <= R0
    st = _blank_state((n, n, n), 1, o2=cv)
    st.kind[0] = np.where(inside, np.uint8(Kind.TUMOUR), np.uint8(Kind.VESSEL))
    sweeps, max_iter = PHASES.fields(sc, st)
    return st.o2[0], inside, dist, sweeps, max_iter


def case_fields(quick: bool, seed: int) -> CaseResult:
    from .model.fields import FieldSolver

    res = CaseResult("fields", "Steady oxygen: slab and spheroid, first-order uptake; spheroid, "
                     "zero-order consumption",
                     "exact discrete solution (dense solve; obstacle problem by active set); "
                     "analytic cosh / sinh(r)/r profiles with length sqrt(D/k); Greenspan 1972 "
                     "necrotic radius")
    sc = _scenario({})
    D = sc["oxygen.diffusion_um2_per_min"]
    cv = sc["oxygen.vessel_mmHg"]
    k = _o2_sink(sc)
    lam = math.sqrt(D / k)
    L = 400.0
    # (a) engine vs exact discrete at the scenario's voxel size
    h0 = sc["domain.voxel_um"]
    x, c = _slab_engine(sc, h0, L)
    ex = _slab_exact_discrete(D, h0, k, cv, x.size)
    err_d = float(np.max(np.abs(c - ex)))
    # numerical tolerance: float32 rounding accumulated over the profile, 1e-5 x the vessel value
    res.checks.append(Check("slab: engine vs exact discrete (max |dc|, mmHg)", 0.0, err_d,
                            1e-5 * cv, "numeric", note="Gauss-Seidel to the float32 fixed point; "
                                                      "tolerance 1e-5 x vessel value"))
    # (b) analytic profile and convergence under refinement
    def analytic(xx):
        return cv * np.cosh((xx - L / 2) / lam) / math.cosh(L / (2 * lam))

    hs = [2 * h0, h0, h0 / 2]
    errs = []
    prof = {}
    for h in hs:
        xx, cc = _slab_engine(sc, h, L)
        sel = np.isclose(np.mod(xx, h0), 0) | np.isclose(np.mod(xx, h0), h0)
        errs.append(float(np.max(np.abs(cc[sel] - analytic(xx[sel])))))
        prof[h] = (xx, cc)
        if h == h0:
            err_h0 = errs[-1]
    order = [math.log2(errs[i] / errs[i + 1]) for i in range(len(errs) - 1)]
    # discrete cosh profile error ~ (h^2 / 12 lam^2) x O(cv): at h0 a relative 3e-3
    res.checks.append(Check(f"slab: max error vs analytic at h = {h0:g} um (mmHg)", 0.0, err_h0,
                            cv * (h0 / lam) ** 2 / 6, "numeric",
                            note=f"lambda = sqrt(D/k) = {lam:.1f} um; bound cv (h/lambda)^2/6"))
    res.checks.append(Check(f"slab: convergence order h = {hs[1]:g} -> {hs[2]:g} um", 2.0, order[-1],
                            0.15, "numeric", note=f"orders {', '.join(f'{o:.3f}' for o in order)}"))
    # (c) spheroid: 3D ball of tumour (radius R0 voxels) in vessel-held surroundings
    R0 = 4 if quick else 6
    n = 2 * R0 + 3
    ax = np.arange(n) - n // 2
    dist = np.sqrt(ax[:, None, None] ** 2 + ax[None, :, None] ** 2 + ax[None, None, :] ** 2)
    inside = dist <= R0
    a = np.where(inside, F32(k), F32(0)).astype(np.float32)[None]
    fixed = ~inside[None]
    c3 = np.full((1, n, n, n), cv, np.float32)
    fs = FieldSolver(c3.shape, diffusion_um2_per_min=D, voxel_um=h0, boundary="neumann",
                     omega=1.0, tol=0.0, max_iter=200_000)
    PHASES.solve(fs, c3, a, np.zeros_like(a), fixed, cv)
    # exact discrete: dense solve over the interior voxels
    idx = -np.ones(inside.shape, np.int64)
    iv = np.argwhere(inside)
    idx[inside] = np.arange(iv.shape[0])
    dh = D / (h0 * h0)
    M = np.zeros((iv.shape[0], iv.shape[0]))
    rhs = np.zeros(iv.shape[0])
    for r_, (zz, yy, xx) in enumerate(iv):
        M[r_, r_] = 6 * dh + k
        for dz, dy, dxx in ((1, 0, 0), (-1, 0, 0), (0, 1, 0), (0, -1, 0), (0, 0, 1), (0, 0, -1)):
            j = idx[zz + dz, yy + dy, xx + dxx]
            if j >= 0:
                M[r_, j] -= dh
            else:
                rhs[r_] += dh * cv
    sol = np.linalg.solve(M, rhs)
    eng = c3[0][inside].astype(np.float64)
    res.checks.append(Check("spheroid: engine vs exact discrete (max |dc|, mmHg)", 0.0,
                            float(np.max(np.abs(eng - sol))), 1e-5 * cv, "numeric"))
    centre = float(c3[0, n // 2, n // 2, n // 2])

    def centre_an(Rum):
        return cv * (Rum / lam) / math.sinh(Rum / lam)

    lo, hi = centre_an((R0 + 1) * h0), centre_an(R0 * h0)
    res.checks.append(Check(f"spheroid: centre O2 within analytic bracket (radius {R0}..{R0 + 1} voxels)",
                            (lo + hi) / 2, centre, (hi - lo) / 2, "numeric",
                            note="the staircase ball's boundary lies between R0 and R0 + 1 voxels"))
    # (d) spheroid with zero-order consumption q where O2 > 0 (Greenspan 1972): a ball of tumour
    # voxels (radius G0 voxels) in vessel-held surroundings, no first-order uptake, solved by the
    # engine's FieldsPhase (projected Gauss-Seidel, floor 0).  q = 12 D cv / R^2 puts Greenspan's
    # necrotic radius at R/2 for R = (G0 + 1/2) h, the middle of the staircase ball's radius.
    G0 = 8 if quick else 16
    q = 12.0 * D * cv / ((G0 + 0.5) * h0) ** 2
    cg, gin, gdist, sweeps, max_iter = _greenspan_engine(G0, h0, D, cv, q)
    gex, _ = obstacle_exact_discrete(gin, D / (h0 * h0), q, cv)
    err_g = float(np.max(np.abs(cg[gin].astype(np.float64) - gex[gin])))
    res.checks.append(Check("zero-order spheroid: engine vs exact discrete (mmHg)", 0.0, err_g,
                            1e-5 * cv, "numeric",
                            note=f"max |dc|; R0 = {G0} voxels, q = {q:.4g} mmHg/min; exact: "
                                 "discrete obstacle problem, float64 active set + CG; engine "
                                 f"{sweeps if sweeps >= 0 else 'n/a'} sweeps (max {max_iter}); "
                                 "tolerance 1e-5 x vessel value"))
    # necrotic radius: the volume-equivalent radius of the engine's core (voxels with O2 == 0)
    # against Greenspan's Rn.  A priori tolerance: the staircase ball's surface lies between R0
    # and R0 + 1 voxels from the centre, and Rn(R) grows with R, so the continuum core radius lies
    # in [Rn(R0 h), Rn((R0 + 1) h)]; a core made of the voxels whose centres lie within a radius
    # rho is a union of cubes that contains the ball of radius rho - sqrt(3)/2 h (every point of
    # that ball lies in a cube whose centre is within rho) and lies inside the ball of radius
    # rho + sqrt(3)/2 h (no point of a cube is farther than sqrt(3)/2 h from its centre), so its
    # volume-equivalent radius lies within sqrt(3)/2 h of rho.  Together:
    # [Rn(R0 h) - sqrt(3)/2 h, Rn((R0 + 1) h) + sqrt(3)/2 h].
    n_core = int(np.count_nonzero(cg[gin] == 0))
    rn_eng = (3.0 * n_core / (4.0 * math.pi)) ** (1.0 / 3.0) * h0
    rn_lo = greenspan_necrotic_radius(G0 * h0, q, D, cv) - math.sqrt(3) / 2 * h0
    rn_hi = greenspan_necrotic_radius((G0 + 1) * h0, q, D, cv) + math.sqrt(3) / 2 * h0
    rn_mid = greenspan_necrotic_radius((G0 + 0.5) * h0, q, D, cv)
    res.checks.append(Check("zero-order spheroid: necrotic radius (um)",
                            (rn_lo + rn_hi) / 2, rn_eng, (rn_hi - rn_lo) / 2, "numeric",
                            note=f"volume-equivalent radius of the {n_core} voxels at O2 = 0 "
                                 f"(exact discrete: "
                                 f"{int(np.count_nonzero(gex[gin] <= 0))}); Greenspan Rn = "
                                 f"{rn_mid:.1f} um at R = {G0 + 0.5:g} voxels; bracket "
                                 "Rn(R0 h) - sqrt(3)/2 h .. Rn((R0+1) h) + sqrt(3)/2 h"))
    res.data = {"prof": prof, "analytic": analytic, "errs": errs, "hs": hs, "lam": lam,
                "sphere_r": dist[inside] * h0, "sphere_c": eng, "centre_an": centre_an,
                "R0um": R0 * h0, "cv": cv, "h": h0,
                "gs_r": gdist[gin] * h0, "gs_c": cg[gin].astype(np.float64), "gs_R0um": G0 * h0,
                "gs_q": q, "D": D, "gs_rn": rn_eng}
    return res


# ---------------------------------------------------------------------------------------------
# 6. well-mixed limit: CARTmath
def cartmath_euler(CT0, CM0, T0, pars: dict, dt_days: float, steps: int) -> np.ndarray:
    """Explicit Euler of CARTmath (Barros et al., Cancers 2021, eq. 1):

        dC_T/dt = phi C_T - rho C_T + theta T C_M - alpha T C_T
        dC_M/dt = eps C_T - theta T C_M - mu C_M
        dT/dt   = r T (1 - b T) - gamma C_T T

    Returns (steps + 1, 3) of (C_T, C_M, T)."""
    p = pars
    out = np.zeros((steps + 1, 3))
    CT, CM, T = float(CT0), float(CM0), float(T0)
    out[0] = CT, CM, T
    for i in range(steps):
        dCT = p["phi"] * CT - p["rho"] * CT + p["theta"] * T * CM - p["alpha"] * T * CT
        dCM = p["eps"] * CT - p["theta"] * T * CM - p["mu"] * CM
        dT = p["r"] * T * (1 - p["b"] * T) - p["gamma"] * CT * T
        CT, CM, T = CT + dt_days * dCT, CM + dt_days * dCM, T + dt_days * dT
        out[i + 1] = CT, CM, T
    return out


# the sub-model the engine realises: no killing, no memory, no carrying capacity (see docs)
WM_PARS = {"phi": 0.5, "rho": 1 / 42.0, "theta": 0.0, "alpha": 0.0, "eps": 0.0, "mu": 0.0,
           "r_div": 1440 * 0.00072, "r_death": 1440 * 5.3e-5, "b": 0.0, "gamma": 0.0}


def case_well_mixed(quick: bool, seed: int) -> CaseResult:
    from .model import car_t as car_t_mod
    from .model import tumour as tumour_mod

    res = CaseResult("well_mixed", "Well-mixed limit: CARTmath (effector, memory, tumour)",
                     "Barros et al. 2021, CARTmath, Cancers 13:2941 (explicit Euler at the "
                     "engine's step): (A) growth, expansion and death alone, exact Galton-Watson "
                     "means; (B) with killing, memory conversion, reactivation and memory death "
                     "in a stirred lattice (alpha = b = 0), against the engine's mean-field map "
                     "and CARTmath")
    dt = 6.0
    dtd = dt / 1440.0
    P = WM_PARS
    # engine rates chosen so that the per-step probability equals rate_ode x dt (Euler's increment)
    def inv(rate_per_day):
        return -math.log(1 - rate_per_day * dtd) / dt

    sc = _scenario({"tumour.division_rate_per_min": inv(P["r_div"]),
                    "tumour.apoptosis_rate_per_min": inv(P["r_death"]),
                    "tumour.glucose_half_mM": 0.0, "tumour.necrosis_max_rate_per_min": 0.0,
                    "tumour.antigen_loss_per_division": 0.0,
                    "car_t.division_rate_per_min": inv(P["phi"]),
                    "car_t.lifespan_days": 1.0 / (1440 * inv(P["rho"])),
                    "car_t.kill_rate_per_min": 0.0, "car_t.max_divisions": 255,
                    "car_t.glucose_half_mM": 0.0, "car_t.costimulation": "4-1BB",
                    "car_t.generation": "second", "delivery.lymphodepletion": False,
                    "car_t.activation_hours": 3000.0, "car_t.starvation_death_rate_per_min": 0.0,
                    "car_t.exhaustion_hypoxia_per_day": 0.0, "run.seed": seed})
    days = 1.0 if quick else 2.0
    steps = int(round(days / dtd))
    R = 8 if quick else 24
    E = 40  # 3D, 40^3 voxels: 26 neighbours, so a growing clone is never boxed in
    T0, C0 = 1200, 1000
    tp = tumour_mod.TumourParams.from_scenario(sc)
    cp = car_t_mod.CarTParams.from_scenario(sc)
    V = E ** 3
    st = _blank_state((E, E, E), R, capacity=V)
    # scattered initial cells (deterministic from the seed via the engine's generator)
    for r in range(R):
        w = rng.blocks(seed, r, 0, rng.Stream.INIT_TISSUE, np.arange(V))
        order = np.argsort(w[:, 0], kind="stable")
        _place_tumour(st, r, order[:T0])
        tpos = np.sort(np.argsort(w[:, 1], kind="stable")[:C0])
        st.t_pos[r, :C0] = tpos
    st.t_state[:, :C0] = 1
    st.t_div[:, :C0] = 255
    st.t_act[:, :C0] = cp.activation_steps
    st.t_count[:] = C0
    traj = np.zeros((steps + 1, R, 2))
    traj[0] = np.stack([np.full(R, T0), np.full(R, C0)], -1)
    for k in range(steps):
        PHASES.tumour(sc, st, tp, seed, k, {})
        PHASES.car_t(sc, st, cp, seed, k, {})
        traj[k + 1, :, 0] = (st.kind.reshape(R, -1) == 1).sum(1)
        traj[k + 1, :, 1] = st.t_count
    pars = {"phi": P["phi"], "rho": P["rho"], "theta": 0.0, "alpha": 0.0, "eps": 0.0, "mu": 0.0,
            "r": P["r_div"] - P["r_death"], "b": 0.0, "gamma": 0.0}
    ode = cartmath_euler(C0, 0.0, T0, pars, dtd, steps)
    # exact discrete means: tumour (1 + pb - pd)^n; CAR-T (1 - p_rho)(1 + p_phi) per step
    # (division only if the cell did not die), which differs from Euler by p_rho p_phi per step
    pb, pd = _p_exact(P["r_div"] * dtd), _p_exact(P["r_death"] * dtd)
    pphi, prho = _p_exact(P["phi"] * dtd), _p_exact(P["rho"] * dtd)
    mT = T0 * (1 + pb - pd) ** steps
    mC = C0 * ((1 - prho) * (1 + pphi)) ** steps
    # variances of the two Galton-Watson processes (per-step offspring laws) for the SE
    def gw_var(n0, m1, s2, n):
        return n0 * s2 * m1 ** (n - 1) * (m1 ** n - 1) / (m1 - 1)

    vT = gw_var(T0, 1 + pb - pd, pb + pd - (pb - pd) ** 2, steps)
    off = np.array([prho, (1 - prho) * (1 - pphi), (1 - prho) * pphi])  # 0, 1, 2 offspring
    m1 = off[1] + 2 * off[2]
    vC = gw_var(C0, m1, off[1] + 4 * off[2] - m1 ** 2, steps)
    fT, fC = traj[-1, :, 0], traj[-1, :, 1]
    res.checks.append(_z_check(f"tumour cells at day {days:g} (ensemble mean)", ode[-1, 2], fT.mean(),
                               math.sqrt(vT / R), extra_tol=abs(mT - ode[-1, 2]),
                               note=f"{R} replicates; Euler vs exact discrete {abs(mT - ode[-1, 2]):.2g}"))
    res.checks.append(_z_check(f"CAR-T cells at day {days:g} (ensemble mean)", ode[-1, 0], fC.mean(),
                               math.sqrt(vC / R), extra_tol=abs(mC - ode[-1, 0]),
                               note=f"Euler vs exact discrete {abs(mC - ode[-1, 0]):.2g} "
                                    "(p_death x p_division per step)"))
    res.data = {"t": np.arange(steps + 1) * dtd, "traj": traj, "ode": ode}
    _well_mixed_interacting(quick, seed, res)
    return res


def _betainc(a: float, b: float, x: float) -> float:
    """Regularised incomplete beta I_x(a, b) (continued fraction, modified Lentz)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    if x > (a + 1) / (a + b + 2):
        return 1.0 - _betainc(b, a, 1.0 - x)
    lbeta = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
    front = math.exp(lbeta + a * math.log(x) + b * math.log1p(-x)) / a
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    f = d
    for m in range(1, 500):
        for num in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
                    -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):
            d = 1.0 + num * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + num / c
            c = c if abs(c) > tiny else tiny
            f *= c * d
        if abs(c * d - 1.0) < 1e-15:
            break
    return front * f


def t_quantile(df: int, alpha: float) -> float:
    """t such that P(|T_df| > t) = alpha for Student's t with df degrees of freedom (bisection on
    P(|T| > t) = I_{df/(df+t^2)}(df/2, 1/2))."""
    lo, hi = 0.0, 1e3
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if _betainc(df / 2.0, 0.5, df / (df + mid * mid)) > alpha:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def stir_agents(st, gen: np.random.Generator, spacing: int = 3) -> None:
    """Move every live CAR-T cell of a 2D lattice to a uniformly random site of the coarse grid
    (spacing·i + 1, spacing·j + 1), distinct sites: with spacing 3 the 3x3 neighbourhoods of
    two cells never overlap and always lie inside the lattice, so no two cells ever compete for
    a target or a daughter's voxel and every cell sees exactly 9 voxels."""
    R = st.kind.shape[0]
    _, Y, X = st.kind.shape[1:]
    gy, gx = Y // spacing, X // spacing
    for r in range(R):
        n = int(st.t_count[r])
        if n > gy * gx:
            raise ValueError(f"{n} CAR-T cells do not fit on {gy * gx} sites")
        site = gen.choice(gy * gx, n, replace=False)
        st.t_pos[r, :n] = (spacing * (site // gx) + 1) * X + spacing * (site % gx) + 1
        st.t_dir[r, :n] = -1


def p_encounter(T: float, V: int, n: int = 9) -> float:
    """Probability that n given voxels hold at least one of T cells placed on distinct, uniformly
    random voxels of V (hypergeometric)."""
    if T <= 0:
        return 0.0
    i = np.arange(n)
    return float(1.0 - np.prod(np.clip(1.0 - T / (V - i), 0.0, 1.0)))


def cartmath_engine_map(T0, C0, M0, p: dict, V: int, steps: int) -> np.ndarray:
    """Expected counts (T, C_T, C_M) per step of the engine's own step in the stirred well-mixed
    set-up (each expectation taken given the previous expected counts; the moment-closure error
    is O(1/N)): tumour phase T1 = T (1 + pb - pd); engagement with encounter probability
    P = p_encounter(T1) (neighbourhoods never overlap: no claim is ever lost): kills
    C P p_rec p_kill, stimulated effectors C P p_rec, reactivated memory M P p_rec p_react;
    fate: death of effectors (reactivated included) with p_rho and of the other memory cells
    with p_mu, conversion of surviving unstimulated effectors with p_mem, division of the
    surviving effectors that did not convert with p_phi."""
    out = np.zeros((steps + 1, 3))
    T, C, M = float(T0), float(C0), float(M0)
    out[0] = T, C, M
    for k in range(steps):
        T1 = T * (1 + p["pb"] - p["pd"])
        P = p_encounter(T1, V)
        kills = C * P * p["p_rec"] * p["p_kill"]
        stim = C * P * p["p_rec"]
        react = M * P * p["p_rec"] * p["p_react"]
        alive = (C + react) * (1 - p["p_rho"])
        conv = (C - stim) * (1 - p["p_rho"]) * p["p_mem"]
        div = (alive - conv) * p["p_phi"]
        T, C, M = T1 - kills, alive - conv + div, (M - react) * (1 - p["p_mu"]) + conv
        out[k + 1] = T, C, M
    return out


# the interacting set-up: rates per day (CARTmath's units) and the engine probabilities realising
# them; 2D 300 x 300 lattice, tumour cells stirred, CAR-T cells on the 3-spaced grid
WMI = {"E": 300, "T0": 1500, "C0": 1000, "M0": 1000, "r_div": 1440 * 0.00072,
       "r_death": 1440 * 5.3e-5, "phi": 0.6, "rho": 1 / 42.0, "eps": 0.5, "mu": 0.1,
       "p_kill": 0.025, "p_react": 0.0167, "affinity": 1e-4}


def _well_mixed_interacting(quick: bool, seed: int, res: CaseResult) -> None:
    """Part B of ``well_mixed``: killing, memory conversion, reactivation and memory death."""
    from .model import car_t as car_t_mod
    from .model import tumour as tumour_mod

    P = WMI
    dt = 6.0
    dtd = dt / 1440.0

    def inv(rate_per_day):  # engine rate whose per-step probability is rate x dt (Euler's)
        return -math.log(1 - rate_per_day * dtd) / dt

    sc = _scenario({"tumour.division_rate_per_min": inv(P["r_div"]),
                    "tumour.apoptosis_rate_per_min": inv(P["r_death"]),
                    "tumour.glucose_half_mM": 0.0, "tumour.necrosis_max_rate_per_min": 0.0,
                    "tumour.antigen_loss_per_division": 0.0, "tumour.trogocytosis_fraction": 0.0,
                    "tumour.apoptotic_clearance_min": 1.0,
                    "car_t.division_rate_per_min": inv(P["phi"]),
                    "car_t.lifespan_days": 1.0 / (1440 * inv(P["rho"])),
                    "car_t.memory_conversion_rate_per_day": 1440 * inv(P["eps"]),
                    "car_t.memory_death_rate_per_day": 1440 * inv(P["mu"]),
                    "car_t.memory_reactivation_probability": P["p_react"],
                    "car_t.kill_rate_per_min": -math.log(1 - P["p_kill"]) / dt,
                    "car_t.affinity_a": P["affinity"], "car_t.targets": "A",
                    "car_t.exhaustion_per_kill": 0.0, "car_t.speed_um_per_min": 0.0,
                    "car_t.max_divisions": 255, "car_t.glucose_half_mM": 0.0,
                    "car_t.costimulation": "4-1BB", "car_t.generation": "second",
                    "delivery.lymphodepletion": False, "car_t.activation_hours": 3000.0,
                    "car_t.starvation_death_rate_per_min": 0.0,
                    "car_t.exhaustion_hypoxia_per_day": 0.0, "run.dt_min": dt, "run.seed": seed})
    days = 0.5 if quick else 2.0
    steps = int(round(days / dtd))
    R = 16 if quick else 32
    E = P["E"]
    V = E * E
    T0, C0, M0 = P["T0"], P["C0"], P["M0"]
    tp = tumour_mod.TumourParams.from_scenario(sc)
    cp = car_t_mod.CarTParams.from_scenario(sc)
    from .model.lattice import TState

    st = _blank_state((1, E, E), R, capacity=(E // 3) ** 2)
    gen = np.random.default_rng([seed, 6, E])
    for r in range(R):
        _place_tumour(st, r, gen.choice(V, T0, replace=False))
    n0 = C0 + M0
    st.t_state[:, :C0] = TState.EFFECTOR
    st.t_state[:, C0:n0] = TState.MEMORY
    st.t_div[:, :n0] = 255
    st.t_act[:, :C0] = cp.activation_steps
    st.t_count[:] = n0
    stir_agents(st, gen)
    traj = np.zeros((steps + 1, R, 3))
    traj[0] = (T0, C0, M0)
    for k in range(steps):
        PHASES.tumour(sc, st, tp, seed, k, {})
        stir(st, gen, E)
        PHASES.car_t(sc, st, cp, seed, k, {})
        stir_agents(st, gen)
        live = np.arange(st.t_state.shape[1])[None, :] < st.t_count[:, None]
        traj[k + 1, :, 0] = (st.kind.reshape(R, -1) == 1).sum(1)
        traj[k + 1, :, 1] = ((st.t_state == TState.EFFECTOR) & live).sum(1)
        traj[k + 1, :, 2] = ((st.t_state == TState.MEMORY) & live).sum(1)
    # references from the scenario values (exact realised per-step probabilities)
    pr = {"pb": _p_exact(P["r_div"] * dtd), "pd": _p_exact(P["r_death"] * dtd),
          "p_phi": _p_exact(P["phi"] * dtd), "p_rho": _p_exact(P["rho"] * dtd),
          "p_mem": _p_exact(P["eps"] * dtd), "p_mu": _p_exact(P["mu"] * dtd),
          "p_kill": _p_exact(P["p_kill"]), "p_react": _p_exact(P["p_react"]),
          "p_rec": _p_exact(1.0 / (1.0 + P["affinity"]))}
    mf = cartmath_engine_map(T0, C0, M0, pr, V, steps)
    # CARTmath with the same step: gamma, theta from the encounter volume (9 voxels of V);
    # the engine's conversion removes the effector, so CARTmath's effector loss rho is
    # death + conversion; alpha = b = 0 (no exhaustion by killing, ample room)
    pars = {"phi": pr["p_phi"] / dtd, "rho": (pr["p_rho"] + pr["p_mem"]) / dtd,
            "eps": pr["p_mem"] / dtd, "mu": pr["p_mu"] / dtd, "alpha": 0.0, "b": 0.0,
            "r": (pr["pb"] - pr["pd"]) / dtd,
            "gamma": 9 * pr["p_rec"] * pr["p_kill"] / (V * dtd),
            "theta": 9 * pr["p_rec"] * pr["p_react"] / (V * dtd)}
    ode = cartmath_euler(C0, M0, T0, pars, dtd, steps)  # columns C_T, C_M, T
    ode_tcm = ode[:, [2, 0, 1]]
    tq = t_quantile(R - 1, ALPHA_CHECK)
    fin = traj[-1]
    names = ("tumour cells", "effector CAR-T", "memory CAR-T")
    for j, nm in enumerate(names):
        mean = float(fin[:, j].mean())
        se = float(fin[:, j].std(ddof=1)) / math.sqrt(R)
        res.checks.append(Check(f"{nm} at day {days:g} vs engine mean-field map", mf[-1, j], mean,
                                tq * se, "stat", se=se,
                                note=f"{R} replicates; Student t ({R - 1} df) quantile {tq:.2f} "
                                     "x sample SE"))
    for j, nm in enumerate(names):
        mean = float(fin[:, j].mean())
        se = float(fin[:, j].std(ddof=1)) / math.sqrt(R)
        gap = abs(mf[-1, j] - ode_tcm[-1, j])
        res.checks.append(Check(f"{nm} at day {days:g} vs CARTmath (Euler)", ode_tcm[-1, j], mean,
                                tq * se + gap, "stat", se=se,
                                note=f"tolerance adds |map - Euler| = {gap:.3g} (per-step "
                                     "products of probabilities, encounter saturation)"))
    res.data.update({"t2": np.arange(steps + 1) * dtd, "traj2": traj, "map2": mf, "ode2": ode_tcm,
                     "pars2": pars})


# ---------------------------------------------------------------------------------------------
CASES: dict[str, Callable[[bool, int], CaseResult]] = {
    "rng": case_rng, "birth_death": case_birth_death, "antigen_loss": case_antigen_loss,
    "motility": case_motility, "fields": case_fields, "well_mixed": case_well_mixed,
}


def resolve_backend(name: str = "auto"):
    """The backend the cases run on (``backends.select``: ``auto`` takes CuPy where it can run
    and says so; ``cupy`` where it cannot is a BackendError with the reason).  On a device backend
    the cases run the device step's own phases (``DevicePhases``); the ``rng`` case checks the host
    Philox, of which the kernels' ``philox.cuh`` is the twin checked by the device tests."""
    from .backends import select

    return select(name)


def check_arguments(cases, seed) -> list[str]:
    """The case names to run (all when ``cases`` is empty); ValidationError on an unknown case
    or a seed outside 0 .. 2**32-1."""
    names = list(cases) if cases else list(CASES)
    bad = [n for n in names if n not in CASES]
    if bad:
        raise ValidationError(f"unknown validation case {', '.join(map(repr, bad))}; "
                              f"allowed: {', '.join(CASES)}")
    if not 0 <= int(seed) < 2 ** 32:
        raise ValidationError(f"seed must lie in 0 .. 2**32-1, got {seed}")
    return names


def run_validation(cases=None, quick: bool = False, seed: int = 1, figures=None,
                   log: Callable[[str], None] | None = None,
                   backend: str = "numpy") -> list[CaseResult]:
    """Run the named cases (all by default) on ``backend`` ("numpy", "cupy" or "emulated", as resolved by
    ``resolve_backend``) and return their results; with ``figures`` (a directory) write one PNG
    per case (needs matplotlib; skipped with a message otherwise)."""
    global PHASES
    if backend not in ("numpy", "cupy", "emulated"):
        raise ValidationError(f"backend must be 'numpy', 'cupy' or 'emulated', got {backend!r}")
    names = check_arguments(cases, seed)
    if backend == "numpy":
        phases = Phases()
    elif backend == "cupy":
        from .backends.cupy_backend import runtime

        phases = DevicePhases(runtime())
    else:
        from .testing.emulated import EmulatedRuntime

        phases = DevicePhases(EmulatedRuntime())
    saved, PHASES = PHASES, phases
    try:
        return _run_cases(names, quick, seed, figures, log)
    finally:
        PHASES = saved


def _run_cases(names, quick, seed, figures, log) -> list[CaseResult]:
    plt = None
    if figures is not None:
        figures = Path(figures)
        if figures.exists() and not figures.is_dir():
            raise ValidationError(f"--figures {figures} exists and is not a directory")
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt  # noqa: F811
        except ImportError:
            if log:
                log("matplotlib is not installed (pip install 'gpusim[plot]'): figures skipped")
        if plt is not None:
            figures.mkdir(parents=True, exist_ok=True)
    out = []
    for n in names:
        t0 = time.perf_counter()
        r = CASES[n](quick, int(seed))
        r.seconds = time.perf_counter() - t0
        if plt is not None:
            path = figures / f"{n}.png"
            _FIGS[n](plt, r, path)
            r.figure = str(path)
        out.append(r)
        if log:
            log(format_case(r))
    nstat = sum(c.kind == "stat" for r in out for c in r.checks)
    assert nstat <= STAT_CHECKS, "more statistical checks than the Bonferroni budget assumes"
    return out


def format_case(r: CaseResult) -> str:
    lines = [f"[{'PASS' if r.passed else 'FAIL'}] {r.name}: {r.title}  ({r.seconds:.1f} s)",
             f"    reference: {r.reference}",
             f"    {'check':<52} {'expected':>12} {'measured ± 95% CI':>24} {'tolerance':>11}  verdict"]
    for c in r.checks:
        ci = f" ± {Z95 * c.se:.3g}" if c.se == c.se and c.kind == "stat" else ""
        verdict = "info" if c.kind == "info" else ("pass" if c.passed else "FAIL")
        lines.append(f"    {c.name[:52]:<52} {c.expected:>12.6g} {f'{c.measured:.6g}{ci}':>24} "
                     f"{c.tol:>11.3g}  {verdict}")
        if c.note:
            lines.append(f"        {c.note}")
    if r.figure:
        lines.append(f"    figure: {r.figure}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# figures
def _save(plt, fig, path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _fig_rng(plt, r, path):
    fig, ax = plt.subplots(1, 2, figsize=(9, 3.2))
    h = r.data["hist"]
    ax[0].bar(np.arange(h.size), h, width=1.0, color="tab:blue")
    ax[0].axhline(r.data["n"] / h.size, color="k", lw=1)
    ax[0].set(xlabel="top 8 bits of a word", ylabel="count", title="uniformity")
    names = list(r.data["corr"])
    ax[1].bar(range(len(names)), list(r.data["corr"].values()))
    lim = Z_CHECK / math.sqrt(r.data["n"] / 4)
    ax[1].axhspan(-lim, lim, color="0.9")
    ax[1].set_xticks(range(len(names)), [n.split(" ")[0] for n in names])
    ax[1].set(ylabel="correlation", title="independence (band: tolerance)")
    _save(plt, fig, path)


def _fig_bd(plt, r, path):
    fig, ax = plt.subplots(1, 2, figsize=(9, 3.2))
    z, p, N = r.data["z"], r.data["p"], r.data["N"]
    kmax = min(int(z.max()) + 1, 60)
    ax[0].bar(np.arange(kmax), np.bincount(z, minlength=kmax)[:kmax] / N, label="engine", alpha=0.6)
    ax[0].plot(np.arange(kmax), p[:kmax], "k.", label="exact (pgf)")
    ax[0].set(yscale="log", xlabel="lineage size", ylabel="probability", title="size distribution")
    ax[0].legend()
    t = np.arange(len(r.data["q_path"])) * r.data["dt"] / 60
    ax[1].plot(t, r.data["q_path"], "k-", label="discrete exact")
    ax[1].plot(t, r.data["qc_path"], "r--", label="continuous time")
    ax[1].plot(t[-1], np.mean(z == 0), "bo", label="engine")
    ax[1].set(xlabel="hours", ylabel="P(extinct)", title="extinction")
    ax[1].legend()
    _save(plt, fig, path)


def _fig_al(plt, r, path):
    fig, ax = plt.subplots(1, 3, figsize=(13, 3.2))
    Nc, neg, mu = r.data["Ncell"], r.data["neg"], r.data["mu"]
    order = np.argsort(Nc)
    bins = np.array_split(order, 8)
    xs = [Nc[b].mean() for b in bins]
    ys = [np.mean(neg[b] == 0) for b in bins]
    ax[0].plot(xs, ys, "bo", label="engine")
    nn = np.linspace(Nc.min(), Nc.max(), 100)
    ax[0].plot(nn, (1 - mu) ** (nn - 1), "k-", label="(1-mu)^(N-1)")
    ax[0].set(xlabel="lineage size N", ylabel="P(no antigen-negative)", title="antigen loss")
    ax[0].legend()
    K = min(int(neg.max()) + 1, 40)
    ax[1].bar(np.arange(K), np.bincount(neg, minlength=K)[:K] / neg.size, alpha=0.6, label="engine")
    ax[1].plot(np.arange(K), r.data["law1"][:K], "k.", label="exact law (pgf)")
    ax[1].set(yscale="log", xlabel="antigen-negative cells", ylabel="fraction of lineages",
              title="one founder")
    ax[1].legend()
    cneg = r.data["cneg"]
    K = min(int(cneg.max()) + 1, 40)
    ax[2].bar(np.arange(K), np.bincount(cneg, minlength=K)[:K] / cneg.size, alpha=0.6,
              label="engine")
    ax[2].plot(np.arange(K), r.data["lawc"][:K], "k.", label="exact law (pgf)")
    ax[2].plot(np.arange(K), r.data["ld"][:K], "r-", lw=1, label="Luria-Delbrück (MSS)")
    ax[2].set(yscale="log", xlabel="antigen-negative cells", ylabel="fraction of cultures",
              title=f"{LD_N0} founders; MLE m = {r.data['m_hat']:.2f}")
    ax[2].legend(fontsize=7)
    _save(plt, fig, path)


def _fig_mot(plt, r, path):
    fig, ax = plt.subplots(1, 3, figsize=(12, 3.2))
    d = r.data
    ax[0].errorbar(d["t"], d["msd"], yerr=Z95 * d["msd_se"], fmt="o", ms=3, label="engine")
    ax[0].plot(d["t"], d["msd_exact"], "k-", label="exact")
    ax[0].set(xlabel="steps", ylabel="MSD (voxel²)", title="random walk")
    ax[0].legend()
    ax[1].plot(d["t"], d["drift"][:, 1], "o", ms=3, label="engine x")
    ax[1].plot(d["t"], d["drift_exact"][:, 1], "k-", label="exact x")
    ax[1].plot(d["t"], d["drift"][:, 0], "s", ms=3, label="engine y")
    ax[1].plot(d["t"], d["drift_exact"][:, 0], "k--", label="exact y")
    ax[1].set(xlabel="steps", ylabel="mean displacement (voxels)", title="chemotaxis")
    ax[1].legend(fontsize=7)
    hit = d["hit"]
    ts = np.arange(d["surv"].size)
    emp = [(hit > k).mean() for k in ts]
    ax[2].plot(ts, emp, label="engine")
    ax[2].plot(ts, d["surv"], "k--", label="exact")
    ax[2].set(xlabel="steps", ylabel="P(not yet crossed)", title="slab crossing")
    ax[2].legend()
    _save(plt, fig, path)


def _fig_fields(plt, r, path):
    fig, ax = plt.subplots(1, 4, figsize=(16, 3.2))
    d = r.data
    for h, (xx, cc) in d["prof"].items():
        ax[0].plot(xx, cc, ".", ms=3, label=f"engine h={h:g} µm")
    xs = np.linspace(0, max(v[0][-1] for v in d["prof"].values()), 200)
    ax[0].plot(xs, d["analytic"](xs), "k-", lw=1, label="cosh profile")
    ax[0].set(xlabel="x (µm)", ylabel="O2 (mmHg)", title="slab")
    ax[0].legend(fontsize=7)
    ax[1].loglog(d["hs"], d["errs"], "o-", label="max error")
    hs = np.array(d["hs"])
    ax[1].loglog(hs, d["errs"][0] * (hs / hs[0]) ** 2, "k--", label="h²")
    ax[1].set(xlabel="h (µm)", ylabel="error (mmHg)", title="convergence")
    ax[1].legend()
    ax[2].plot(d["sphere_r"], d["sphere_c"], ".", ms=3, label="engine (voxels)")
    for Rb, sty in ((d["R0um"], "k-"), (d["R0um"] + d["h"], "k--")):
        rr = np.linspace(1e-3, Rb, 100)
        ax[2].plot(rr, d["cv"] * Rb * np.sinh(rr / d["lam"]) / (rr * math.sinh(Rb / d["lam"])),
                   sty, label=f"sinh(r/λ)/r, R = {Rb:g} µm")
    ax[2].set(xlabel="r (µm)", ylabel="O2 (mmHg)", title="spheroid (analytic bracket)")
    ax[2].legend(fontsize=7)
    if "gs_r" in d:
        ax[3].plot(d["gs_r"], d["gs_c"], ".", ms=3, label="engine (voxels)")
        for Rb, sty in ((d["gs_R0um"], "k-"), (d["gs_R0um"] + d["h"], "k--")):
            rr = np.linspace(1e-3, Rb, 200)
            ax[3].plot(rr, greenspan_profile(rr, Rb, d["gs_q"], d["D"], d["cv"]), sty,
                       label=f"Greenspan, R = {Rb:g} µm")
        ax[3].axvline(d["gs_rn"], color="tab:red", lw=1, ls=":", label="engine core (vol.-eq.)")
        ax[3].set(xlabel="r (µm)", ylabel="O2 (mmHg)", title="zero-order spheroid (necrotic core)")
        ax[3].legend(fontsize=7)
    _save(plt, fig, path)


def _fig_wm(plt, r, path):
    fig, ax = plt.subplots(1, 2, figsize=(10, 3.4))
    d = r.data
    for j, (nm, col) in enumerate((("tumour", 2), ("CAR-T effector", 0))):
        ax[0].plot(d["t"], d["traj"][:, :, j].mean(1), label=f"engine {nm} (mean)")
        ax[0].plot(d["t"], d["ode"][:, col], "k--", lw=1)
    ax[0].set(xlabel="days", ylabel="cells", title="(A) growth, expansion, death (dashed: Euler)")
    ax[0].legend(fontsize=7)
    if "traj2" in d:
        for j, nm in enumerate(("tumour", "effector", "memory")):
            ax[1].plot(d["t2"], d["traj2"][:, :, j].mean(1), label=f"engine {nm} (mean)")
            ax[1].plot(d["t2"], d["map2"][:, j], "k:", lw=1)
            ax[1].plot(d["t2"], d["ode2"][:, j], "k--", lw=1)
        ax[1].set(xlabel="days", ylabel="cells",
                  title="(B) with killing and memory (dotted: map, dashed: CARTmath)")
        ax[1].legend(fontsize=7)
    _save(plt, fig, path)


_FIGS = {"rng": _fig_rng, "birth_death": _fig_bd, "antigen_loss": _fig_al, "motility": _fig_mot,
         "fields": _fig_fields, "well_mixed": _fig_wm}
