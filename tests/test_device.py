"""The device backend without a GPU: its own step on the emulated device, the kernel interface,
and the kernels compiled by NVRTC.

* Every bundled scenario and the variants that switch on what no bundled scenario does (memory
  cells, zero-order oxygen consumption, 4th generation with fibroblasts, lymphodepletion and
  stroma drug) run on the NumPy engine and on the device backend's step
  (``cupy_backend.DevicePhases``, kernels compiled for the host by g++, threads reversed or
  shuffled), compared bitwise, every state array and every event, at every step, until every
  event the case fires within 60 steps has fired (``FIRES``; at least 20 steps, at most 60); the
  variants and the next-generation scenarios are checked to fire what they are for, in those runs.
* One full-size scenario runs past the step where its IFN-gamma becomes subnormal, bitwise with
  the device's compile options, and diverges when flush-to-zero is emulated (what
  ``cupy.RawModule``'s forced ``-ftz=true`` would do): the options are what keeps the contract.
* Planted errors in a kernel, in a launch argument and in the launch order are each caught.
* NVRTC (the ``nvidia-cuda-nvrtc`` wheel, no GPU needed) compiles every kernel; the PTX carries no
  ``.ftz`` and no ``fma``; sources are ASCII; the binary cache key covers every header.
"""

from __future__ import annotations

import dataclasses
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from gpusim.backends import interface, nvrtc
from gpusim.backends.cupy_backend import device_phases
from gpusim.backends.nvrtc import kernel_dir, kernel_files
from gpusim.backends.selfcheck import Mismatch, first_difference, reduced, verify
from gpusim.engine import EVENTS, Simulation
from gpusim.errors import CapacityError
from gpusim.model.lattice import TState
from gpusim.scenario import bundled, load_scenario
from gpusim.testing import assert_device_solve_bitwise, solver_case
from gpusim.backends.emulated import EmulatedRuntime, compiler

F32 = np.float32
ROOT = Path(__file__).resolve().parents[1]
needs_cxx = pytest.mark.skipif(compiler() is None, reason="no host C++ compiler (g++ or $CXX)")
NVRTC_OK, NVRTC_WHY = nvrtc.available()
needs_nvrtc = pytest.mark.skipif(not NVRTC_OK, reason=f"NVRTC not installed here: {NVRTC_WHY}")

#: mechanisms off in every bundled scenario, switched on (base scenario, overrides)
VARIANTS = {
    "memory": ("intratumoral", ["car_t.memory_conversion_rate_per_day=150",
                                "car_t.memory_reactivation_probability=0.5",
                                "car_t.memory_death_rate_per_day=2"]),
    "zero_order_o2": ("quickstart", ["oxygen.consumption_tumour_mmHg_per_min=3000",
                                     "oxygen.consumption_healthy_mmHg_per_min=50"]),
    "truck_fibroblasts": ("intratumoral", ["car_t.generation=fourth", "stroma.fibroblast_fraction=0.9",
                                           "car_t.armour=TGFb_trap"]),
    "schedule_drugs": ("quickstart", ["delivery.schedule=iv 0 1e9; intratumoral 0 3e7; intraventricular 0 1e9",
                                       "delivery.regional_surface_cm2=1.0", "toxicity.tocilizumab_at_grade=1", "toxicity.anakinra_at_grade=2",
                                       "toxicity.steroid_days=[0.05]", "delivery.cns_tumour=true"]),
    "lympho_drug": ("quickstart", ["delivery.lymphodepletion=true", "stroma.drug_degradation_per_day=2",
                                   "stroma.drug_start_day=0.0", "stroma.car_t_degradation_per_day=3"]),
    # anti-PD-1 reinvigoration (fast killing and exhaustion, fast revival), a 5th-generation
    # product and lymphodepletion together
    "pd1_gen5_lympho": ("pd1_combo", ["car_t.kill_rate_per_min=0.05", "car_t.exhaustion_per_kill=0.5",
                                      "pd1.reinvigoration_rate_per_day=50",
                                      "car_t.generation=fifth", "delivery.lymphodepletion=true"]),
    # CAR-T crowding: several cells per voxel (occupancy counts, the OR-ed agent map, ECM
    # degradation by every effector in a voxel) with a cap that no bundled scenario uses
    "crowding": ("intratumoral", ["car_t.max_per_voxel=3", "car_t.armour=dnTGFbRII",
                                  "delivery.dose_cells=3e7", "stroma.car_t_degradation_per_day=3"]),
    # tumour shoving in 3D through a fibroblast-rich capsule, at a radius and ECM response that no
    # bundled scenario uses
    "shove_3d": ("large_3d", ["tumour.push_radius_voxels=3", "tumour.push_probability=0.7",
                              "tumour.push_ecm_max=1.5", "stroma.fibroblast_fraction=0.5",
                              "delivery.dose_cells=0"]),
    # two products (A-CAR, B-CAR) by every route: per-product pools, the entrants' product draws
    # (blood and CSF pools both holding two products), per-product recognition tables
    "two_products": ("dual_target", ["car_t.targets=A", "delivery.schedule=iv 0 1e9; intratumoral 0 2e7 B; "
                                     "intraventricular 0 1e9 B; iv 0.1 1e9 B",
                                     "delivery.regional_surface_cm2=1.0", "delivery.cns_tumour=true",
                                     "car_t.max_per_voxel=2"]),
    # every field that can be solved by multigrid is (oxygen without a floor, chemokine, IFN-γ,
    # IL-12 too: the bundled scenarios solve only glucose and TGF-β by it)
    "multigrid_all": ("truck_il12", ["run.field_solver=multigrid"]),
}
#: scenarios without a CAR-T dose (the bitwise test checks tumour divisions there instead)
NO_DOSE = {"untreated", "shove_3d"}


