"""The device backend: the phases of the step as the CUDA kernels of ``kernels/``.

:class:`DevicePhases` supplies the phases to :class:`gpusim.engine.Simulation`, whose step (phase
order, bookkeeping, events, the systemic and toxicity host arithmetic) is the one every backend
runs.  The lattice and agent arrays of a batch live on the device with their leading replicate
axis, and every replicate of a batch is served by one launch per kernel; the per-replicate pools,
counters and events are host arrays.  Kernels are launched by name (:func:`interface.launch`).

A *runtime* gives the phases their array module (``xp``) and their compiled kernels
(``module(file)``): :class:`CudaRuntime` is a CUDA device through CuPy, with the kernels compiled
by NVRTC without flush-to-zero or contraction (:mod:`gpusim.backends.nvrtc`);
:mod:`gpusim.backends.emulated` is the emulated device that runs this very code on a machine
without a GPU (the kernels compiled for the host), which is how the test suite checks it.

Phases (engine order):

* systemic -- :func:`gpusim.model.systemic.systemic_phase` itself, with the regional face entry
  (``kernels/entry.cu``) and the vessel entry (``kernels/systemic.cu``) as kernels; the
  intratumoral placement and the append of entrants are its array code, run with ``xp``;
* fields -- coefficients by ``kernels/field_coeffs.cu``, red-black SOR by ``kernels/fields.cu``;
* tumour -- ``kernels/tumour.cu``; microenvironment -- ``kernels/microenv.cu``;
* CAR-T -- ``kernels/car_t.cu`` (engagement, exhaustion, fate, compaction to destinations from
  exact prefix sums, :func:`compaction_slots`) and
  ``kernels/car_t_move.cu`` (migration).

Only per-replicate (R,) values are read back during a step; the state is copied to the host only
for output (``Simulation.state``).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..engine import DEVICE_ARRAYS, State
from ..errors import BackendError, CapacityError
from ..model.multigrid import MultigridSolver
from ..model.systemic import systemic_phase
from . import nvrtc
from .interface import (AMAP_BITS, CART_COUNTS, FIELD_IDS, MICRO_COUNTS, TABLE_FIELDS, TUMOUR_COUNTS, bind, launch, pack,
                        table_args)

SWEEPS_PER_POLL = 8  #: field sweeps between two host reads of the convergence flags
F32 = np.float32


def _cupy():
    try:
        import cupy
    except Exception as e:  # pragma: no cover - depends on the machine
        raise BackendError(f"backend 'cupy' needs CuPy ({type(e).__name__}: {e}); "
                           "install gpusim[gpu] or use --backend numpy") from e
    return cupy


class CudaRuntime:
    """A CUDA device through CuPy: kernels compiled by NVRTC for the device's architecture,
    cached by hash (:func:`nvrtc.binary`) and loaded with ``cupy.RawModule(path=...)``."""

    name = "cupy"

    def __init__(self):
        self.xp = cp = _cupy()
        dev = cp.cuda.Device()
        self.device_id = dev.id
        self.target = f"sm_{dev.compute_capability}"
        self._modules: dict[str, object] = {}

    def module(self, file: str):
        if file not in self._modules:
            self._modules[file] = self.xp.RawModule(path=str(nvrtc.binary(file, self.target)))
        return self._modules[file]


class DevicePhases:
    """The phases of the step on a device (see the module docstring)."""

    name = "cupy"

    def __init__(self, sim, runtime):
        self.sim = sim
        self.rt = runtime
        self.xp = xp = runtime.xp
        self._reps = self._claims = None
        self.k_tumour = xp.asarray(pack("TumourK", sim.tumour_params))
        self.k_move = xp.asarray(pack("MoveK", sim.car_t_params))
        self.k_fields = xp.asarray(pack("FieldCoefK", sim.fields))
        self.rec = xp.asarray(sim.car_t_params.rec_tables.astype(np.uint64).ravel())  # (P * 65536)
        sp = sim.systemic_params
        self._order = None if sp.inject_order is None else xp.asarray(sp.inject_order)
        self._face = None if sp.face_voxels is None else xp.asarray(sp.face_voxels.astype(np.int32))

    # -- state transfers -----------------------------------------------------------------------
    def upload(self, st: State) -> State:
        xp = self.xp
        return State({k: (xp.asarray(v) if k in DEVICE_ARRAYS else np.array(v, copy=True))
                      for k, v in st.arrays().items()}, st.replicates, st.step)

    def download(self, st: State) -> State:
        return State({k: (v.get() if k in DEVICE_ARRAYS else v.copy()) for k, v in st.arrays().items()},
                     st.replicates, st.step)

    # -- helpers -------------------------------------------------------------------------------
    def _geo(self, st, capacity: bool = False) -> dict:
        R, Z, Y, X = st.kind.shape
        g = {"R": R, "Z": Z, "Y": Y, "X": X}
        if capacity:
            g["C"] = st.t_state.shape[1]
        return g

    def _rng(self, st) -> dict:
        reps = st.replicates.astype(np.uint32)
        if self._reps is None or not np.array_equal(self._reps[0], reps):
            self._reps = (reps, self.xp.asarray(reps))
        return {"seed": self.sim.seed, "step": st.step, "reps": self._reps[1]}

    def claims(self, st):
        """The claim lattice (uint64 (R * V), every slot empty between uses), sized by the state."""
        if self._claims is None or self._claims.size != st.kind.size:
            self._claims = self.xp.full(st.kind.size, np.uint64(0xFFFFFFFFFFFFFFFF), dtype=self.xp.uint64)
        return self._claims

    @staticmethod
    def _add(events: dict, names, counts) -> None:
        c = counts.get().astype(np.int64)
        for i, k in enumerate(names):
            events[k] = events.get(k, 0) + c[:, i]

    def _occ(self, st):
        """int32 (R * V): the number of CAR-T cells in each voxel."""
        xp = self.xp
        occ = xp.zeros(st.kind.size, xp.int32)
        launch(self.rt.module("car_t_move.cu"), "car_t_move_occ", st.t_state.size,
               **self._geo(st, True), t_count=st.t_count, t_pos=st.t_pos, occ=occ)
        return occ

    # -- systemic ------------------------------------------------------------------------------
    def systemic(self, st, events: dict) -> None:
        systemic_phase(st, self.sim.systemic_params, self.sim.seed, st.step, events, entry=self)

    def inject_order(self, sp):
        return self._order

    def regional(self, st, sp, seed, step, lam: np.ndarray):
        """Regional face entry (kernels/entry.cu): uint8 (R, V) entry mask (``lam`` float64 (R,))."""
        xp = self.xp
        R, V = st.kind.shape[0], st.nvox
        F = int(self._face.size)
        occ, enter = self._occ(st), xp.zeros(st.kind.size, xp.uint8)
        nfree, counts = xp.zeros(R, xp.uint64), xp.zeros(R, xp.uint64)
        mod = self.rt.module("entry.cu")
        launch(mod, "regional_free_kernel", R * F, R=R, F=F, V=V, face=self._face, occ=occ, nfree=nfree)
        launch(mod, "regional_decide_kernel", R * F, R=R, F=F, V=V, **self._rng(st),
               lam=xp.asarray(np.asarray(lam, np.float64)),
               face=self._face, occ=occ, nfree=nfree, enter=enter, counts=counts)
        return enter.reshape(R, V)

    def vessels(self, st, sp, seed, step, lam: np.ndarray):
        """Vessel entry (kernels/systemic.cu): uint8 (R, V) entry mask.  The per-replicate scale
        ``float32(lam / W)`` is host float64 from the exact integer weight sums."""
        xp = self.xp
        R, V, n = st.kind.shape[0], st.nvox, st.kind.size
        mod = self.rt.module("systemic.cu")
        occ = self._occ(st)
        w, wsum = xp.empty(n, xp.int32), xp.zeros(R, xp.uint64)
        launch(mod, "extravasation_weights_kernel", n, n=n, V=V, weight256=sp.weight256,
               kind=st.kind, chem=st.chemokine, occ=occ, w=w, wsum=wsum)
        ws = wsum.get().astype(np.int64)
        scale = np.zeros(R, dtype=F32)
        nz = ws > 0
        scale[nz] = (lam[nz] / ws[nz]).astype(F32)
        enter, counts = xp.empty(n, xp.uint8), xp.zeros(R, xp.uint64)
        launch(mod, "extravasation_decide_kernel", n, **self._geo(st), **self._rng(st),
               scale=xp.asarray(scale), w=w, enter=enter, counts=counts)
        return enter.reshape(R, V)

    # -- fields --------------------------------------------------------------------------------
    def fields(self, st) -> None:
        """environment.FieldsPhase.solve: coefficients right before each solve, in its order."""
        xp, f = self.xp, self.sim.fields
        R, C = st.t_state.shape
        n = st.kind.size
        mod = self.rt.module("field_coeffs.cu")
        amap = xp.zeros(n, xp.uint32)
        launch(mod, "field_agent_map_kernel", R * C, **self._geo(st, True), t_count=st.t_count,
               t_pos=st.t_pos, t_eng=st.t_eng, t_act=st.t_act, t_state=st.t_state, amap=amap)
        geo = dict(zip("RZYX", st.kind.shape))

        def solve(name: str, solver, fixed_value=None) -> None:
            c = getattr(st, name)
            prob = Problem.alloc(xp, c.shape, solver, held=fixed_value is not None)
            launch(mod, "field_coeffs_kernel", n, **geo, f=FIELD_IDS.index(name), pp=self.k_fields,
                   kind=st.kind, amap=amap, c=c, ifng=st.ifng, o2=st.o2, den0=solver._den0,
                   fixed_value=0.0 if fixed_value is None else fixed_value, den=prob.den,
                   s_split=prob.s, a_split=prob.a, fixed_split=prob.fixed, cmax=prob.cmax)
            f.iterations[{"o2": "oxygen"}.get(name, name)] = solve_posed(self.rt, solver, c, prob)

        solve("o2", f.o2, f.o2_vessel)      # the vessel voxels held (kind == VESSEL)
        solve("glucose", f.glucose, f.glucose_vessel)
        solve("chemokine", f.chemokine)  # reads the previous step's IFN-gamma
        solve("tgfb", f.tgfb)  # reads the oxygen just solved
        for name, solver, sec, bit in (("ifng", f.ifng, f.ifng_sec, AMAP_BITS["AMAP_ENG"]),
                                       ("il12", f.il12, f.il12_sec, AMAP_BITS["AMAP_ACT"])):
            # skipped exactly when the NumPy phase skips it (the result would be exactly zero)
            if (sec == 0 or not bool(((amap & bit) != 0).any())) and not bool(getattr(st, name).any()):
                f.iterations[name] = np.zeros(R, np.int32)
                continue
            solve(name, solver)

    def solve(self, fs, c, a, s, fixed=None, fixed_value=0.0) -> np.ndarray:
        return device_solve(self.rt, fs, c, a, s, fixed, fixed_value)

    def steady_tgfb(self, st) -> None:
        f = self.sim.fields
        f.steady_tgfb(st, self.xp, self.solve)

    # -- tissue cells and microenvironment -------------------------------------------------------
    def tumour(self, st, events: dict) -> None:
        xp = self.xp
        mod = self.rt.module("tumour.cu")
        R = st.kind.shape[0]
        counts = xp.zeros((R, len(TUMOUR_COUNTS)), xp.uint64)
        kind_out = xp.empty_like(st.kind)
        common = dict(**self._geo(st), pp=self.k_tumour, **self._rng(st), antigen_a=st.antigen_a,
                      antigen_b=st.antigen_b, antigen_a_base=st.antigen_a_base,
                      antigen_b_base=st.antigen_b_base, pdl1=st.pdl1, claims=self.claims(st),
                      counts=counts)
        launch(mod, "tumour_decide_kernel", st.kind.size, **common, kind_in=st.kind,
               kind_out=kind_out, ecm=st.ecm, o2=st.o2, glucose=st.glucose)
        launch(mod, "tumour_births_kernel", st.kind.size, **common, kind_out=kind_out)
        st.kind = kind_out
        self._add(events, TUMOUR_COUNTS, counts)

    def microenv(self, st, events: dict) -> None:
        xp = self.xp
        mp = self.sim.microenv_params
        mod = self.rt.module("microenv.cu")
        R = st.kind.shape[0]
        k = xp.asarray(pack("MicroK", mp, drug_on=mp.d_drug > 0 and st.step >= mp.drug_start_step))
        counts = xp.zeros((R, len(MICRO_COUNTS)), xp.uint64)
        ndeg = xp.zeros(st.kind.size, xp.uint32)
        launch(mod, "microenv_agents_kernel", st.t_state.size, **self._geo(st, True), pp=k,
               t_count=st.t_count, t_state=st.t_state, t_pos=st.t_pos, ndeg=ndeg)
        launch(mod, "microenv_voxel_kernel", st.kind.size, **self._geo(st), pp=k, **self._rng(st),
               kind=st.kind, pdl1=st.pdl1, ifng=st.ifng, o2=st.o2, il12=st.il12, tgfb=st.tgfb,
               antigen_a=st.antigen_a, antigen_b=st.antigen_b, antigen_a_base=st.antigen_a_base,
               antigen_b_base=st.antigen_b_base, ndeg=ndeg, ecm=st.ecm, counts=counts)
        if mp.p_fap > 0:
            launch(mod, "microenv_fap_kernel", st.kind.size, **self._geo(st), pp=k, **self._rng(st),
                   kind=st.kind, ndeg=ndeg, counts=counts)
        self._add(events, MICRO_COUNTS, counts)

    # -- CAR-T cells ---------------------------------------------------------------------------
    def car_t(self, st, events: dict) -> None:
        """car_t.car_t_phase: engagement, exhaustion, fate, compaction, then migration."""
        xp = self.xp
        ctp = self.sim.car_t_params
        R, C = st.t_state.shape
        if int(st.t_count.max()) == 0:
            return
        RC, step = R * C, st.step
        mod, mv = self.rt.module("car_t.cu"), self.rt.module("car_t_move.cu")
        inhib, exh_pd = ctp.pdl1_terms(step)
        k = xp.asarray(pack("CarTK", ctp, inhib=inhib, exh_pd=exh_pd, p_kill=ctp.p_kill_at(step),
                            p_div_step=ctp.p_division_at(step), p_revive=ctp.p_revive_at(step),
                            tgfb_exh_on=ctp.exh_tgfb_gain > 0 and not ctp.dnTGFbRII))
        table = {f: getattr(st, f) for f in TABLE_FIELDS}
        tgt = xp.full(RC, -1, xp.int32)
        stim, killed, died, born = (xp.zeros(RC, xp.uint8) for _ in range(4))
        pd_seen = xp.zeros(RC, xp.float32)
        counts = xp.zeros((R, len(CART_COUNTS)), xp.uint64)
        geo, rnd = self._geo(st, True), self._rng(st)
        tab = dict(t_count=st.t_count, **table_args(table))
        occ = self._occ(st)
        launch(mod, "car_t_engage_claim", RC, **geo, pp=k, **rnd, **tab, kind=st.kind,
               antigen_a=st.antigen_a, antigen_b=st.antigen_b, pdl1=st.pdl1, rec=self.rec,
               claims=self.claims(st), tgt=tgt, stim=stim, killed=killed, pd_seen=pd_seen, counts=counts)
        launch(mod, "car_t_engage_resolve", RC, **geo, pp=k, **rnd, **tab, kind=st.kind,
               antigen_a=st.antigen_a, antigen_b=st.antigen_b, o2=st.o2, glucose=st.glucose,
               tgfb=st.tgfb, il12=st.il12, pdl1=st.pdl1, rec=self.rec, claims=self.claims(st), tgt=tgt,
               stim=stim, killed=killed, pd_seen=pd_seen, counts=counts)
        launch(mod, "car_t_claim_reset", RC, **geo, t_count=st.t_count, claims=self.claims(st), tgt=tgt)
        launch(mod, "car_t_exhaustion", RC, **geo, pp=k, **tab, o2=st.o2, tgfb=st.tgfb, il12=st.il12,
               stim=stim, killed=killed, pd_seen=pd_seen)
        launch(mod, "car_t_fate_claim", RC, **geo, pp=k, **rnd, **tab, o2=st.o2, glucose=st.glucose,
               tgfb=st.tgfb, il12=st.il12, p_death_r=xp.asarray(ctp.p_death_table(st.steroid).ravel()),
               occ=occ, claims=self.claims(st), tgt=tgt, died=died,
               born=born, counts=counts)
        launch(mod, "car_t_fate_resolve", RC, **geo, **tab, claims=self.claims(st), tgt=tgt, born=born,
               counts=counts)
        launch(mod, "car_t_claim_reset", RC, **geo, t_count=st.t_count, claims=self.claims(st), tgt=tgt)
        self._car_t_compact(st, mod, k, table, tgt, died, born, geo, tab)
        self._car_t_migrate(st, mv, tgt, geo, rnd)
        self._add(events, CART_COUNTS, counts)

    def _car_t_compact(self, st, mod, k, table, tgt, died, born, geo, tab) -> None:
        """Compaction of the CAR-T table: survivors in slot order, then daughters in their
        parents' order."""
        xp = self.xp
        R, C = st.t_state.shape
        RC = R * C
        live = xp.arange(C)[None, :] < st.t_count[:, None]
        keep = live & (died.reshape(R, C) == 0)
        dst_keep, dst_born, count = compaction_slots(xp, keep, live & (born.reshape(R, C) != 0))
        need = count.get()
        if need.max(initial=0) > C:
            worst = int(np.argmax(need))
            raise CapacityError(
                f"replicate {int(self.sim.replicates[worst])} needs {int(need[worst])} CAR-T slots but "
                f"car_t.capacity_per_replicate is {C}; raise it (0 means car_t.max_per_voxel slots per voxel)")
        out = {f: xp.full_like(a, -1 if f == "t_dir" else 0) for f, a in table.items()}
        launch(mod, "car_t_compact", RC, **geo, pp=k, **tab, **table_args(out, "o", out), died=died,
               born=born, tgt=tgt, dst_keep=dst_keep, dst_born=dst_born)
        for f, a in out.items():
            setattr(st, f, a)
        st.t_count = count.astype(xp.int32)

    def _car_t_migrate(self, st, mv, tgt, geo, rnd) -> None:
        """Migration of the CAR-T cells on the compacted table (``n_sub`` sub-moves)."""
        xp = self.xp
        ctp = self.sim.car_t_params
        RC = st.t_state.size
        occ = self._occ(st)
        tgt.fill(-1)
        dsel = xp.zeros(RC, xp.int8)
        for m in range(ctp.n_sub):
            launch(mv, "car_t_move_decide", RC, **geo, m=m, pp=self.k_move, **rnd, t_count=st.t_count,
                   t_pos=st.t_pos, t_dir=st.t_dir, kind=st.kind, ecm=st.ecm, chem=st.chemokine,
                   occ=occ, claims=self.claims(st), tgt=tgt, dsel=dsel)
            launch(mv, "car_t_move_apply", RC, **geo, t_count=st.t_count, t_pos=st.t_pos,
                   t_dir=st.t_dir, occ=occ, claims=self.claims(st), tgt=tgt, dsel=dsel)
            launch(mv, "car_t_move_reset", RC, **geo, t_count=st.t_count, claims=self.claims(st), tgt=tgt)


