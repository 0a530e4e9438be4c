"""Declarations of what a run reports: metrics, endpoints, profiles, snapshots and events,
each with its units and description (written to the HDF5 attributes)."""

from __future__ import annotations

from dataclasses import dataclass

from . import outputs as obs


@dataclass
class Metric:
    units: str
    description: str


METRICS: dict[str, Metric] = {
    "tumour_cells": Metric("cells", "live tumour cells"),
    "tumour_a_pos_b_pos": Metric("cells", "tumour cells expressing A and B"),
    "tumour_a_pos_b_neg": Metric("cells", "tumour cells expressing A only"),
    "tumour_a_neg_b_pos": Metric("cells", "tumour cells expressing B only"),
    "tumour_a_neg_b_neg": Metric("cells", "tumour cells expressing neither A nor B"),
    "tumour_invisible": Metric("cells", "tumour cells the CAR cannot recognise"),
    "tumour_hypoxic": Metric("cells", "tumour cells below the hypoxic oxygen threshold"),
    "necrotic_voxels": Metric("voxels", "voxels holding necrotic debris"),
    "car_t_tissue": Metric("cells", "CAR-T cells in the domain"),
    "car_t_tumour": Metric("cells", "CAR-T cells in or next to a tumour cell's voxel"),
    "car_t_exhausted": Metric("cells", "exhausted CAR-T cells in the domain"),
    "car_t_memory": Metric("cells", "memory CAR-T cells in the domain"),
    "car_t_blood": Metric("cells", "CAR-T cells circulating in blood (whole body)"),
    "infiltration": Metric("fraction", "fraction of tumour cells with a CAR-T cell within 2 voxels"),
    "kills_tumour": Metric("cells", "cumulative tumour cells killed by CAR-T cells"),
    "kills_healthy": Metric("cells", "cumulative healthy cells killed by CAR-T cells"),
    "mean_exhaustion": Metric("fraction", "mean exhaustion of CAR-T cells in the domain"),
    "mean_o2_tumour": Metric("mmHg", "mean oxygen over tumour cells"),
    "mean_glucose_tumour": Metric("mM", "mean glucose over tumour cells"),
    "mean_tgfb_tumour": Metric("ng/mL", "mean TGF-β1 (total) over tumour cells"),
    "mean_pdl1_tumour": Metric("fraction", "mean PD-L1 level of tumour cells"),
    "mean_ecm_tumour": Metric("fraction", "mean ECM density over the tumour's bounding region (tumour, capsule and septa)"),
    "car_t_engaged": Metric("cells", "CAR-T cells that engaged a target in the last step"),
    "il6": Metric("pg/mL", "plasma IL-6"),
    "car_t_csf": Metric("cells", "CAR-T cells in the CSF / cavity (whole body)"),
    "il1": Metric("pg/mL", "plasma IL-1 (myeloid)"),
    "myeloid_activation": Metric("fraction", "activated fraction of the monocyte / macrophage compartment"),
    "crs_signal": Metric("pg/mL", "CRS signal: IL-6 signalling left by IL-6R blockade + weighted IL-1"),
    "fever_c": Metric("°C", "fever proxy from the CRS signal (38 °C at the grade-1 threshold)"),
    "crs_grade": Metric("1", "CRS grade now (0-4)"),
    "endothelial_activation": Metric("fraction", "endothelial activation (barrier opening)"),
    "cns_cytokine": Metric("pg/mL", "CNS (CSF) cytokine exposure, IL-6-equivalent"),
    "icans_grade": Metric("1", "ICANS grade now (0-4)"),
    "tocilizumab_exposure": Metric("fraction", "tocilizumab exposure (IL-6R blockade / blockade fraction)"),
    "steroid_exposure": Metric("fraction", "corticosteroid exposure"),
    "anakinra_exposure": Metric("fraction", "anakinra exposure (IL-1R blockade / blockade fraction)"),
    "infiltration_depth_mean_um": Metric("µm", "mean signed depth of the CAR-T cells in the domain below the tumour boundary (inward positive; NaN: no CAR-T cell or no tumour)"),
    "infiltration_depth_p10_um": Metric("µm", "10th percentile of the CAR-T cells' signed depth below the tumour boundary (inward positive)"),
    "infiltration_depth_p50_um": Metric("µm", "median signed depth of the CAR-T cells below the tumour boundary (inward positive)"),
    "infiltration_depth_p90_um": Metric("µm", "90th percentile of the CAR-T cells' signed depth below the tumour boundary (inward positive)"),
    "car_t_inside_tumour_fraction": Metric("fraction", "fraction of the CAR-T cells in the domain inside the tumour mass (depth > 0)"),
    "mean_ifng": Metric("a.u.", "mean IFN-γ over the domain"),
    "max_ifng": Metric("a.u.", "largest IFN-γ in a voxel of the domain"),
    "mean_il12": Metric("a.u.", "mean IL-12 over the domain"),
    "max_il12": Metric("a.u.", "largest IL-12 in a voxel of the domain"),
    "mean_tgfb": Metric("ng/mL", "mean TGF-β1 (total) over the domain"),
    "max_tgfb": Metric("ng/mL", "largest TGF-β1 (total) in a voxel of the domain"),
}