@pytest.fixture(scope="module")
def emulated():
    if compiler() is None:
        pytest.skip("no host C++ compiler (g++ or $CXX)")
    return EmulatedRuntime(order=1)


def _pair(sc, rt, R=2, first=3):
    return (Simulation(sc, replicates=R, first_replicate=first),
            Simulation(sc, replicates=R, first_replicate=first, phases=device_phases(rt)))


#: events every treated case fires within 60 steps (summed over its 2 replicates)
_TREATED = ("car_t_entered", "tumour_apoptosis", "cleared", "antigen_recovered", "kills_tumour", "engagements",
            "trogocytosis", "car_t_deaths", "car_t_births", "memory_conversions", "tumour_divisions")
#: what each case fires within 60 steps at its reduced size (measured with the NumPy engine at the
#: default parameters; "exhausted": a live CAR-T cell in the exhausted state after a step): the
#: bitwise run stops once every one of them has fired and STEPS_AFTER more steps have been
#: compared, at least MIN_STEPS in all; it never goes past MAX_STEPS, and a case not listed here
#: (or whose events fire later under other parameters) runs MAX_STEPS steps.  So each case
#: compares every kernel path it reaches in MAX_STEPS steps, bitwise, without the steps after.
FIRES = {
    "armoured": _TREATED + ("tumour_necrosis", "fibroblast_displaced"),
    "dual_target": _TREATED + ("healthy_displaced",),
    "gbm_prime_boost": _TREATED + ("memory_reactivations", "healthy_displaced"),
    "gen5": _TREATED + ("tumour_necrosis", "memory_reactivations", "fibroblast_displaced"),
    "healthy_antigen": _TREATED + ("tumour_necrosis", "kills_healthy", "memory_reactivations", "fibroblast_displaced"),
    "intratumoral": _TREATED + ("tumour_necrosis", "memory_reactivations", "fibroblast_displaced"),
    "iv_baseline": _TREATED + ("tumour_necrosis", "fibroblast_displaced"),
    "large_3d": _TREATED + ("memory_reactivations", "fibroblast_displaced"),
    "no_barriers": _TREATED + ("memory_reactivations", "healthy_displaced"),
    "pd1_combo": _TREATED + ("tumour_necrosis", "fibroblast_displaced"),
    "quickstart": _TREATED + ("memory_reactivations", "fibroblast_displaced"),
    "regional_gbm": _TREATED + ("healthy_displaced",),
    "sequential_ab": _TREATED + ("memory_reactivations", "healthy_displaced"),
    "stroma_targeting": _TREATED + ("tumour_necrosis", "fibroblast_displaced", "kills_fibroblast"),
    "truck_il12": _TREATED + ("tumour_necrosis", "fibroblast_displaced", "kills_innate"),
    "untreated": ("tumour_divisions", "healthy_displaced"),
    "crowding": _TREATED + ("tumour_necrosis", "memory_reactivations"),
    "lympho_drug": _TREATED + ("memory_reactivations", "fibroblast_displaced"),
    "memory": _TREATED + ("tumour_necrosis", "memory_reactivations", "fibroblast_displaced"),
    "pd1_gen5_lympho": _TREATED + ("tumour_necrosis", "memory_reactivations", "fibroblast_displaced",
                                   "pd1_reinvigorations", "exhausted"),
    "schedule_drugs": _TREATED + ("memory_reactivations", "fibroblast_displaced"),
    "shove_3d": ("tumour_apoptosis", "tumour_divisions", "cleared", "fibroblast_displaced"),
    "truck_fibroblasts": _TREATED + ("tumour_necrosis", "memory_reactivations", "fibroblast_displaced", "kills_innate"),
    "two_products": _TREATED + ("memory_reactivations", "healthy_displaced"),
    "multigrid_all": _TREATED + ("tumour_necrosis", "fibroblast_displaced", "kills_innate"),
    "zero_order_o2": _TREATED[:-1] + ("tumour_necrosis", "memory_reactivations"),  # no division
}
MIN_STEPS, STEPS_AFTER, MAX_STEPS = 20, 5, 60


