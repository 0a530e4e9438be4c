"""The simulation: state, the step as a fixed sequence of phases, metrics and endpoints.

A step (MODEL.md section 10):
1. systemic: doses, blood pool, extravasation of CAR-T cells from vessels;
   intratumoral injection and regional entry (model/systemic.py);
2. fields: oxygen, glucose (quasi-steady), chemokine, TGF-β, IFN-γ, IL-12 (backward Euler);
3. tissue cells: apoptosis, necrosis, division with antigen loss, clearance, vessel collapse;
4. microenvironment: PD-L1, antigen recovery after trogocytosis, IL-12-recruited innate killing,
   stroma degradation, FAP-targeting CAF killing, CAF ECM deposition (model/microenv.py);
5. CAR-T cells: engagement and killing (suppression, trogocytosis), exhaustion, death and
   proliferation, migration;
6. toxicity: myeloid amplifier, IL-1 / IL-6, CRS and ICANS grades, drugs
   (model/toxicity.py).
Each phase reads the state as it was when the phase began.  A replicate's trajectory depends only
on (scenario, seed, global replicate index).
"""

from __future__ import annotations

import math
import time

import numpy as np

from .hostmem import keep_freed_memory
from .model.car_t import CarTParams, car_t_phase
from .model.environment import FieldsPhase
from .model.lattice import Kind, TState, dilate, to_host
from .model.microenv import MicroenvParams, microenv_phase
from .model import outputs as obs
# the output declarations and the state spec, re-exported: ``gpusim.engine`` is their public path
from .model.output_spec import (  # noqa: F401
    ENDPOINTS, EVENT_INFO, EVENTS, METRICS, PROFILES, SERIES_ENDPOINTS, SERIES_METRICS, SNAPSHOTS,
    Metric)
from .model.state import (  # noqa: F401
    AGENTS, COUNTERS, DEVICE_ARRAYS, LATTICE, PER_DOSE, PER_PRODUCT, STATE_ARRAYS, SYSTEMIC, State, live_slots)
from .model.systemic import systemic_phase
from .model.systemic_params import SystemicParams
from .model.toxicity import crs_signal, fever_c, toxicity_phase
from .model.tissue import initial_tissue_batch
from .model.tumour import TumourParams, tumour_phase
from .scenario import Scenario, products


class NumpyPhases:
    """The phases of the NumPy reference engine (``model/``), on a State of NumPy arrays."""

    name = "numpy"
    xp = np

    def __init__(self, sim: "Simulation"):
        self.sim = sim

    def upload(self, st: State) -> State:
        return st

    def download(self, st: State) -> State:
        return st

    def systemic(self, st, events: dict) -> None:
        s = self.sim
        systemic_phase(st, s.systemic_params, s.seed, st.step, events)

    def fields(self, st) -> None:
        self.sim.fields.solve(st)

    def steady_tgfb(self, st) -> None:
        self.sim.fields.steady_tgfb(st, np, lambda fs, c, a, s: fs.solve(c, a, s))

    def tumour(self, st, events: dict) -> None:
        s = self.sim
        tumour_phase(st, s.tumour_params, s.seed, st.step, events)

    def microenv(self, st, events: dict) -> None:
        s = self.sim
        microenv_phase(st, s.microenv_params, s.seed, st.step, events)

    def car_t(self, st, events: dict) -> None:
        s = self.sim
        car_t_phase(st, s.car_t_params, s.seed, st.step, events)