def compaction_slots(xp, keep, born):
    """Destinations of the CAR-T compaction, as ``car_t._fate`` + ``scatter`` order the table: per
    replicate the survivors in slot order, then the daughters in their parents' slot order.
    ``keep``, ``born``: bool (R, C).  Returns int64 (R, C) ``dst_keep``, ``dst_born`` (meaningful
    where the flag is set) and int64 (R,) the new counts; exact integer prefix sums, so the same
    on every backend and for any thread order."""
    keep = keep.astype(xp.int64)
    born = born.astype(xp.int64)
    n_keep = keep.sum(axis=1)
    dst_keep = xp.cumsum(keep, axis=1) - keep
    dst_born = n_keep[:, None] + xp.cumsum(born, axis=1) - born
    return dst_keep, dst_born, n_keep + born.sum(axis=1)


def split_size(shape) -> int:
    """Entries of a colour-split solver array (kernels/fields_logic.cuh ``split_index``) of a
    level of shape (R, Z, Y, X): two colours of R Z Y rows of (X + 1) // 2."""
    R, Z, Y, X = shape
    return 2 * R * Z * Y * ((X + 1) // 2)


class Problem(NamedTuple):
    """A solve's problem as the device solvers read it (kernels/fields_logic.cuh ``sor_pose``):
    den = den0 + a, s, a (multigrid solves only, else None) float32 and the held mask uint8 (or
    None), colour-split; cmax uint32 (R): max |c| at the start (float32 bits)."""

    den: object
    s: object
    a: object
    fixed: object
    cmax: object

    @classmethod
    def alloc(cls, xp, shape, solver, held: bool) -> "Problem":
        """Buffers for ``solver`` on a lattice of ``shape``, written by the kernel that poses it."""
        m = split_size(shape)
        return cls(xp.empty(m, xp.float32), xp.empty(m, xp.float32),
                   xp.empty(m, xp.float32) if isinstance(solver, MultigridSolver) else None,
                   xp.empty(m, xp.uint8) if held else None, xp.zeros(shape[0], xp.uint32))


def prepare(rt, fs, c, a, s, fixed=None, fixed_value=0.0) -> Problem:
    """``fields_prepare``: the problem of ``fs`` from natural ``a``, ``s`` and ``fixed`` (or
    None); the held voxels of ``c`` set to ``fixed_value``."""
    prob = Problem.alloc(rt.xp, c.shape, fs, held=fixed is not None)
    R, Z, Y, X = c.shape
    launch(rt.module("fields.cu"), "fields_prepare", c.size, R=R, Z=Z, Y=Y, X=X, den0=fs._den0,
           a=a, s=s, fixed=fixed, fixed_value=fixed_value, c=c, den=prob.den, s_split=prob.s,
           a_split=prob.a, fixed_split=prob.fixed, cmax=prob.cmax)
    return prob


def device_solve(rt, fs, c, a, s, fixed=None, fixed_value=0.0) -> np.ndarray:
    """``fs.solve`` (a :class:`~gpusim.model.fields.FieldSolver` or a
    :class:`~gpusim.model.multigrid.MultigridSolver`) on a device runtime, in place on the device
    array ``c``, from natural coefficients; returns the sweeps or cycles per replicate (host int32
    (R,))."""
    return solve_posed(rt, fs, c, prepare(rt, fs, c, a, s, fixed, fixed_value))


def solve_posed(rt, fs, c, prob: Problem) -> np.ndarray:
    """``fs.solve`` of the problem ``prob`` (posed by :func:`prepare` or the field coefficient
    kernel) in place on ``c``; the sweeps or cycles per replicate (host int32 (R,))."""
    if isinstance(fs, MultigridSolver):
        return _multigrid_solve(rt, fs, c, prob)
    xp = rt.xp
    mod = rt.module("fields.cu")
    R, Z, Y, X = c.shape
    active = xp.full(R, 1 if fs.max_iter > 0 else 0, xp.uint8)
    iters, maxchg = xp.zeros(R, xp.int32), xp.zeros(R, xp.uint32)
    dprev, rprev = xp.zeros(R, xp.float32), xp.zeros(R, xp.float32)
    geo = dict(R=R, Z=Z, Y=Y, X=X, three_d=fs.three_d, dirichlet=fs.boundary == "dirichlet", bv=fs.boundary_value,
               dh=fs._dh, omega=fs._omega, floor_on=fs.floor is not None,
               floor=0.0 if fs.floor is None else fs.floor, c=c, s=prob.s, den=prob.den,
               fixed=prob.fixed, active=active, maxchg=maxchg, save=None, base=None)
    nt = split_size(c.shape) // 2  # threads of a colour pass
    colour0 = bind(mod, "fields_sor_colour", nt, colour=0, **geo)
    colour1 = bind(mod, "fields_sor_colour", nt, colour=1, **geo)
    rule = bind(mod, "fields_after_sweep", R, R=R, tol=fs._tol, rho_min=fs._rho_min,
                scale=fs._scale, max_iter=fs.max_iter, active=active, iters=iters,
                maxchg=maxchg, dprev=dprev, rprev=rprev, cmax=prob.cmax)
    done = fs.max_iter == 0
    while not done:
        for _ in range(SWEEPS_PER_POLL):
            colour0()
            colour1()
            rule()
        done = not bool(active.any())  # one host read per SWEEPS_PER_POLL sweeps
    return iters.get()


def _multigrid_solve(rt, ms, c, prob: Problem) -> np.ndarray:
    """:meth:`MultigridSolver.solve <gpusim.model.multigrid.MultigridSolver.solve>` of the problem
    ``prob`` on a device runtime, in place on the device array ``c``; returns the cycles per
    replicate (host int32)."""
    xp, mf, mm = rt.xp, rt.module("fields.cu"), rt.module("multigrid.cu")
    R = c.shape[0]
    L = len(ms.shapes)
    fixed_split, cmax = prob.fixed, prob.cmax
    cs, ss, sink, den = [c], [prob.s], [prob.a], [prob.den]
    for l in range(1, L):
        shape = (R,) + ms.shapes[l]
        cs.append(xp.empty(shape, xp.float32))   # written by mg_restrict before any read
        ss.append(xp.empty(split_size(shape), xp.float32))
        sink.append(xp.empty(split_size(shape), xp.float32))
        den.append(xp.empty(split_size(shape), xp.float32))
        launch(mm, "mg_coarsen", cs[l].size, **_pair(R, ms.shapes, l - 1), K=ms._sink_fixed,
               den0=ms._den0s[l], a_f=sink[l - 1], fixed=fixed_split if l == 1 else None,
               a_c=sink[l], den_c=den[l])
    res = [xp.empty_like(cs[l]) for l in range(L - 1)]
    active = xp.full(R, 1 if ms.max_iter > 0 else 0, xp.uint8)
    iters, maxchg, scratch = xp.zeros(R, xp.int32), xp.zeros(R, xp.uint32), xp.zeros(R, xp.uint32)
    dprev, rprev = xp.zeros(R, xp.float32), xp.zeros(R, xp.float32)
    before = xp.empty(split_size(c.shape), xp.float32)   # c at the start of a cycle (saved by
                                                         # the finest level's first smoothing)

    def level(l):
        Z, Y, X = ms.shapes[l]
        return dict(R=R, Z=Z, Y=Y, X=X, three_d=ms.three_d, dirichlet=ms.boundary == "dirichlet",
                    bv=ms.boundary_value if l == 0 else 0.0, dh=ms.levels[l]._dh, c=cs[l],
                    s=ss[l], den=den[l], fixed=fixed_split if l == 0 else None, active=active)

    def smooth(l, measure=None):
        """The two colour passes of level l; the finest level's save c before the descent
        (``measure`` "save") and measure the cycle's change from it after the ascent ("base")."""
        nt = split_size(cs[l].shape) // 2
        mc = {"save": dict(maxchg=scratch, save=before, base=None),
              "base": dict(maxchg=maxchg, save=None, base=before),
              None: dict(maxchg=scratch, save=None, base=None),
              "own": dict(maxchg=maxchg, save=before, base=before)}[measure]
        return [bind(mf, "fields_sor_colour", nt, colour=colour, omega=1.0, floor_on=False,
                     floor=0.0, **mc, **level(l)) for colour in (0, 1)]

    # the V-cycle's launches in their order, bound once per solve
    if L == 1:                         # a one-voxel lattice: Gauss-Seidel, |c_new - c|
        cycle = smooth(0, "own")
    else:
        down, up = [], []
        for l in range(L - 1):
            down += smooth(l, "save" if l == 0 else None) + [
                bind(mm, "mg_residual", cs[l].size, **level(l), res=res[l]),
                bind(mm, "mg_restrict", cs[l + 1].size, **_pair(R, ms.shapes, l),
                     three_d=ms.three_d, res=res[l], s_c=ss[l + 1], c_c=cs[l + 1], active=active)]
            up = [bind(mm, "mg_prolong", cs[l].size, **_pair(R, ms.shapes, l), three_d=ms.three_d,
                       c_c=cs[l + 1], c=cs[l], fixed=fixed_split if l == 0 else None, active=active)
                  ] + smooth(l, "base" if l == 0 else None) + up
        cycle = down + [bind(mm, "mg_coarsest", R, R=R, dirichlet=ms.boundary == "dirichlet",
                             s=ss[L - 1], a=sink[L - 1], den=den[L - 1], c=cs[L - 1],
                             active=active)] + up
    rule = bind(mf, "fields_after_sweep", R, R=R, tol=ms._tol, rho_min=ms._rho_min,
                scale=ms._scale, max_iter=ms.max_iter, active=active, iters=iters, maxchg=maxchg,
                dprev=dprev, rprev=rprev, cmax=cmax)
    while ms.max_iter > 0:
        for k in cycle:
            k()
        rule()
        if not bool(active.any()):  # one host read per cycle
            break
    return iters.get()


def _pair(R, shapes, l) -> dict:
    """The geometry arguments of a transfer between level l and level l + 1."""
    (Zf, Yf, Xf), (Zc, Yc, Xc) = shapes[l], shapes[l + 1]
    return dict(R=R, Zf=Zf, Yf=Yf, Xf=Xf, Zc=Zc, Yc=Yc, Xc=Xc)


def device_phases(runtime):
    """``phases`` argument of :class:`gpusim.engine.Simulation` for a device runtime."""
    return lambda sim: DevicePhases(sim, runtime)


_RUNTIME = None


def runtime() -> CudaRuntime:
    """The CUDA runtime of the current device (one per process)."""
    global _RUNTIME
    if _RUNTIME is None:
        _RUNTIME = CudaRuntime()
    return _RUNTIME
