"""Entry kernels (kernels/entry.cu) and the device step's host parts of the systemic phase, without
a GPU.

* The intratumoral placement and the regional face entry (kernels/entry_logic.cuh, compiled by g++
  in tests/harness/entry_harness.cpp), followed by the vessel entry (systemic_harness), with the
  backend's own host float64 parts (cupy_backend.systemic_host_pre, regional_csf,
  systemic_host_post, inject_shells, check_capacity), must give bitwise what
  systemic.systemic_phase gives: agent table, t_count, blood, csf and car_t_entered; and the
  same CapacityError (same words) when the table would overflow.
* cupy_backend.car_t_tumour_count (array code the device step runs with CuPy) run with NumPy must
  equal the engine's Simulation._car_t_tumour.

The harness fixture and helpers are tests/test_kernels.py's.
"""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest
from test_kernels import CART_TABLE, harness, pack, run_harness  # noqa: F401  (harness: fixture)

from gpusim.backends import cupy_backend as cb
from gpusim.errors import CapacityError
from gpusim.model.systemic import systemic_phase

F32 = np.float32
TABLE_NAMES = tuple(k for k, _ in CART_TABLE)


def _reduced(name: str, shape, extra=(), capacity: int = 500):
    from gpusim.scenario import load_scenario

    Z, Y, X = shape
    return load_scenario(name, [f"domain.z_voxels={Z}", f"domain.y_voxels={Y}", f"domain.x_voxels={X}",
                                f"car_t.capacity_per_replicate={capacity}", *extra])


def _unpack(out: bytes, layout):
    got, off = {}, 0
    for k, t, shp in layout:
        nb = int(np.prod(shp)) * np.dtype(t).itemsize
        got[k] = np.frombuffer(out[off:off + nb], t).reshape(shp).copy()
        off += nb
    assert off == len(out), f"harness wrote {len(out)} bytes, expected {off}"
    return got


def _copy(st):
    names = ("kind", "chemokine", "t_count", "blood", "csf") + TABLE_NAMES
    ns = SimpleNamespace(**{k: getattr(st, k).copy() for k in names})
    ns.replicates, ns.nvox = np.asarray(st.replicates, np.int64), int(np.prod(st.kind.shape[1:]))
    return ns


def device_systemic(harness, st, sp, seed):
    """The systemic phase the way CupySimulation._systemic runs it, with the kernels replaced by
    their host harnesses: returns (state namespace after the phase, entry counts, overflow flag,
    nfree).  On overflow the backend's check_capacity is called (and raises)."""
    R, Z, Y, X = st.kind.shape
    C = st.t_state.shape[1]
    V = Z * Y * X
    step = st.step
    ns = _copy(st)
    n_inject, lam_face = cb.systemic_host_pre(sp, step, ns.blood, ns.csf)
    head = (np.array([R, Z, Y, X, C, sp.max_divisions], np.int32), np.array([seed, step], np.uint32),
            np.asarray(st.replicates).astype(np.uint32))
    first = np.zeros(R, np.int64)
    nfree = None
    if n_inject > 0 or lam_face > 0:
        if n_inject > 0:
            order, shell = cb.inject_shells(sp.site_d2)
            tail = (np.int64(n_inject), np.int32(shell.size - 1), order, shell)
            mode = b"I"
        else:
            face = sp.face_voxels.astype(np.int32)
            tail = (np.int32(face.size), np.float64(lam_face), face)
            mode = b"G"
        out = run_harness(harness("entry_harness"), mode + pack(
            *head, ns.t_count.astype(np.int32), *[getattr(ns, k).astype(t) for k, t in CART_TABLE], *tail))
        got = _unpack(out, [("counts", np.uint64, (R,)), ("nfree", np.uint64, (R,)),
                            ("overflow", np.uint8, (1,)), ("t_count", np.int32, (R,))]
                      + [(k, t, (R, C)) for k, t in CART_TABLE])
        first = got["counts"].astype(np.int64)
        nfree = got["nfree"].astype(np.int64)
        if got["overflow"][0]:
            cb.check_capacity(st.replicates, st.t_count, first, C)
            raise AssertionError("the harness reported an overflow but check_capacity did not raise")
        for k in TABLE_NAMES + ("t_count",):
            setattr(ns, k, got[k])
        if lam_face > 0:
            cb.regional_csf(sp, ns.csf, first)
    lam = ns.blood * sp.homing_per_step * sp.domain_share
    out = run_harness(harness("systemic_harness"), pack(
        np.array([R, Z, Y, X, C, sp.max_divisions], np.int32), np.array([seed, step], np.uint32),
        F32(sp.weight256), lam.astype(np.float64), np.asarray(st.replicates).astype(np.uint32),
        ns.t_count.astype(np.int32), *[getattr(ns, k).astype(t) for k, t in CART_TABLE], st.kind,
        st.chemokine))
    got = _unpack(out, [("t_count", np.int32, (R,))] + [(k, t, (R, C)) for k, t in CART_TABLE]
                  + [("entered", np.uint64, (R,)), ("wsum", np.uint64, (R,))])
    for k in TABLE_NAMES + ("t_count",):
        setattr(ns, k, got[k])
    vessel = got["entered"].astype(np.int64)
    cb.systemic_host_post(sp, ns.blood, ns.csf, vessel)
    ns.car_t_entered = vessel + first
    return ns, first, nfree