class Simulation:
    """A batch of replicates of one scenario.  The step (phase order and bookkeeping) is written
    once, here; the phases come from a backend: :class:`NumpyPhases` (the reference engine) by
    default, or a device backend's (``gpusim.backends.cupy_backend.DevicePhases``), whose state
    arrays live on the device.

    Parameters
    ----------
    scenario : Scenario
        A validated scenario.
    replicates : int, optional
        Batch size R, the leading axis of every state array (default ``run.replicates``).
    first_replicate : int, optional
        Global index of the first replicate (default ``run.first_replicate``); replicate
        ``first_replicate + i`` draws the same random numbers in any batch.
    state : State, optional
        A host state to start from (a checkpoint) instead of the initial state.
    phases : callable, optional
        ``phases(sim)`` builds the backend's phases (default :class:`NumpyPhases`).
    """

    def __init__(self, scenario: Scenario, replicates: int | None = None,
                 first_replicate: int | None = None, *, state: State | None = None, phases=None):
        keep_freed_memory()   # the step's temporaries: not faulted in again every step
        self.scenario = sc = scenario
        R = int(replicates if replicates is not None else sc["run.replicates"])
        first = int(first_replicate if first_replicate is not None else sc["run.first_replicate"])
        self.seed = int(sc["run.seed"])
        self.replicates = np.arange(first, first + R, dtype=np.int64)
        self.shape = sc.shape
        self.nvox = int(np.prod(self.shape))
        cap = sc["car_t.capacity_per_replicate"] or self.nvox * sc["car_t.max_per_voxel"]
        self.capacity = int(cap)
        self.tumour_params = TumourParams.from_scenario(sc)
        self.car_t_params = CarTParams.from_scenario(sc)
        self.systemic_params = SystemicParams.from_scenario(sc, self.nvox)
        self.microenv_params = MicroenvParams.from_scenario(sc)
        self.products = products(sc)  #: the target rule of each product id
        self._tumour_zone = None
        self.fields = FieldsPhase(sc, R)
        self.dt_min = float(sc["run.dt_min"])
        self.last_events: dict[str, np.ndarray] = {}
        self.phase_seconds: dict[str, float] = {}  #: wall time spent in each phase so far
        self.phases = (phases or NumpyPhases)(self)
        self.backend = self.phases.name
        self._host_view = None
        if state is None:
            self.work = self.phases.upload(self._initial_state(R))
            self._initial_fields(self.work)
        else:
            self.work = self.phases.upload(state)

    @property
    def state(self) -> State:
        """The state as host NumPy arrays (on a device backend a copy, made once per step)."""
        if self.work is not None and self.phases.xp is np:
            return self.work
        if self._host_view is None:
            self._host_view = self.phases.download(self.work)
        return self._host_view

    @state.setter
    def state(self, st: State) -> None:
        self.work = self.phases.upload(st)
        self._host_view = None

    # -- set-up --------------------------------------------------------------------------------
    def _initial_state(self, R: int) -> State:
        sc = self.scenario
        a = initial_tissue_batch(sc, self.seed, self.replicates)  # (R, Z, Y, X) each
        a["o2"] = np.full((R,) + self.shape, sc["oxygen.vessel_mmHg"], dtype=np.float32)
        a["glucose"] = np.full((R,) + self.shape, sc["glucose.vessel_mM"], dtype=np.float32)
        for k in ("chemokine", "tgfb", "ifng", "il12", "pdl1"):
            a[k] = np.zeros((R,) + self.shape, dtype=np.float32)
        a["antigen_a_base"] = a["antigen_a"].copy()
        a["antigen_b_base"] = a["antigen_b"].copy()
        C = self.capacity
        a.update(t_state=np.zeros((R, C), np.uint8), t_pos=np.zeros((R, C), np.int32),
                 t_exh=np.zeros((R, C), np.float32), t_div=np.zeros((R, C), np.uint8),
                 t_kills=np.zeros((R, C), np.int32), t_dir=np.full((R, C), -1, np.int8),
                 t_act=np.zeros((R, C), np.int16), t_eng=np.zeros((R, C), np.uint8),
                 t_prod=np.zeros((R, C), np.uint8), t_count=np.zeros(R, np.int32))
        P, D = len(self.products), self.systemic_params.n_doses
        shape = lambda k: (R, P) if k in PER_PRODUCT else (R, D) if k in PER_DOSE else R  # noqa: E731
        for k in SYSTEMIC:
            a[k] = np.zeros(shape(k), np.float64)
        for k in COUNTERS:
            a[k] = np.zeros(shape(k), np.int64)
        kind = a["kind"].reshape(R, -1)
        a["tumour_initial"] = (kind == Kind.TUMOUR).sum(axis=1).astype(np.int64)
        a["tumour_min"] = a["tumour_initial"].copy()
        hk = kind == Kind.HEALTHY
        # index (A level × 256 + B level) < 65536: uint16 keeps this temporary at 2 bytes a voxel
        vis = self._visible(a["antigen_a"].reshape(R, -1), a["antigen_b"].reshape(R, -1))
        a["healthy_antigen_initial"] = (hk & vis).sum(axis=1).astype(np.int64)
        a["tumour_invisible_initial"] = ((kind == Kind.TUMOUR) & ~vis).sum(axis=1).astype(np.int64)
        a["cleared_step"] = np.full(R, -1, np.int64)
        a["last_car_t_step"] = np.full(R, -1, np.int64)
        return State(a, self.replicates, 0)

    def _visible(self, antigen_a: np.ndarray, antigen_b: np.ndarray) -> np.ndarray:
        """bool: the cells with these antigen levels (uint8) that some product of the scenario
        can recognise (its recognition threshold above 0)."""
        # index (A level × 256 + B level) < 65536: uint16 keeps this temporary at 2 bytes a voxel
        idx = antigen_a.astype(np.uint16) * np.uint16(256) + antigen_b
        tables = self.car_t_params.rec_tables
        vis = tables[0][idx] > 0
        for t in tables[1:]:
            vis |= t[idx] > 0
        return vis

    def _initial_fields(self, st: State) -> None:
        """Start from the fields' steady state of the initial tissue (on the backend: a large
        domain's first solve runs on the device)."""
        self.phases.fields(st)
        st.chemokine[:] = 0
        st.tgfb[:] = 0
        self.phases.steady_tgfb(st)

    # -- stepping ------------------------------------------------------------------------------
    def step(self, check: bool = False) -> None:
        """Advance every replicate by one step; with ``check`` verify the conservation laws.

        The phase order (MODEL.md section 10) and the bookkeeping are the same on every backend;
        the phases are the backend's.  Events, pools and counters are host arrays."""
        st, ph, xp = self.work, self.phases, self.phases.xp
        before = self._tallies() if check else None
        R = len(self.replicates)
        ev = {k: np.zeros(R, np.int64) for k in EVENTS}
        clock = time.perf_counter
        t0 = clock()
        ph.systemic(st, ev)
        t1 = clock()
        ph.fields(st)
        t2 = clock()
        ph.tumour(st, ev)
        ph.microenv(st, ev)
        t3 = clock()
        ph.car_t(st, ev)
        t4 = clock()
        # toxicity: host float64 on (R,) values; padding slots of t_eng hold 0, so the row sums
        # are the engaged cells
        toxicity_phase(st, self.systemic_params, ev, to_host(st.t_eng.sum(axis=1, dtype=xp.int64)))
        for name, dt in (("systemic", t1 - t0), ("fields", t2 - t1), ("tumour", t3 - t2), ("car_t", t4 - t3)):
            self.phase_seconds[name] = self.phase_seconds.get(name, 0.0) + dt
        for k in ("kills_tumour", "kills_healthy", "car_t_entered", "car_t_births", "car_t_deaths"):
            getattr(st, k)[:] += ev[k]
        st.step += 1
        tum = to_host((st.kind.reshape(R, -1) == int(Kind.TUMOUR)).sum(axis=1, dtype=xp.int64))
        np.minimum(st.tumour_min, tum, out=st.tumour_min)
        st.cleared_step[(tum == 0) & (st.cleared_step < 0)] = st.step
        t_count = to_host(st.t_count)
        np.maximum(st.car_t_peak, t_count, out=st.car_t_peak)
        np.maximum(st.car_t_tumour_peak, to_host(car_t_tumour_count(xp, st.kind, st.t_count, st.t_pos)),
                   out=st.car_t_tumour_peak)
        st.last_car_t_step[t_count > 0] = st.step
        self.last_events = ev
        self._host_view = None
        if check:
            self._check(before, ev)

    def _tallies(self) -> dict[str, np.ndarray]:
        st = self.state
        R = st.kind.shape[0]
        kind = st.kind.reshape(R, -1)
        return {"tumour": (kind == Kind.TUMOUR).sum(axis=1), "t_count": st.t_count.copy(),
                "healthy": (kind == Kind.HEALTHY).sum(axis=1)}

    def _check(self, before: dict, ev: dict) -> None:
        """Conservation laws and table consistency; raises AssertionError naming what broke."""
        st = self.state
        after = self._tallies()
        exp_t = (before["tumour"] + ev["tumour_divisions"] - ev["tumour_apoptosis"]
                 - ev["tumour_necrosis"] - ev["kills_tumour"] - ev["kills_innate"])
        assert np.array_equal(after["tumour"], exp_t), f"tumour cells not conserved: {after['tumour']} != {exp_t}"
        # a healthy cell shoved aside by a tumour daughter is compressed (removed and counted)
        exp_h = before["healthy"] - ev["kills_healthy"] - ev["healthy_displaced"]
        assert np.array_equal(after["healthy"], exp_h), "healthy cells not conserved"
        exp_c = before["t_count"] + ev["car_t_entered"] + ev["car_t_births"] - ev["car_t_deaths"]
        assert np.array_equal(after["t_count"], exp_c), f"CAR-T cells not conserved: {after['t_count']} != {exp_c}"
        r, s = live_slots(st)
        gpos = r.astype(np.int64) * st.nvox + st.t_pos[r, s]
        k = self.car_t_params.max_per_voxel
        assert np.bincount(gpos).max(initial=0) <= k, f"more than car_t.max_per_voxel = {k} CAR-T cells in a voxel"
        assert ((st.t_pos[r, s] >= 0) & (st.t_pos[r, s] < st.nvox)).all(), "CAR-T position out of range"
        assert np.isin(st.t_state[r, s], (TState.EFFECTOR, TState.EXHAUSTED, TState.MEMORY)).all(), \
            "dead cell in table"
        mem = st.t_state[r, s] == TState.MEMORY
        assert (st.t_act[r, s][mem] == 0).all(), "an activated memory cell"
        pad = np.arange(st.t_state.shape[1])[None, :] >= st.t_count[:, None]
        assert (st.t_state[pad] == TState.NONE).all(), "padding slot holds a cell"

    # -- observation ---------------------------------------------------------------------------
    def metrics(self) -> dict[str, np.ndarray]:
        """Time-series metrics of the current state, each (R,)."""
        st = self.state
        R = st.kind.shape[0]
        V = st.nvox
        kind = st.kind.reshape(R, V)
        tum = kind == Kind.TUMOUR
        aa = st.antigen_a.reshape(R, V) > 0
        ab = st.antigen_b.reshape(R, V) > 0
        vis = self._visible(st.antigen_a.reshape(R, V), st.antigen_b.reshape(R, V))
        o2 = st.o2.reshape(R, V)
        ntum = tum.sum(axis=1)
        tmap = st.tcell_map()
        near = dilate(tmap > 0, 2).reshape(R, V)
        r, s = live_slots(st)
        nt = np.maximum(ntum, 1)
        car_tumour = car_t_tumour_count(np, st.kind, st.t_count, st.t_pos)
        exh = np.bincount(r, weights=st.t_exh[r, s].astype(np.float64), minlength=R)
        return {
            "tumour_cells": ntum,
            "tumour_a_pos_b_pos": (tum & aa & ab).sum(axis=1),
            "tumour_a_pos_b_neg": (tum & aa & ~ab).sum(axis=1),
            "tumour_a_neg_b_pos": (tum & ~aa & ab).sum(axis=1),
            "tumour_a_neg_b_neg": (tum & ~aa & ~ab).sum(axis=1),
            "tumour_invisible": (tum & ~vis).sum(axis=1),
            "tumour_hypoxic": (tum & (o2 < self.tumour_params.o2_hypoxic)).sum(axis=1),
            "necrotic_voxels": (kind == Kind.NECROTIC).sum(axis=1),
            "car_t_tissue": st.t_count.astype(np.int64),
            "car_t_tumour": car_tumour,
            "car_t_exhausted": state_counts(st, TState.EXHAUSTED),
            "car_t_memory": state_counts(st, TState.MEMORY),
            "car_t_blood": st.blood.sum(axis=1),
            "infiltration": (tum & near).sum(axis=1) / nt,
            "kills_tumour": st.kills_tumour.copy(),
            "kills_healthy": st.kills_healthy.copy(),
            "mean_exhaustion": exh / np.maximum(st.t_count, 1),
            "mean_o2_tumour": np.where(tum, o2, 0).sum(axis=1, dtype=np.float64) / nt,
            "mean_glucose_tumour": np.where(tum, st.glucose.reshape(R, V), 0).sum(axis=1, dtype=np.float64) / nt,
            "mean_tgfb_tumour": np.where(tum, st.tgfb.reshape(R, V), 0).sum(axis=1, dtype=np.float64) / nt,
            "mean_pdl1_tumour": np.where(tum, st.pdl1.reshape(R, V), 0).sum(axis=1, dtype=np.float64) / nt,
            "mean_ecm_tumour": st.ecm.reshape(R, V)[:, self._zone()].mean(axis=1, dtype=np.float64),
            "car_t_engaged": st.t_eng.sum(axis=1, dtype=np.int64),
            "il6": st.il6.copy(),
            "car_t_csf": st.csf.sum(axis=1),
            **self._toxicity_metrics(st),
            **self.observer.depth_metrics(st, r, s),
            **self.observer.signal_metrics(st),
        }

    def _toxicity_metrics(self, st) -> dict[str, np.ndarray]:
        sp = self.systemic_params
        sig = crs_signal(sp, st.il6, st.il1, st.tocilizumab, st.anakinra)
        return {"il1": st.il1.copy(), "myeloid_activation": st.myeloid.copy(), "crs_signal": sig,
                "fever_c": fever_c(sp, sig),
                "crs_grade": np.searchsorted(sp.crs_thresholds, sig, side="right").astype(np.int64),
                "endothelial_activation": st.endothelial.copy(), "cns_cytokine": st.cns_cytokine.copy(),
                "icans_grade": np.searchsorted(sp.icans_thresholds, st.cns_cytokine, side="right").astype(np.int64),
                "tocilizumab_exposure": st.tocilizumab.copy(), "steroid_exposure": st.steroid.copy(),
                "anakinra_exposure": st.anakinra.copy()}

    @property
    def observer(self) -> obs.Observer:
        """The observation helper (radial shells, depth; gpusim.model.outputs), built on first use."""
        if getattr(self, "_observer", None) is None:
            self._observer = obs.Observer(self.scenario, self.shape)
        return self._observer

    def profiles(self) -> dict[str, np.ndarray]:
        """The PROFILES of the current state, each int64 (R, nbins): CAR-T cells and tumour cells
        per radial shell from the tumour centre, CAR-T cells per exhaustion bin."""
        r, s = live_slots(self.state)
        return self.observer.profiles(self.state, r, s)

    def profile_bins(self) -> dict[str, tuple]:
        """``name -> (edges, edge_units, edge_description, units, description)`` of PROFILES."""
        return obs.profile_specs(self.observer)

    def _zone(self) -> np.ndarray:
        """Flat indices of the voxels within the initial tumour radius plus capsule."""
        if self._tumour_zone is None:
            from .model.tissue import tumour_geometry
            d, _ = tumour_geometry(self.scenario)
            lim = self.scenario["tumour.radius_um"] + self.scenario["stroma.capsule_thickness_um"]
            z = np.flatnonzero(np.broadcast_to(d <= lim, self.shape).ravel())
            self._tumour_zone = z if z.size else np.arange(self.nvox)
        return self._tumour_zone

    def snapshot(self, n: int) -> dict[str, np.ndarray]:
        st = self.state
        aa = st.antigen_a[:n] > 0
        ab = st.antigen_b[:n] > 0
        cls = np.where(aa & ab, 1, np.where(aa, 2, np.where(ab, 3, 4))).astype(np.uint8)
        cls[st.kind[:n] != Kind.TUMOUR] = 0
        return {"kind": st.kind[:n].copy(), "antigen_class": cls,
                "car_t": st.tcell_map()[:n], "o2": st.o2[:n].copy(), "ecm": st.ecm[:n].copy()}

    def endpoints(self, series: tuple | None = None) -> dict[str, np.ndarray]:
        """The ENDPOINTS of the run so far, each (R,).

        ``series``: ``(time_days (T,), {metric: (R, T)})``, the output time series of the whole
        run (the runner passes it); the SERIES_ENDPOINTS are computed from it, and without it they
        hold the fill value (NaN; -1 for the flags)."""
        st = self.state
        R = st.kind.shape[0]
        m = self.metrics()
        init = np.maximum(st.tumour_initial, 1).astype(np.float64)
        days = self.dt_min / 1440.0
        cleared = m["tumour_cells"] == 0
        ttc = np.where(st.cleared_step >= 0, st.cleared_step * days, np.nan)
        invisible = m["tumour_invisible"] / np.maximum(m["tumour_cells"], 1)
        if series is not None:
            sc = self.scenario
            ser = obs.series_endpoints(series[0], series[1], sc["outputs.progression_multiple"],
                                       sc["outputs.persistence_fraction"])
        else:
            ser = {k: (np.full(R, -1, np.int8) if ENDPOINTS[k][0] == "int8" else np.full(R, np.nan))
                   for k in SERIES_ENDPOINTS}
        kind = st.kind.reshape(R, -1)
        ep = {
            "cleared": cleared.astype(np.int8),
            "time_to_clearance_days": ttc,
            "best_response": st.tumour_min / init,
            "final_tumour_ratio": m["tumour_cells"] / init,
            "antigen_escape": (~cleared & (invisible > 0.5)
                               & (invisible - self._invisible_initial() >= 0.5 * (1.0 - self._invisible_initial()))
                               ).astype(np.int8),
            "car_t_peak": st.car_t_peak.copy(),
            "healthy_damage": np.where(st.healthy_antigen_initial > 0,
                                       st.kills_healthy / np.maximum(st.healthy_antigen_initial, 1), 0.0),
            "kills_tumour": st.kills_tumour.copy(),
            "kills_healthy": st.kills_healthy.copy(),
            "car_t_tumour_peak": st.car_t_tumour_peak.copy(),
            "peak_il6": st.il6_peak.copy(),
            **self._toxicity_endpoints(st, days),
            "final_tumour_cells": m["tumour_cells"].astype(np.int64),
            **{f"final_{k}": m[k].astype(np.int64) for k in ("tumour_a_pos_b_pos", "tumour_a_pos_b_neg",
                                                             "tumour_a_neg_b_pos", "tumour_a_neg_b_neg")},
            "final_healthy_cells": (kind == Kind.HEALTHY).sum(axis=1).astype(np.int64),
            "final_necrotic_voxels": m["necrotic_voxels"].astype(np.int64),
            **{f"final_car_t_{n}": state_counts(st, s) for n, s in (
                ("effector", TState.EFFECTOR), ("exhausted", TState.EXHAUSTED), ("memory", TState.MEMORY))},
            "final_infiltration_depth_mean_um": m["infiltration_depth_mean_um"],
            "final_infiltration_depth_p50_um": m["infiltration_depth_p50_um"],
            **ser,
        }
        return {k: ep[k] for k in ENDPOINTS}

    def _toxicity_endpoints(self, st, days: float) -> dict[str, np.ndarray]:
        sp = self.systemic_params
        at = lambda s: np.where(s > 0, s * days, np.nan)  # noqa: E731
        return {
            "crs_grade": st.crs_grade_max.astype(np.int8),
            "crs_onset_days": at(st.crs_onset_step),
            "icans_grade": st.icans_grade_max.astype(np.int8),
            "icans_onset_days": at(st.icans_onset_step),
            "icans_index": st.cns_peak / max(float(sp.icans_thresholds[0]), 1e-12),
            "peak_myeloid": st.myeloid_peak.copy(),
            "peak_crs_signal": st.crs_signal_peak.copy(),
            "peak_cns_cytokine": st.cns_peak.copy(),
            "peak_csf_car_t": st.csf_peak.copy(),
            "tocilizumab_day": at(st.tocilizumab_step),
            "steroid_day": at(st.steroid_step),
            "anakinra_day": at(st.anakinra_step),
            "entered_iv": st.entered_iv.copy(),
            "entered_intratumoral": st.entered_intratumoral.copy(),
            "entered_regional": st.entered_regional.copy(),
        }

    def _invisible_initial(self) -> np.ndarray:
        """Fraction of the initial tumour cells invisible to the CAR, per replicate (float64 (R,))."""
        st = self.state
        return st.tumour_invisible_initial / np.maximum(st.tumour_initial, 1)

    @property
    def time_days(self) -> float:
        return self.state.step * self.dt_min / 1440.0


