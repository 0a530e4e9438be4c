"""Fields phase: oxygen and glucose to quasi-steady state, chemokine by one backward-Euler step.
MODEL.md section 3.

Per voxel the sink ``a`` (1/min) is ``decay + uptake(cell kind) + uptake_T × (CAR-T present)``
and the source ``s`` is zero except for secretion; vessel voxels are held at the vessel value.
Chemokine secretion saturates at 1 (PhysiCell's form ``rate × (1 − c)``), so it adds
``rate`` to the sink and ``rate`` to the source of tumour voxels; the backward-Euler step adds
``1/dt`` to the sink and ``c_old/dt`` to the source.  Sums are float32 in the order written.
"""

from __future__ import annotations

import numpy as np

from .fields import FieldSolver
from .lattice import Kind

F32 = np.float32
N_KINDS = len(Kind)


class FieldsPhase:
    def __init__(self, sc, R: int):
        shape = (R,) + sc.shape
        tol = sc["run.field_tolerance"]
        om = sc["run.field_omega"]
        self.dt = F32(sc["run.dt_min"])
        self.inv_dt = F32(1.0 / sc["run.dt_min"])

        def solver(name: str, boundary_value: float, scale: float) -> FieldSolver:
            return FieldSolver(shape, diffusion_um2_per_min=sc[f"{name}.diffusion_um2_per_min"],
                               voxel_um=sc["domain.voxel_um"], boundary=sc[f"{name}.boundary"],
                               boundary_value=boundary_value, omega=om, tol=tol * scale)

        self.o2 = solver("oxygen", sc["oxygen.boundary_mmHg"], sc["oxygen.vessel_mmHg"] or 1.0)
        self.glucose = solver("glucose", sc["glucose.boundary_mM"], sc["glucose.vessel_mM"] or 1.0)
        self.chemokine = solver("chemokine", 0.0, 1.0)
        self.o2_vessel = F32(sc["oxygen.vessel_mmHg"])
        self.glucose_vessel = F32(sc["glucose.vessel_mM"])
        self.o2_sink = self._lut(sc, "oxygen")
        self.glucose_sink = self._lut(sc, "glucose")
        self.o2_t = F32(sc["oxygen.uptake_car_t_per_min"])
        self.glucose_t = F32(sc["glucose.uptake_car_t_per_min"])
        sec = F32(sc["chemokine.secretion_tumour_per_min"])
        self.chem_sink = np.full(N_KINDS, F32(sc["chemokine.decay_per_min"]) + self.inv_dt, dtype=F32)
        self.chem_sink[Kind.TUMOUR] = self.chem_sink[Kind.TUMOUR] + sec
        self.chem_src = np.zeros(N_KINDS, dtype=F32)
        self.chem_src[Kind.TUMOUR] = sec
        self.iterations: dict[str, np.ndarray] = {}

    @staticmethod
    def _lut(sc, name: str) -> np.ndarray:
        """Sink (1/min) by cell kind: decay + the kind's uptake."""
        decay = F32(sc[f"{name}.decay_per_min"])
        lut = np.full(N_KINDS, decay, dtype=F32)
        lut[Kind.TUMOUR] = decay + F32(sc[f"{name}.uptake_tumour_per_min"])
        lut[Kind.HEALTHY] = decay + F32(sc[f"{name}.uptake_healthy_per_min"])
        lut[Kind.FIBROBLAST] = decay + F32(sc[f"{name}.uptake_healthy_per_min"])
        return lut

    def solve(self, st) -> None:
        vessel = st.kind == Kind.VESSEL
        tcell = st.tcell_map() > 0
        zero = np.zeros(st.kind.shape, dtype=F32)
        a = self.o2_sink[st.kind]
        a = np.where(tcell, a + self.o2_t, a).astype(F32)
        self.iterations["oxygen"] = self.o2.solve(st.o2, a, zero, vessel, self.o2_vessel)
        a = self.glucose_sink[st.kind]
        a = np.where(tcell, a + self.glucose_t, a).astype(F32)
        self.iterations["glucose"] = self.glucose.solve(st.glucose, a, zero, vessel, self.glucose_vessel)
        a = self.chem_sink[st.kind]
        s = self.chem_src[st.kind] + st.chemokine * self.inv_dt
        self.iterations["chemokine"] = self.chemokine.solve(st.chemokine, a, s.astype(F32))
