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
    ("_um2_per_min", "µm²/min"), ("_um_per_min", "µm/min"), ("_per_min", "1/min"),
    ("_per_day", "1/day"), ("_per_hour", "1/h"), ("_um", "µm"), ("_min", "min"),
    ("_hours", "h"), ("_days", "day"), ("_mmHg", "mmHg"), ("_mM", "mM"), ("_cm3", "cm³"),
    ("_voxels", "voxels"), ("_cells", "cells"), ("_fraction", "fraction"),
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
    P("run.backend", str, "auto", "Compute backend.", ASSUMED, choices=("auto", "numpy", "cupy")),
    P("run.output_interval_hours", float, 12.0, "Interval between time-series outputs (and HDF5 flushes).", ASSUMED, 0.1, 1e5),
    P("run.snapshot_interval_hours", float, 48.0, "Interval between lattice snapshots (0: none).", ASSUMED, 0.0, 1e5),
    P("run.snapshot_replicates", int, 2, "Snapshots are written for the first this many replicates.", ASSUMED, 0, 64),
    P("run.checkpoint_interval_hours", float, 24.0, "Interval between checkpoints of the full state (0: none).", ASSUMED, 0.0, 1e5),
    P("run.field_tolerance", float, 1e-4, "Fields: a solve stops when a sweep changes no voxel by more than this fraction of the field's scale.", ASSUMED, 1e-9, 1e-1),
    P("run.field_omega", float, 1.6, "Over-relaxation factor of the red-black SOR field solver.", ASSUMED, 1.0, 1.95),
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
    P("tumour.antigen_loss_per_division", float, 1e-3, "Probability that a daughter loses antigen A (independently B).", ASSUMED, 0.0, 1.0),
    P("tumour.fraction_a_pos_b_pos", float, 0.0, "Subclone fraction A+B+.", ASSUMED, 0.0, 1.0),
    P("tumour.fraction_a_pos_b_neg", float, 1.0, "Subclone fraction A+B-.", ASSUMED, 0.0, 1.0),
    P("tumour.fraction_a_neg_b_pos", float, 0.0, "Subclone fraction A-B+.", ASSUMED, 0.0, 1.0),
    P("tumour.fraction_a_neg_b_neg", float, 0.0, "Subclone fraction A-B-.", ASSUMED, 0.0, 1.0),
    P("tumour.antigen_level_mean", float, 1.0, "Mean antigen level of positive cells (lognormal).", "PhysiCell oncoprotein mean 1", 0.01, 2.5),
    P("tumour.antigen_level_sd", float, 0.25, "Standard deviation of the antigen level (lognormal).", "PhysiCell oncoprotein sd 0.25", 0.0, 2.0),
    P("tumour.layout", str, "mixed", "Spatial layout of subclones: mixed cell by cell, or clonal patches.", ASSUMED, choices=("mixed", "patches")),
    P("tumour.patch_count", int, 12, "Number of clonal patches (layout = patches).", ASSUMED, 1, 100_000),
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
    P("oxygen.boundary", str, "neumann", "Domain boundary: no flux, or held at boundary_mmHg.", ASSUMED, choices=("neumann", "dirichlet")),
    P("oxygen.boundary_mmHg", float, 38.0, "Oxygen on a dirichlet boundary.", ASSUMED, 0.0, 760.0),
    # --- glucose ------------------------------------------------------------------------------
    P("glucose.diffusion_um2_per_min", float, 2340.0, "Glucose diffusion coefficient (39 µm²/s).", "CARCADE parameter.xml", 1e-3, 1e8),
    P("glucose.decay_per_min", float, 0.0, "Glucose decay.", "CARCADE parameter.xml", 0.0, 1e4),
    P("glucose.vessel_mM", float, 5.0, "Glucose at vessel voxels.", "CARCADE parameter.xml", 0.0, 100.0),
    P("glucose.uptake_tumour_per_min", float, 0.02, "Glucose uptake by a tumour cell (Warburg: high).", ASSUMED, 0.0, 1e4),
    P("glucose.uptake_healthy_per_min", float, 0.005, "Glucose uptake by a healthy cell or fibroblast.", ASSUMED, 0.0, 1e4),
    P("glucose.uptake_car_t_per_min", float, 0.01, "Glucose uptake by a CAR-T cell.", ASSUMED, 0.0, 1e4),
    P("glucose.boundary", str, "neumann", "Domain boundary: no flux, or held at boundary_mM.", ASSUMED, choices=("neumann", "dirichlet")),
    P("glucose.boundary_mM", float, 5.0, "Glucose on a dirichlet boundary.", ASSUMED, 0.0, 100.0),
    # --- chemokine ----------------------------------------------------------------------------
    P("chemokine.diffusion_um2_per_min", float, 1000.0, "Chemokine (CXCL9/10-like) diffusion coefficient.", "PhysiCell immunostimulatory factor", 1e-3, 1e8),
    P("chemokine.decay_per_min", float, 0.016, "Chemokine decay.", "PhysiCell immunostimulatory factor", 0.0, 1e4),
    P("chemokine.secretion_tumour_per_min", float, 10.0, "Secretion by tumour cells towards saturation 1: rate × (1 - c).", "PhysiCell immunostimulatory factor", 0.0, 1e4),
    P("chemokine.boundary", str, "neumann", "Domain boundary: no flux, or held at 0.", ASSUMED, choices=("neumann", "dirichlet")),
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
    P("car_t.capacity_per_replicate", int, 0, "Agent table capacity per replicate (0: one slot per voxel, which can never overflow).", ASSUMED, 0, 2**31 - 1),
    # --- delivery -----------------------------------------------------------------------------
    P("delivery.route", str, "intravenous", "How the dose is given.", ASSUMED, choices=("intravenous",)),
    P("delivery.dose_cells", float, 1e8, "CAR-T cells per dose.", "typical solid-tumour trial doses 1e7-1e9", 0.0, 1e13),
    P("delivery.dose_days", list, [0.0], "Times of the doses.", ASSUMED, 0.0, 3650.0),
    P("delivery.blood_half_life_days", float, 2.0, "Half-life of CAR-T cells in the blood pool (clearance and homing elsewhere).", ASSUMED, 0.001, 1e4),
    P("delivery.tumour_homing_fraction_per_day", float, 0.01, "Fraction of circulating CAR-T cells reaching the whole tumour per day.", "biodistribution: <1-2 % reach the tumour (assumed value)", 0.0, 1.0),
    P("delivery.tumour_volume_cm3", float, 1.0, "Whole-tumour volume that the domain samples.", ASSUMED, 1e-9, 1e4),
    P("delivery.chemokine_weight", float, 4.0, "Extravasation weight of a vessel voxel: 1 + weight × chemokine.", ASSUMED, 0.0, 1e3),
)
# fmt: on

BY_KEY: dict[str, Param] = {p.key: p for p in PARAMS}
SECTIONS: tuple[str, ...] = tuple(dict.fromkeys(p.section for p in PARAMS))
