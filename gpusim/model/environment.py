"""Fields phase: oxygen and glucose to quasi-steady state; chemokine, TGF-β, IFN-γ and IL-12 by one
backward-Euler step each.  MODEL.md section 3.

Order within the phase (each solve reads the fields as the earlier solves of this phase left them):
oxygen, glucose, chemokine, TGF-β, IFN-γ, IL-12.

Per voxel the sink ``a`` (1/min) is ``decay + uptake(cell kind) + uptake_T × (CAR-T present)``
and the source ``s`` is zero except for secretion; vessel voxels are held at the vessel value
(oxygen, glucose only).  All sums below are float32, in the order written; the backward-Euler
step adds ``1/dt`` to the sink and ``c_old/dt`` to the source (``s = secretion + c_old * inv_dt``).

* oxygen: besides the first-order uptake, an optional zero-order consumption ``q(kind)``
  (mmHg/min; tumour, and healthy for healthy cells and fibroblasts) enters as the source
  ``s = -q(kind)`` (the LUT ``o2_src = 0 - q``, float32).  When some ``q > 0`` the oxygen solver
  is projected SOR with floor 0 (:class:`~gpusim.model.fields.FieldSolver` ``floor=0.0``): the
  discrete obstacle problem ``O2 >= 0``, consumption only where oxygen is left (Greenspan's
  necrotic core, MODEL.md section 3).  With every ``q == 0`` (the default) the source is the zero
  array and there is no floor: bitwise the first-order-only solve.

* chemokine: tumour cells secrete ``q = sec × (1 + boost × (I/(I + K_I)))`` towards saturation 1
  (PhysiCell's ``q (1 − c)``), so a tumour voxel has ``a = (decay + inv_dt) + q`` and
  ``s = q + c_old × inv_dt``; ``I`` is the IFN-γ of the previous step, ``K_I`` =
  ``tumour.pdl1_ifng_half``.
* TGF-β (total TGF-β1, ng/mL): source ``sec(kind)`` (ng/mL/min, the per-cell secretion over the voxel
  volume, :func:`tgfb_source_ng_per_mL_per_min`), for a hypoxic tumour cell (``o2 < o2_hypoxic``, the oxygen just
  solved) ``sec_tumour × hypoxic multiplier``; sink ``decay + inv_dt`` plus ``trap_uptake`` at
  voxels holding a CAR-T cell armoured with a TGF-β trap.
* IFN-γ: source ``secretion`` at voxels of CAR-T cells engaged this step (``t_eng``); sink
  ``decay + inv_dt``.
* IL-12: source ``secretion`` at voxels of activated (``t_act > 0``) 4th-generation CAR-T cells;
  sink ``decay + inv_dt``.

IFN-γ and IL-12 are not solved while the field is zero everywhere and nothing secretes it: the
solver would return exactly zero then (``gs = (dh × 0 + 0)/den = 0``), so skipping is exact.

Solver per field (``run.field_solver``): red-black SOR (:class:`~gpusim.model.fields.FieldSolver`)
or multigrid V-cycles (:class:`~gpusim.model.multigrid.MultigridSolver`) on the same discrete
system with the same stopping rule; ``auto`` takes multigrid for the fields of
:data:`MULTIGRID_AUTO` on lattices of at least :data:`MULTIGRID_AUTO_MIN_VOXELS`, and for the
set-up's TGF-β steady state (docs/fields.md, "Choosing the solver"); projected oxygen is always
SOR.
"""

from __future__ import annotations

import numpy as np

from .fields import FieldSolver
from .multigrid import MultigridSolver
from .lattice import Kind, TState

F32 = np.float32
N_KINDS = len(Kind)


def voxel_volume_mL(sc) -> float:
    """Volume of one voxel (a cube of edge ``domain.voxel_um``, also on a 2D lattice) in mL."""
    return sc["domain.voxel_um"] ** 3 * 1e-12