# Deliberate twins: ENDPOINTS and SNAPSHOTS are declaration tables, name -> (dtype, units, doc).
ENDPOINTS: dict[str, tuple[str, str, str]] = {
    "cleared": ("int8", "1", "1 if no tumour cell is left at the end"),
    "time_to_clearance_days": ("float64", "day", "first time no tumour cell was left (NaN: never)"),
    "best_response": ("float64", "fraction", "smallest tumour size over the run / initial size"),
    "final_tumour_ratio": ("float64", "fraction", "final tumour size / initial size"),
    "antigen_escape": ("int8", "1", "1 if the tumour persists, most of it is invisible to the CAR, and the invisible fraction grew at least half-way from its initial value to 1"),
    "car_t_peak": ("int64", "cells", "largest number of CAR-T cells in the domain"),
    "car_t_persistence_days": ("float64", "day", "last output time at which the functional CAR-T cells (effector + memory in the domain, plus blood) were at least outputs.persistence_fraction of their peak (0: never any)"),
    "car_t_persistence_censored": ("int8", "1", "1 if the functional CAR-T cells were still at or above that level at the last output (persistence censored by the end of the run)"),
    "time_to_progression_days": ("float64", "day", "first output time at which the tumour exceeded outputs.progression_multiple x its running nadir (NaN: censored, see progressed)"),
    "progressed": ("int8", "1", "1 if progression was observed by the last output (event flag of time_to_progression_days)"),
    "healthy_damage": ("float64", "fraction", "healthy antigen+ cells killed / initial healthy antigen+ cells"),
    "kills_tumour": ("int64", "cells", "tumour cells killed by CAR-T cells"),
    "kills_healthy": ("int64", "cells", "healthy cells killed by CAR-T cells"),
    "car_t_tumour_peak": ("int64", "cells", "largest number of CAR-T cells in or next to tumour cells"),
    "peak_il6": ("float64", "pg/mL", "peak plasma IL-6"),
    "crs_grade": ("int8", "1", "highest CRS grade 0-4 (CRS signal vs toxicity.crs_thresholds_pg_per_mL)"),
    "crs_onset_days": ("float64", "day", "first time CRS reached grade 1 (NaN: never)"),
    "icans_grade": ("int8", "1", "highest ICANS grade 0-4 (CNS cytokine vs toxicity.icans_thresholds_pg_per_mL)"),
    "icans_onset_days": ("float64", "day", "first time ICANS reached grade 1 (NaN: never)"),
    "icans_index": ("float64", "1", "peak CNS cytokine exposure / the ICANS grade-1 threshold"),
    "peak_myeloid": ("float64", "fraction", "peak activated fraction of the myeloid compartment"),
    "peak_crs_signal": ("float64", "pg/mL", "peak CRS signal"),
    "peak_cns_cytokine": ("float64", "pg/mL", "peak CNS (CSF) cytokine exposure"),
    "peak_csf_car_t": ("float64", "cells", "peak CAR-T cells in the CSF / cavity"),
    "tocilizumab_day": ("float64", "day", "time of the reactive tocilizumab dose (NaN: none)"),
    "steroid_day": ("float64", "day", "time of the reactive steroid dose (NaN: none)"),
    "anakinra_day": ("float64", "day", "time of the reactive anakinra dose (NaN: none)"),
    "entered_iv": ("int64", "cells", "CAR-T cells that entered the domain from the blood (vessels)"),
    "entered_intratumoral": ("int64", "cells", "CAR-T cells placed by intratumoral doses"),
    "entered_regional": ("int64", "cells", "CAR-T cells that entered across the CSF / cavity face"),
    **{f"peak_{stat}_{k}": ("float64", "ng/mL" if k == "tgfb" else "a.u.",
                             f"largest {what} {label} over the output times")
       for k, label in obs.SIGNALS.items()
       for stat, what in (("mean", "domain-mean"), ("max", "single-voxel"))},
    "final_tumour_cells": ("int64", "cells", "live tumour cells at the end"),
    "final_tumour_a_pos_b_pos": ("int64", "cells", "tumour cells expressing A and B at the end"),
    "final_tumour_a_pos_b_neg": ("int64", "cells", "tumour cells expressing A only at the end"),
    "final_tumour_a_neg_b_pos": ("int64", "cells", "tumour cells expressing B only at the end"),
    "final_tumour_a_neg_b_neg": ("int64", "cells", "tumour cells expressing neither A nor B at the end"),
    "final_healthy_cells": ("int64", "cells", "healthy cells at the end"),
    "final_necrotic_voxels": ("int64", "voxels", "voxels holding necrotic debris at the end"),
    "final_car_t_effector": ("int64", "cells", "effector CAR-T cells in the domain at the end"),
    "final_car_t_exhausted": ("int64", "cells", "exhausted CAR-T cells in the domain at the end"),
    "final_car_t_memory": ("int64", "cells", "memory CAR-T cells in the domain at the end"),
    "final_infiltration_depth_mean_um": ("float64", "µm", "infiltration_depth_mean_um at the end (NaN: no CAR-T cell or no tumour)"),
    "final_infiltration_depth_p50_um": ("float64", "µm", "infiltration_depth_p50_um (median CAR-T depth) at the end"),
}