@pytest.fixture(scope="module")
def bitwise_run():
    """``run(name)``: the case on the NumPy engine and on the device step, compared bitwise after
    every step until its FIRES have fired (at most MAX_STEPS); ``(mismatch, steps, event totals,
    NumPy state)``, once per case and module (the mechanism checks below read the same runs)."""
    done = {}

    def run(name):
        if name not in done:
            done[name] = _bitwise(name)
        return done[name]
    return run


def _live(st, state):
    """Live CAR-T cells in ``state`` (R, C)."""
    return (st.t_state == state) & (np.arange(st.t_state.shape[1])[None, :] < st.t_count[:, None])


def _bitwise(name):
    base, extra = VARIANTS.get(name, (name, []))
    ref, dev = _pair(reduced(base, extra), EmulatedRuntime(order=1 + hash(name) % 2))
    need, tot, stop, step = FIRES.get(name), dict.fromkeys(EVENTS + ("exhausted",), 0), MAX_STEPS, 0
    m = first_difference(ref, dev, 0, name)  # 0 steps: compares the states (and events) as they are
    while m is None and step < stop:
        ref.step()
        dev.step()
        step += 1
        m = first_difference(ref, dev, 0, name)
        for k, v in ref.last_events.items():
            tot[k] += int(v.sum())
        tot["exhausted"] += int(_live(ref.state, TState.EXHAUSTED).sum())
        if need and stop == MAX_STEPS and all(tot[k] for k in need):
            stop = min(MAX_STEPS, max(MIN_STEPS, step + STEPS_AFTER))
    if m is not None:
        return dataclasses.replace(m, step=step), step, tot, ref.state
    for k, v in ref.metrics().items():
        try:
            np.testing.assert_array_equal(dev.metrics()[k], v, err_msg=k)
        except AssertionError as e:
            return Mismatch(name, step, f"metric {k}", str(e)), step, tot, ref.state
    return None, step, tot, ref.state


# ----------------------------------------------------------------------------- the device step
@needs_cxx
@pytest.mark.parametrize("name", sorted(bundled()) + sorted(VARIANTS))
def test_device_step_bitwise_every_step(name, bitwise_run):
    """The backend's own step on the emulated device equals the NumPy engine bitwise at every
    step (threads reversed for half the cases, shuffled for the other half), every state array,
    every event and every metric, until every event the case fires in MAX_STEPS steps has fired."""
    m, _, _, st = bitwise_run(name)
    assert m is None, m
    if name in NO_DOSE:
        assert (st.kind == 1).sum() > st.tumour_initial.sum(), "the tumour did not grow"
    else:
        assert st.t_count.sum() > 0 or st.kills_tumour.sum() > 0, "no CAR-T cell took part"


