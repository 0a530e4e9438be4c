"""Metabolism that can bind (issue 11, item 4; MODEL.md section 3, docs/model.md "Metabolism").

The oxygen and glucose uptakes are per-cell rates from measurements, converted to the model's
first-order sink per voxel: a rate ``k`` (1/min) at the vessel level ``c_v`` removes
``k c_v`` per minute from a voxel of volume ``V`` (one cell), i.e. ``k c_v V`` moles per cell per
minute.  Checked here:

* the conversion: the defaults are the cited per-cell rates (glucose 1e-16 mol/cell/s; oxygen
  within the measured range of tens of amol/cell/s);
* the mechanism binds at a realistic size (paired, deterministic: the fields are quasi-steady and
  the first step has no randomness in them): in ``iv_baseline``'s avascular core (a 3 mm nodule)
  the glucose falls below the CAR-T cells' half-maximal level (``car_t.glucose_half_mM``) and
  starvation threshold, and the oxygen below the hypoxic threshold, while with the former
  glucose uptake (0.02/min, no cited rate) the core kept more than 1 mM.
"""

from __future__ import annotations

import numpy as np
import pytest

from gpusim.engine import Simulation
from gpusim.model.environment import voxel_volume_mL
from gpusim.model.lattice import Kind
from gpusim.scenario import load_scenario

#: O2 solubility in tissue water at 37 °C (µM per mmHg)
O2_SOLUBILITY_uM_PER_MMHG = 1.3


def per_cell_mol_per_s(sc, uptake_per_min: float, level_M: float) -> float:
    """Moles a voxel's cell takes up per second at ``level_M`` (mol/L) under a first-order rate."""
    return uptake_per_min * level_M * voxel_volume_mL(sc) * 1e-3 / 60.0


def test_uptakes_are_the_cited_per_cell_rates():
    sc = load_scenario("quickstart")
    glucose = per_cell_mol_per_s(sc, sc["glucose.uptake_tumour_per_min"], sc["glucose.vessel_mM"] * 1e-3)
    assert glucose == pytest.approx(1e-16, rel=1e-9)
    o2 = per_cell_mol_per_s(sc, sc["oxygen.uptake_tumour_per_min"],
                            sc["oxygen.vessel_mmHg"] * O2_SOLUBILITY_uM_PER_MMHG * 1e-6)
    assert 2e-17 < o2 < 1e-16  # tens of amol/cell/s (Wagner 2011): 6.6e-17


def _core(over=()):
    sim = Simulation(load_scenario("iv_baseline", ["run.replicates=1", *over]))
    sim.step()
    st = sim.state
    _, Y, X = st.kind.shape[1:]
    core = (slice(None), slice(Y // 2 - 2, Y // 2 + 3), slice(X // 2 - 2, X // 2 + 3))
    assert (st.kind[0][core] != Kind.VESSEL).all()
    return sim.scenario, float(st.glucose[0][core].max()), float(st.o2[0][core].max())


def test_the_core_of_a_3mm_tumour_is_hypoxic_and_glucose_starved():
    sc, glucose, o2 = _core()
    assert glucose < sc["car_t.glucose_half_mM"] < sc["car_t.starvation_glucose_mM"]
    assert o2 < sc["tumour.o2_hypoxic_mmHg"]
    _, glucose_before, _ = _core(["glucose.uptake_tumour_per_min=0.02"])
    assert glucose_before > 1.0