def tgfb_source_ng_per_mL_per_min(sc, who: str) -> float:
    """TGF-β1 source term (ng/mL/min) of a voxel holding one secreting cell: the per-cell
    secretion ``tgfb.secretion_<who>_pg_per_cell_per_day`` (pg/cell/day) spread over the voxel
    volume, ``sec × 1e-3 ng/pg / V_voxel(mL) / 1440 min/day`` (float64 on the host).  A 20 µm
    voxel holds 8e-9 mL, so 1e-3 pg/cell/day is 0.0868 ng/mL/min."""
    return sc[f"tgfb.secretion_{who}_pg_per_cell_per_day"] * 1e-3 / voxel_volume_mL(sc) / 1440.0


#: ``run.field_solver = "auto"``: the fields solved by multigrid, by lattice dimension (the others
#: by red-black SOR): where it moves far fewer device bytes at equal accuracy without slowing the
#: NumPy step by more than a few per cent, measured (docs/fields.md, "Choosing the solver")
MULTIGRID_AUTO = {2: ("glucose", "tgfb"), 3: ("glucose",)}
#: ... on lattices of at least this many voxels: below, a cycle's fixed cost (the short NumPy calls
#: of the small levels, about seven kernel launches per level on a device) outweighs the sweeps it
#: saves, and ``auto`` keeps SOR for every field (docs/fields.md)
MULTIGRID_AUTO_MIN_VOXELS = {2: 200 * 200, 3: 64 ** 3}


def uses_multigrid(sc, name: str, floor: bool = False) -> bool:
    """Whether the fields phase of scenario ``sc`` solves field ``name`` (its parameter section:
    oxygen, glucose, chemokine, tgfb, ifng, il12; ``floor``: projected) by multigrid."""
    mode = sc["run.field_solver"]
    if floor or mode == "sor":
        return False
    if mode == "multigrid":
        return True
    dim = 3 if sc.shape[0] > 1 else 2
    return int(np.prod(sc.shape)) >= MULTIGRID_AUTO_MIN_VOXELS[dim] and name in MULTIGRID_AUTO[dim]


def steady_tgfb_own_solver(sc) -> bool:
    """Whether the set-up's TGF-β steady state gets a multigrid solver of its own
    (``FieldsPhase.tgfb_steady``): unless run.field_solver is sor or TGF-β is multigrid anyway."""
    return sc["run.field_solver"] != "sor" and not uses_multigrid(sc, "tgfb")