def state_counts(st, state) -> np.ndarray:
    """Live CAR-T cells in ``state`` per replicate (int64 (R,))."""
    r, s = live_slots(st)
    return np.bincount(r[st.t_state[r, s] == state], minlength=st.kind.shape[0]).astype(np.int64)


def car_t_tumour_count(xp, kind, t_count, t_pos):
    """CAR-T cells in or next to a tumour cell's voxel, per replicate (int64 (R,)), as array
    operations of ``xp`` (NumPy or CuPy): a live cell counts when its voxel or one of its Moore
    neighbours inside the domain holds a tumour cell, i.e. the tumour mask dilated by one voxel
    (Chebyshev radius 1, z left out in 2D) read at the live cells' positions."""
    R = t_pos.shape[0]
    C = int(t_count.max()) if R else 0  # live cells are a prefix of the slots: scan only those
    t_pos = t_pos[:, :C]
    near = dilate(kind == int(Kind.TUMOUR), 1).reshape(R, -1)
    live = xp.arange(C)[None, :] < t_count[:, None]
    pos = xp.where(live, t_pos, 0)
    return (near[xp.arange(R)[:, None], pos] & live).sum(axis=1).astype(xp.int64)


def steps_for(days: float, dt_min: float) -> int:
    return int(math.floor(days * 1440.0 / dt_min + 1e-9))