@needs_cxx
def test_variants_exercise_their_mechanism(bitwise_run):
    """The variants (and the bundled next-generation scenarios) do switch on what they are for,
    in the runs compared bitwise above (else the bitwise test proves little)."""
    seen = {name: bitwise_run(name)[2:] for name in list(VARIANTS) + ["truck_il12", "stroma_targeting", "gen5"]}
    tot, _ = seen["memory"]
    assert tot["memory_conversions"] > 0 and tot["memory_reactivations"] > 0, tot
    _, st = seen["zero_order_o2"]
    assert (st.o2 == 0).any(), "no anoxic voxel: the floor never bound"
    _, st = seen["truck_fibroblasts"]
    assert st.il12.max() > 0 and (st.kind == 3).any()
    tot, _ = seen["pd1_gen5_lympho"]
    assert tot["pd1_reinvigorations"] > 0 and tot["memory_conversions"] > 0, tot
    tot, _ = seen["schedule_drugs"]
    assert tot["car_t_deaths"] > 0
    _, st = seen["crowding"]
    shared = [np.bincount(st.t_pos[r, :st.t_count[r]]).max(initial=0) for r in range(st.t_count.size)]
    assert max(shared) > 1, "no voxel holds two CAR-T cells"
    _, st = seen["two_products"]
    live = np.arange(st.t_prod.shape[1])[None, :] < st.t_count[:, None]
    assert set(np.unique(st.t_prod[live])) == {0, 1}, "not both products in the tissue"
    assert (st.entered_product > 0).all() and (st.csf > 0).all(), "a product's pool or entry unused"
    tot, _ = seen["shove_3d"]
    assert tot["fibroblast_displaced"] > 0 and tot["tumour_divisions"] > 0, tot
    # innate kills in truck_il12, CAF kills in stroma_targeting, JAK-STAT memory formation in gen5
    for name, event in {"truck_il12": "kills_innate", "stroma_targeting": "kills_fibroblast",
                        "gen5": "memory_conversions"}.items():
        assert seen[name][0][event] > 0, (name, event)


@needs_cxx
def test_full_size_run_keeps_subnormals_and_ftz_would_break_it():
    """Full-size iv_baseline, past step 15: bitwise with the device's compile options; with
    flush-to-zero emulated (cupy.RawModule's forced -ftz=true) it diverges where IFN-gamma
    becomes subnormal, so this case does exercise subnormals."""
    sc = load_scenario("iv_baseline")
    ftz = EmulatedRuntime(order=2, options=nvrtc.OPTIONS + ("-ftz=true",))
    assert ftz.ftz
    ref = Simulation(sc, replicates=1, first_replicate=0)  # one NumPy run, compared with both
    devs = {rt: Simulation(sc, replicates=1, first_replicate=0, phases=device_phases(rt))
            for rt in (EmulatedRuntime(order=2), ftz)}
    found = {rt: first_difference(ref, d, 0, "iv_baseline") for rt, d in devs.items()}
    for step in range(1, 17):
        ref.step()
        for rt, d in devs.items():
            if found[rt] is None:
                d.step()
                m = first_difference(ref, d, 0, "iv_baseline")  # 0 steps: compares them as they are
                found[rt] = m and dataclasses.replace(m, step=step)
    m = found.pop(ftz)
    assert list(found.values()) == [None], found
    assert m is not None and m.what in ("ifng", "pdl1", "chemokine"), m


@needs_cxx
def test_capacity_error_is_the_engines(emulated):
    sc = reduced("intratumoral", ["car_t.capacity_per_replicate=50"])
    ref, dev = _pair(sc, emulated)
    with pytest.raises(CapacityError) as want:
        for _ in range(5):
            ref.step()
    with pytest.raises(CapacityError) as got:
        for _ in range(5):
            dev.step()
    assert str(got.value) == str(want.value)


