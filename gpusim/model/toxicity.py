"""Toxicity: the systemic cytokine response to CAR-T activity, its grades and drugs.

:func:`toxicity_phase` (after the CAR-T phase): drug exposures, the myeloid amplifier (activated
fraction of monocytes / macrophages driven by engaged CAR-T cells, lysis and IL-1), plasma IL-1
and IL-6, the CRS signal (IL-6 signalling left by tocilizumab + weighted IL-1), its grade and
onset, endothelial activation, the CNS (CSF) cytokine exposure, the ICANS grade and onset,
reactive tocilizumab / anakinra / steroid.  Each linear relaxation is stepped exactly (``_relax``,
``_source``).
"""

from __future__ import annotations

import numpy as np

from .systemic_params import SystemicParams


def _relax(x: np.ndarray, rate_in: np.ndarray, rate_out: float, dt: float) -> np.ndarray:
    """One exact step of ``dx/dt = rate_in (1 - x) - rate_out x`` (rates per day, (R,) float64)."""
    tot = rate_in + rate_out
    inf = np.where(tot > 0, rate_in / np.where(tot > 0, tot, 1.0), x)
    return inf + (x - inf) * np.exp(-tot * dt)


def _source(c: np.ndarray, prod: np.ndarray, rate: np.ndarray | float, dt: float) -> np.ndarray:
    """One exact step of ``dc/dt = prod - rate c`` (float64 (R,))."""
    rate = np.broadcast_to(np.asarray(rate, np.float64), c.shape)
    f = np.exp(-rate * dt)
    inf = np.where(rate > 0, prod / np.where(rate > 0, rate, 1.0), 0.0)
    return np.where(rate > 0, inf + (c - inf) * f, c + prod * dt)


def crs_signal(sp: SystemicParams, il6, il1, toci, anakinra=0.0) -> np.ndarray:
    """The CRS signal (pg/mL IL-6-equivalent): IL-6 signalling left by the IL-6R blockade plus
    weighted IL-1 signalling left by the IL-1R blockade."""
    return il6 * (1.0 - sp.toci_block * toci) + sp.il1_weight * il1 * (1.0 - sp.anakinra_block * anakinra)


def fever_c(sp: SystemicParams, signal) -> np.ndarray:
    """Fever proxy (°C): 37 + 4 s / (s + 3 g1), 38 °C exactly at the grade-1 threshold g1."""
    g1 = max(float(sp.crs_thresholds[0]), 1e-12)
    return 37.0 + 4.0 * signal / (signal + 3.0 * g1)