#: endpoints computed from the output time series (``Simulation.endpoints(series=...)``; without
#: a series they hold the fill value: NaN, or -1 for the flags)
SERIES_ENDPOINTS = ("car_t_persistence_days", "car_t_persistence_censored", "time_to_progression_days",
                    "progressed", *(f"peak_{s}_{k}" for k in obs.SIGNALS for s in ("mean", "max")))

#: the metrics SERIES_ENDPOINTS are computed from
SERIES_METRICS = ("tumour_cells", "car_t_tissue", "car_t_exhausted", "car_t_blood",
                  *(f"{s}_{k}" for k in obs.SIGNALS for s in ("mean", "max")))

#: profiles written every output interval: ``name -> (units, description)``, each (R, nbins) per
#: output, stored as /profiles/<name> (R, T, nbins) with its bin edges (gpusim.model.outputs)
PROFILES: dict[str, Metric] = {k: Metric(v[3], v[4]) for k, v in obs.profile_specs().items()}

# Deliberate twin of ENDPOINTS: a declaration table, name -> (dtype, units, doc).
SNAPSHOTS: dict[str, tuple[str, str, str]] = {
    "kind": ("uint8", "1", "cell kind: 0 empty, 1 tumour, 2 healthy, 3 fibroblast, 4 apoptotic, 5 necrotic, 6 vessel"),
    "antigen_class": ("uint8", "1", "tumour antigen class: 0 none, 1 A+B+, 2 A+B-, 3 A-B+, 4 A-B-"),
    "car_t": ("uint8", "1", "CAR-T cell: 0 none, 1 effector, 2 exhausted, 3 memory (several in a voxel: the last in table order)"),
    "o2": ("float32", "mmHg", "oxygen"),
    "ecm": ("float32", "1", "ECM density"),
}


#: the events of a step: every key is present every step, an int64 (R,) array, zero when nothing
#: happened (the phases add to them; ``Simulation.last_events`` holds the last step's)
EVENTS = ("car_t_entered", "tumour_apoptosis", "tumour_necrosis", "tumour_divisions",
          "antigen_a_loss", "antigen_b_loss", "cleared", "vessel_collapse", "antigen_recovered",
          "kills_tumour", "kills_healthy", "engagements", "trogocytosis", "car_t_deaths",
          "car_t_births", "memory_conversions", "memory_reactivations", "healthy_displaced",
          "fibroblast_displaced", "kills_innate", "kills_fibroblast", "pd1_reinvigorations")
#: units and description of each event, as written to /events/<name> (counts per output interval)
EVENT_INFO: dict[str, Metric] = {
    "car_t_entered": Metric("cells", "CAR-T cells that entered the domain (extravasation, injection, regional entry)"),
    "tumour_apoptosis": Metric("cells", "tumour cells that became apoptotic"),
    "tumour_necrosis": Metric("cells", "tumour cells that became necrotic"),
    "tumour_divisions": Metric("cells", "tumour cell divisions"),
    "antigen_a_loss": Metric("cells", "daughters that lost antigen A"),
    "antigen_b_loss": Metric("cells", "daughters that lost antigen B"),
    "cleared": Metric("voxels", "dead cells (apoptotic, necrotic) cleared"),
    "vessel_collapse": Metric("voxels", "vessel voxels that collapsed"),
    "antigen_recovered": Metric("cells", "tumour cells whose trogocytosed antigen recovered"),
    "kills_tumour": Metric("cells", "tumour cells killed by CAR-T cells"),
    "kills_healthy": Metric("cells", "healthy cells killed by CAR-T cells"),
    "engagements": Metric("engagements", "CAR-T cell engagements of a target"),
    "trogocytosis": Metric("events", "trogocytosis events (antigen taken from a target)"),
    "car_t_deaths": Metric("cells", "CAR-T cells that died"),
    "car_t_births": Metric("cells", "CAR-T cells born by division"),
    "memory_conversions": Metric("cells", "effector CAR-T cells that became memory cells"),
    "memory_reactivations": Metric("cells", "memory CAR-T cells reactivated to effectors"),
    "healthy_displaced": Metric("cells", "healthy cells displaced by a dividing tumour cell (removed)"),
    "fibroblast_displaced": Metric("cells", "fibroblasts displaced by a dividing tumour cell (removed)"),
    "kills_innate": Metric("cells", "tumour cells killed by innate cells recruited and activated by IL-12 (TRUCK)"),
    "kills_fibroblast": Metric("cells", "fibroblasts (CAFs) killed by FAP-targeting CAR-T cells"),
    "pd1_reinvigorations": Metric("cells", "exhausted CAR-T cells reinvigorated by anti-PD-1"),
}