@needs_cxx
@pytest.mark.parametrize("shape,boundary,omega,floor,tol,max_iter", [
    ((3, 1, 33, 32), "neumann", 1.6, None, 1e-5, 500),
    ((2, 6, 7, 9), "dirichlet", 1.0, None, 1e-5, 500),
    ((2, 1, 9, 8), "neumann", 1.6, 0.0, 1e-5, 500),
    ((2, 4, 5, 4), "dirichlet", 1.0, 0.0, 1e-5, 500),
    ((2, 1, 10, 10), "neumann", 1.6, 0.0, 0.0, 9),   # never converges: stops at max_iter
    ((2, 1, 6, 6), "neumann", 1.6, None, 1e-5, 0),   # max_iter 0: nothing swept
])
def test_field_solver_on_the_device_bitwise(emulated, shape, boundary, omega, floor, tol, max_iter):
    case = solver_case(shape, boundary, omega, floor, tol, max_iter)
    c_np = assert_device_solve_bitwise(emulated, case)
    fixed = case[4]
    if floor is not None and max_iter > 10:
        assert (c_np[~fixed] == 0).any(), "the floor never binds"


@needs_cxx
def test_field_solver_rounding_level_stop_on_the_device_bitwise(emulated):
    """A tolerance below float32's reach: over-relaxed sweeps cycle in the last ulps, and the
    stopping rule's rounding-level branch (``scale``) ends the solve, bitwise on both backends."""
    from gpusim.model.fields import FieldSolver

    _, c0, a, s, fixed = solver_case((2, 1, 24, 24), "neumann")
    kw = dict(diffusion_um2_per_min=2000.0, voxel_um=20.0, boundary="neumann", boundary_value=0.3,
              omega=1.9, tol=1e-9, max_iter=400)
    fs = FieldSolver(c0.shape, scale=1.0, **kw)
    assert_device_solve_bitwise(emulated, (fs, c0, a, s, fixed))
    assert (fs.solve(c0.copy(), a, s, fixed, F32(0.75)) < 400).all()
    assert (FieldSolver(c0.shape, **kw).solve(c0.copy(), a, s, fixed, F32(0.75)) == 400).all()


@needs_cxx
def test_field_solver_first_sweep_is_no_stagnation_on_the_device_bitwise(emulated):
    """A warm start whose first change is below the rounding level in a slow mode (one replicate
    10 tol off, one at x* = 0): both backends go on past the first sweep, to the same sweep,
    bitwise (tests/test_fields_accuracy.py states the case)."""
    from gpusim.model.fields import FieldSolver

    shape = (2, 1, 16, 16)
    fs = FieldSolver(shape, diffusion_um2_per_min=2340.0, voxel_um=20.0, boundary="neumann",
                     omega=1.0, tol=5e-4, scale=5.0, max_iter=6000)
    a = np.full(shape, 0.02, F32)
    c0 = np.zeros(shape, F32)
    c0[0] = F32(5e-3)
    fixed = np.zeros(shape, bool)
    assert_device_solve_bitwise(emulated, (fs, c0, a, np.zeros(shape, F32), fixed))
    it = fs.solve(c0.copy(), a, np.zeros(shape, F32), fixed, F32(0.75))
    assert it[0] > 1 and it[0] < fs.max_iter and it[1] == 1


# ----------------------------------------------------------------------------- planted errors
@needs_cxx
def test_planted_kernel_error_is_caught(tmp_path, monkeypatch):
    """A kernels/ copy whose CAR-T logic adds the exhaustion of a kill twice: caught, and named."""
    kd = tmp_path / "kernels"
    shutil.copytree(kernel_dir(), kd)
    p = kd / "car_t_logic.cuh"
    good = "if (killed[i]) e = e + p.exh_per_kill * g;"
    assert good in p.read_text()
    p.write_text(p.read_text().replace(good, "if (killed[i]) e = e + 2.0f * p.exh_per_kill * g;"))
    monkeypatch.setattr(nvrtc, "kernel_dir", lambda: kd)
    monkeypatch.setenv("GPUSIM_CACHE_DIR", str(tmp_path / "cache"))
    m = verify(EmulatedRuntime(), ("quickstart",), steps=30)
    assert m is not None and m.what == "t_exh", m


