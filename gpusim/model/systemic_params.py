"""Systemic parameters: :class:`SystemicParams`, the per-step factors, dose schedule and entry
geometry of the systemic phase (model/systemic.py) and the toxicity phase (model/toxicity.py),
derived once from a scenario (host float64)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .conditioning import Conditioning
from .lattice import coords, voxel_centres_um
from .tissue import tumour_centre_um

F32 = np.float32


@dataclass(frozen=True)
class Drug:
    """The schedule of one drug of the toxicity phase: its exposure (``State.<name>``, 0-1)
    decays by ``decay`` a step, is restored to 1 at the scheduled ``steps`` and by a reactive
    dose when the CRS grade (and, with ``on_icans``, the ICANS grade) first reaches ``grade``
    (0: never), recorded in ``State.<name>_step``."""

    name: str  #: the state arrays: exposure ``<name>`` and reactive-dose step ``<name>_step``
    steps: frozenset = frozenset()  #: steps of the scheduled doses
    grade: int = 0  #: grade that triggers the reactive dose (0: none)
    decay: float = 1.0  #: exposure factor per step (the drug's half-life)
    on_icans: bool = False  #: the reactive dose follows the higher of the CRS and ICANS grades

    @classmethod
    def from_scenario(cls, sc, name: str, on_icans: bool) -> "Drug":
        """The schedule of ``toxicity.<name>_days``, ``_at_grade`` and ``_half_life_days``."""
        dt = sc["run.dt_min"]
        dtd = dt / 1440.0
        ln2 = math.log(2.0)
        return cls(name, frozenset(int(round(d * 1440.0 / dt)) for d in sc[f"toxicity.{name}_days"]),
                   int(sc[f"toxicity.{name}_at_grade"]),
                   math.exp(-ln2 * dtd / sc[f"toxicity.{name}_half_life_days"]), on_icans)


@dataclass(frozen=True)
class SystemicParams:
    dose_steps: dict[int, tuple]  # step -> ((route, cells, product id, dose id), ...) in the schedule's order
    homing_per_step: float
    domain_share: float
    clearance_factor: float
    weight256: np.float32
    max_divisions: int
    n_products: int = 1  # scenario.products: pools per product, product ids 0 .. n - 1
    n_doses: int = 1  # doses of scenario.dose_plan (at least 1): dose ids in the schedule's order
    dose_product: np.ndarray | None = None  # (n_doses,) int64: the product id of each dose
    leak: float = 0.0
    inject_order: np.ndarray | None = None  # (V,) int64 voxels sorted by (distance to the nearest site, v)
    inject_shells: tuple | None = None  # (starts, ends) int64 (S,): runs of equal distance in that order
    face_voxels: np.ndarray | None = None  # (F,) int64; None: no CSF / cavity face
    face_share: float = 0.0
    regional_bf: float = 0.0
    infusion_steps: int = 1
    csf_entry_per_step: float = 0.0  # fraction of the CSF pool crossing the whole surface per step
    csf_decay: float = 1.0  # CSF pool outflow factor per step
    csf_to_blood: float = 0.0
    blood_to_csf_per_step: float = 0.0
    csf_gain: float = 0.0
    steroid_clear_per_step: float = 0.0
    conditioning: Conditioning = Conditioning(None)
    lympho_rate: float = 0.0  # blood expansion rate x dt at the homeostatic cytokines' peak
    # toxicity
    il6_lysis: float = 0.0
    il6_act_step: float = 0.0
    il6_rate: float = 0.0  # IL-6 clearance rate, 1/day
    dt_days: float = 0.0
    truck: float = 1.0
    myeloid_s50: float = 1.0
    myeloid_lysis_w: float = 0.0
    myeloid_hill: float = 1.0
    myeloid_act: float = 0.0
    myeloid_off: float = 0.0
    il1_feedback: float = 0.0
    il1_half: float = 1.0
    il6_myeloid: float = 0.0
    il1_myeloid: float = 0.0
    il1_decay: float = 1.0
    il1_weight: float = 0.0
    crs_thresholds: np.ndarray = None
    icans_thresholds: np.ndarray = None
    drugs: tuple = ()  # (Drug, ...): tocilizumab, anakinra, steroid (their schedules)
    toci_block: float = 0.0
    toci_clear: float = 0.0
    anakinra_block: float = 0.0
    steroid_sup: float = 0.0
    endo_act: float = 0.0
    endo_half: float = 1.0
    endo_off: float = 0.0
    bbb_q0: float = 0.0
    csf_volume_mL: float = 150.0
    csf_turnover: float = 0.0
    csf_car_t_cyt: float = 0.0
    cns_tumour_cyt: float = 0.0  # 0 unless delivery.cns_tumour
    systemic_fraction: float = 1.0  # of the tumour's signal reaching the systemic compartment

    @property
    def routes(self) -> set:
        return {d[0] for due in self.dose_steps.values() for d in due}

    @classmethod
    def from_scenario(cls, sc, nvox: int) -> "SystemicParams":
        """The systemic parameters of a scenario.

        Parameters
        ----------
        sc : Scenario
            The resolved scenario.
        nvox : int
            Voxels of the domain (its share of the tumour volume).

        Returns
        -------
        SystemicParams
            Host float64 per-step factors, the dose schedule in steps and the entry geometry.
        """
        return cls(**_delivery_terms(sc, nvox), **_toxicity_terms(sc))


def _delivery_terms(sc, nvox: int) -> dict:
    """Doses, pools and entry terms of :meth:`SystemicParams.from_scenario`."""
    from ..scenario import dose_plan, products
    dt = sc["run.dt_min"]
    dtd = dt / 1440.0
    doses: dict[int, tuple] = {}
    prods = products(sc)
    plan = dose_plan(sc)
    for i, d in enumerate(plan):
        s = int(round(d.day * 1440.0 / dt))
        doses[s] = doses.get(s, ()) + ((d.route, float(d.cells), prods.index(d.targets), i),)
    routes = {d[0] for due in doses.values() for d in due}
    h = sc["domain.voxel_um"]
    vox_cm3 = (h * 1e-4) ** 3
    shape = sc.shape
    order = shells = face = None
    face_share = 0.0
    if "intratumoral" in routes:
        order, shells = _shells(_site_distance2(sc))
    if "regional" in routes or sc["delivery.cns_tumour"]:
        face, area_vox = _face(sc["delivery.regional_face"], shape)
        face_share = area_vox * (h * 1e-4) ** 2 / sc["delivery.regional_surface_cm2"]
    ln2 = math.log(2.0)
    return dict(
        dose_steps=doses,
        homing_per_step=sc["delivery.tumour_homing_fraction_per_day"] * dtd,
        domain_share=nvox * vox_cm3 / sc["delivery.tumour_volume_cm3"],
        clearance_factor=math.exp(-ln2 * dtd / sc["delivery.blood_half_life_days"]),
        weight256=F32(256.0 * sc["delivery.chemokine_weight"]),
        max_divisions=int(sc["car_t.max_divisions"]),
        n_products=len(prods),
        n_doses=max(1, len(plan)),
        dose_product=np.array([prods.index(d.targets) for d in plan] or [0], dtype=np.int64),
        leak=float(sc["delivery.leak_fraction"]),
        inject_order=order,
        inject_shells=shells,
        face_voxels=face,
        face_share=face_share,
        regional_bf=float(sc["delivery.regional_blood_fraction"]),
        infusion_steps=max(1, int(round(sc["delivery.infusion_hours"] * 60.0 / dt))),
        csf_entry_per_step=-math.expm1(-sc["delivery.csf_tissue_entry_per_day"] * dtd),
        csf_decay=math.exp(-ln2 * dtd / sc["delivery.csf_half_life_days"]),
        csf_to_blood=float(sc["delivery.csf_outflow_to_blood_fraction"]),
        blood_to_csf_per_step=sc["delivery.blood_to_csf_per_day"] * dtd,
        csf_gain=float(sc["delivery.csf_trafficking_activation_gain"]),
        steroid_clear_per_step=sc["toxicity.steroid_car_t_clearance_per_day"] * dtd,
        conditioning=Conditioning.from_scenario(sc),
        lympho_rate=sc["delivery.lymphodepletion_blood_expansion_per_day"] * dtd,
    )


def _toxicity_terms(sc) -> dict:
    """Cytokine, grade and drug terms of :meth:`SystemicParams.from_scenario`."""
    dt = sc["run.dt_min"]
    dtd = dt / 1440.0
    truck = sc["toxicity.il6_truck_multiplier"] if sc["car_t.generation"] == "fourth" else 1.0
    ln2 = math.log(2.0)
    # Deliberate twins: a declaration table, one line per scenario parameter (alike in shape, not logic).
    return dict(
        il6_lysis=float(sc["toxicity.il6_per_million_lysed_pg_per_mL"]),
        il6_act_step=float(sc["toxicity.il6_per_million_activated_per_day_pg_per_mL"]) * dtd * truck,
        il6_rate=ln2 / (sc["toxicity.il6_half_life_hours"] / 24.0),
        dt_days=dtd,
        truck=truck,
        myeloid_s50=float(sc["toxicity.myeloid_half_signal_cells"]),
        myeloid_lysis_w=float(sc["toxicity.myeloid_lysis_weight"]),
        myeloid_hill=float(sc["toxicity.myeloid_hill"]),
        myeloid_act=float(sc["toxicity.myeloid_activation_per_day"]),
        myeloid_off=ln2 / sc["toxicity.myeloid_half_life_days"],
        il1_feedback=float(sc["toxicity.myeloid_il1_feedback"]),
        il1_half=float(sc["toxicity.il1_half_pg_per_mL"]),
        il6_myeloid=float(sc["toxicity.il6_myeloid_max_pg_per_mL_per_day"]),
        il1_myeloid=float(sc["toxicity.il1_myeloid_max_pg_per_mL_per_day"]),
        il1_decay=math.exp(-ln2 * dtd / (sc["toxicity.il1_half_life_hours"] / 24.0)),
        il1_weight=float(sc["toxicity.il1_pyrogen_weight"]),
        crs_thresholds=np.asarray(sorted(sc["toxicity.crs_thresholds_pg_per_mL"]), np.float64),
        icans_thresholds=np.asarray(sorted(sc["toxicity.icans_thresholds_pg_per_mL"]), np.float64),
        drugs=(Drug.from_scenario(sc, "tocilizumab", on_icans=False),
               Drug.from_scenario(sc, "anakinra", on_icans=True),
               Drug.from_scenario(sc, "steroid", on_icans=True)),
        toci_block=float(sc["toxicity.tocilizumab_blockade_fraction"]),
        toci_clear=float(sc["toxicity.tocilizumab_clearance_fraction"]),
        anakinra_block=float(sc["toxicity.anakinra_blockade_fraction"]),
        steroid_sup=float(sc["toxicity.steroid_myeloid_suppression_fraction"]),
        endo_act=float(sc["toxicity.endothelial_activation_per_day"]),
        endo_half=float(sc["toxicity.endothelial_half_pg_per_mL"]),
        endo_off=ln2 / sc["toxicity.endothelial_half_life_days"],
        bbb_q0=float(sc["toxicity.bbb_quotient_fraction"]),
        csf_volume_mL=float(sc["toxicity.csf_volume_mL"]),
        csf_turnover=float(sc["toxicity.csf_turnover_per_day"]),
        csf_car_t_cyt=float(sc["toxicity.csf_car_t_cytokine_pg_per_cell_per_day"]),
        cns_tumour_cyt=(float(sc["toxicity.cns_tumour_cytokine_pg_per_cell_per_day"])
                        if sc["delivery.cns_tumour"] else 0.0),
        systemic_fraction=(float(sc["toxicity.cns_tumour_systemic_fraction"])
                           if sc["delivery.cns_tumour"] else 1.0),
    )


def _site_distance2(sc) -> np.ndarray:
    """Squared distance (in voxel units, float64) of every voxel centre to the nearest injection
    site: one site at the tumour centre, or ``n`` sites evenly on a ring of radius
    ``injection_offset_fraction × tumour radius`` in the z-centre plane."""
    shape = sc.shape
    h = sc["domain.voxel_um"]
    z, y, x = voxel_centres_um(shape, h)
    cz, cy, cx = tumour_centre_um(sc)
    n = sc["delivery.injection_sites"]
    off = sc["delivery.injection_offset_fraction"] * sc["tumour.radius_um"] if n > 1 else 0.0
    best = None
    for k in range(n):
        ang = 2.0 * math.pi * k / n
        sx, sy = cx + off * math.cos(ang), cy + off * math.sin(ang)
        d2 = ((x - sx) ** 2 + (y - sy) ** 2 + (z - cz) ** 2) / (h * h)
        best = d2 if best is None else np.minimum(best, d2)
    return np.broadcast_to(best, shape).ravel().copy()


def _shells(site_d2: np.ndarray) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]:
    """The voxels sorted by (squared distance to the nearest site, v) and the (start, end)
    positions of the runs of equal distance ("shells") in that order."""
    order = np.argsort(site_d2, kind="stable")
    d = site_d2[order]
    starts = np.flatnonzero(np.concatenate(([True], d[1:] != d[:-1])))
    ends = np.concatenate((starts[1:], [d.size]))
    return order.astype(np.int64), (starts.astype(np.int64), ends.astype(np.int64))


def _face(face: str, shape) -> tuple[np.ndarray, int]:
    """Flat voxel indices of a domain face (sorted) and its area in voxel faces."""
    nz, ny, nx = shape
    v = np.arange(nz * ny * nx)
    z, y, x = coords(v, shape)
    sel = {"x_low": x == 0, "x_high": x == nx - 1, "y_low": y == 0, "y_high": y == ny - 1,
           "z_low": z == 0, "z_high": z == nz - 1}[face]
    idx = v[sel]
    return idx, int(idx.size)
