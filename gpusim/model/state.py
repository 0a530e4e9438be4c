"""The state spec: the arrays of a batch (names, dtypes and axes in :class:`State`).

``STATE_ARRAYS`` lists every array a run carries; ``DEVICE_ARRAYS`` those a device backend keeps
on the device.
"""

from __future__ import annotations

import hashlib

import numpy as np

from . import car_t as car_t_mod

LATTICE = ("kind", "antigen_a", "antigen_b", "ecm", "o2", "glucose", "chemokine", "tgfb", "ifng",
           "il12", "pdl1", "antigen_a_base", "antigen_b_base")
AGENTS = car_t_mod.AGENT_FIELDS
SYSTEMIC = ("blood", "csf", "il6", "il6_peak", "il6_auc", "csf_peak", "il1", "myeloid",
            "myeloid_peak", "crs_signal_peak", "endothelial", "cns_cytokine", "cns_peak",
            "tocilizumab", "steroid", "anakinra", "blood_dose", "csf_dose")
COUNTERS = ("kills_tumour", "kills_healthy", "car_t_entered", "car_t_births", "car_t_deaths",
            "tumour_initial", "tumour_invisible_initial", "healthy_antigen_initial", "car_t_peak", "tumour_min",
            "cleared_step", "last_car_t_step", "car_t_tumour_peak", "crs_grade_max",
            "crs_onset_step", "icans_grade_max", "icans_onset_step", "tocilizumab_step",
            "steroid_step", "anakinra_step", "entered_iv", "entered_intratumoral", "entered_regional",
            "entered_product", "entered_dose")
#: per-replicate arrays with a trailing product axis (R, P), P = len(scenario.products(sc)): the
#: pools that hold each product's cells before tissue entry, and its entrants so far
PER_PRODUCT = ("blood", "csf", "entered_product")
#: per-replicate arrays with a trailing dose axis (R, D), D = the scenario's doses (at least 1):
#: the same pools kept per dose, only to attribute entrants to their dose, and the entrants of
#: each dose so far
PER_DOSE = ("blood_dose", "csf_dose", "entered_dose")
STATE_ARRAYS = LATTICE + AGENTS + ("t_count",) + SYSTEMIC + COUNTERS


class State:
    """All state arrays of a batch (structure of arrays, leading replicate axis R).

    Lattice arrays (R, Z, Y, X): ``kind`` uint8 (:class:`Kind`), ``antigen_a``/``antigen_b`` uint8
    (level × 100), ``ecm`` float32 (density 0..1), ``o2`` float32 (mmHg), ``glucose`` float32
    (mM), ``chemokine`` float32 (0..1), ``tgfb`` float32 (ng/mL, total TGF-β1), ``ifng``/``il12`` float32 (a.u.), ``pdl1``
    float32 (0..1, tumour cells), ``antigen_a_base``/``antigen_b_base`` uint8 (the level a
    trogocytosed antigen recovers to).  Agent table (R, C), live cells in slots < ``t_count``:
    ``t_state`` uint8 (:class:`TState`), ``t_pos`` int32 (voxel), ``t_exh`` float32 (0..1),
    ``t_div`` uint8 (divisions left), ``t_kills`` int32, ``t_dir`` int8 (last move, -1 none),
    ``t_act`` int16 (steps of activation left), ``t_eng`` uint8 (1: engaged a target this step),
    ``t_prod`` uint8 (product id: the dose's product it entered with, inherited by daughters;
    ``scenario.products``).  Per replicate: ``t_count`` int32, float64 (R, P) ``blood``
    (circulating CAR-T cells of each product) and ``csf`` (CAR-T cells of each product in the
    CSF / cavity), ``blood_dose`` and ``csf_dose`` (R, D) the same pools per dose (bookkeeping for
    the entrants' dose), ``il6`` (plasma IL-6, pg/mL), ``il6_peak``, ``il6_auc``
    (pg/mL × day), ``csf_peak``, the toxicity state (``il1``, ``myeloid``, ``endothelial``,
    ``cns_cytokine``, ``tocilizumab``, ``steroid`` and peaks; docs/model.md, Toxicity), and int64
    counters (grades, onsets as step + 1 with 0 for never, entrants per route, and
    ``entered_product`` (R, P) and ``entered_dose`` (R, D) entrants per product and per dose).
    """

    def __init__(self, arrays: dict[str, np.ndarray], replicates: np.ndarray, step: int):
        for k in STATE_ARRAYS:
            setattr(self, k, arrays[k])
        self.replicates = np.asarray(replicates, dtype=np.int64)
        self.step = int(step)
        self.nvox = int(np.prod(self.kind.shape[1:]))

    def arrays(self) -> dict[str, np.ndarray]:
        return {k: getattr(self, k) for k in STATE_ARRAYS}

    def tcell_map(self) -> np.ndarray:
        """uint8 (R, Z, Y, X): 0 no CAR-T cell, 1 effector, 2 exhausted, 3 memory (TState); a voxel
        holding several cells (car_t.max_per_voxel) shows the last of them in table order."""
        R = self.kind.shape[0]
        m = np.zeros((R, self.nvox), dtype=np.uint8)
        r, s = live_slots(self)
        m[r, self.t_pos[r, s]] = self.t_state[r, s]
        return m.reshape(self.kind.shape)

    def digest(self, replicate: int | None = None) -> dict[str, str]:
        """SHA-256 of every state array (of one batch row if given): for bitwise comparisons."""
        out = {}
        for k in STATE_ARRAYS:
            a = getattr(self, k)
            if replicate is not None:
                a = a[replicate]
            out[k] = hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()
        return out


def live_slots(st, xp=np) -> tuple[np.ndarray, np.ndarray]:
    """(replicate, slot) of every live CAR-T cell, in table order, as arrays of ``xp`` (NumPy or
    CuPy: the state's arrays').  The live cells are a prefix of each replicate's slots, so only
    the slots below the largest count are scanned, not the table's capacity."""
    nmax = int(st.t_count.max()) if st.t_count.size else 0
    return xp.nonzero(xp.arange(nmax)[None, :] < st.t_count[:, None])


#: state arrays a device backend keeps on the device (the per-replicate pools and counters stay on
#: the host, where the systemic, toxicity and bookkeeping arithmetic runs)
DEVICE_ARRAYS = LATTICE + AGENTS + ("t_count",)