def numpy_systemic(st, sp, seed):
    ns = _copy(st)
    events: dict = {}
    systemic_phase(ns, sp, seed, st.step, events)
    ns.car_t_entered = np.broadcast_to(np.asarray(events["car_t_entered"], np.int64), (st.kind.shape[0],))
    return ns


def assert_systemic_equal(want, got):
    for k in TABLE_NAMES + ("t_count", "blood", "csf"):
        a, b = np.ascontiguousarray(getattr(got, k)), np.ascontiguousarray(getattr(want, k))
        assert a.dtype == b.dtype, (k, a.dtype, b.dtype)
        diff = np.argwhere(a.view(np.uint8) != b.view(np.uint8))
        assert diff.size == 0, f"{k} differs at {len(diff)} bytes, first {diff[0].tolist()}"
    np.testing.assert_array_equal(got.car_t_entered, want.car_t_entered)


def _dose_for(sp, n: int) -> float:
    """An intratumoral dose that puts n cells into the domain (the inverse of _inject's rounding)."""
    return n / ((1.0 - sp.leak) * sp.domain_share)


# ----------------------------------------------------------------------------- intratumoral
@pytest.mark.parametrize("shape", [(1, 28, 28), (5, 12, 12)])
def test_inject_kernel_bitwise_on_engine_states(harness, shape):
    """States of a reduced intratumoral run (its day-0 dose already placed, cells migrated, some
    died or divided); on each sampled step a dose is given that places n cells, n from a partial
    shell up to more than the free voxels (then every free voxel fills), with the scenario's
    injection sites and with the distances coarsened into a few large shells (the tie-break by
    the EXTRAVASATION word decides most of the placement).  Table, counts, blood and CSF must equal
    systemic_phase bitwise."""
    from gpusim.engine import Simulation

    sc = _reduced("intratumoral", shape, ["tumour.radius_um=180"], capacity=0)  # one slot per voxel
    sim = Simulation(sc, replicates=2, first_replicate=3)
    V = sim.nvox
    placed = partial_shells = 0
    for step in range(9):
        sim.step()
        if step % 4 != 0:
            continue
        st = sim.state
        assert st.t_count.min() > 0, "no CAR-T cell in the domain: occupancy is not tested"
        base = sim.systemic_params
        coarse = replace(base, site_d2=np.floor(base.site_d2 / 7.0))  # shells of tens of voxels
        for sp0 in (base, coarse):
            order, shell = cb.inject_shells(sp0.site_d2)
            sizes = np.diff(shell)
            for n in (1, 37, V // 3, 2 * V):
                sp = replace(sp0, dose_steps={st.step: _dose_for(sp0, n)})
                want = numpy_systemic(st, sp, sim.seed)
                got, first, _ = device_systemic(harness, st, sp, sim.seed)
                assert_systemic_equal(want, got)
                free = V - st.t_count
                np.testing.assert_array_equal(first, np.minimum(n, free))
                placed += int(first.sum())
                # shells whose free voxels were taken only in part: the tie-break decided there
                for r in range(st.kind.shape[0]):
                    new = want.t_pos[r, st.t_count[r]:st.t_count[r] + first[r]]
                    taken = np.zeros(V, bool)
                    taken[new] = True
                    freev = np.ones(V, bool)
                    freev[st.t_pos[r, :st.t_count[r]]] = False
                    sid = np.repeat(np.arange(sizes.size), sizes)  # shell of order[j]
                    t_in = np.bincount(sid, taken[order], sizes.size)
                    f_in = np.bincount(sid, freev[order], sizes.size)
                    partial_shells += int(((t_in > 0) & (t_in < f_in) & (f_in > 1)).sum())
    assert placed > 0 and partial_shells > 0, (placed, partial_shells)


def test_inject_shells_order():
    """inject_shells: voxels in (distance, voxel) order, shells = runs of equal distance."""
    d2 = np.array([4.0, 1.0, 4.0, 0.5, 1.0, 9.0, 0.5])
    order, shell = cb.inject_shells(d2)
    assert order.dtype == np.int32 and shell.dtype == np.int32
    assert order.tolist() == [3, 6, 1, 4, 0, 2, 5]
    assert shell.tolist() == [0, 2, 4, 6, 7]


def test_inject_overflow_is_the_engines_capacity_error(harness):
    """A dose the table cannot hold: the harness appends nothing and flags it; the backend's
    check_capacity raises the CapacityError systemic_phase raises, word for word."""
    from gpusim.engine import Simulation

    sc = _reduced("intratumoral", (1, 20, 20), ["tumour.radius_um=150", "car_t.capacity_per_replicate=60"])
    sim = Simulation(sc, replicates=2, first_replicate=0)
    sim.step()
    st = sim.state
    C = st.t_state.shape[1]
    n = C - int(st.t_count.min()) + 1  # one too many for the emptiest replicate
    sp = replace(sim.systemic_params, dose_steps={st.step: _dose_for(sim.systemic_params, n)})
    with pytest.raises(CapacityError) as want:
        numpy_systemic(st, sp, sim.seed)
    with pytest.raises(CapacityError) as got:
        device_systemic(harness, st, sp, sim.seed)
    assert str(got.value) == str(want.value) and "capacity_per_replicate" in str(got.value)


# ----------------------------------------------------------------------------- regional
@pytest.mark.parametrize("shape,face", [((1, 24, 24), "x_low"), ((4, 10, 12), "z_high")])
def test_regional_kernel_bitwise_on_engine_states(harness, shape, face):
    """States of a reduced regional run (cells entered at the face during the first infusion,
    some still on it); on sampled steps an infusion runs whose face rate gives p well below 1,
    and one above the free face voxels (p capped at 1), the steps overlapping two infusions (lam
    summed).  Table, counts, blood, CSF and car_t_entered must equal systemic_phase bitwise; the
    free-voxel counts equal the face voxels without a CAR-T cell."""
    from gpusim.engine import Simulation

    # about 0.3 face entrants per face voxel and step over the run's own infusion (table: one
    # slot per voxel, so the run cannot overflow)
    sc = _reduced("regional_gbm", shape, [f"delivery.regional_face={face}", "delivery.infusion_hours=2.0",
                                          "delivery.dose_cells=3e7"], capacity=0)
    sim = Simulation(sc, replicates=2, first_replicate=5)
    base = sim.systemic_params
    F = base.face_voxels.size
    entered = occupied_face = capped = 0
    for step in range(12):
        sim.step()
        if step % 3 != 2:
            continue
        st = sim.state
        tmap = st.tcell_map().reshape(st.kind.shape[0], -1)
        occ_face = (tmap[:, base.face_voxels] > 0).sum(axis=1)
        occupied_face += int(occ_face.sum())
        for rate in (0.3, 2.5):  # face entrants per face voxel and step
            per_dose = rate * F * base.infusion_steps / ((1.0 - base.regional_bf) * base.face_share) / 2
            sp = replace(base, dose_steps={st.step: per_dose, st.step - 1: per_dose})
            want = numpy_systemic(st, sp, sim.seed)
            got, first, nfree = device_systemic(harness, st, sp, sim.seed)
            assert_systemic_equal(want, got)
            np.testing.assert_array_equal(nfree, F - occ_face)
            entered += int(first.sum())
            capped += int(rate > 1 and (first == nfree).all())
    assert entered > 0 and occupied_face > 0 and capped > 0, (entered, occupied_face, capped)


def test_regional_p_rounding_matches_numpy(harness):
    """regional_p: float32(min(lam / nfree, 1)), the quotient in float64 rounded once to float32,
    as the NumPy phase.  A 1 x 1 x 3 domain whose face is its three voxels, all free (nfree = 3);
    lam swept finely across the value where the first voxel's decision flips (p = word / 2^32), so
    a different rounding order (e.g. lam rounded to float32 first) moves the flip and fails."""
    from gpusim import rng

    R, Z, Y, X, C = 1, 1, 1, 3, 4
    seed, step = 9, 4
    face = np.arange(3, dtype=np.int32)
    u = rng.blocks(seed, np.zeros(3, np.int64), step, rng.Stream.EXTRAVASATION, face, draw=2)[:, 0]
    lam0 = 3 * float(u[0]) / 2.0**32
    outcomes = set()
    for lam in lam0 * (1 + np.linspace(-6e-8, 6e-8, 121)):
        out = run_harness(harness("entry_harness"), b"G" + pack(
            np.array([R, Z, Y, X, C, 3], np.int32), np.array([seed, step], np.uint32),
            np.array([0], np.uint32), np.array([0], np.int32),
            *[np.zeros((R, C), t) for _, t in CART_TABLE], np.int32(3), np.float64(lam), face))
        got = int(np.frombuffer(out[:8], np.uint64)[0])
        p = np.minimum(np.float64(lam) / np.int64(3), 1.0).astype(F32)  # systemic._regional_entry
        want = int(rng.below(u, np.full(3, p)).sum())
        assert got == want, lam
        outcomes.add(bool(rng.below(u[:1], np.full(1, p))[0]))
    assert outcomes == {False, True}, "the lam values do not straddle the first voxel's decision"


# ----------------------------------------------------------------------------- car_t_tumour
@pytest.mark.parametrize("shape,radius", [((1, 26, 26), 120), ((5, 10, 11), 60)])
def test_car_t_tumour_count_equals_engine(shape, radius):
    """cupy_backend.car_t_tumour_count (run with NumPy) equals Simulation._car_t_tumour on engine
    states with CAR-T cells at the tumour's edge, and on synthetic states with tumour cells and
    CAR-T cells on the domain's faces and stale positions in the padding slots."""
    from gpusim.engine import Simulation
    from gpusim.model.lattice import Kind

    sc = _reduced("intratumoral", shape, [f"tumour.radius_um={radius}"])
    sim = Simulation(sc, replicates=3, first_replicate=1)
    g = np.random.default_rng(shape[0])
    partial = 0
    for step in range(6):
        sim.step()
        st = sim.state
        want = sim._car_t_tumour()
        got = cb.car_t_tumour_count(np, st.kind, st.t_count, st.t_pos)
        assert got.dtype == np.int64
        np.testing.assert_array_equal(got, want)
        partial += int(((want > 0) & (want < st.t_count)).sum())
    assert partial > 0, "every CAR-T cell near the tumour or none: the count is not discriminating"
    R, C, V = 3, 40, sim.nvox
    for _ in range(5):
        kind = np.where(g.random((R,) + shape) < 0.08, Kind.TUMOUR, Kind.HEALTHY).astype(np.uint8)
        t_count = g.integers(0, C + 1, R).astype(np.int32)
        t_pos = np.stack([g.permutation(V)[:C] for _ in range(R)]).astype(np.int32)
        st = SimpleNamespace(kind=kind, t_count=t_count, t_pos=t_pos)
        sim.state = st
        want = sim._car_t_tumour()
        np.testing.assert_array_equal(cb.car_t_tumour_count(np, kind, t_count, t_pos), want)
        assert 0 < want.sum() < t_count.sum()