def toxicity_phase(st, sp: SystemicParams, events: dict, engaged: np.ndarray) -> None:
    """CRS (myeloid amplifier, IL-6, IL-1, fever, grade), ICANS (endothelial activation, CNS
    cytokine exposure, grade), tocilizumab and steroid (docs/model.md, Toxicity); host float64 on
    the (R,) pools of ``st``, from this step's kills and the ``engaged`` cells (host (R,))."""
    R = st.il6.shape[0]
    dt = sp.dt_days
    step = st.step
    lysed = (events.get("kills_tumour", np.zeros(R, np.int64))
             + events.get("kills_healthy", np.zeros(R, np.int64))).astype(np.float64)
    eng = np.asarray(engaged, np.float64)
    _scheduled_drugs(st, sp, step)
    sup = sp.steroid_sup * st.steroid
    il1_left = 1.0 - sp.anakinra_block * st.anakinra  # IL-1 signalling left by anakinra
    # myeloid amplifier: whole-tumour CAR-T signal (engaged cells) and lysis (per day)
    tumour_signal = (eng * sp.truck + sp.myeloid_lysis_w * lysed / dt) / sp.domain_share
    drive = sp.systemic_fraction * tumour_signal / sp.myeloid_s50 + sp.il1_feedback * st.il1 * il1_left / sp.il1_half
    dn = drive ** sp.myeloid_hill
    act = sp.myeloid_act * dn / (1.0 + dn) * (1.0 - sup)
    st.myeloid[:] = _relax(st.myeloid, act, sp.myeloid_off, dt)
    st.il1 *= sp.il1_decay
    st.il1 += sp.il1_myeloid * st.myeloid * dt
    direct = sp.systemic_fraction * (lysed * sp.il6_lysis + eng * sp.il6_act_step) / 1e6 / sp.domain_share
    rate6 = sp.il6_rate * (1.0 - sp.toci_clear * st.tocilizumab)
    st.il6[:] = _source(st.il6 + direct, sp.il6_myeloid * st.myeloid, rate6, dt)
    sig = crs_signal(sp, st.il6, st.il1, st.tocilizumab, st.anakinra)
    crs = np.searchsorted(sp.crs_thresholds, sig, side="right").astype(np.int64)
    # ICANS: endothelial activation by the CRS signal opens the barrier; CNS cytokine from the
    # plasma (raw IL-6: tocilizumab does not cross), CAR-T cells in the CSF and a CNS tumour
    ea = sp.endo_act * sig / (sig + sp.endo_half)
    st.endothelial[:] = _relax(st.endothelial, ea, sp.endo_off, dt)
    perm = sp.bbb_q0 + (1.0 - sp.bbb_q0) * st.endothelial
    local = (sp.csf_car_t_cyt * st.csf.sum(axis=1)
             + sp.cns_tumour_cyt * (1.0 - sp.systemic_fraction) * tumour_signal) / sp.csf_volume_mL
    prod = sp.csf_turnover * perm * (st.il6 + sp.il1_weight * st.il1 * il1_left) + local * (1.0 - sup)
    st.cns_cytokine[:] = _source(st.cns_cytokine, prod, sp.csf_turnover, dt)
    icans = np.searchsorted(sp.icans_thresholds, st.cns_cytokine, side="right").astype(np.int64)
    _record(st, sig, crs, icans, step, dt)
    _reactive_drugs(st, sp, step)


def _scheduled_drugs(st, sp: SystemicParams, step: int) -> None:
    """Drug exposures decay; a scheduled dose at ``step`` restores one to 1."""
    for drug in sp.drugs:
        exposure = getattr(st, drug.name)
        exposure *= drug.decay
        if step in drug.steps:
            exposure[:] = 1.0


def _record(st, sig: np.ndarray, crs: np.ndarray, icans: np.ndarray, step: int, dt: float) -> None:
    """Peaks, the IL-6 AUC, the highest grades and their onsets of this step."""
    np.maximum(st.il6_peak, st.il6, out=st.il6_peak)
    st.il6_auc += st.il6 * dt
    np.maximum(st.csf_peak, st.csf.sum(axis=1), out=st.csf_peak)  # every product's
    np.maximum(st.myeloid_peak, st.myeloid, out=st.myeloid_peak)
    np.maximum(st.crs_signal_peak, sig, out=st.crs_signal_peak)
    np.maximum(st.cns_peak, st.cns_cytokine, out=st.cns_peak)
    st.crs_onset_step[(crs >= 1) & (st.crs_onset_step == 0)] = step + 1
    st.icans_onset_step[(icans >= 1) & (st.icans_onset_step == 0)] = step + 1
    np.maximum(st.crs_grade_max, crs, out=st.crs_grade_max)
    np.maximum(st.icans_grade_max, icans, out=st.icans_grade_max)


def _reactive_drugs(st, sp: SystemicParams, step: int) -> None:
    """Reactive drugs, given at the end of the step their grade is first reached."""
    for drug in sp.drugs:
        if drug.grade > 0:
            grade = np.maximum(st.crs_grade_max, st.icans_grade_max) if drug.on_icans else st.crs_grade_max
            given = getattr(st, f"{drug.name}_step")
            give = (grade >= drug.grade) & (given == 0)
            getattr(st, drug.name)[give] = 1.0
            given[give] = step + 1