class FieldsPhase:
    def __init__(self, sc, R: int):
        shape = (R,) + sc.shape
        tol = sc["run.field_tolerance"]
        om = sc["run.field_omega"]
        self.dt = F32(sc["run.dt_min"])
        self.inv_dt = F32(1.0 / sc["run.dt_min"])

        # zero-order oxygen consumption (mmHg/min) by kind, as a source s = -consumption (0 - q in
        # float32: +0.0 where q is 0); the oxygen solve is projected onto O2 >= 0 only when some
        # consumption is on, so that runs without it stay bitwise plain SOR
        cons = np.zeros(N_KINDS, dtype=F32)
        cons[Kind.TUMOUR] = F32(sc["oxygen.consumption_tumour_mmHg_per_min"])
        cons[Kind.HEALTHY] = F32(sc["oxygen.consumption_healthy_mmHg_per_min"])
        cons[Kind.FIBROBLAST] = F32(sc["oxygen.consumption_healthy_mmHg_per_min"])
        self.o2_src = (F32(0) - cons).astype(F32)
        self.o2_floor_on = bool((cons > 0).any())

        suffix = "_3d" if sc.shape[0] > 1 else ""

        def solver(name: str, boundary_value: float, scale: float, floor=None, multigrid=False):
            # tol bounds the error against the converged discrete solution (docs/fields.md);
            # scale also sets the float32 rounding level at which a stagnating solve stops
            kw = dict(diffusion_um2_per_min=sc[f"{name}.diffusion_um2_per_min"],
                      voxel_um=sc["domain.voxel_um"], boundary=sc[f"{name}.boundary"],
                      boundary_value=boundary_value, tol=tol * scale, scale=scale)
            if floor is None and (multigrid or uses_multigrid(sc, name)):
                return MultigridSolver(shape, **kw)
            return FieldSolver(shape, omega=om or sc[f"{name}.sor_omega{suffix}"], floor=floor, **kw)

        self.o2 = solver("oxygen", sc["oxygen.boundary_mmHg"], sc["oxygen.vessel_mmHg"] or 1.0,
                         0.0 if self.o2_floor_on else None)
        self.glucose = solver("glucose", sc["glucose.boundary_mM"], sc["glucose.vessel_mM"] or 1.0)
        self.chemokine = solver("chemokine", 0.0, 1.0)
        self.o2_vessel = F32(sc["oxygen.vessel_mmHg"])
        self.glucose_vessel = F32(sc["glucose.vessel_mM"])
        self.o2_sink = self._lut(sc, "oxygen")
        self.glucose_sink = self._lut(sc, "glucose")
        self.o2_t = F32(sc["oxygen.uptake_car_t_per_min"])
        self.glucose_t = F32(sc["glucose.uptake_car_t_per_min"])
        self.chem_sec = F32(sc["chemokine.secretion_tumour_per_min"])
        self.chem_base = F32(sc["chemokine.decay_per_min"]) + self.inv_dt
        self.chem_boost = F32(sc["ifng.chemokine_boost"])
        self.ifng_half = F32(sc["tumour.pdl1_ifng_half"])
        self._signals(sc, solver)
        self.iterations: dict[str, np.ndarray] = {}

    def _signals(self, sc, solver) -> None:
        """Solvers and constants of the signalling fields: TGF-β, IFN-γ, IL-12."""
        # TGF-β
        # scale: the T cells' half-maximal TGF-β in the field's units (total TGF-β1, ng/mL), the
        # level at which the field acts; in ng/mL the field reaches tens, where a scale of 1 put
        # the float32 rounding level (noise) above the tolerance
        scale = sc["car_t.tgfb_half_ng_per_mL"] / sc["tgfb.active_fraction"]
        self.tgfb = solver("tgfb", 0.0, scale)
        # the set-up's steady state has no 1/dt in its sink, only the slow decay: SOR needs
        # thousands of sweeps for it (2232 at 128^3), multigrid about ten cycles
        # (docs/fields.md), so it is multigrid unless run.field_solver is sor
        self.tgfb_steady = (solver("tgfb", 0.0, scale, multigrid=True)
                            if steady_tgfb_own_solver(sc) else self.tgfb)
        self.tgfb_decay = F32(sc["tgfb.decay_per_min"])
        self.tgfb_base = self.tgfb_decay + self.inv_dt
        self.tgfb_src = np.zeros(N_KINDS, dtype=F32)
        sec_tumour = tgfb_source_ng_per_mL_per_min(sc, "tumour")
        self.tgfb_src[Kind.TUMOUR] = F32(sec_tumour)
        self.tgfb_src[Kind.FIBROBLAST] = F32(tgfb_source_ng_per_mL_per_min(sc, "fibroblast"))
        self.tgfb_hyp_src = F32(sec_tumour) * F32(sc["tgfb.hypoxic_secretion_multiplier"])
        self.o2_hypoxic = F32(sc["tumour.o2_hypoxic_mmHg"])
        self.trap = sc["car_t.armour"] == "TGFb_trap"
        self.trap_uptake = F32(sc["tgfb.trap_uptake_per_min"])
        # IFN-γ, IL-12
        self.ifng = solver("ifng", 0.0, 1.0)
        self.ifng_base = F32(sc["ifng.decay_per_min"]) + self.inv_dt
        self.ifng_sec = F32(sc["ifng.secretion_car_t_per_min"])
        self.il12 = solver("il12", 0.0, 1.0)
        self.il12_base = F32(sc["il12.decay_per_min"]) + self.inv_dt
        self.il12_sec = F32(sc["il12.secretion_car_t_per_min"]) if sc["car_t.generation"] == "fourth" else F32(0)

    @staticmethod
    def _lut(sc, name: str) -> np.ndarray:
        """Sink (1/min) by cell kind: decay + the kind's uptake."""
        decay = F32(sc[f"{name}.decay_per_min"])
        lut = np.full(N_KINDS, decay, dtype=F32)
        lut[Kind.TUMOUR] = decay + F32(sc[f"{name}.uptake_tumour_per_min"])
        lut[Kind.HEALTHY] = decay + F32(sc[f"{name}.uptake_healthy_per_min"])
        lut[Kind.FIBROBLAST] = decay + F32(sc[f"{name}.uptake_healthy_per_min"])
        return lut

    def _agent_maps(self, st):
        """Boolean (R, Z, Y, X) maps: any CAR-T cell, engaged this step, activated."""
        R = st.kind.shape[0]
        V = st.nvox
        tcell = np.zeros((R, V), dtype=bool)
        eng = np.zeros((R, V), dtype=bool)
        act = np.zeros((R, V), dtype=bool)
        nmax = int(st.t_count.max(initial=0))
        if nmax:
            r, s = np.nonzero(np.arange(nmax)[None, :] < st.t_count[:, None])
            pos = st.t_pos[r, s]
            tcell[r, pos] = True
            e = st.t_eng[r, s] > 0
            eng[r[e], pos[e]] = True
            a = (st.t_act[r, s] > 0) & (st.t_state[r, s] == TState.EFFECTOR)
            act[r[a], pos[a]] = True
        shp = st.kind.shape
        return tcell.reshape(shp), eng.reshape(shp), act.reshape(shp)

    def solve(self, st) -> None:
        vessel = st.kind == Kind.VESSEL
        tcell, eng, act = self._agent_maps(st)
        zero = np.zeros(st.kind.shape, dtype=F32)
        a = self.o2_sink[st.kind]
        a = np.where(tcell, a + self.o2_t, a).astype(F32)
        s = self.o2_src[st.kind] if self.o2_floor_on else zero
        self.iterations["oxygen"] = self.o2.solve(st.o2, a, s, vessel, self.o2_vessel)
        a = self.glucose_sink[st.kind]
        a = np.where(tcell, a + self.glucose_t, a).astype(F32)
        self.iterations["glucose"] = self.glucose.solve(st.glucose, a, zero, vessel, self.glucose_vessel)
        # chemokine, boosted by last step's IFN-γ
        tum = st.kind == Kind.TUMOUR
        ifn = st.ifng
        q = self.chem_sec * (F32(1) + self.chem_boost * (ifn / (ifn + self.ifng_half)))
        q = np.where(tum, q, F32(0)).astype(F32)
        a = (self.chem_base + q).astype(F32)
        s = (q + st.chemokine * self.inv_dt).astype(F32)
        self.iterations["chemokine"] = self.chemokine.solve(st.chemokine, a, s)
        # TGF-β
        src = self.tgfb_src[st.kind]
        src = np.where(tum & (st.o2 < self.o2_hypoxic), self.tgfb_hyp_src, src).astype(F32)
        a = np.full(st.kind.shape, self.tgfb_base, dtype=F32)
        if self.trap:
            a = np.where(tcell, a + self.trap_uptake, a).astype(F32)
        s = (src + st.tgfb * self.inv_dt).astype(F32)
        self.iterations["tgfb"] = self.tgfb.solve(st.tgfb, a, s)
        # IFN-γ and IL-12 (skipped only when the result is exactly zero)
        for name, solver, c, mask, sec, base in (("ifng", self.ifng, st.ifng, eng, self.ifng_sec, self.ifng_base),
                                                 ("il12", self.il12, st.il12, act, self.il12_sec, self.il12_base)):
            if (sec == 0 or not mask.any()) and not c.any():
                self.iterations[name] = np.zeros(st.kind.shape[0], dtype=np.int32)
                continue
            src = np.where(mask, sec, F32(0)).astype(F32)
            s = (src + c * self.inv_dt).astype(F32)
            a = np.full(st.kind.shape, base, dtype=F32)
            self.iterations[name] = solver.solve(c, a, s)

    def steady_tgfb(self, st, xp, solve) -> None:
        """Initial TGF-β: the steady state of the initial tissue (no backward-Euler term), the
        coefficients as ``xp`` (NumPy or CuPy) arrays, solved by ``solve(solver, c, a, s)`` (a
        solver of this phase on the backend) with :attr:`tgfb_steady`."""
        if self.tgfb_decay <= 0:  # no decay: a steady state need not exist; start from zero
            return
        tum = st.kind == int(Kind.TUMOUR)
        src = xp.asarray(self.tgfb_src)[st.kind]
        src = xp.where(tum & (st.o2 < self.o2_hypoxic), self.tgfb_hyp_src, src).astype(F32)
        a = xp.full(st.kind.shape, self.tgfb_decay, dtype=F32)
        solve(self.tgfb_steady, st.tgfb, a, src)