@needs_cxx
def test_planted_launch_argument_error_is_caught(monkeypatch):
    """One launch with a wrong argument (the sub-move index of migration off by one)."""
    from gpusim.backends import cupy_backend

    real = interface.launch

    def wrong(module, kernel, threads, **args):
        if kernel == "car_t_move_decide":
            args["m"] = args["m"] + 1
        return real(module, kernel, threads, **args)

    monkeypatch.setattr(cupy_backend, "launch", wrong)
    m = verify(EmulatedRuntime(), ("quickstart",), steps=30)
    assert m is not None and m.what in ("t_pos", "t_dir"), m


@needs_cxx
def test_planted_launch_order_error_is_caught(monkeypatch):
    """The host orchestration wrong: the claims of engagement reset before they are resolved."""
    from gpusim.backends import cupy_backend

    real = interface.launch
    pending = []

    def reordered(module, kernel, threads, **args):
        if kernel == "car_t_engage_resolve":
            pending.append((module, kernel, threads, args))
            return None
        real(module, kernel, threads, **args)
        if kernel == "car_t_claim_reset" and pending:
            real(*pending[0][:3], **pending.pop()[3])

    monkeypatch.setattr(cupy_backend, "launch", reordered)
    m = verify(EmulatedRuntime(), ("quickstart",), steps=30)
    assert m is not None, "resolving engagements after the claims were reset went unnoticed"


# ----------------------------------------------------------------------------- the interface
def test_interface_header_is_current():
    """kernels/interface.cuh is generated from gpusim/backends/interface.py
    (python -m gpusim.backends.interface rewrites it)."""
    assert (kernel_dir() / interface.HEADER).read_text() == interface.render_header()


def test_every_kernel_is_declared_once_and_defined_in_its_file():
    for f in kernel_files():
        defined = set(re.findall(r'extern\s+"C"\s+__global__\s+void\s+(\w+)\s*\(', f.read_text()))
        assert defined == set(interface.KERNELS[f.name]), f.name
    assert set(interface.KERNELS) == {f.name for f in kernel_files()}


def test_struct_layouts_are_packed_4_byte_members():
    for name, members in interface.STRUCTS.items():
        dt = interface.struct_dtype(name)
        assert dt.itemsize == 4 * sum(n for _, _, n in members), name


def test_launch_checks_names_types_and_sizes(emulated):
    xp = emulated.xp
    mod = emulated.module("fields.cu")
    c = xp.zeros(8, xp.float32)
    ok = dict(R=1, Z=1, Y=2, X=4, den0=1.0, a=c, s=c, fixed=None, fixed_value=0.0, c=c,
              den=xp.zeros(8, xp.float32), s_split=xp.zeros(8, xp.float32), a_split=None,
              fixed_split=None, cmax=xp.zeros(1, xp.uint32))
    interface.launch(mod, "fields_prepare", 8, **ok)
    with pytest.raises(TypeError, match="missing arguments \\['fixed_value'\\]"):
        interface.launch(mod, "fields_prepare", 8, **{k: v for k, v in ok.items() if k != "fixed_value"})
    with pytest.raises(TypeError, match="unknown arguments \\['bogus'\\]"):
        interface.launch(mod, "fields_prepare", 8, **ok, bogus=1)
    with pytest.raises(TypeError, match="argument a must be a device array of float32"):
        interface.launch(mod, "fields_prepare", 8, **{**ok, "a": xp.zeros(8, xp.float64)})
    with pytest.raises(TypeError, match="struct TumourK has"):
        interface.launch(emulated.module("tumour.cu"), "tumour_births_kernel", 1,
                         **{p.name: None for p in interface.signature("tumour_births_kernel")}
                         | {"R": 1, "Z": 1, "Y": 1, "X": 1, "seed": 0, "step": 0,
                            "pp": xp.zeros(3, xp.uint8)})


