"""Every scenario parameter, declared once: type, default, bounds, one-line description, source.

Keys are ``section.name`` with the unit in the name (``dt_min``, ``speed_um_per_min``,
``o2_vessel_mmHg``).  ``source`` cites where a default comes from, or says *assumed* for our own
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

    @property
    def section(self) -> str:
        return self.key.split(".", 1)[0]

    @property
    def unit(self) -> str:
        name = "_" + self.key.rsplit(".", 1)[1]
        for suffix, unit in _UNITS:
            if name.endswith(suffix):
                return unit
        return ""


_UNITS = [
    ("_um2_per_min", "µm²/min"), ("_um_per_min", "µm/min"), ("_mmHg_per_min", "mmHg/min"),
    ("_per_min", "1/min"),
    ("_per_day", "1/day"), ("_per_hour", "1/h"), ("_um", "µm"), ("_min", "min"),
    ("_hours", "h"), ("_days", "day"), ("_mmHg", "mmHg"), ("_mM", "mM"), ("_cm3", "cm³"),
    ("_voxels", "voxels"), ("_cells", "cells"), ("_fraction", "fraction"),
    ("_pg_per_mL", "pg/mL"), ("_cm2", "cm²"),
]

P = Param
# fmt: off
PARAMS: tuple[Param, ...] = (
    # --- scenario -----------------------------------------------------------------------------
    P("scenario.name", str, "custom", "Short name of the scenario.", ASSUMED),
    P("scenario.description", str, "", "What question the scenario answers.", ASSUMED),
    # --- run ----------------------------------------------------------------------------------
    P("run.days", float, 14.0, "Simulated time.", ASSUMED, 0.0, 3650.0),
    P("run.dt_min", float, 6.0, "Time step (PhysiCell's phenotype step).", "PhysiCell (Ghaffarizadeh 2018)", 0.1, 60.0),
    P("run.replicates", int, 4, "Number of independent replicates.", ASSUMED, 1, 10_000_000),
    P("run.first_replicate", int, 0, "Global index of the first replicate (runs K..K+N-1).", ASSUMED, 0, 2**32 - 1),
    P("run.seed", int, 1, "Random seed (Philox key word 0).", ASSUMED, 0, 2**32 - 1),
    P("run.backend", str, "auto", "Compute backend (emulated: the device step on the CPU, for checking kernels).", ASSUMED, choices=("auto", "numpy", "cupy", "emulated")),
    P("run.output_interval_hours", float, 12.0, "Interval between time-series outputs (and HDF5 flushes).", ASSUMED, 0.1, 1e5),
    P("run.snapshot_interval_hours", float, 48.0, "Interval between lattice snapshots (0: none).", ASSUMED, 0.0, 1e5),
    P("run.snapshot_replicates", int, 2, "Snapshots are written for the first this many replicates.", ASSUMED, 0, 64),
    P("run.checkpoint_interval_hours", float, 24.0, "Interval between checkpoints of the full state (0: none).", ASSUMED, 0.0, 1e5),
    P("run.field_tolerance", float, 1e-4, "Fields: each solve stops when its estimated max-norm error against the converged solution of the same discrete system is at most this fraction of the field's scale (docs/fields.md).", ASSUMED, 1e-9, 1e-1),
    P("run.field_omega", float, 0.0, "Over-relaxation factor of the red-black SOR field solver for every field; 0: each field's own `<field>.sor_omega`.", ASSUMED, 0.0, 1.95),
    # --- domain -------------------------------------------------------------------------------
    P("domain.x_voxels", int, 200, "Lattice size along x.", ASSUMED, 3, 4096),
    P("domain.y_voxels", int, 200, "Lattice size along y.", ASSUMED, 3, 4096),
    P("domain.z_voxels", int, 1, "Lattice size along z (1: a 2D lattice).", ASSUMED, 1, 4096),
    P("domain.voxel_um", float, 20.0, "Voxel edge: one cell diameter.", "PhysiCell 20 µm voxels", 1.0, 1000.0),
    # --- tumour -------------------------------------------------------------------------------
    P("tumour.radius_um", float, 1500.0, "Radius of the initial tumour nodule (disc in 2D, sphere in 3D).", ASSUMED, 0.0, 1e6),
    P("tumour.centre_x_fraction", float, 0.5, "Nodule centre along x, as a fraction of the domain.", ASSUMED, 0.0, 1.0),
    P("tumour.centre_y_fraction", float, 0.5, "Nodule centre along y, as a fraction of the domain.", ASSUMED, 0.0, 1.0),
    P("tumour.centre_z_fraction", float, 0.5, "Nodule centre along z, as a fraction of the domain.", ASSUMED, 0.0, 1.0),
    P("tumour.division_rate_per_min", float, 0.00072, "Division rate at full oxygen (1/(23 h)).", "PhysiCell cancer_immune 0.00072/min", 0.0, 1e3),
    P("tumour.apoptosis_rate_per_min", float, 5.3e-5, "Background apoptosis rate.", "PhysiCell default 5.31667e-5/min", 0.0, 1e3),
    P("tumour.o2_proliferation_full_mmHg", float, 38.0, "Oxygen at which division runs at full rate.", "PhysiCell cancer_immune", 0.0, 760.0),
    P("tumour.o2_proliferation_zero_mmHg", float, 5.0, "Oxygen at which the division ramp reaches zero.", "PhysiCell cancer_immune", 0.0, 760.0),
    P("tumour.o2_hypoxic_mmHg", float, 10.0, "Below this oxygen a cell is hypoxic (quiescent).", "PhysiCell hypoxic threshold", 0.0, 760.0),
    P("tumour.o2_necrosis_onset_mmHg", float, 5.0, "Necrosis starts below this oxygen.", "PhysiCell cancer_immune", 0.0, 760.0),
    P("tumour.o2_necrosis_max_mmHg", float, 2.5, "Necrosis reaches its maximal rate at this oxygen.", "PhysiCell cancer_immune", 0.0, 760.0),
    P("tumour.necrosis_max_rate_per_min", float, 1.0 / 360.0, "Maximal necrosis rate.", "PhysiCell 1/360 /min", 0.0, 1e3),
    P("tumour.glucose_half_mM", float, 0.5, "Glucose at which division runs at half speed (factor g/(g+K)).", ASSUMED, 0.0, 100.0),
    P("tumour.apoptotic_clearance_min", float, 516.0, "Mean time for an apoptotic (or killed) cell to free its voxel.", "PhysiCell apoptosis duration 516 min", 1.0, 1e7),
    P("tumour.necrotic_clearance_days", float, 10.0, "Mean time for necrotic debris to be cleared.", ASSUMED, 0.01, 1e5),
    P("tumour.antigen_loss_per_division", float, 1e-4, "Probability that a daughter loses antigen A (independently B).", ASSUMED, 0.0, 1.0),
    P("tumour.fraction_a_pos_b_pos", float, 0.0, "Subclone fraction A+B+.", ASSUMED, 0.0, 1.0),
    P("tumour.fraction_a_pos_b_neg", float, 1.0, "Subclone fraction A+B-.", ASSUMED, 0.0, 1.0),
    P("tumour.fraction_a_neg_b_pos", float, 0.0, "Subclone fraction A-B+.", ASSUMED, 0.0, 1.0),
    P("tumour.fraction_a_neg_b_neg", float, 0.0, "Subclone fraction A-B-.", ASSUMED, 0.0, 1.0),
    P("tumour.antigen_level_mean", float, 1.0, "Mean antigen level of positive cells (lognormal).", "PhysiCell oncoprotein mean 1", 0.01, 2.5),
    P("tumour.antigen_level_sd", float, 0.25, "Standard deviation of the antigen level (lognormal).", "PhysiCell oncoprotein sd 0.25", 0.0, 2.0),
    P("tumour.layout", str, "mixed", "Spatial layout of subclones: mixed cell by cell, or clonal patches.", ASSUMED, choices=("mixed", "patches")),
    P("tumour.patch_count", int, 12, "Number of clonal patches (layout = patches).", ASSUMED, 1, 100_000),
    P("tumour.trogocytosis_fraction", float, 0.3, "Fraction of a tumour cell's antigen level removed by a non-lethal CAR engagement (trogocytosis / down-regulation; the level stays positive).", "Hamieh 2019 (CAR trogocytosis); value assumed", 0.0, 1.0),
    P("tumour.antigen_recovery_per_day", float, 0.5, "Rate at which a down-regulated antigen level returns to the cell's baseline level.", ASSUMED, 0.0, 1e4),
    P("tumour.pdl1_ifng_rate_per_day", float, 2.0, "PD-L1 induction rate at saturating IFN-γ (towards level 1).", "IFN-γ induces PD-L1 (adaptive resistance); rate assumed", 0.0, 1e4),
    P("tumour.pdl1_ifng_half", float, 0.05, "IFN-γ level (a.u.) at half-maximal PD-L1 induction (and chemokine boost).", ASSUMED, 1e-6, 1e4),
    P("tumour.pdl1_hypoxia_rate_per_day", float, 0.5, "PD-L1 induction rate of hypoxic tumour cells (HIF-1α).", "Noman 2014 (HIF-1α induces PD-L1); rate assumed", 0.0, 1e4),
    P("tumour.pdl1_decay_per_day", float, 0.5, "PD-L1 decay rate (towards 0).", ASSUMED, 0.0, 1e4),
    # --- stroma -------------------------------------------------------------------------------
    P("stroma.capsule_thickness_um", float, 60.0, "Thickness of the fibrous capsule around the nodule.", ASSUMED, 0.0, 1e5),
    P("stroma.capsule_density", float, 0.9, "ECM density of the capsule.", ASSUMED, 0.0, 1.0),
    P("stroma.septa_count", int, 6, "Number of fibrous septa running from the capsule into the tumour.", ASSUMED, 0, 1000),
    P("stroma.septa_width_um", float, 20.0, "Width of a septum.", ASSUMED, 0.0, 1e5),
    P("stroma.septa_density", float, 0.8, "ECM density of a septum.", ASSUMED, 0.0, 1.0),
    P("stroma.septa_length_fraction", float, 0.6, "Mean septum length as a fraction of the tumour radius.", ASSUMED, 0.0, 1.0),
    P("stroma.background_density", float, 0.1, "ECM density of ordinary tissue.", ASSUMED, 0.0, 1.0),
    P("stroma.block_density", float, 0.5, "Tumour cells cannot divide into voxels denser than this.", ASSUMED, 0.0, 1.0),
    P("stroma.permeability", float, 0.1, "Stroma permeability: a CAR-T cell enters a voxel of density ρ with probability 1 - ρ(1 - permeability).", "Kather 2017 (range 0.0025-0.45)", 0.0, 1.0),
    P("stroma.fibroblast_density", float, 0.5, "Voxels at least this dense may hold a fibroblast (CAF).", ASSUMED, 0.0, 1.0),
    P("stroma.fibroblast_fraction", float, 0.5, "Fraction of dense-stroma voxels that hold a fibroblast.", ASSUMED, 0.0, 1.0),
    P("stroma.car_t_degradation_per_day", float, 0.0, "ECM density removed per day at the voxel of an effector CAR-T cell (FAP-directed or heparanase-armed CAR-T; 0: off).", "Caruana 2015 (heparanase CAR-T); rate assumed", 0.0, 1e4),
    P("stroma.drug_degradation_per_day", float, 0.0, "Fractional ECM loss per day everywhere from an ECM-degrading drug (0: off).", ASSUMED, 0.0, 1e4),
    P("stroma.drug_start_day", float, 0.0, "Day the ECM-degrading drug starts.", ASSUMED, 0.0, 3650.0),
    # --- vessels ------------------------------------------------------------------------------
    P("vessels.density_normal_fraction", float, 0.03, "Fraction of voxels outside the tumour that are vessels.", ASSUMED, 0.0, 1.0),
    P("vessels.density_tumour_fraction", float, 0.01, "Fraction of tumour voxels that are vessels (outside the avascular core).", ASSUMED, 0.0, 1.0),
    P("vessels.core_radius_fraction", float, 0.0, "Avascular core: no vessels within this fraction of the tumour radius.", ASSUMED, 0.0, 1.0),
    P("vessels.collapse_necrotic_neighbours", int, 4, "A vessel collapses when at least this many of its neighbours are necrotic.", ASSUMED, 1, 26),
    # --- healthy tissue -----------------------------------------------------------------------
    P("healthy.cell_fraction", float, 0.8, "Fraction of free voxels outside the tumour holding a healthy cell.", ASSUMED, 0.0, 1.0),
    P("healthy.antigen_a_fraction", float, 0.0, "Fraction of healthy cells expressing antigen A.", ASSUMED, 0.0, 1.0),
    P("healthy.antigen_b_fraction", float, 0.0, "Fraction of healthy cells expressing antigen B.", ASSUMED, 0.0, 1.0),
    P("healthy.antigen_level", float, 0.3, "Antigen level of antigen-positive healthy cells.", ASSUMED, 0.01, 2.5),
    # --- oxygen -------------------------------------------------------------------------------
    P("oxygen.diffusion_um2_per_min", float, 1e5, "Oxygen diffusion coefficient.", "PhysiCell cancer_immune", 1e-3, 1e8),
    P("oxygen.decay_per_min", float, 0.1, "Oxygen decay.", "PhysiCell cancer_immune", 0.0, 1e4),
    P("oxygen.vessel_mmHg", float, 38.0, "Oxygen at vessel voxels (5 % O2).", "PhysiCell cancer_immune", 0.0, 760.0),
    P("oxygen.uptake_tumour_per_min", float, 10.0, "Oxygen uptake by a tumour cell.", "PhysiCell cancer_immune", 0.0, 1e4),
    P("oxygen.uptake_healthy_per_min", float, 5.0, "Oxygen uptake by a healthy cell or fibroblast.", ASSUMED, 0.0, 1e4),
    P("oxygen.uptake_car_t_per_min", float, 1.0, "Oxygen uptake by a CAR-T cell.", "PhysiCell cancer_immune", 0.0, 1e4),
    P("oxygen.consumption_tumour_mmHg_per_min", float, 0.0, "Zero-order oxygen consumption by a tumour cell, wherever oxygen is left (Greenspan 1972; the oxygen solve is then projected onto O2 >= 0); 0: first-order uptake only, as PhysiCell.", ASSUMED, 0.0, 1e6),
    P("oxygen.consumption_healthy_mmHg_per_min", float, 0.0, "Zero-order oxygen consumption by a healthy cell or fibroblast, wherever oxygen is left (0: first-order uptake only).", ASSUMED, 0.0, 1e6),
    P("oxygen.sor_omega", float, 1.7, "Over-relaxation factor of this field's SOR solve on a 2D lattice (unless run.field_omega is set).", "assumed (fewest sweeps at equal accuracy, benchmarks/bench_fields.py)", 1.0, 1.95),
    P("oxygen.sor_omega_3d", float, 1.7, "Over-relaxation factor of this field's SOR solve on a 3D lattice (unless run.field_omega is set).", "assumed (fewest sweeps at equal accuracy, benchmarks/bench_fields.py)", 1.0, 1.95),
    P("oxygen.boundary", str, "neumann", "Domain boundary: no flux, or held at boundary_mmHg.", ASSUMED, choices=("neumann", "dirichlet")),
    P("oxygen.boundary_mmHg", float, 38.0, "Oxygen on a dirichlet boundary.", ASSUMED, 0.0, 760.0),
    # --- glucose ------------------------------------------------------------------------------
    P("glucose.diffusion_um2_per_min", float, 2340.0, "Glucose diffusion coefficient (39 µm²/s).", "CARCADE parameter.xml", 1e-3, 1e8),
    P("glucose.decay_per_min", float, 0.0, "Glucose decay.", "CARCADE parameter.xml", 0.0, 1e4),
    P("glucose.vessel_mM", float, 5.0, "Glucose at vessel voxels.", "CARCADE parameter.xml", 0.0, 100.0),
    P("glucose.uptake_tumour_per_min", float, 0.02, "Glucose uptake by a tumour cell (Warburg: high).", ASSUMED, 0.0, 1e4),
    P("glucose.uptake_healthy_per_min", float, 0.005, "Glucose uptake by a healthy cell or fibroblast.", ASSUMED, 0.0, 1e4),
    P("glucose.uptake_car_t_per_min", float, 0.01, "Glucose uptake by a CAR-T cell.", ASSUMED, 0.0, 1e4),
    P("glucose.sor_omega", float, 1.9, "Over-relaxation factor of this field's SOR solve on a 2D lattice (unless run.field_omega is set).", "assumed (fewest sweeps at equal accuracy, benchmarks/bench_fields.py)", 1.0, 1.95),
    P("glucose.sor_omega_3d", float, 1.85, "Over-relaxation factor of this field's SOR solve on a 3D lattice (unless run.field_omega is set).", "assumed (fewest sweeps at equal accuracy, benchmarks/bench_fields.py)", 1.0, 1.95),
    P("glucose.boundary", str, "neumann", "Domain boundary: no flux, or held at boundary_mM.", ASSUMED, choices=("neumann", "dirichlet")),
    P("glucose.boundary_mM", float, 5.0, "Glucose on a dirichlet boundary.", ASSUMED, 0.0, 100.0),
    # --- chemokine ----------------------------------------------------------------------------
    P("chemokine.diffusion_um2_per_min", float, 1000.0, "Chemokine (CXCL9/10-like) diffusion coefficient.", "PhysiCell immunostimulatory factor", 1e-3, 1e8),
    P("chemokine.decay_per_min", float, 0.016, "Chemokine decay.", "PhysiCell immunostimulatory factor", 0.0, 1e4),
    P("chemokine.secretion_tumour_per_min", float, 10.0, "Secretion by tumour cells towards saturation 1: rate × (1 - c).", "PhysiCell immunostimulatory factor", 0.0, 1e4),
    P("chemokine.sor_omega", float, 1.7, "Over-relaxation factor of this field's SOR solve on a 2D lattice (unless run.field_omega is set).", "assumed (fewest sweeps at equal accuracy, benchmarks/bench_fields.py)", 1.0, 1.95),
    P("chemokine.sor_omega_3d", float, 1.8, "Over-relaxation factor of this field's SOR solve on a 3D lattice (unless run.field_omega is set).", "assumed (fewest sweeps at equal accuracy, benchmarks/bench_fields.py)", 1.0, 1.95),
    P("chemokine.boundary", str, "neumann", "Domain boundary: no flux, or held at 0.", ASSUMED, choices=("neumann", "dirichlet")),
    # --- TGF-β --------------------------------------------------------------------------------
    P("tgfb.diffusion_um2_per_min", float, 1000.0, "TGF-β diffusion coefficient.", "assumed (cytokine-like)", 1e-3, 1e8),
    P("tgfb.decay_per_min", float, 0.016, "TGF-β decay.", "assumed (cytokine-like)", 0.0, 1e4),
    P("tgfb.secretion_tumour_per_min", float, 0.03, "TGF-β secretion of a tumour cell (a.u. per min).", ASSUMED, 0.0, 1e4),
    P("tgfb.secretion_fibroblast_per_min", float, 0.15, "TGF-β secretion of a fibroblast (CAF).", ASSUMED, 0.0, 1e4),
    P("tgfb.hypoxic_secretion_multiplier", float, 2.0, "Secretion multiplier of hypoxic tumour cells.", ASSUMED, 0.0, 1e4),
    P("tgfb.trap_uptake_per_min", float, 0.5, "TGF-β removal by a CAR-T cell armoured with a TGF-β trap.", ASSUMED, 0.0, 1e4),
    P("tgfb.sor_omega", float, 1.7, "Over-relaxation factor of this field's SOR solve on a 2D lattice (unless run.field_omega is set).", "assumed (fewest sweeps at equal accuracy, benchmarks/bench_fields.py)", 1.0, 1.95),
    P("tgfb.sor_omega_3d", float, 1.7, "Over-relaxation factor of this field's SOR solve on a 3D lattice (unless run.field_omega is set).", "assumed (fewest sweeps at equal accuracy, benchmarks/bench_fields.py)", 1.0, 1.95),
    P("tgfb.boundary", str, "neumann", "Domain boundary: no flux, or held at 0.", ASSUMED, choices=("neumann", "dirichlet")),
    # --- IFN-γ --------------------------------------------------------------------------------
    P("ifng.diffusion_um2_per_min", float, 1000.0, "IFN-γ diffusion coefficient.", ASSUMED, 1e-3, 1e8),
    P("ifng.decay_per_min", float, 0.016, "IFN-γ decay.", ASSUMED, 0.0, 1e4),
    P("ifng.secretion_car_t_per_min", float, 0.2, "IFN-γ secretion of an engaged CAR-T cell (a.u. per min).", ASSUMED, 0.0, 1e4),
    P("ifng.chemokine_boost", float, 1.0, "Chemokine secretion of tumour cells × (1 + boost × IFN/(IFN + K)) (CXCL9/10 are IFN-γ induced).", ASSUMED, 0.0, 1e4),
    P("ifng.sor_omega", float, 1.7, "Over-relaxation factor of this field's SOR solve on a 2D lattice (unless run.field_omega is set).", "assumed (fewest sweeps at equal accuracy, benchmarks/bench_fields.py)", 1.0, 1.95),
    P("ifng.sor_omega_3d", float, 1.7, "Over-relaxation factor of this field's SOR solve on a 3D lattice (unless run.field_omega is set).", "assumed (fewest sweeps at equal accuracy, benchmarks/bench_fields.py)", 1.0, 1.95),
    P("ifng.boundary", str, "neumann", "Domain boundary: no flux, or held at 0.", ASSUMED, choices=("neumann", "dirichlet")),
    # --- IL-12 --------------------------------------------------------------------------------
    P("il12.diffusion_um2_per_min", float, 1000.0, "IL-12 diffusion coefficient.", ASSUMED, 1e-3, 1e8),
    P("il12.decay_per_min", float, 0.016, "IL-12 decay.", ASSUMED, 0.0, 1e4),
    P("il12.secretion_car_t_per_min", float, 0.05, "IL-12 secretion of an activated 4th-generation (TRUCK) CAR-T cell (a.u. per min).", ASSUMED, 0.0, 1e4),
    P("il12.half", float, 0.1, "IL-12 level (a.u.) of half-maximal effect on killing; also divides the TGF-β a T cell feels by (1 + IL12/half).", ASSUMED, 1e-6, 1e4),
    P("il12.kill_boost", float, 1.0, "Killing × (1 + boost × IL12/(IL12 + half)).", "Chmielewski 2011 (IL-12 TRUCKs); value assumed", 0.0, 100.0),
    P("il12.sor_omega", float, 1.7, "Over-relaxation factor of this field's SOR solve on a 2D lattice (unless run.field_omega is set).", "assumed (fewest sweeps at equal accuracy, benchmarks/bench_fields.py)", 1.0, 1.95),
    P("il12.sor_omega_3d", float, 1.7, "Over-relaxation factor of this field's SOR solve on a 3D lattice (unless run.field_omega is set).", "assumed (fewest sweeps at equal accuracy, benchmarks/bench_fields.py)", 1.0, 1.95),
    P("il12.boundary", str, "neumann", "Domain boundary: no flux, or held at 0.", ASSUMED, choices=("neumann", "dirichlet")),
    # --- CAR-T cells --------------------------------------------------------------------------
    P("car_t.targets", str, "A", "Antigens the CAR recognises and its logic.", ASSUMED, choices=("A", "B", "A|B", "A&B")),
    P("car_t.affinity_a", float, 0.2, "Antigen A level at half-maximal recognition: p = level/(level + K).", "CARCADE-like saturating recognition; K assumed", 1e-4, 100.0),
    P("car_t.affinity_b", float, 0.2, "Antigen B level at half-maximal recognition.", "CARCADE-like saturating recognition; K assumed", 1e-4, 100.0),
    P("car_t.speed_um_per_min", float, 5.0, "Migration speed.", "Luque 2024 (tissue: <2 to >8 µm/min)", 0.0, 100.0),
    P("car_t.persistence", float, 0.5, "Probability that a move keeps the previous direction.", ASSUMED, 0.0, 1.0),
    P("car_t.chemotaxis_bias", float, 0.3, "Probability that a (non-persistent) move goes to the neighbour with the most chemokine.", ASSUMED, 0.0, 1.0),
    P("car_t.crowding_factor", float, 0.5, "Entering a voxel held by a tumour cell succeeds with this factor.", ASSUMED, 0.0, 1.0),
    P("car_t.kill_rate_per_min", float, 1.0 / 30.0, "Killing rate of an engaged CAR-T cell.", "Cazaux 2019 (≈25 min per kill)", 0.0, 1e3),
    P("car_t.exhaustion_per_kill", float, 0.1, "Exhaustion added per kill (ten stimulations to exhaustion).", "CARCADE MAX_ANTIGEN_BINDING = 10", 0.0, 1.0),
    P("car_t.exhaustion_hypoxia_per_day", float, 0.05, "Exhaustion added per day spent in hypoxic tissue.", ASSUMED, 0.0, 100.0),
    P("car_t.exhaustion_recovery_per_day", float, 0.1, "Exhaustion lost per day without antigen (one stimulation a day).", "CARCADE", 0.0, 100.0),
    P("car_t.activation_hours", float, 24.0, "How long a stimulation keeps a CAR-T cell activated (able to divide).", ASSUMED, 0.0, 1e4),
    P("car_t.division_rate_per_min", float, 1.0 / 720.0, "Division rate of an activated CAR-T cell (12 h).", ASSUMED, 0.0, 1e3),
    P("car_t.max_divisions", int, 10, "Divisions a CAR-T cell can make.", "CARCADE", 0, 255),
    P("car_t.daughter_exhaustion_fraction", float, 0.5, "Fraction of the parent's exhaustion a daughter inherits.", ASSUMED, 0.0, 1.0),
    P("car_t.lifespan_days", float, 42.0, "Mean lifespan (constant death rate).", "CARCADE 6 ± 1 weeks", 0.01, 1e5),
    P("car_t.exhausted_death_multiplier", float, 5.0, "Death rate multiplier of exhausted cells.", ASSUMED, 1.0, 1e4),
    P("car_t.starvation_glucose_mM", float, 0.1, "Below this glucose a CAR-T cell starves.", ASSUMED, 0.0, 100.0),
    P("car_t.starvation_death_rate_per_min", float, 1.0 / 1440.0, "Death rate of a starving CAR-T cell.", ASSUMED, 0.0, 1e3),
    P("car_t.memory_conversion_rate_per_day", float, 0.0, "Rate at which an effector that is not stimulated becomes a memory cell (CARTmath ε; 0: no memory formation).", ASSUMED, 0.0, 1e4),
    P("car_t.memory_death_rate_per_day", float, 0.002, "Death rate of a memory CAR-T cell (CARTmath μ; memory cells persist for years).", ASSUMED, 0.0, 1e4),
    P("car_t.memory_reactivation_probability", float, 0.5, "Probability that a memory cell recognising a target becomes an effector again, per step (CARTmath θ).", ASSUMED, 0.0, 1.0),
    P("car_t.costimulation", str, "4-1BB", "Costimulatory domain of a 2nd-generation CAR: 4-1BB (the reference, persistence) or CD28 (the cd28_* multipliers).", "Long 2015; Kawalekar 2016", choices=("4-1BB", "CD28")),
    P("car_t.cd28_kill_multiplier", float, 1.25, "CD28 vs 4-1BB: killing rate multiplier.", "Zhao 2015, Kawalekar 2016 (CD28: faster effector function); value assumed", 0.0, 100.0),
    P("car_t.cd28_division_multiplier", float, 1.5, "CD28 vs 4-1BB: division rate multiplier (faster expansion).", "Kawalekar 2016 (CD28: glycolytic, rapid expansion); value assumed", 0.0, 100.0),
    P("car_t.cd28_exhaustion_multiplier", float, 2.0, "CD28 vs 4-1BB: exhaustion-per-kill multiplier.", "Long 2015 (4-1BB ameliorates exhaustion); value assumed", 0.0, 100.0),
    P("car_t.cd28_lifespan_multiplier", float, 0.5, "CD28 vs 4-1BB: lifespan multiplier (4-1BB persists longer).", "Kawalekar 2016 (4-1BB: oxidative, persistence); value assumed", 0.01, 100.0),
    P("car_t.generation", str, "second", "CAR generation: second, fourth (TRUCK: secretes IL-12 when activated) or fifth (IL-2Rβ domain: antigen-driven proliferation and survival).", ASSUMED, choices=("second", "fourth", "fifth")),
    P("car_t.gen5_division_multiplier", float, 1.5, "5th generation (IL-2Rβ/STAT signalling): division rate multiplier.", "Kagoya 2018 (IL-2Rβ CAR); value assumed", 0.0, 100.0),
    P("car_t.gen5_lifespan_multiplier", float, 2.0, "5th generation: lifespan multiplier (survival without external IL-2).", "Kagoya 2018; value assumed", 0.01, 100.0),
    P("car_t.armour", str, "none", "Armour: none, dnTGFbRII (the T cell ignores TGF-β) or TGFb_trap (the T cell removes TGF-β around it).", "Kloss 2018 (dnTGFβRII); trap assumed", choices=("none", "dnTGFbRII", "TGFb_trap")),
    P("car_t.tgfb_half", float, 0.3, "TGF-β level K of the suppression factor 1/(1 + TGF/K).", ASSUMED, 1e-6, 1e4),
    P("car_t.exhaustion_tgfb_per_day", float, 0.5, "Exhaustion added per day at saturating TGF-β (× TGF/(TGF + K)).", ASSUMED, 0.0, 100.0),
    P("car_t.pdl1_inhibition", float, 0.5, "Kill factor on a target of PD-L1 level L: 1 - inhibition × L × (1 - anti-PD-1 blockade).", ASSUMED, 0.0, 1.0),
    P("car_t.exhaustion_pdl1_per_day", float, 0.5, "Exhaustion added per day of engagement with a target of PD-L1 level 1 (× L × (1 - blockade)).", "PD-1 signalling drives exhaustion (Cherkassky 2016); rate assumed", 0.0, 100.0),
    P("car_t.hypoxia_factor", float, 0.3, "Kill and division factor of a CAR-T cell in hypoxic tissue.", "Berahovich 2019 (hypoxia impairs CAR-T); value assumed", 0.0, 1.0),
    P("car_t.glucose_half_mM", float, 0.05, "Glucose K of the kill and division factor g/(g + K) (0: off).", ASSUMED, 0.0, 100.0),
    P("car_t.capacity_per_replicate", int, 0, "Agent table capacity per replicate (0: one slot per voxel, which can never overflow).", ASSUMED, 0, 2**31 - 1),
    # --- delivery -----------------------------------------------------------------------------
    P("delivery.route", str, "intravenous", "How the dose is given: intravenous (blood pool), intratumoral (injection sites) or regional (through a boundary face: intraventricular / intracavitary).", ASSUMED, choices=("intravenous", "intratumoral", "regional")),
    P("delivery.dose_cells", float, 1e8, "CAR-T cells per dose.", "typical solid-tumour trial doses 1e7-1e9", 0.0, 1e13),
    P("delivery.dose_days", list, [0.0], "Times of the doses.", ASSUMED, 0.0, 3650.0),
    P("delivery.blood_half_life_days", float, 2.0, "Half-life of CAR-T cells in the blood pool (clearance and homing elsewhere).", ASSUMED, 0.001, 1e4),
    P("delivery.tumour_homing_fraction_per_day", float, 0.01, "Fraction of circulating CAR-T cells reaching the whole tumour per day.", "biodistribution: <1-2 % reach the tumour (assumed value)", 0.0, 1.0),
    P("delivery.tumour_volume_cm3", float, 1.0, "Whole-tumour volume that the domain samples.", ASSUMED, 1e-9, 1e4),
    P("delivery.chemokine_weight", float, 4.0, "Extravasation weight of a vessel voxel: 1 + weight × chemokine.", ASSUMED, 0.0, 1e3),
    P("delivery.injection_sites", int, 1, "Intratumoral: number of injection sites (one at the tumour centre, several on a ring).", ASSUMED, 1, 64),
    P("delivery.injection_offset_fraction", float, 0.5, "Intratumoral: distance of the sites from the tumour centre (several sites), as a fraction of the radius.", ASSUMED, 0.0, 1.0),
    P("delivery.leak_fraction", float, 0.3, "Intratumoral: fraction of the dose that leaks to the blood.", "assumed (intratumoral injections leak substantially)", 0.0, 1.0),
    P("delivery.regional_face", str, "x_low", "Regional: the domain face on the CSF / cavity side.", ASSUMED, choices=("x_low", "x_high", "y_low", "y_high", "z_low", "z_high")),
    P("delivery.infusion_hours", float, 1.0, "Regional: infusion time of a dose.", ASSUMED, 0.01, 1e4),
    P("delivery.regional_surface_cm2", float, 10.0, "Regional: ventricle / cavity surface the dose spreads over (the domain's face receives its share).", ASSUMED, 1e-6, 1e6),
    P("delivery.regional_blood_fraction", float, 0.05, "Regional: fraction of the dose that reaches the blood.", ASSUMED, 0.0, 1.0),
    P("delivery.lymphodepletion", bool, False, "Lymphodepleting conditioning before the first dose.", ASSUMED),
    P("delivery.lymphodepletion_days", float, 7.0, "Lymphodepletion: window after the first dose with boosted expansion.", ASSUMED, 0.0, 3650.0),
    P("delivery.lymphodepletion_division_multiplier", float, 2.0, "Lymphodepletion: CAR-T division rate multiplier in the window (homeostatic cytokines).", "Turtle 2016 (Cy/Flu improves expansion); value assumed", 1.0, 100.0),
    # --- toxicity -----------------------------------------------------------------------------
    P("toxicity.il6_per_million_lysed_pg_per_mL", float, 10.0, "Plasma IL-6 added per million cells lysed in the whole tumour (scaled from the domain).", ASSUMED, 0.0, 1e6),
    P("toxicity.il6_per_million_activated_per_day_pg_per_mL", float, 25.0, "Plasma IL-6 produced per day per million engaged CAR-T cells in the whole tumour.", ASSUMED, 0.0, 1e6),
    P("toxicity.il6_truck_multiplier", float, 1.5, "4th generation: IL-6 production multiplier (IL-12 adds to the systemic cytokine load).", ASSUMED, 1.0, 100.0),
    P("toxicity.il6_half_life_hours", float, 6.0, "Plasma IL-6 half-life.", "assumed (IL-6 circulates for hours)", 0.01, 1e4),
    P("toxicity.crs_thresholds_pg_per_mL", list, [10.0, 100.0, 1000.0, 5000.0], "Peak IL-6 at which CRS grades 1, 2, 3, 4 begin (grading is clinical; no standard cut-offs).", ASSUMED, 0.0, 1e9),
    P("toxicity.icans_il6_auc_ref_pg_per_mL", float, 100.0, "ICANS index: IL-6 area under the curve (pg/mL × day) that counts 1.", ASSUMED, 1e-9, 1e12),
    P("toxicity.icans_csf_ref_cells", float, 1e7, "ICANS index: peak CAR-T cells in the CSF that count 1.", ASSUMED, 1e-9, 1e15),
    # --- anti-PD-1 ----------------------------------------------------------------------------
    P("pd1.dose_days", list, [], "Anti-PD-1 dose times (empty: none).", ASSUMED, 0.0, 3650.0),
    P("pd1.half_life_days", float, 25.0, "Exposure half-life of the antibody.", "nivolumab / pembrolizumab terminal half-life ≈ 25 days", 0.01, 1e4),
    P("pd1.max_blockade_fraction", float, 0.9, "Fraction of the PD-L1 effect removed at full exposure (exposure = sum of 2^(-t/half-life) over past doses, capped at 1).", ASSUMED, 0.0, 1.0),
)
# fmt: on

BY_KEY: dict[str, Param] = {p.key: p for p in PARAMS}
SECTIONS: tuple[str, ...] = tuple(dict.fromkeys(p.section for p in PARAMS))
