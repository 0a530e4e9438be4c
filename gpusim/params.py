"""Every scenario parameter, declared once: type, default, bounds, one-line description, source.

Keys are ``section.name`` with the unit in the name where it has one (``dt_min``,
``speed_um_per_min``, ``o2_vessel_mmHg``); every parameter also declares its unit (``unit=``,
``"1"`` for a dimensionless number, ``""`` for text, switches and counts of things).  ``source`` cites where a default comes from, or says *assumed* for our own
choices.  ``docs/parameters.md`` is generated from this table (``gpusim params --markdown``) and a
test keeps it current.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

ASSUMED = "assumed"


@dataclass(frozen=True)
class Param:
    key: str
    type: type  # int, float, bool, str or list (of floats)
    default: Any
    doc: str
    source: str
    lo: float | None = None  # inclusive bounds for numbers (and list items)
    hi: float | None = None
    choices: tuple[str, ...] | None = None
    unit: str | None = None  #: declared for every parameter ("1": dimensionless, "": none)

    @property
    def section(self) -> str:
        return self.key.split(".", 1)[0]


P = Param

def _solver_params(field: str, omega_2d: float, omega_3d: float, held_at: str = "0") -> tuple[Param, ...]:
    """The solver parameters every diffusing field declares alike: its SOR over-relaxation factors
    on a 2D and a 3D lattice, and its boundary (no flux, or held at ``held_at``)."""
    src = "assumed (fewest sweeps at equal accuracy, benchmarks/bench_fields.py)"
    lattice = "Over-relaxation factor of this field's SOR solve on a {} lattice (unless run.field_omega is set)."
    return (P(f"{field}.sor_omega", float, omega_2d, lattice.format("2D"), src, 1.0, 1.95, unit="1"),
            P(f"{field}.sor_omega_3d", float, omega_3d, lattice.format("3D"), src, 1.0, 1.95, unit="1"),
            P(f"{field}.boundary", str, "neumann", f"Domain boundary: no flux, or held at {held_at}.", ASSUMED,
              choices=("neumann", "dirichlet"), unit=""))


# fmt: off
# Deliberate twins: one row per parameter, so rows are alike in shape (a declaration table, not
# repeated logic; a tool listing repeated lines will pair them).
PARAMS: tuple[Param, ...] = (
    # --- scenario -----------------------------------------------------------------------------
    P("scenario.name", str, "custom", "Short name of the scenario.", ASSUMED, unit=""),
    P("scenario.description", str, "", "What question the scenario answers.", ASSUMED, unit=""),
    # --- run ----------------------------------------------------------------------------------
    P("run.days", float, 14.0, "Simulated time.", ASSUMED, 0.0, 3650.0, unit="day"),
    P("run.dt_min", float, 6.0, "Time step (PhysiCell's phenotype step).", "PhysiCell (Ghaffarizadeh 2018)", 0.1, 60.0, unit="min"),
    P("run.replicates", int, 4, "Number of independent replicates.", ASSUMED, 1, 10_000_000, unit="replicates"),
    P("run.first_replicate", int, 0, "Global index of the first replicate (runs K..K+N-1).", ASSUMED, 0, 2**32 - 1, unit=""),
    P("run.seed", int, 1, "Random seed (Philox key word 0).", ASSUMED, 0, 2**32 - 1, unit=""),
    P("run.backend", str, "auto", "Compute backend (emulated: the device step on the CPU, for checking kernels).", ASSUMED, choices=("auto", "numpy", "cupy", "emulated"), unit=""),
    P("run.output_interval_hours", float, 12.0, "Interval between time-series outputs (and HDF5 flushes).", ASSUMED, 0.1, 1e5, unit="h"),
    P("run.snapshot_interval_hours", float, 48.0, "Interval between lattice snapshots (0: none).", ASSUMED, 0.0, 1e5, unit="h"),
    P("run.snapshot_replicates", int, 2, "Snapshots are written for the first this many replicates.", ASSUMED, 0, 64, unit="replicates"),
    P("run.checkpoint_interval_hours", float, 24.0, "Interval between checkpoints of the full state (0: none).", ASSUMED, 0.0, 1e5, unit="h"),
    P("run.field_tolerance", float, 1e-4, "Fields: each solve stops when its estimated max-norm error against the converged solution of the same discrete system is at most this fraction of the field's scale (docs/fields.md).", ASSUMED, 1e-9, 1e-1, unit="1"),
    P("run.field_solver", str, "auto", "Field solver: auto (multigrid for the fields and lattice sizes where it was measured to win, and for the set-up's TGF-β steady state; red-black SOR for the rest; docs/fields.md), sor (every field) or multigrid (every field without a floor; projected oxygen stays SOR).", ASSUMED, choices=("auto", "sor", "multigrid"), unit=""),
    P("run.field_omega", float, 0.0, "Over-relaxation factor of the red-black SOR field solver for every field; 0: each field's own `<field>.sor_omega`.", ASSUMED, 0.0, 1.95, unit="1"),
    # --- domain -------------------------------------------------------------------------------
    P("domain.x_voxels", int, 200, "Lattice size along x.", ASSUMED, 3, 4096, unit="voxels"),
    P("domain.y_voxels", int, 200, "Lattice size along y.", ASSUMED, 3, 4096, unit="voxels"),
    P("domain.z_voxels", int, 1, "Lattice size along z (1: a 2D lattice).", ASSUMED, 1, 4096, unit="voxels"),
    P("domain.voxel_um", float, 20.0, "Voxel edge: one cell diameter.", "PhysiCell 20 µm voxels", 1.0, 1000.0, unit="µm"),
    # --- tumour -------------------------------------------------------------------------------
    P("tumour.radius_um", float, 1500.0, "Radius of the initial tumour nodule (disc in 2D, sphere in 3D).", ASSUMED, 0.0, 1e6, unit="µm"),
    P("tumour.centre_x_fraction", float, 0.5, "Nodule centre along x, as a fraction of the domain.", ASSUMED, 0.0, 1.0, unit="1"),
    P("tumour.centre_y_fraction", float, 0.5, "Nodule centre along y, as a fraction of the domain.", ASSUMED, 0.0, 1.0, unit="1"),
    P("tumour.centre_z_fraction", float, 0.5, "Nodule centre along z, as a fraction of the domain.", ASSUMED, 0.0, 1.0, unit="1"),
    P("tumour.division_rate_per_min", float, 0.00072, "Division rate at full oxygen (1/(23 h)).", "PhysiCell cancer_immune 0.00072/min", 0.0, 1e3, unit="1/min"),
    P("tumour.apoptosis_rate_per_min", float, 5.3e-5, "Background apoptosis rate.", "PhysiCell default 5.31667e-5/min", 0.0, 1e3, unit="1/min"),
    P("tumour.o2_proliferation_full_mmHg", float, 38.0, "Oxygen at which division runs at full rate.", "PhysiCell cancer_immune", 0.0, 760.0, unit="mmHg"),
    P("tumour.o2_proliferation_zero_mmHg", float, 5.0, "Oxygen at which the division ramp reaches zero.", "PhysiCell cancer_immune", 0.0, 760.0, unit="mmHg"),
    P("tumour.o2_hypoxic_mmHg", float, 10.0, "Below this oxygen a cell is hypoxic (quiescent).", "PhysiCell hypoxic threshold", 0.0, 760.0, unit="mmHg"),
    P("tumour.o2_necrosis_onset_mmHg", float, 5.0, "Necrosis starts below this oxygen.", "PhysiCell cancer_immune", 0.0, 760.0, unit="mmHg"),
    P("tumour.o2_necrosis_max_mmHg", float, 2.5, "Necrosis reaches its maximal rate at this oxygen.", "PhysiCell cancer_immune", 0.0, 760.0, unit="mmHg"),
    P("tumour.necrosis_max_rate_per_min", float, 1.0 / 360.0, "Maximal necrosis rate.", "PhysiCell 1/360 /min", 0.0, 1e3, unit="1/min"),
    P("tumour.glucose_half_mM", float, 0.5, "Glucose at which division runs at half speed (factor g/(g+K)).", "Freyer & Sutherland 1986, Cancer Res 46:3513 (EMT6/Ro proliferation falls with the medium glucose, 0.8-16.5 mM); value assumed", 0.0, 100.0, unit="mM"),
    P("tumour.apoptotic_clearance_min", float, 516.0, "Mean time for an apoptotic (or killed) cell to free its voxel.", "PhysiCell apoptosis duration 516 min", 1.0, 1e7, unit="min"),
    P("tumour.necrotic_clearance_days", float, 10.0, "Mean time for necrotic debris to be cleared.", ASSUMED, 0.01, 1e5, unit="day"),
    P("tumour.push_radius_voxels", int, 2, "A dividing tumour cell with no free neighbour shoves its neighbours along the shortest path to a free (or displaceable) voxel at most this many voxels away (Chebyshev distance); the daughter's slot appears there.", "rule: Block, Schöll & Drasdo 2007 (PRL 99:248101, push along the shortest path to a free site within ΔL); value calibrated to Freyer & Sutherland 1986 EMT6/Ro spheroid radius growth, see docs/model.md", 1, 8, unit="voxels"),
    P("tumour.push_probability", float, 1.0, "Probability that a push into a healthy cell, a fibroblast or dense stroma succeeds at ECM density 0 (it falls linearly to 0 at tumour.push_ecm_max); a displaced healthy cell or fibroblast is compressed (removed and counted).", "calibrated to Freyer & Sutherland 1986 EMT6/Ro spheroid radius growth, see docs/model.md", 0.0, 1.0, unit="1"),
    P("tumour.push_ecm_max", float, 1.0, "ECM density at which a tumour cell can no longer push into a voxel.", ASSUMED, 0.01, 10.0, unit="1"),
    P("tumour.antigen_loss_per_division", float, 1e-4, "Probability that a daughter loses antigen A (independently B).", ASSUMED, 0.0, 1.0, unit="1"),
    P("tumour.fraction_a_pos_b_pos", float, 0.0, "Subclone fraction A+B+.", ASSUMED, 0.0, 1.0, unit="1"),
    P("tumour.fraction_a_pos_b_neg", float, 1.0, "Subclone fraction A+B-.", ASSUMED, 0.0, 1.0, unit="1"),
    P("tumour.fraction_a_neg_b_pos", float, 0.0, "Subclone fraction A-B+.", ASSUMED, 0.0, 1.0, unit="1"),
    P("tumour.fraction_a_neg_b_neg", float, 0.0, "Subclone fraction A-B-.", ASSUMED, 0.0, 1.0, unit="1"),
    P("tumour.antigen_level_mean", float, 1.0, "Mean antigen level of positive cells (lognormal).", "PhysiCell oncoprotein mean 1", 0.01, 2.5, unit="antigen level"),
    P("tumour.antigen_level_sd", float, 0.25, "Standard deviation of the antigen level (lognormal).", "PhysiCell oncoprotein sd 0.25", 0.0, 2.0, unit="antigen level"),
    P("tumour.layout", str, "mixed", "Spatial layout of subclones: mixed cell by cell, or clonal patches.", ASSUMED, choices=("mixed", "patches"), unit=""),
    P("tumour.patch_count", int, 12, "Number of clonal patches (layout = patches).", ASSUMED, 1, 100_000, unit="patches"),
    P("tumour.trogocytosis_fraction", float, 0.3, "Fraction of a tumour cell's antigen level removed by a non-lethal CAR engagement (trogocytosis / down-regulation; the level stays positive).", "Hamieh 2019 (CAR trogocytosis); value assumed", 0.0, 1.0, unit="1"),
    P("tumour.antigen_recovery_per_day", float, 0.5, "Rate at which a down-regulated antigen level returns to the cell's baseline level.", ASSUMED, 0.0, 1e4, unit="1/day"),
    P("tumour.pdl1_ifng_rate_per_day", float, 2.0, "PD-L1 induction rate at saturating IFN-γ (towards level 1).", "IFN-γ induces PD-L1 (adaptive resistance); rate assumed", 0.0, 1e4, unit="1/day"),
    P("tumour.pdl1_ifng_half", float, 0.05, "IFN-γ level (a.u.) at half-maximal PD-L1 induction (and chemokine boost).", ASSUMED, 1e-6, 1e4, unit="a.u."),
    P("tumour.pdl1_hypoxia_rate_per_day", float, 0.5, "PD-L1 induction rate of hypoxic tumour cells (HIF-1α).", "Noman 2014 (HIF-1α induces PD-L1); rate assumed", 0.0, 1e4, unit="1/day"),
    P("tumour.pdl1_decay_per_day", float, 0.5, "PD-L1 decay rate (towards 0).", ASSUMED, 0.0, 1e4, unit="1/day"),
    # --- stroma -------------------------------------------------------------------------------
    P("stroma.capsule_thickness_um", float, 60.0, "Thickness of the fibrous capsule around the nodule.", ASSUMED, 0.0, 1e5, unit="µm"),
    P("stroma.capsule_density", float, 0.9, "ECM density of the capsule.", ASSUMED, 0.0, 1.0, unit="1"),
    P("stroma.septa_count", int, 6, "Number of fibrous septa running from the capsule into the tumour.", ASSUMED, 0, 1000, unit="septa"),
    P("stroma.septa_width_um", float, 20.0, "Width of a septum.", ASSUMED, 0.0, 1e5, unit="µm"),
    P("stroma.septa_density", float, 0.8, "ECM density of a septum.", ASSUMED, 0.0, 1.0, unit="1"),
    P("stroma.septa_length_fraction", float, 0.6, "Mean septum length as a fraction of the tumour radius.", ASSUMED, 0.0, 1.0, unit="1"),
    P("stroma.background_density", float, 0.1, "ECM density of ordinary tissue.", ASSUMED, 0.0, 1.0, unit="1"),
    P("stroma.block_density", float, 0.5, "Tumour cells cannot divide into voxels denser than this.", ASSUMED, 0.0, 1.0, unit="1"),
    P("stroma.permeability", float, 0.01, "Stroma passability per move attempt (Kather 2017's meaning): a CAR-T sub-move into a voxel of ECM density ρ succeeds with probability 1 - ρ(1 - permeability), so a fully dense voxel (ρ = 1, one stroma cell of Kather's lattice) is passed with this probability per attempt (docs/model.md, translation).", "Kather 2017 (per attempt, range 0.0025-0.45); value in that range assumed", 0.0, 1.0, unit="1"),
    P("stroma.dense_speed_fraction", float, 0.4, "Motility in dense ECM: a CAR-T cell in a voxel of ECM density ρ attempts a sub-move with probability p_move × (1 - ρ(1 - fraction)), so at ρ = 1 it moves at this fraction of its speed in loose tissue (slower motility and retention in dense stroma).", "Salmon 2012 (T cells migrate poorly and accumulate in dense matrix areas of human lung tumours); value assumed", 0.0, 1.0, unit="1"),
    P("stroma.fibroblast_density", float, 0.5, "Voxels at least this dense may hold a fibroblast (CAF).", ASSUMED, 0.0, 1.0, unit="1"),
    P("stroma.fibroblast_fraction", float, 0.5, "Fraction of dense-stroma voxels that hold a fibroblast.", ASSUMED, 0.0, 1.0, unit="1"),
    P("stroma.car_t_degradation_per_day", float, 0.0, "ECM density removed per day at the voxel of an effector CAR-T cell (FAP-directed or heparanase-armed CAR-T; 0: off).", "Caruana 2015 (heparanase CAR-T); rate assumed", 0.0, 1e4, unit="1/day"),
    P("stroma.fibroblast_ecm_deposition_per_day", float, 0.5, "Rate at which a fibroblast (CAF) restores the ECM of its voxel towards fibroblast_density when it is below (degraded); dead fibroblasts deposit nothing.", "Kalluri 2016 (CAFs deposit and remodel the ECM); value assumed", 0.0, 1e4, unit="1/day"),
    P("stroma.drug_degradation_per_day", float, 0.0, "Fractional ECM loss per day everywhere from an ECM-degrading drug (0: off).", ASSUMED, 0.0, 1e4, unit="1/day"),
    P("stroma.drug_start_day", float, 0.0, "Day the ECM-degrading drug starts.", ASSUMED, 0.0, 3650.0, unit="day"),
    # --- vessels ------------------------------------------------------------------------------
    P("vessels.density_normal_fraction", float, 0.03, "Fraction of voxels outside the tumour that are vessels.", ASSUMED, 0.0, 1.0, unit="1"),
    P("vessels.density_tumour_fraction", float, 0.01, "Fraction of tumour voxels that are vessels (outside the avascular core).", ASSUMED, 0.0, 1.0, unit="1"),
    P("vessels.core_radius_fraction", float, 0.0, "Avascular core: no vessels within this fraction of the tumour radius.", ASSUMED, 0.0, 1.0, unit="1"),
    P("vessels.collapse_necrotic_neighbours", int, 4, "A vessel collapses when at least this many of its neighbours are necrotic.", ASSUMED, 1, 26, unit="voxels"),
    # --- healthy tissue -----------------------------------------------------------------------
    P("healthy.cell_fraction", float, 0.8, "Fraction of free voxels outside the tumour holding a healthy cell.", ASSUMED, 0.0, 1.0, unit="1"),
    P("healthy.antigen_a_fraction", float, 0.0, "Fraction of healthy cells expressing antigen A.", ASSUMED, 0.0, 1.0, unit="1"),
    P("healthy.antigen_b_fraction", float, 0.0, "Fraction of healthy cells expressing antigen B.", ASSUMED, 0.0, 1.0, unit="1"),
    P("healthy.antigen_level", float, 0.3, "Antigen level of antigen-positive healthy cells.", ASSUMED, 0.01, 2.5, unit="antigen level"),
    # --- oxygen -------------------------------------------------------------------------------
    P("oxygen.diffusion_um2_per_min", float, 1e5, "Oxygen diffusion coefficient.", "PhysiCell cancer_immune", 1e-3, 1e8, unit="µm²/min"),
    P("oxygen.decay_per_min", float, 0.1, "Oxygen decay.", "PhysiCell cancer_immune", 0.0, 1e4, unit="1/min"),
    P("oxygen.vessel_mmHg", float, 38.0, "Oxygen at vessel voxels (5 % O2).", "PhysiCell cancer_immune", 0.0, 760.0, unit="mmHg"),
    P("oxygen.uptake_tumour_per_min", float, 10.0, "Oxygen uptake by a tumour cell (first order): at 38 mmHg (49 µM at 1.3 µM/mmHg) in a 20 µm voxel (8 pL) 6.6e-17 mol/cell/s (docs/model.md).", "PhysiCell cancer_immune; per-cell rate within the measured 1-350 amol/cell/s, tumour lines tens of amol/cell/s (Wagner 2011, Free Radic Biol Med 51:700)", 0.0, 1e4, unit="1/min"),
    P("oxygen.uptake_healthy_per_min", float, 5.0, "Oxygen uptake by a healthy cell or fibroblast.", "Wagner 2011, Free Radic Biol Med 51:700 (quiescent and normal cells consume less O2 than proliferating tumour lines); half the tumour value assumed", 0.0, 1e4, unit="1/min"),
    P("oxygen.uptake_car_t_per_min", float, 1.0, "Oxygen uptake by a CAR-T cell.", "PhysiCell cancer_immune", 0.0, 1e4, unit="1/min"),
    P("oxygen.consumption_tumour_mmHg_per_min", float, 0.0, "Zero-order oxygen consumption by a tumour cell, wherever oxygen is left (Greenspan 1972; the oxygen solve is then projected onto O2 >= 0); 0: first-order uptake only, as PhysiCell.", ASSUMED, 0.0, 1e6, unit="mmHg/min"),
    P("oxygen.consumption_healthy_mmHg_per_min", float, 0.0, "Zero-order oxygen consumption by a healthy cell or fibroblast, wherever oxygen is left (0: first-order uptake only).", ASSUMED, 0.0, 1e6, unit="mmHg/min"),
    *_solver_params("oxygen", 1.7, 1.7, held_at="boundary_mmHg"),
    P("oxygen.boundary_mmHg", float, 38.0, "Oxygen on a dirichlet boundary.", ASSUMED, 0.0, 760.0, unit="mmHg"),
    # --- glucose ------------------------------------------------------------------------------
    P("glucose.diffusion_um2_per_min", float, 2340.0, "Glucose diffusion coefficient (39 µm²/s).", "CARCADE parameter.xml", 1e-3, 1e8, unit="µm²/min"),
    P("glucose.decay_per_min", float, 0.0, "Glucose decay.", "CARCADE parameter.xml", 0.0, 1e4, unit="1/min"),
    P("glucose.vessel_mM", float, 5.0, "Glucose at vessel voxels.", "CARCADE parameter.xml", 0.0, 100.0, unit="mM"),
    P("glucose.uptake_tumour_per_min", float, 0.15, "Glucose uptake by a tumour cell (first order): 1e-16 mol/cell/s in a 20 µm voxel (8 pL) is 0.75 mM/min, i.e. 0.15/min at the vessel's 5 mM (docs/model.md).", "tumour-cell glucose consumption ≈ 1e-16 mol/cell/s (EMT6/Ro, Freyer & Sutherland 1985, J Cell Physiol 124:516; Casciari 1992, J Cell Physiol 151:386), converted", 0.0, 1e4, unit="1/min"),
    P("glucose.uptake_healthy_per_min", float, 0.005, "Glucose uptake by a healthy cell or fibroblast.", ASSUMED, 0.0, 1e4, unit="1/min"),
    P("glucose.uptake_car_t_per_min", float, 0.01, "Glucose uptake by a CAR-T cell.", ASSUMED, 0.0, 1e4, unit="1/min"),
    *_solver_params("glucose", 1.9, 1.85, held_at="boundary_mM"),
    P("glucose.boundary_mM", float, 5.0, "Glucose on a dirichlet boundary.", ASSUMED, 0.0, 100.0, unit="mM"),
    # --- chemokine ----------------------------------------------------------------------------
    P("chemokine.diffusion_um2_per_min", float, 1000.0, "Chemokine (CXCL9/10-like) diffusion coefficient.", "PhysiCell immunostimulatory factor", 1e-3, 1e8, unit="µm²/min"),
    P("chemokine.decay_per_min", float, 0.016, "Chemokine decay.", "PhysiCell immunostimulatory factor", 0.0, 1e4, unit="1/min"),
    P("chemokine.secretion_tumour_per_min", float, 10.0, "Secretion by tumour cells towards saturation 1: rate × (1 - c).", "PhysiCell immunostimulatory factor", 0.0, 1e4, unit="1/min"),
    *_solver_params("chemokine", 1.7, 1.8),
    # --- TGF-β --------------------------------------------------------------------------------
    P("tgfb.diffusion_um2_per_min", float, 1500.0, "TGF-β1 diffusion coefficient in tissue (25 µm²/s): the ~100 kDa small latent complex, free diffusion ≈ 60 µm²/s (Stokes-Einstein, as BSA), hindered by the extracellular-space tortuosity λ ≈ 1.6 (D/λ² ≈ 0.4 D).", "derived: free protein diffusion (Stokes-Einstein; BSA ≈ 60 µm²/s) / λ² with λ ≈ 1.6 (Nicholson & Syková 1998, Trends Neurosci 21:207)", 1e-3, 1e8, unit="µm²/min"),
    P("tgfb.decay_per_min", float, 0.0069, "Loss rate of TGF-β1 (the field holds total TGF-β1, latent + active; half-life 100 min).", "Wakefield 1990, J Clin Invest 86:1976 (latent TGF-β1 plasma half-life ≈ 100 min; active ≈ 2-3 min)", 0.0, 1e4, unit="1/min"),
    P("tgfb.secretion_tumour_pg_per_cell_per_day", float, 1e-3, "Total TGF-β1 secreted by a tumour cell (1 ng per 10⁶ cells per day); the field's source is this / voxel volume (docs/model.md).", "ELISA of acid-activated conditioned media of carcinoma lines: 0.1-10 ng per 10⁶ cells per day (order of magnitude as in e.g. Coffey 1986, Cancer Res 46:1164); value assumed within that range", 0.0, 1e3, unit="pg/cell/day"),
    P("tgfb.secretion_fibroblast_pg_per_cell_per_day", float, 5e-3, "Total TGF-β1 secreted by a fibroblast (CAF).", "Calon 2012, Cancer Cell 22:571 (the stroma, not the tumour cells, is the main TGF-β source in colorectal cancer); 5× the tumour value assumed", 0.0, 1e3, unit="pg/cell/day"),
    P("tgfb.hypoxic_secretion_multiplier", float, 2.0, "Secretion multiplier of hypoxic tumour cells.", "Falanga 1991, J Invest Dermatol (hypoxia up-regulates TGF-β1 synthesis by fibroblasts); value assumed", 0.0, 1e4, unit="1"),
    P("tgfb.active_fraction", float, 0.05, "Fraction of the total TGF-β1 that is active (released from the latent complex) and seen by cells: T cells and fibroblasts respond to active = fraction × field.", "ASSUMED: most TGF-β1 is secreted and stored latent (Lawrence, Pircher & Jullien 1985; Wakefield 1990); the active share in tissue is not measured here", 1e-6, 1.0, unit="1"),
    P("tgfb.caf_half_ng_per_mL", float, 0.5, "Active TGF-β1 at half-maximal fibroblast activation (myofibroblast differentiation, ECM deposition).", "Desmoulière 1993, J Cell Biol 122:103 (TGF-β1 induces α-SMA myofibroblasts); value within the 0.1-1 ng/mL range used there, assumed", 1e-9, 1e6, unit="ng/mL"),
    P("tgfb.ecm_deposition_per_day", float, 0.1, "Maximal rate at which activated fibroblasts raise the ECM density of their own and neighbouring voxels towards 1: ecm += rate × A × (1 − ecm), A = active/(active + caf_half) (0: off).", "Ignotz & Massagué 1986, J Biol Chem 261:4337 (TGF-β raises collagen and fibronectin deposition within days); rate assumed", 0.0, 1e4, unit="1/day"),
    P("tgfb.trap_uptake_per_min", float, 0.5, "TGF-β removal by a CAR-T cell armoured with a TGF-β trap.", ASSUMED, 0.0, 1e4, unit="1/min"),
    *_solver_params("tgfb", 1.7, 1.7),
    # --- IFN-γ --------------------------------------------------------------------------------
    P("ifng.diffusion_um2_per_min", float, 1000.0, "IFN-γ diffusion coefficient.", ASSUMED, 1e-3, 1e8, unit="µm²/min"),
    P("ifng.decay_per_min", float, 0.016, "IFN-γ decay.", ASSUMED, 0.0, 1e4, unit="1/min"),
    P("ifng.secretion_car_t_per_min", float, 0.2, "IFN-γ secretion of an engaged CAR-T cell (a.u. per min).", ASSUMED, 0.0, 1e4, unit="a.u./min"),
    P("ifng.chemokine_boost", float, 1.0, "Chemokine secretion of tumour cells × (1 + boost × IFN/(IFN + K)) (CXCL9/10 are IFN-γ induced).", ASSUMED, 0.0, 1e4, unit="1"),
    *_solver_params("ifng", 1.7, 1.7),
    # --- IL-12 --------------------------------------------------------------------------------
    P("il12.diffusion_um2_per_min", float, 1000.0, "IL-12 diffusion coefficient.", ASSUMED, 1e-3, 1e8, unit="µm²/min"),
    P("il12.decay_per_min", float, 0.016, "IL-12 decay.", ASSUMED, 0.0, 1e4, unit="1/min"),
    P("il12.secretion_car_t_per_min", float, 0.05, "IL-12 secretion of an activated 4th-generation (TRUCK) CAR-T cell (a.u. per min).", ASSUMED, 0.0, 1e4, unit="a.u./min"),
    P("il12.half", float, 0.1, "IL-12 level (a.u.) of half-maximal effect on killing; also divides the TGF-β a T cell feels by (1 + IL12/half).", ASSUMED, 1e-6, 1e4, unit="a.u."),
    P("il12.kill_boost", float, 1.0, "Killing × (1 + boost × IL12/(IL12 + half)).", "Chmielewski 2011 (IL-12 TRUCKs); value assumed", 0.0, 100.0, unit="1"),
    P("il12.innate_kill_rate_per_day", float, 0.5, "TRUCK: rate at which innate killers (macrophages / NK cells recruited and activated by IL-12) kill a tumour cell at saturating IL-12, whatever its antigens (× IL12/(IL12 + half)).", "Chmielewski 2011, 2014 (IL-12 TRUCKs recruit macrophages that eliminate antigen-negative cancer cells); Kerkar 2011 (IL-12 reprograms myeloid cells to kill); value assumed", 0.0, 1e4, unit="1/day"),
    *_solver_params("il12", 1.7, 1.7),
    # --- CAR-T cells --------------------------------------------------------------------------
    P("car_t.targets", str, "A", "Antigens the CAR recognises and its logic.", ASSUMED, choices=("A", "B", "A|B", "A&B"), unit=""),
    P("car_t.affinity_a", float, 0.2, "Antigen A level at half-maximal recognition: p = level/(level + K).", "CARCADE-like saturating recognition; K assumed", 1e-4, 100.0, unit="antigen level"),
    P("car_t.affinity_b", float, 0.2, "Antigen B level at half-maximal recognition.", "CARCADE-like saturating recognition; K assumed", 1e-4, 100.0, unit="antigen level"),
    P("car_t.speed_um_per_min", float, 5.0, "Migration speed.", "Luque 2024 (tissue: <2 to >8 µm/min)", 0.0, 100.0, unit="µm/min"),
    P("car_t.persistence", float, 0.5, "Probability that a move keeps the previous direction.", ASSUMED, 0.0, 1.0, unit="1"),
    P("car_t.chemotaxis_bias", float, 0.3, "Probability that a (non-persistent) move goes to the neighbour with the most chemokine.", ASSUMED, 0.0, 1.0, unit="1"),
    P("car_t.crowding_factor", float, 0.5, "Entering a voxel held by a tumour cell succeeds with this factor.", ASSUMED, 0.0, 1.0, unit="1"),
    P("car_t.max_per_voxel", int, 4, "CAR-T crowding: at most this many CAR-T cells share a voxel (migration and division fill a voxel up to it; entry from vessels, a face or an injection needs a voxel without a CAR-T cell).", "assumed; basis, cell volumes: a 20 µm voxel at random close packing (0.64 × 8000 µm³) beside a tumour cell (2494 µm³, PhysiCell default) leaves room for about 5 activated T cells of 10 µm diameter (524 µm³); rounded down for the matrix", 1, 64, unit="cells"),
    P("car_t.kill_rate_per_min", float, 6.0 / 1440.0, "Killing rate of an engaged CAR-T cell (6 per day). A killing contact lasts about 25 min (Cazaux 2019), but most contacts in vivo do not kill: the rate is the in vivo one, not 1/contact time.", "Halle 2016, Immunity 44:233 (two-photon imaging and modelling: one CTL kills 2-16 target cells per day in tissue; 6/day ≈ their geometric mean); Cazaux 2019, J Exp Med 216:1038 (not all CAR-T contacts signal or kill)", 0.0, 1e3, unit="1/min"),
    P("car_t.exhaustion_per_kill", float, 0.1, "Exhaustion added per kill (ten stimulations to exhaustion).", "CARCADE MAX_ANTIGEN_BINDING = 10", 0.0, 1.0, unit="1"),
    P("car_t.exhaustion_hypoxia_per_day", float, 0.05, "Exhaustion added per day spent in hypoxic tissue.", ASSUMED, 0.0, 100.0, unit="1/day"),
    P("car_t.exhaustion_recovery_per_day", float, 0.1, "Exhaustion lost per day without antigen (one stimulation a day).", "CARCADE", 0.0, 100.0, unit="1/day"),
    P("car_t.activation_hours", float, 24.0, "How long a stimulation keeps a CAR-T cell activated (able to divide).", ASSUMED, 0.0, 1e4, unit="h"),
    P("car_t.division_rate_per_min", float, 1.0 / 720.0, "Division rate of an activated CAR-T cell (12 h).", ASSUMED, 0.0, 1e3, unit="1/min"),
    P("car_t.max_divisions", int, 10, "Divisions a CAR-T cell can make.", "CARCADE", 0, 255, unit="divisions"),
    P("car_t.daughter_exhaustion_fraction", float, 0.5, "Fraction of the parent's exhaustion a daughter inherits.", ASSUMED, 0.0, 1.0, unit="1"),
    P("car_t.lifespan_days", float, 2.0, "Mean lifespan of an effector CAR-T cell (constant death rate; exhausted cells × exhausted_death_multiplier, memory cells memory_death_rate_per_day).", "De Boer 2001, J Virol 75:10663 (effector CD8 T cells die at 0.5/day after the peak of a response: mean lifetime 2 days)", 0.01, 1e5, unit="day"),
    P("car_t.exhausted_death_multiplier", float, 5.0, "Death rate multiplier of exhausted cells.", ASSUMED, 1.0, 1e4, unit="1"),
    P("car_t.starvation_glucose_mM", float, 0.1, "Below this glucose a CAR-T cell starves.", "Chang 2015, Cell 162:1229; Ho 2015, Cell 162:1217 (tumour glucose competition starves T cells); value assumed", 0.0, 100.0, unit="mM"),
    P("car_t.starvation_death_rate_per_min", float, 1.0 / 1440.0, "Death rate of a starving CAR-T cell.", ASSUMED, 0.0, 1e3, unit="1/min"),
    P("car_t.memory_conversion_rate_per_day", float, 0.015, "Rate at which an effector that is not stimulated becomes a memory cell (CARTmath ε; 0: no memory formation).", "De Boer 2001, J Virol 75:10663 (1-2 % of the activated cells revert to memory per day in the death phase)", 0.0, 1e4, unit="1/day"),
    P("car_t.memory_death_rate_per_day", float, 0.002, "Death rate of a memory CAR-T cell (CARTmath μ; memory cells persist for years).", ASSUMED, 0.0, 1e4, unit="1/day"),
    P("car_t.memory_reactivation_probability", float, 0.5, "Probability that a memory cell recognising a target becomes an effector again, per step (CARTmath θ).", ASSUMED, 0.0, 1.0, unit="1"),
    P("car_t.costimulation", str, "4-1BB", "Costimulatory domain of a 2nd-generation CAR: 4-1BB (the reference, persistence) or CD28 (the cd28_* multipliers).", "Long 2015; Kawalekar 2016", choices=("4-1BB", "CD28"), unit=""),
    P("car_t.cd28_kill_multiplier", float, 1.25, "CD28 vs 4-1BB: killing rate multiplier.", "Zhao 2015, Kawalekar 2016 (CD28: faster effector function); value assumed", 0.0, 100.0, unit="1"),
    P("car_t.cd28_division_multiplier", float, 1.5, "CD28 vs 4-1BB: division rate multiplier (faster expansion).", "Kawalekar 2016 (CD28: glycolytic, rapid expansion); value assumed", 0.0, 100.0, unit="1"),
    P("car_t.cd28_exhaustion_multiplier", float, 2.0, "CD28 vs 4-1BB: exhaustion-per-kill multiplier.", "Long 2015 (4-1BB ameliorates exhaustion); value assumed", 0.0, 100.0, unit="1"),
    P("car_t.cd28_lifespan_multiplier", float, 0.5, "CD28 vs 4-1BB: lifespan multiplier (4-1BB persists longer).", "Kawalekar 2016 (4-1BB: oxidative, persistence); value assumed", 0.01, 100.0, unit="1"),
    P("car_t.generation", str, "second", "CAR generation: second, fourth (TRUCK: secretes IL-12 when activated) or fifth (IL-2Rβ domain: antigen-driven proliferation and survival).", ASSUMED, choices=("second", "fourth", "fifth"), unit=""),
    P("car_t.gen5_division_gain", float, 1.0, "5th generation: the antigen-dependent JAK-STAT signal s (1 right after an engagement, falling to 0 as the activation runs out: s = steps of activation left / activation steps) raises the division probability × (1 + gain × s).", "Kagoya 2018 (IL-2Rβ CAR: STAT3/5 activated only on antigen engagement, enhanced proliferation); value assumed", 0.0, 100.0, unit="1"),
    P("car_t.gen5_survival_fraction", float, 0.5, "5th generation: fraction of an effector's death probability removed by the JAK-STAT signal (× (1 − fraction × s)).", "Kagoya 2018 (IL-2Rβ signalling prevents activation-induced death, longer persistence); value assumed", 0.0, 1.0, unit="1"),
    P("car_t.gen5_memory_rate_per_day", float, 0.2, "5th generation: an effector that is not stimulated converts to a memory cell at this rate × s (STAT signalling after antigen contact keeps a memory-like phenotype), on top of memory_conversion_rate_per_day.", "Kagoya 2018 (less terminal differentiation, memory phenotype); value assumed", 0.0, 1e4, unit="1/day"),
    P("car_t.armour", str, "none", "Armour: none, dnTGFbRII (the T cell ignores TGF-β) or TGFb_trap (the T cell removes TGF-β around it).", "Kloss 2018 (dnTGFβRII); trap assumed", choices=("none", "dnTGFbRII", "TGFb_trap"), unit=""),
    P("car_t.tgfb_half_ng_per_mL", float, 0.25, "Active TGF-β1 K of the reversible suppression factor 1/(1 + T/K) of killing and division (T: the active TGF-β1 the cell feels now).", "Kehrl 1986, J Exp Med 163:1037 (pg amounts of TGF-β1 suppress IL-2-driven T-cell DNA synthesis by 60-80 %; high-affinity T-cell receptors); K ≈ 10 pM", 1e-9, 1e6, unit="ng/mL"),
    P("car_t.exhaustion_tgfb_gain", float, 1.0, "Amplification of stimulation-driven exhaustion (per kill, per PD-L1 engagement) by TGF-β: × (1 + gain × T/(T + K)); a cell that is not stimulated gains no exhaustion from TGF-β.", "Park 2016, Cancer Discov 6:1366 (TGF-β1/SMAD3 enhances PD-1 on antigen-stimulated T cells); value assumed", 0.0, 100.0, unit="1"),
    P("car_t.pdl1_inhibition", float, 0.5, "Kill factor on a target of PD-L1 level L: 1 - inhibition × L × (1 - anti-PD-1 blockade).", ASSUMED, 0.0, 1.0, unit="1"),
    P("car_t.exhaustion_pdl1_per_day", float, 0.5, "Exhaustion added per day of engagement with a target of PD-L1 level 1 (× L × (1 - blockade)).", "PD-1 signalling drives exhaustion (Cherkassky 2016); rate assumed", 0.0, 100.0, unit="1/day"),
    P("car_t.hypoxia_factor", float, 0.3, "Kill and division factor of a CAR-T cell in hypoxic tissue.", "Berahovich 2019 (hypoxia impairs CAR-T); value assumed", 0.0, 1.0, unit="1"),
    P("car_t.glucose_half_mM", float, 0.05, "Glucose K of the kill and division factor g/(g + K) (0: off).", "Chang 2015, Cell 162:1229 (low glucose impairs T-cell IFN-γ and cytotoxic function); value assumed", 0.0, 100.0, unit="mM"),
    P("car_t.fap_targeting", bool, False, "The CAR also recognises FAP on cancer-associated fibroblasts: an effector in a fibroblast's voxel kills it at kill_rate_per_min (the fibroblast's ECM deposition and TGF-β secretion stop).", "Wang 2014, Lo 2015 (FAP CAR-T deplete CAFs, reduce desmoplasia); rate assumed equal to the tumour kill rate", unit=""),
    P("car_t.regulatory_suppression_fraction", float, 0.3, "Fraction of CAR-T killing and division suppressed by host regulatory cells (Tregs / MDSC) in tissue; the calibrated rates include it, so it matters only when lymphodepletion removes those cells (kill and division × (1 − q D(t)) / (1 − q), D the fraction left).", "Gattinoni 2005, North 1982 (conditioning removes suppressor cells); value assumed", 0.0, 0.99, unit="1"),
    P("car_t.capacity_per_replicate", int, 0, "Agent table capacity per replicate (0: car_t.max_per_voxel slots per voxel, which can never overflow).", ASSUMED, 0, 2**31 - 1, unit="cells"),
    # --- delivery -----------------------------------------------------------------------------
    P("delivery.route", str, "intravenous", "How the dose is given: intravenous (blood pool), intratumoral (injection sites) or regional (through a boundary face: intraventricular / intracavitary).", ASSUMED, choices=("intravenous", "intratumoral", "regional"), unit=""),
    P("delivery.dose_cells", float, 1e8, "CAR-T cells per dose.", "typical solid-tumour trial doses 1e7-1e9", 0.0, 1e13, unit="cells"),
    P("delivery.dose_days", list, [0.0], "Times of the doses.", ASSUMED, 0.0, 3650.0, unit="day"),
    P("delivery.blood_half_life_days", float, 2.0, "Half-life of CAR-T cells in the blood pool (clearance and homing elsewhere).", ASSUMED, 0.001, 1e4, unit="day"),
    P("delivery.tumour_homing_fraction_per_day", float, 0.01, "Fraction of circulating CAR-T cells reaching the whole tumour per day.", "biodistribution: <1-2 % reach the tumour (assumed value)", 0.0, 1.0, unit="1/day"),
    P("delivery.tumour_volume_cm3", float, 1.0, "Whole-tumour volume that the domain samples.", ASSUMED, 1e-9, 1e4, unit="cm³"),
    P("delivery.chemokine_weight", float, 4.0, "Extravasation weight of a vessel voxel: 1 + weight × chemokine.", ASSUMED, 0.0, 1e3, unit="1"),
    P("delivery.injection_sites", int, 1, "Intratumoral: number of injection sites (one at the tumour centre, several on a ring).", ASSUMED, 1, 64, unit="sites"),
    P("delivery.injection_offset_fraction", float, 0.5, "Intratumoral: distance of the sites from the tumour centre (several sites), as a fraction of the radius.", ASSUMED, 0.0, 1.0, unit="1"),
    P("delivery.leak_fraction", float, 0.3, "Intratumoral: fraction of the dose that leaks to the blood.", "assumed (intratumoral injections leak substantially)", 0.0, 1.0, unit="1"),
    P("delivery.regional_face", str, "x_low", "Regional: the domain face on the CSF / cavity side.", ASSUMED, choices=("x_low", "x_high", "y_low", "y_high", "z_low", "z_high"), unit=""),
    P("delivery.infusion_hours", float, 1.0, "Regional: infusion time of a dose (it enters the CSF / cavity pool over this time).", ASSUMED, 0.01, 1e4, unit="h"),
    P("delivery.regional_surface_cm2", float, 10.0, "Regional: ventricle / cavity surface the dose spreads over (the domain's face receives its share).", ASSUMED, 1e-6, 1e6, unit="cm²"),
    P("delivery.regional_blood_fraction", float, 0.05, "Regional: fraction of the dose that reaches the blood.", ASSUMED, 0.0, 1.0, unit="1"),
    P("delivery.schedule", str, "", "A dose schedule: doses separated by ';', each 'route day cells [product]' (route iv, intratumoral or intraventricular / regional; product a CAR logic A, B, A|B or A&B, default car_t.targets, differing from it only in recognition), e.g. 'iv 0 1e8; intraventricular 7 1e7' or 'iv 0 5e7 A; iv 7 5e7 B'.  Empty: delivery.route, dose_days and dose_cells give the doses; when set those keep their defaults.", ASSUMED, unit=""),
    P("delivery.cns_tumour", bool, False, "The tumour is in the CNS with the regional_face bordering the ventricle: CSF CAR-T cells enter across that face on every route and tumour inflammation adds to CNS cytokines.", ASSUMED, unit=""),
    P("delivery.csf_tissue_entry_per_day", float, 1.0, "CSF / cavity: fraction of the CAR-T cells in the CSF that cross the ventricular / cavity surface into tissue per day (continuously, not only during the infusion).", "Brown 2016 (intraventricular cells reach distant lesions); value assumed", 0.0, 1e4, unit="1/day"),
    P("delivery.csf_half_life_days", float, 2.0, "CSF / cavity: half-life of CAR-T cells in the CSF (outflow through arachnoid granulations and death).", ASSUMED, 0.001, 1e4, unit="day"),
    P("delivery.csf_outflow_to_blood_fraction", float, 0.5, "CSF / cavity: fraction of the cells leaving the CSF pool that reach the blood.", ASSUMED, 0.0, 1.0, unit="1"),
    P("delivery.blood_to_csf_per_day", float, 2e-5, "IV -> CSF trafficking: fraction of circulating CAR-T cells entering the CSF per day across a quiescent barrier (endothelial activation multiplies it by 1 + csf_trafficking_activation_gain).", "CSF/blood lymphocyte ratio ~1e-3 per volume (normal CSF); CAR-T found in CSF after IV (Lee 2015, Gust 2017); value assumed", 0.0, 1.0, unit="1/day"),
    P("delivery.csf_trafficking_activation_gain", float, 50.0, "IV -> CSF trafficking: gain of the entry rate at full endothelial activation (CSF pleocytosis in neurotoxicity).", "Gust 2017, Santomasso 2018 (more CAR-T in the CSF with neurotoxicity); value assumed", 0.0, 1e6, unit="1"),
    P("delivery.lymphodepletion", bool, False, "Lymphodepleting conditioning before the first dose.", ASSUMED, unit=""),
    P("delivery.lymphodepletion_cytokine_half_life_days", float, 4.0, "Lymphodepletion: homeostatic cytokines (IL-7 / IL-15) H(t) = 2^(−(t − t_first dose)/half-life) relative to their peak at the first dose, falling as lymphocytes recover.", "Kochenderfer 2017 (serum IL-15 peaks around the infusion after Cy/Flu and falls over about two weeks); half-life assumed", 0.01, 1e4, unit="day"),
    P("delivery.lymphodepletion_division_multiplier", float, 2.0, "Lymphodepletion: CAR-T division rate × (1 + (multiplier − 1) × H(t)) (homeostatic cytokines reach the tissue).", "Turtle 2016 (Cy/Flu improves expansion); value assumed", 1.0, 100.0, unit="1"),
    P("delivery.lymphodepletion_blood_expansion_per_day", float, 0.4, "Lymphodepletion: net expansion rate of circulating CAR-T cells at the cytokines' peak, × H(t) (homeostatic IL-7 / IL-15 after Cy/Flu drive systemic expansion over days; 0: off).", "Turtle 2016, Kochenderfer 2017 (serum IL-15 after Cy/Flu correlates with CAR-T expansion); value assumed", 0.0, 100.0, unit="1/day"),
    P("delivery.lymphodepletion_regulatory_depletion_fraction", float, 0.9, "Lymphodepletion: fraction of the host's regulatory cells (Tregs / MDSC) removed by conditioning at the first dose; the fraction left is D(t) = 1 − depletion × 2^(−(t − t_first dose)/recovery half-life).", "Gattinoni 2005 (lymphodepletion removes Tregs and cytokine sinks); value assumed", 0.0, 1.0, unit="1"),
    P("delivery.lymphodepletion_regulatory_recovery_days", float, 14.0, "Lymphodepletion: half-life of the regulatory cells' recovery after conditioning.", "assumed (Treg counts recover over weeks after Cy/Flu)", 0.01, 1e4, unit="day"),
    # --- toxicity -----------------------------------------------------------------------------
    P("toxicity.il6_per_million_lysed_pg_per_mL", float, 2.0, "Direct plasma IL-6 added per million cells lysed in the whole tumour (tumour cells and CAR-T cells; small beside the myeloid source).", "Norelli 2018 (monocytes, not CAR-T or tumour cells, are the main IL-6 source); value assumed", 0.0, 1e6, unit="pg/mL per 10⁶ cells lysed"),
    P("toxicity.il6_per_million_activated_per_day_pg_per_mL", float, 5.0, "Direct plasma IL-6 produced per day per million engaged CAR-T cells in the whole tumour.", "Norelli 2018; value assumed", 0.0, 1e6, unit="pg/mL per 10⁶ engaged cells per day"),
    P("toxicity.il6_truck_multiplier", float, 1.5, "4th generation: multiplier of the CAR-T cytokine signal (IL-12 adds to the systemic cytokine load and activates myeloid cells).", ASSUMED, 1.0, 100.0, unit="1"),
    P("toxicity.il6_half_life_hours", float, 6.0, "Plasma IL-6 half-life (receptor-mediated and renal clearance).", "assumed (IL-6 circulates for hours)", 0.01, 1e4, unit="h"),
    P("toxicity.myeloid_half_signal_cells", float, 5e6, "Myeloid amplifier: CAR-T signal (engaged CAR-T cells in the whole body plus lysed cells per day × myeloid_lysis_weight) at which monocytes/macrophages activate at half their maximal rate (GM-CSF / IFN-γ / CD40L from engaged CAR-T, DAMPs from lysis).", "Giavridis 2018, Norelli 2018 (mechanism); value assumed, calibrated so the iv_baseline dose range spans CRS grades 0-4", 1.0, 1e15, unit="cells"),
    P("toxicity.myeloid_hill", float, 2.0, "Myeloid amplifier: Hill coefficient of activation by the signal (cooperative priming by several CAR-T cytokines gives a threshold-like onset).", ASSUMED, 0.1, 10.0, unit="1"),
    P("toxicity.myeloid_lysis_weight", float, 0.1, "Myeloid amplifier: weight of one lysed cell per day relative to one engaged CAR-T cell (tumour-lysis DAMPs / pyroptosis).", "Liu 2020 (GSDME pyroptosis of target cells activates macrophages); value assumed", 0.0, 1e6, unit="1"),
    P("toxicity.myeloid_activation_per_day", float, 3.0, "Myeloid amplifier: maximal activation rate of resting monocytes/macrophages.", "assumed (monocytes activate within hours)", 0.0, 1e4, unit="1/day"),
    P("toxicity.myeloid_half_life_days", float, 1.0, "Myeloid amplifier: half-life of the activated state once the signal stops.", ASSUMED, 0.001, 1e4, unit="day"),
    P("toxicity.myeloid_il1_feedback", float, 0.3, "Myeloid amplifier: IL-1 (pg/mL) drive added to the CAR-T signal, in units of myeloid_half_signal_cells per il1_half_pg_per_mL (autocrine IL-1 loop).", "Giavridis 2018 (IL-1 amplifies macrophage activation; IL-1Ra abrogates CRS); value assumed", 0.0, 1e4, unit="1"),
    P("toxicity.il1_half_pg_per_mL", float, 1000.0, "Myeloid amplifier: IL-1 level that adds one half-signal of drive.", ASSUMED, 1e-6, 1e9, unit="pg/mL"),
    P("toxicity.il6_myeloid_max_pg_per_mL_per_day", float, 4e4, "Plasma IL-6 produced per day by the fully activated myeloid compartment (at the 6 h half-life the steady level is about 14000 pg/mL, the range of fatal CRS).", "Teachey 2016 (peak IL-6 of grade 4-5 CRS in the 10^3-10^4 pg/mL range); value assumed", 0.0, 1e9, unit="1/day"),
    P("toxicity.il1_myeloid_max_pg_per_mL_per_day", float, 2000.0, "Plasma IL-1 produced per day by the fully activated myeloid compartment.", "Norelli 2018 (monocyte IL-1 precedes IL-6); value assumed", 0.0, 1e9, unit="1/day"),
    P("toxicity.il1_half_life_hours", float, 3.0, "Plasma IL-1 half-life.", "assumed (IL-1β is cleared within hours)", 0.01, 1e4, unit="h"),
    P("toxicity.il1_pyrogen_weight", float, 2.0, "IL-6-equivalents (pg/mL) of one pg/mL of IL-1 in the CRS signal (IL-1 is a pyrogen and vasodilator in its own right).", ASSUMED, 0.0, 1e6, unit="1"),
    P("toxicity.crs_thresholds_pg_per_mL", list, [30.0, 300.0, 1500.0, 5000.0], "CRS signal (IL-6 signalling + weighted IL-1, pg/mL) at which CRS grades 1, 2, 3, 4 begin.  Grade 1 is fever ≥ 38 °C (the fever proxy reaches 38 °C exactly at the first threshold); 2-4 stand for ASTCT hypotension / hypoxia without vasopressors, with one vasopressor, with several.", "ASTCT consensus grading (Lee 2019); IL-6 cut-offs assumed (Teachey 2016 ranges)", 0.0, 1e9, unit="pg/mL"),
    P("toxicity.tocilizumab_days", list, [], "Tocilizumab (IL-6R blockade) dose times (empty: none; prophylactic use).", ASSUMED, 0.0, 3650.0, unit="day"),
    P("toxicity.tocilizumab_at_grade", int, 0, "Tocilizumab given when CRS first reaches this grade (0: never; ASTCT practice is grade 2).", "Neelapu 2018 (management of CRS)", 0, 4, unit=""),
    P("toxicity.tocilizumab_half_life_days", float, 11.0, "Half-life of the IL-6R blockade after a dose.", "tocilizumab label (t1/2 up to 11-13 days)", 0.01, 1e4, unit="day"),
    P("toxicity.tocilizumab_blockade_fraction", float, 0.95, "Fraction of IL-6 signalling blocked right after a dose (it does not cross the blood-brain barrier).", "Norelli 2018 (tocilizumab prevents CRS, not neurotoxicity); value assumed", 0.0, 1.0, unit="1"),
    P("toxicity.tocilizumab_clearance_fraction", float, 0.5, "Fraction of IL-6 clearance (receptor-mediated) lost under full blockade: serum IL-6 rises after tocilizumab.", "Nishimoto 2008 (serum IL-6 rises under tocilizumab); value assumed", 0.0, 1.0, unit="1"),
    P("toxicity.anakinra_days", list, [], "Anakinra (IL-1 receptor antagonist) dose times (empty: none).", ASSUMED, 0.0, 3650.0, unit="day"),
    P("toxicity.anakinra_at_grade", int, 0, "Anakinra given when CRS or ICANS first reaches this grade (0: never).", "Norelli 2018 (anakinra abolished CRS and neurotoxicity in mice); threshold assumed", 0, 4, unit=""),
    P("toxicity.anakinra_half_life_days", float, 1.0, "Half-life of the IL-1 blockade of a (daily) anakinra course.", "anakinra plasma t1/2 4-6 h, given daily or more often; value assumed", 0.01, 1e4, unit="day"),
    P("toxicity.anakinra_blockade_fraction", float, 0.9, "Fraction of IL-1 signalling blocked at full exposure, in the plasma and the CNS (it reaches the CSF), including the IL-1 drive of the myeloid loop.", "Norelli 2018, Giavridis 2018; value assumed", 0.0, 1.0, unit="1"),
    P("toxicity.steroid_days", list, [], "Corticosteroid (dexamethasone) dose times (empty: none).", ASSUMED, 0.0, 3650.0, unit="day"),
    P("toxicity.steroid_at_grade", int, 0, "Corticosteroid given when CRS or ICANS first reaches this grade (0: never; ASTCT practice is CRS 3 / ICANS 2, here the larger of the two grades).", "Neelapu 2018 (management of CRS / ICANS)", 0, 4, unit=""),
    P("toxicity.steroid_half_life_days", float, 1.5, "Half-life of the steroid effect after a dose.", "dexamethasone biological half-life 36-54 h", 0.01, 1e4, unit="day"),
    P("toxicity.steroid_myeloid_suppression_fraction", float, 0.8, "Fraction of myeloid activation (and CNS cytokine production) suppressed at full steroid effect.", "glucocorticoids suppress IL-6 / IL-1 transcription; value assumed", 0.0, 1.0, unit="1"),
    P("toxicity.steroid_car_t_clearance_per_day", float, 0.5, "Extra clearance rate of circulating and CSF CAR-T cells at full steroid effect (lymphotoxicity; it also lowers homing supply).", "Davila 2014 (steroids reduce CAR-T in blood); value assumed", 0.0, 1e4, unit="1/day"),
    P("toxicity.steroid_tissue_car_t_death_per_day", float, 0.2, "Extra death rate of CAR-T cells in the tissue (the domain) at full steroid effect (glucocorticoid-induced T-cell apoptosis).", "Davila 2014, Brudno 2016 (steroids reduce CAR-T numbers; short courses keep efficacy); value assumed", 0.0, 1e4, unit="1/day"),
    P("toxicity.endothelial_activation_per_day", float, 1.0, "ICANS: maximal endothelial activation rate driven by the CRS signal (Ang-2 release, vWF, BBB disruption).", "Gust 2017 (endothelial activation in severe neurotoxicity); value assumed", 0.0, 1e4, unit="1/day"),
    P("toxicity.endothelial_half_pg_per_mL", float, 1000.0, "ICANS: CRS signal at which endothelial activation runs at half its maximal rate.", ASSUMED, 1e-6, 1e9, unit="pg/mL"),
    P("toxicity.endothelial_half_life_days", float, 2.0, "ICANS: half-life of endothelial activation once the signal stops.", ASSUMED, 0.001, 1e4, unit="day"),
    P("toxicity.bbb_quotient_fraction", float, 0.005, "ICANS: CSF / plasma cytokine quotient of a quiescent barrier (activation raises it towards 1).", "CSF/serum albumin quotient ≈ 0.005 (Reiber 1994)", 0.0, 1.0, unit="1"),
    P("toxicity.csf_volume_mL", float, 150.0, "ICANS / CSF: CSF volume (cytokines and CAR-T cells in the CSF are diluted in it).", "adult CSF volume ≈ 150 mL (Sakka 2011)", 1e-3, 1e6, unit="mL"),
    P("toxicity.csf_turnover_per_day", float, 3.3, "ICANS / CSF: CSF turnover rate (production / volume); CSF cytokines clear at this rate.", "CSF production ≈ 500 mL/day over 150 mL (Sakka 2011)", 0.0, 1e4, unit="1/day"),
    P("toxicity.csf_car_t_cytokine_pg_per_cell_per_day", float, 0.005, "ICANS: IL-6-equivalent cytokine released into the CSF per CAR-T cell in the CSF per day (with the microglia / meningeal myeloid response it triggers).", "Brown 2016, Vitanza 2021 (CSF cytokines rise after intraventricular CAR-T); value assumed", 0.0, 1e9, unit="1/day"),
    P("toxicity.cns_tumour_cytokine_pg_per_cell_per_day", float, 0.03, "ICANS (CNS tumours, delivery.cns_tumour): IL-6-equivalent cytokine released into the CSF per engaged CAR-T cell in the whole tumour per day (tumour inflammation-associated neurotoxicity); lysed cells count myeloid_lysis_weight each.", "Majzner 2022 (TIAN); value assumed", 0.0, 1e9, unit="1/day"),
    P("toxicity.cns_tumour_systemic_fraction", float, 0.1, "ICANS / CRS (CNS tumours): fraction of the tumour's CAR-T signal (engagement, lysis, direct IL-6) that reaches the systemic myeloid compartment across the blood-brain barrier; the rest stays in the CNS.", "Majzner 2022 (intracerebroventricular doses: CNS cytokines with less systemic CRS than IV); value assumed", 0.0, 1.0, unit="1"),
    P("toxicity.icans_thresholds_pg_per_mL", list, [60.0, 300.0, 1500.0, 5000.0], "CNS cytokine exposure (IL-6-equivalent in the CSF, pg/mL) at which ICANS grades 1, 2, 3, 4 begin (standing for ICE score 7-9, 3-6, 0-2, unarousable / cerebral oedema).", "ASTCT ICANS grading (Lee 2019); cut-offs assumed (Santomasso 2018 CSF cytokine ranges)", 0.0, 1e9, unit="pg/mL"),
    # --- anti-PD-1 ----------------------------------------------------------------------------
    P("pd1.dose_days", list, [], "Anti-PD-1 dose times (empty: none).", ASSUMED, 0.0, 3650.0, unit="day"),
    P("pd1.half_life_days", float, 25.0, "Exposure half-life of the antibody.", "nivolumab / pembrolizumab terminal half-life ≈ 25 days", 0.01, 1e4, unit="day"),
    P("pd1.max_blockade_fraction", float, 0.8, "PD-1 receptor occupancy at full exposure: the fraction of the PD-L1 effect removed (exposure = sum of 2^(-t/half-life) over past doses, capped at 1: occupancy persists for weeks after a dose).", "Brahmer 2010 (nivolumab: mean peak PD-1 occupancy 85 %, plateau ≈ 72 %, sustained ≥ 57 days, independent of dose)", 0.0, 1.0, unit="1"),
    P("pd1.reinvigoration_rate_per_day", float, 0.2, "Rate at which an exhausted CAR-T cell is reinvigorated (becomes an effector again) at full PD-1 occupancy (× the blockade fraction at the time).", "Pauken 2016, Huang 2017 (PD-1 blockade reinvigorates a part of the exhausted cells within days to weeks); value assumed", 0.0, 1e4, unit="1/day"),
    P("pd1.reinvigorated_exhaustion", float, 0.7, "Exhaustion level of a reinvigorated cell: reinvigoration is partial and transient (the exhausted epigenetic state is kept), so it exhausts again after a few stimulations.", "Pauken 2016 (reinvigoration without epigenetic remodelling; cells re-exhaust when antigen persists); value assumed", 0.0, 0.999, unit="1"),
    # --- outputs (observation only: they never change the dynamics) -----------------------------
    P("outputs.progression_multiple", float, 1.2, "Time to progression: first output time after which the tumour exceeds this multiple of its running nadir (1.2: RECIST 1.1's 20 % increase over the smallest size).", "RECIST 1.1 (Eisenhauer 2009), applied to cell counts", 1.0, 1e6, unit="1"),
    P("outputs.persistence_fraction", float, 0.1, "CAR-T persistence: last output time at which the functional CAR-T cells (effector + memory in the domain, plus blood) are at least this fraction of their peak.", ASSUMED, 0.0, 1.0, unit="1"),
    P("outputs.boundary_closing_voxels", int, 2, "Infiltration depth: the tumour mass (tumour cells and necrotic debris) is morphologically closed by a cube of this half-width, so holes left by killed cells are not boundary.", ASSUMED, 0, 64, unit="voxels"),
    P("outputs.profile_bins", int, 20, "Number of radial shells of the radial CAR-T and tumour profiles.", ASSUMED, 1, 10000, unit="bins"),
)
# fmt: on

BY_KEY: dict[str, Param] = {p.key: p for p in PARAMS}
SECTIONS: tuple[str, ...] = tuple(dict.fromkeys(p.section for p in PARAMS))