def test_bind_checks_its_arguments_once_and_the_rest_at_each_call(emulated):
    """A bound launch (the solver loops) runs the kernel as launch() does; its own arguments are
    checked when it is bound, the others at each call, with launch()'s errors."""
    xp = emulated.xp
    mod = emulated.module("fields.cu")
    a = xp.asarray(np.arange(8, dtype=np.float32))
    fixed = dict(R=1, Z=1, Y=2, X=4, den0=2.0, a=a, s=a, fixed=None, fixed_value=0.0)
    outs = []
    for how in ("launch", "bind"):
        c, den, s2 = (xp.zeros(8, xp.float32) for _ in range(3))
        rest = dict(c=c, den=den, s_split=s2, a_split=None, fixed_split=None,
                    cmax=xp.zeros(1, xp.uint32))
        if how == "launch":
            interface.launch(mod, "fields_prepare", 8, **fixed, **rest)
        else:
            go = interface.bind(mod, "fields_prepare", 8, **fixed)
            go(**rest)
        outs.append((den.get(), s2.get()))
    np.testing.assert_array_equal(outs[0][0], outs[1][0])
    np.testing.assert_array_equal(outs[0][1], outs[1][1])
    # colour-split: row y = 0 holds x = 0, 2 (colour 0) then x = 1, 3 (colour 1); y = 1 the reverse
    np.testing.assert_array_equal(outs[1][1], [0, 2, 5, 7, 1, 3, 4, 6])
    np.testing.assert_array_equal(outs[1][0], 2 + outs[1][1])
    with pytest.raises(TypeError, match="unknown arguments \\['bogus'\\]"):
        interface.bind(mod, "fields_prepare", 8, bogus=1)
    with pytest.raises(TypeError, match="argument a must be a device array of float32"):
        interface.bind(mod, "fields_prepare", 8, **{**fixed, "a": xp.zeros(8, xp.float64)})
    with pytest.raises(TypeError, match="missing arguments \\['cmax'\\], unknown arguments \\['x'\\]"):
        go(**{k: v for k, v in rest.items() if k != "cmax"}, x=1)
    with pytest.raises(TypeError, match="argument den must be a device array of float32"):
        go(**rest | {"den": xp.zeros(8, xp.int32)})


def test_emulator_reads_arguments_as_the_driver_does(emulated):
    """Bypassing launch(): a Python int for an int parameter is 8 bytes, which a GPU would misread;
    the emulator refuses it, as it refuses host arrays."""
    fn = emulated.module("fields.cu").get_function("fields_prepare")
    c = emulated.xp.zeros(8, np.float32)
    R, Z, Y, X = np.int32(1), np.int32(1), np.int32(2), np.int32(4)
    cmax = emulated.xp.zeros(1, np.uint32)
    with pytest.raises(TypeError, match="passed as 8 bytes, the kernel reads 4"):
        fn((1,), (8,), (1, Z, Y, X, np.float32(1), c, c, None, np.float32(0), c, c, c, None, None,
                        cmax))
    with pytest.raises(TypeError, match="host array"):
        fn((1,), (8,), (R, Z, Y, X, np.float32(1), np.zeros(8, np.float32), c, None, np.float32(0),
                        c, c, c, None, None, cmax))


# ----------------------------------------------------------------------------- NVRTC and sources
def test_kernel_sources_are_ascii():
    """NVRTC 12.0-12.5 switch the thread to an ASCII locale after the first compile: a non-ASCII
    kernel source then fails to load as text."""
    for p in sorted(kernel_dir().glob("*.cu*")):
        bad = [(i + 1, line) for i, line in enumerate(p.read_bytes().split(b"\n")) if max(line, default=0) > 127]
        assert not bad, f"{p.name}:{bad[0][0]} has non-ASCII characters"


def test_binary_key_covers_every_header_and_option(tmp_path):
    """CuPy's cache keys on the .cu text only; an edit to an included header must change ours."""
    kd = tmp_path / "k"
    shutil.copytree(kernel_dir(), kd)
    key = lambda: nvrtc.binary_key("fields.cu", "sm_90", directory=kd)  # noqa: E731
    k0 = key()
    (kd / "fields_logic.cuh").write_bytes((kd / "fields_logic.cuh").read_bytes() + b"\n// edit\n")
    k1 = key()
    (kd / "common.cuh").write_bytes((kd / "common.cuh").read_bytes() + b"\n")
    k2 = key()
    assert len({k0, k1, k2}) == 3
    assert nvrtc.binary_key("fields.cu", "sm_90", nvrtc.OPTIONS + ("-ftz=true",), directory=kd) != k2
    assert nvrtc.binary_key("fields.cu", "sm_80", directory=kd) != k2


@needs_nvrtc
@pytest.mark.parametrize("src", [p.name for p in kernel_files()])
def test_every_kernel_compiles_with_nvrtc_without_ftz_or_fma(src):
    """Really compiled (RawModule compiles lazily, so merely building one checks nothing): the PTX
    defines every declared kernel and has no flush-to-zero and no fused multiply-add."""
    ptx = nvrtc.compile_source(src, "compute_90").decode()
    entries = set(re.findall(r"\.entry\s+(\w+)", ptx))
    assert entries == set(interface.KERNELS[src]), src
    assert ".ftz" not in ptx and "fma" not in ptx, src


@needs_nvrtc
def test_the_ptx_check_can_fail():
    """The same check on builds with flushing or contraction on does find them."""
    assert ".ftz" in nvrtc.compile_source("fields.cu", "compute_90", nvrtc.OPTIONS + ("-ftz=true",)).decode()
    fmad = tuple(o for o in nvrtc.OPTIONS if "fmad" not in o) + ("--fmad=true",)
    assert "fma" in nvrtc.compile_source("fields.cu", "compute_90", fmad).decode()


@needs_nvrtc
def test_cubins_are_cached_by_key(tmp_path, monkeypatch):
    monkeypatch.setenv("GPUSIM_CACHE_DIR", str(tmp_path))
    p = nvrtc.binary("entry.cu", "sm_90")
    assert p.is_file() and p.stat().st_size > 0 and p.parent.parent == tmp_path
    mtime = p.stat().st_mtime_ns
    assert nvrtc.binary("entry.cu", "sm_90") == p and p.stat().st_mtime_ns == mtime


def test_missing_nvrtc_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(nvrtc, "_LIB", None)
    monkeypatch.setattr(nvrtc, "_candidates", lambda: ["/nonexistent/libnvrtc.so"])
    ok, why = nvrtc.available()
    assert not ok and "NVRTC (libnvrtc) not found" in why and "nvidia-cuda-nvrtc" in why


# ----------------------------------------------------------------------------- packaging
def test_kernels_include_only_their_own_headers():
    own = {p.name for p in kernel_dir().glob("*.cuh")}
    for p in list(kernel_dir().glob("*.cu")) + list(kernel_dir().glob("*.cuh")):
        for inc in re.findall(r'^\s*#\s*include\s*[<"]([^>"]+)[>"]', p.read_text(), re.M):
            assert inc in own, f"{p.name} includes {inc!r}; kernels may include only {sorted(own)}"


# ----------------------------------------------------------------------------- wheel
def test_wheel_contains_kernels(tmp_path):
    import importlib.util

    if not (importlib.util.find_spec("wheel") or importlib.util.find_spec("setuptools.command.bdist_wheel")):
        pytest.skip("building a wheel without build isolation needs the 'wheel' package "
                    "(or setuptools >= 70.1)")
    src = tmp_path / "src"
    # a clean copy of the sources (no build/, .venv, caches), so the build cannot race others
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(
        ".venv", ".git", "build", "*.egg-info", "__pycache__", "results", ".pytest_cache", "*.h5"))
    res = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                          "-q", "-w", str(tmp_path / "dist"), str(src)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-3000:]
    (whl,) = (tmp_path / "dist").glob("gpusim-*.whl")
    names = set(zipfile.ZipFile(whl).namelist())
    want = {f"gpusim/kernels/{p.name}" for p in kernel_dir().iterdir() if p.suffix in (".cu", ".cuh")}
    assert want and want <= names, f"missing from the wheel: {sorted(want - names)}"
    assert "gpusim/scenarios/quickstart.toml" in names
