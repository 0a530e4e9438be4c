"""CuPy backend: the state lives on the GPU; phases run as the CUDA kernels of ``kernels/``.

:class:`CupySimulation` has the interface of :class:`gpusim.engine.Simulation` (``step``,
``metrics``, ``snapshot``, ``endpoints``, ``state``, ``time_days``, ``last_events``).  Every state
array of a batch is a device array with the leading replicate axis; every replicate of the batch
is served by one launch per kernel.  Output (metrics, snapshots, endpoints, checkpoints) copies the
state to the host and uses the NumPy engine's own code, so reported numbers cannot drift.

Phases of the device step (``_device_step``, engine order):

* fields — coefficients of all six fields by ``kernels/field_coeffs.cu``, solves by the red-black
  SOR kernels of ``kernels/fields.cu``;
* tumour — ``kernels/tumour.cu`` (decide + claims by ``atomicMin`` + births);
* microenvironment — ``kernels/microenv.cu``;
* CAR-T — ``kernels/car_t.cu`` (engagement, exhaustion, fate, per-replicate compaction) and
  ``kernels/car_t_move.cu`` (migration);
* systemic — the blood and CSF pools per-replicate float64 on the host (:func:`systemic_host_pre`,
  :func:`regional_csf`, :func:`systemic_host_post`); the intratumoral placement (dose steps) and
  the regional face entry (dose and infusion steps) by ``kernels/entry.cu``, the vessel entry by
  ``kernels/systemic.cu``, entrants appended by ``extravasation_append_kernel`` after a host
  capacity check on the per-replicate counts (:func:`check_capacity`, CapacityError as the NumPy
  phase); only (R,) arrays are read back;
* toxicity — per-replicate float64 on the host, reading back (R,) arrays only (the engaged
  count is a row sum of ``t_eng`` on the device: padding slots hold 0);
* step bookkeeping — counters, tumour minimum, clearance, peaks on the device; the
  ``car_t_tumour`` peak by :func:`car_t_tumour_count` (the engine's definition as CuPy array
  operations).  No step copies the whole state to the host.

Every kernel's arithmetic is host-harness verified bitwise against its NumPy phase
(tests/test_kernels.py, tests/test_kernels_entry.py: the entries together with the systemic host
parts); the launch code is checked against the kernels' C signatures with a
NumPy stand-in for CuPy (tests/test_gpu.py).  The device step as a whole has NOT yet run on a GPU,
so ``TWIN_FINGERPRINT`` is left stale (the backend steps on the host, bitwise the NumPy engine)
and ``AVAILABLE`` is False: the backend is not offered to users (``auto`` takes NumPy,
``--backend cupy`` is refused).  To enable it on a GPU machine: set ``TWIN_FINGERPRINT`` to
:func:`twin_fingerprint`, run tests/test_gpu.py (``test_cupy_backend_bitwise_every_step`` on
every bundled scenario), and only when it passes keep the value and set ``AVAILABLE``; then
``gpusim validate --backend cupy`` runs the validation suite through the same phase methods
(``gpusim.validate.DevicePhases``) and ``benchmarks/bench_gpu.py`` records the GPU figures.

Twin guard: the device step mirrors one exact version of the NumPy engine.  ``TWIN_FINGERPRINT``
is a hash of the Python sources it mirrors (:func:`twin_fingerprint`); when the engine's sources
differ (the model changed after the kernels were written) :class:`CupySimulation` runs each step
with the NumPy engine on a host copy instead and says so once (``self.mode == "host"``), so a
stale kernel can never produce a silently different trajectory.

Kernels are compiled by :class:`cupy.RawModule` with ``--std=c++17 --fmad=false`` and cached per
device; every scalar launch argument is cast explicitly (``np.int32``/``np.float32``/``np.int64``),
because CuPy passes a Python ``int`` as ``long long``.
"""

from __future__ import annotations

import hashlib
import inspect
import math
import warnings

import numpy as np

from ..errors import BackendError
from .sources import NVCC_OPTIONS, kernel_dir, kernel_source

#: True only when every phase of the current engine runs on the device (see the module docstring)
AVAILABLE = False
#: phases _device_step launches kernels for (its launch code has not run on a GPU yet)
DEVICE_PHASES = ("systemic (vessel entry)", "systemic (intratumoral / regional entry)", "fields",
                 "tumour", "microenv", "car_t")
HOST_PHASES = ("toxicity",)

#: sha256 of the NumPy sources the device step mirrors (engine at commit 2db17b5); see
#: twin_fingerprint().  Update together with the kernels, never alone — and only after
#: tests/test_gpu.py::test_cupy_backend_bitwise_every_step passed on a GPU with the new value
#: (the device step wired for the current engine has not run on a GPU yet, so this stays stale
#: and CupySimulation steps on the host).
TWIN_FINGERPRINT = "934977e87e4abf1a5468b2e1a7e9f890fb63cd2231d40688a6b35ef88b855f62"

THREADS = 256
SWEEPS_PER_POLL = 8  # field sweeps between two host reads of the convergence flags

_MODULES: dict[tuple[int, str], object] = {}


def twin_fingerprint() -> str:
    """Hash of the Python sources the device step mirrors (step order, field solver and
    coefficients, tumour, microenvironment, CAR-T and systemic phases, state layout)."""
    from .. import engine
    from ..model import car_t, environment, fields, microenv, systemic, tumour

    parts = [inspect.getsource(engine.Simulation.step), inspect.getsource(environment.FieldsPhase),
             inspect.getsource(tumour), repr(engine.STATE_ARRAYS), inspect.getsource(microenv),
             inspect.getsource(car_t), inspect.getsource(systemic), inspect.getsource(fields)]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def _cupy():
    try:
        import cupy
    except Exception as e:  # pragma: no cover - depends on the machine
        raise BackendError(f"backend 'cupy' needs CuPy ({type(e).__name__}: {e}); "
                           "install gpusim[gpu] or use --backend numpy") from e
    return cupy


def module(name: str):
    """The compiled ``kernels/<name>`` as a cupy.RawModule, cached per (device, file)."""
    cp = _cupy()
    key = (cp.cuda.Device().id, name)
    if key not in _MODULES:
        _MODULES[key] = cp.RawModule(code=kernel_source(name),
                                     options=NVCC_OPTIONS + (f"-I{kernel_dir()}",))
    return _MODULES[key]


def _grid(n: int) -> tuple[int]:
    return (max(1, (int(n) + THREADS - 1) // THREADS),)


#: kernels/tumour_logic.cuh struct TumourK (13 float32 then int32), passed by device pointer
TUMOUR_K_DTYPE = np.dtype([(f, np.float32) for f in (
    "p_apoptosis", "p_division_max", "p_necrosis_max", "p_clear_apoptotic", "p_clear_necrotic",
    "p_antigen_loss", "o2_full", "o2_zero", "o2_hypoxic", "o2_nec_onset", "o2_nec_max",
    "glucose_half", "block_density")] + [("collapse_neighbours", np.int32)])
TUMOUR_COUNTS = ("tumour_apoptosis", "tumour_necrosis", "tumour_divisions", "antigen_a_loss",
                 "antigen_b_loss", "cleared", "vessel_collapse")

# --- parameter structs of the newer kernels, byte for byte (the host harnesses of
# tests/test_kernels.py read these very bytes into the C structs, checking size and layout) -------
_F4, _I4 = np.float32, np.int32

#: kernels/car_t_logic.cuh struct CarTK
CART_K_DTYPE = np.dtype(
    [(f, _F4) for f in ("p_kill", "exh_per_kill", "inv_tgfb_half", "tgfb_half", "inv_il12_half",
                        "il12_half", "kill_boost", "hypoxia_factor", "glucose_half", "exh_tgfb",
                        "exh_recovery", "exh_hypoxia", "o2_hypoxic", "daughter_exh",
                        "starvation_glucose", "p_mem", "p_react")]
    + [("p_death", _F4, (6,)), ("inhib", _F4), ("exh_pd", _F4), ("p_div_step", _F4)]
    + [(f, _I4) for f in ("dnTGFbRII", "tgfb_exh_on", "trog256", "activation_steps")])
CART_COUNTS = ("kills_tumour", "kills_healthy", "engagements", "trogocytosis", "car_t_deaths",
               "car_t_births", "memory_conversions", "memory_reactivations")  # order of CarTCount
#: the agent table in the pointer order of car_t.cu's GPUSIM_TABLE_ARGS (struct AgentTable)
TABLE_FIELDS = ("t_state", "t_pos", "t_exh", "t_div", "t_kills", "t_dir", "t_act", "t_eng")
#: kernels/car_t_move_logic.cuh struct MoveK
MOVE_K_DTYPE = np.dtype([(f, _F4) for f in ("p_move", "p_persist", "p_chemotaxis", "one_minus_perm",
                                            "crowding")])
#: kernels/microenv_logic.cuh struct MicroK
MICRO_K_DTYPE = np.dtype([(f, _F4) for f in ("r_ifng", "r_hyp", "r_dec", "ifng_half", "o2_hypoxic",
                                             "p_recover", "d_car", "d_drug")] + [("drug_on", _I4)])
#: kernels/field_coeffs_logic.cuh struct FieldCoefK
FIELD_COEF_K_DTYPE = np.dtype(
    [(f, _F4, (7,)) for f in ("o2_sink", "glucose_sink", "tgfb_src", "o2_src")]
    + [(f, _F4) for f in ("o2_t", "glucose_t", "chem_sec", "chem_base", "chem_boost", "ifng_half",
                          "tgfb_base", "tgfb_hyp_src", "o2_hypoxic", "trap_uptake", "ifng_base",
                          "ifng_sec", "il12_base", "il12_sec", "inv_dt")] + [("trap", _I4)])


def car_t_k(cp, step: int) -> np.ndarray:
    """CarTK of ``step`` from :class:`~gpusim.model.car_t.CarTParams` (the step-dependent members
    from ``pdl1_terms`` and ``p_division_at``, host float64 rounded once to float32)."""
    k = np.zeros((), CART_K_DTYPE)
    for f in CART_K_DTYPE.names[:17]:
        k[f] = getattr(cp, f)
    k["p_death"] = np.asarray(cp.p_death, np.float32).ravel()  # (3 rows, 2 starving) row-major
    k["inhib"], k["exh_pd"] = cp.pdl1_terms(step)
    k["p_div_step"] = cp.p_division_at(step)
    k["dnTGFbRII"] = bool(cp.dnTGFbRII)
    k["tgfb_exh_on"] = bool(cp.exh_tgfb > 0 and not cp.dnTGFbRII)
    k["trog256"] = cp.trog256
    k["activation_steps"] = cp.activation_steps
    return k


def move_k(cp) -> np.ndarray:
    k = np.zeros((), MOVE_K_DTYPE)
    for f in MOVE_K_DTYPE.names:
        k[f] = getattr(cp, f)
    return k


def microenv_k(mp, step: int) -> np.ndarray:
    """MicroK of ``step`` from :class:`~gpusim.model.microenv.MicroenvParams`."""
    k = np.zeros((), MICRO_K_DTYPE)
    for f in MICRO_K_DTYPE.names[:-1]:
        k[f] = getattr(mp, f)
    k["drug_on"] = bool(mp.d_drug > 0 and step >= mp.drug_start_step)
    return k


def field_coef_k(fp) -> np.ndarray:
    """FieldCoefK from :class:`~gpusim.model.environment.FieldsPhase` (its float32 attributes)."""
    k = np.zeros((), FIELD_COEF_K_DTYPE)
    for f in FIELD_COEF_K_DTYPE.names[:-1]:
        k[f] = getattr(fp, f)
    k["trap"] = bool(fp.trap)
    return k


class CupySimulation:
    """A batch of replicates of one scenario with its state on the current CUDA device.

    Args: as :class:`gpusim.engine.Simulation`.  The initial state is built on the host by the
    NumPy engine (initial tissue and the fields' steady state) and copied to the device once.
    """

    def __init__(self, scenario, replicates: int | None = None, first_replicate: int | None = None,
                 *, state=None):
        from ..engine import STATE_ARRAYS, Simulation

        self.cp = cp = _cupy()
        self._host = Simulation(scenario, replicates, first_replicate, state=state)
        h = self._host
        self.scenario, self.seed, self.replicates = h.scenario, h.seed, h.replicates
        self.shape, self.nvox, self.capacity, self.dt_min = h.shape, h.nvox, h.capacity, h.dt_min
        self._names = STATE_ARRAYS
        self.mode = "device" if twin_fingerprint() == TWIN_FINGERPRINT else "host"
        if self.mode == "host":
            warnings.warn("gpusim CuPy backend: the CUDA kernels mirror an older version of the "
                          "NumPy engine; this run steps on the host (bitwise the NumPy engine)",
                          RuntimeWarning, stacklevel=2)
        self._upload(h.state)
        R = len(self.replicates)
        self._reps = cp.asarray(self.replicates.astype(np.uint32))
        self._claims = cp.full(R * self.nvox, np.uint64(0xFFFFFFFFFFFFFFFF), dtype=cp.uint64)
        self._events: dict = {}
        self._host_view = None
        if self.mode == "device":
            tp = h.tumour_params
            rec = np.zeros((), TUMOUR_K_DTYPE)
            for f in TUMOUR_K_DTYPE.names:
                rec[f] = getattr(tp, f)
            self._tumour_k = cp.asarray(np.frombuffer(rec.tobytes(), np.uint8))
            self._rec = cp.asarray(h.car_t_params.rec_threshold.astype(np.uint64))

    # -- transfers -----------------------------------------------------------------------------
    def _upload(self, st) -> None:
        self.d = {k: self.cp.asarray(getattr(st, k)) for k in self._names}
        self.step_index = int(st.step)
        self._host_view = None

    def _download(self):
        from ..engine import State

        if self._host_view is None:
            self._host_view = State({k: self.cp.asnumpy(v) for k, v in self.d.items()},
                                    self.replicates, self.step_index)
        return self._host_view

    @property
    def state(self):
        """The state as host NumPy arrays (a copy; changing it does not change the run)."""
        return self._download()

    # -- stepping ------------------------------------------------------------------------------
    def step(self, check: bool = False) -> None:
        if self.mode == "host" or check:
            h = self._host
            h.state = self._download()
            h.step(check=check)
            self._upload(h.state)
            self._events = h.last_events
            return
        self._device_step()

    def _device_step(self) -> None:
        """One step in the engine's order (engine.Simulation.step).  NOT YET RUN ON A GPU: only
        reachable when TWIN_FINGERPRINT matches, which it does not; every kernel it launches is
        host-harness verified, the launch code itself is not."""
        from ..model.lattice import Kind
        from ..model.systemic import toxicity_phase

        cp, h = self.cp, self._host
        R = len(self.replicates)
        events = self._systemic()
        self._fields()
        for k, v in self._tumour().items():
            events[k] = v
        events.update(self._microenv())
        for k, v in self._car_t().items():
            events[k] = events.get(k, 0) + np.asarray(v, np.int64)
        d = self.d
        # toxicity: per-replicate float64 on the host (engine order), reading (R,) values only
        from types import SimpleNamespace

        from ..engine import SYSTEMIC

        # toxicity_phase sums t_eng over each replicate's live slots; padding slots hold 0, so
        # the row sums on the device are that sum, and only (R,) values are read back
        engaged = d["t_eng"].sum(axis=1, dtype=cp.int64).get()
        tox = SimpleNamespace(kind=np.zeros(R), t_count=d["t_count"].get(), t_eng=engaged[:, None],
                              **{k: d[k].get() for k in SYSTEMIC})
        toxicity_phase(tox, h.systemic_params, events)
        for k in SYSTEMIC:
            d[k] = cp.asarray(getattr(tox, k))
        evd = {k: cp.asarray(np.broadcast_to(np.asarray(v, np.int64), (R,))) for k, v in events.items()}
        for k in ("kills_tumour", "kills_healthy", "car_t_entered", "car_t_births", "car_t_deaths"):
            if k in evd:
                d[k] += evd[k]
        self.step_index += 1
        tum = (d["kind"].reshape(R, -1) == int(Kind.TUMOUR)).sum(axis=1)
        cp.minimum(d["tumour_min"], tum, out=d["tumour_min"])
        d["cleared_step"] = cp.where((tum == 0) & (d["cleared_step"] < 0), self.step_index,
                                     d["cleared_step"])
        cp.maximum(d["car_t_peak"], d["t_count"], out=d["car_t_peak"])
        # the engine's car_t_tumour count (Simulation._car_t_tumour) on the device: nothing read back
        d["car_t_tumour_peak"] = cp.maximum(d["car_t_tumour_peak"],
                                            car_t_tumour_count(cp, d["kind"], d["t_count"], d["t_pos"]))
        d["last_car_t_step"] = cp.where(d["t_count"] > 0, self.step_index, d["last_car_t_step"])
        self._events = evd
        self._host_view = None

    def _systemic(self) -> dict:
        """systemic.systemic_phase on the device.  The pools are per-replicate float64 on the host
        (systemic_host_pre, regional_csf, systemic_host_post: the NumPy phase's own expressions,
        reading back only (R,) arrays); the intratumoral placement (dose steps) and the regional
        face entry (dose and infusion steps) by kernels/entry.cu, the vessel entry by
        kernels/systemic.cu; entrants appended in the NumPy order (intratumoral or regional
        first, then vessels, each in voxel order)."""
        cp, d = self.cp, self.d
        sp = self._host.systemic_params
        step = self.step_index
        R = len(self.replicates)
        n = d["kind"].size
        V = self.nvox
        seed, stp = np.uint32(self.seed), np.uint32(step)
        blood = d["blood"].get()
        csf = d["csf"].get()
        n_inject, lam_face = systemic_host_pre(sp, step, blood, csf)
        entered_first = np.zeros(R, dtype=np.int64)
        if n_inject > 0 or lam_face > 0:
            emod = module("entry.cu")
            occ = self._occ()
            enter = cp.zeros(n, cp.uint8)
            counts = cp.zeros(R, cp.uint64)
            if n_inject > 0:
                order, shell = self._inject_shells()
                emod.get_function("inject_select_kernel")(
                    _grid(R), (THREADS,), (np.int32(R), np.int64(V), seed, stp, self._reps,
                                           np.int64(n_inject), np.int32(shell.size - 1), order, shell,
                                           occ, cp.empty(n, cp.uint32), enter, counts))
            else:
                face = self._face()
                F = int(face.size)
                nfree = cp.zeros(R, cp.uint64)
                emod.get_function("regional_free_kernel")(
                    _grid(R * F), (THREADS,), (np.int32(R), np.int32(F), np.int64(V), face, occ, nfree))
                emod.get_function("regional_decide_kernel")(
                    _grid(R * F), (THREADS,), (np.int32(R), np.int32(F), np.int64(V), seed, stp,
                                               self._reps, np.float64(lam_face), face, occ, nfree,
                                               enter, counts))
            entered_first = counts.get().astype(np.int64)
            self._append_entrants(enter, entered_first)
            if lam_face > 0:
                regional_csf(sp, csf, entered_first)
        # intravenous extravasation from the blood pool (every route)
        lam = blood * sp.homing_per_step * sp.domain_share  # float64 (R,)
        occ = self._occ()
        mod = module("systemic.cu")
        w = cp.empty(n, cp.int64)
        wsum = cp.zeros(R, cp.uint64)
        mod.get_function("extravasation_weights_kernel")(
            _grid(n), (THREADS,), (np.int64(n), np.int64(V), np.float32(sp.weight256), d["kind"],
                                   d["chemokine"], occ, w, wsum))
        ws = wsum.get().astype(np.int64)
        scale = np.zeros(R, dtype=np.float32)
        nz = ws > 0
        scale[nz] = (lam[nz] / ws[nz]).astype(np.float32)
        enter = cp.empty(n, cp.uint8)
        counts = cp.zeros(R, cp.uint64)
        mod.get_function("extravasation_decide_kernel")(
            _grid(n), (THREADS,), self._geo(False) + (seed, stp, self._reps, cp.asarray(scale), w,
                                                      enter, counts))
        entered = counts.get().astype(np.int64)
        self._append_entrants(enter, entered)
        systemic_host_post(sp, blood, csf, entered)
        d["blood"], d["csf"] = cp.asarray(blood), cp.asarray(csf)
        self._host_view = None
        return {"car_t_entered": entered + entered_first}

    def _occ(self):
        """int32 (R * V): slot of the CAR-T cell in each voxel or -1 (car_t_move_occ)."""
        cp, d = self.cp, self.d
        R, C = d["t_state"].shape
        occ = cp.full(d["kind"].size, -1, cp.int32)
        module("car_t_move.cu").get_function("car_t_move_occ")(
            _grid(R * C), (THREADS,), self._geo() + (d["t_count"], d["t_pos"], occ))
        return occ

    def _append_entrants(self, enter, entered: np.ndarray) -> None:
        """Appends the cells marked in ``enter`` (uint8 (R * V)) after the live cells, in voxel
        order (extravasation_append_kernel); ``entered`` (host (R,)) their counts, checked against
        the capacity first: CapacityError as the NumPy phase, nothing appended."""
        cp, d = self.cp, self.d
        R, C = d["t_state"].shape
        if not entered.any():
            return
        check_capacity(self.replicates, d["t_count"].get(), entered, C)
        overflow = cp.zeros(R, cp.int32)
        module("systemic.cu").get_function("extravasation_append_kernel")(
            _grid(R), (THREADS,), (np.int32(R), np.int64(self.nvox), np.int32(C),
                                   np.int32(self._host.systemic_params.max_divisions), d["t_count"],
                                   *[d[f] for f in TABLE_FIELDS], enter, overflow))
        self._host_view = None

    def _inject_shells(self):
        """Device (order, shell) of inject_shells for the scenario's injection sites (cached)."""
        if getattr(self, "_shells", None) is None:
            order, shell = inject_shells(self._host.systemic_params.site_d2)
            self._shells = (self.cp.asarray(order), self.cp.asarray(shell))
        return self._shells

    def _face(self):
        """Device int32 voxel indices of the regional face (cached)."""
        if getattr(self, "_face_dev", None) is None:
            self._face_dev = self.cp.asarray(self._host.systemic_params.face_voxels.astype(np.int32))
        return self._face_dev

    def _geo(self, with_c: bool = True) -> tuple:
        R = len(self.replicates)
        Z, Y, X = self.shape
        g = (np.int32(R), np.int32(Z), np.int32(Y), np.int32(X))
        return g + ((np.int32(self.d["t_state"].shape[1]),) if with_c else ())

    def _k(self, rec: np.ndarray):
        """A parameter record as the device bytes a kernel reads through a struct pointer."""
        return self.cp.asarray(np.frombuffer(rec.tobytes(), np.uint8))

    def _fields(self) -> None:
        """environment.FieldsPhase.solve on the device: coefficients by kernels/field_coeffs.cu
        (agent map once, then a and s right before each solve, in the phase order)."""
        cp, d, f = self.cp, self.d, self._host.fields
        R = len(self.replicates)
        C = d["t_state"].shape[1]
        kind = d["kind"]
        n = kind.size
        mod = module("field_coeffs.cu")
        amap = cp.zeros(n, cp.uint8)
        mod.get_function("field_agent_map_kernel")(
            _grid(R * C), (THREADS,), self._geo() + (d["t_count"], d["t_pos"], d["t_eng"], d["t_act"],
                                                      d["t_state"], amap))
        coef = mod.get_function("field_coeffs_kernel")
        k = self._k(field_coef_k(f))
        a = cp.empty(kind.shape, cp.float32)
        s = cp.empty(kind.shape, cp.float32)
        vessel = (kind == 6).astype(cp.uint8)
        nofix = cp.zeros(kind.shape, cp.uint8)

        def coeffs(fid: int, c_old) -> None:
            coef(_grid(n), (THREADS,), (np.int64(n), np.int32(fid), k, kind, amap, c_old, d["ifng"],
                                        d["o2"], a, s))

        coeffs(0, d["o2"])
        self._solve(f.o2, d["o2"], a, s, vessel, f.o2_vessel)
        coeffs(1, d["glucose"])
        self._solve(f.glucose, d["glucose"], a, s, vessel, f.glucose_vessel)
        coeffs(2, d["chemokine"])  # reads the previous step's IFN-γ: before the IFN-γ solve
        self._solve(f.chemokine, d["chemokine"], a, s, nofix, np.float32(0))
        coeffs(3, d["tgfb"])  # reads the oxygen just solved
        self._solve(f.tgfb, d["tgfb"], a, s, nofix, np.float32(0))
        for fid, name, solver, sec, bit in ((4, "ifng", f.ifng, f.ifng_sec, 2), (5, "il12", f.il12, f.il12_sec, 4)):
            # skipped exactly when the NumPy phase skips it (the result would be exactly zero)
            if (sec == 0 or not bool(((amap & bit) != 0).any())) and not bool(d[name].any()):
                continue
            coeffs(fid, d[name])
            self._solve(solver, d[name], a, s, nofix, np.float32(0))

    def _microenv(self) -> dict:
        """microenv.microenv_phase on the device (kernels/microenv.cu)."""
        cp, d = self.cp, self.d
        mp = self._host.microenv_params
        R = len(self.replicates)
        C = d["t_state"].shape[1]
        n = d["kind"].size
        mod = module("microenv.cu")
        k = self._k(microenv_k(mp, self.step_index))
        counts = cp.zeros(R, cp.uint64)
        tum = d["kind"] == 1
        # the NumPy phase reports antigen_recovered only when some tumour cell is below baseline
        report = mp.p_recover > 0 and bool((tum & ((d["antigen_a"] < d["antigen_a_base"])
                                                   | (d["antigen_b"] < d["antigen_b_base"]))).any())
        mod.get_function("microenv_agents_kernel")(
            _grid(R * C), (THREADS,), self._geo() + (k, d["t_count"], d["t_state"], d["t_pos"], d["ecm"]))
        mod.get_function("microenv_voxel_kernel")(
            _grid(n), (THREADS,), self._geo(False) + (k, np.uint32(self.seed), np.uint32(self.step_index),
                                                      self._reps, d["kind"], d["pdl1"], d["ifng"], d["o2"],
                                                      d["antigen_a"], d["antigen_b"], d["antigen_a_base"],
                                                      d["antigen_b_base"], d["ecm"], counts))
        self._host_view = None
        return {"antigen_recovered": counts.astype(cp.int64).get()} if report else {}

    def _car_t(self) -> dict:
        """car_t.car_t_phase on the device (kernels/car_t.cu, then kernels/car_t_move.cu), in the
        launch order of tests/harness/car_t_harness.cpp."""
        from ..errors import CapacityError

        cp, d = self.cp, self.d
        ctp = self._host.car_t_params
        R, C = d["t_state"].shape
        if int(d["t_count"].max()) == 0:
            return {}
        n = d["kind"].size
        RC = R * C
        geo = self._geo()
        k = self._k(car_t_k(ctp, self.step_index))
        mk = self._k(move_k(ctp))
        seed, step = np.uint32(self.seed), np.uint32(self.step_index)
        mod, mv = module("car_t.cu"), module("car_t_move.cu")
        fn = lambda name: mod.get_function(name)  # noqa: E731
        table = [d[f] for f in TABLE_FIELDS]
        tgt = cp.full(RC, -1, cp.int32)
        stim, killed, died, born = (cp.zeros(RC, cp.uint8) for _ in range(4))
        pd_seen = cp.zeros(RC, cp.float32)
        occ = cp.full(n, -1, cp.int32)
        counts = cp.zeros((R, len(CART_COUNTS)), cp.uint64)
        g = _grid(RC)
        mv.get_function("car_t_move_occ")(g, (THREADS,), geo + (d["t_count"], d["t_pos"], occ))
        fn("car_t_engage_claim")(g, (THREADS,), geo + (k, seed, step, self._reps, d["t_count"], *table,
                                                       d["kind"], d["antigen_a"], d["antigen_b"], d["pdl1"],
                                                       self._rec, self._claims, tgt, stim, killed, pd_seen,
                                                       counts))
        # the NumPy phase reports engagements (and memory reactivations) only when some effector
        # or memory cell had a candidate target, i.e. set tgt
        engaged_any = bool((tgt >= 0).any())
        fn("car_t_engage_resolve")(g, (THREADS,), geo + (k, seed, step, self._reps, d["t_count"], *table,
                                                         d["kind"], d["antigen_a"], d["antigen_b"], d["o2"],
                                                         d["glucose"], d["tgfb"], d["il12"], d["pdl1"],
                                                         self._rec, self._claims, tgt, stim, killed,
                                                         pd_seen, counts))
        fn("car_t_claim_reset")(g, (THREADS,), geo + (d["t_count"], self._claims, tgt))
        fn("car_t_exhaustion")(g, (THREADS,), geo + (k, d["t_count"], *table, d["o2"], d["tgfb"], d["il12"],
                                                     stim, killed, pd_seen))
        fn("car_t_fate_claim")(g, (THREADS,), geo + (k, seed, step, self._reps, d["t_count"], *table,
                                                     d["o2"], d["glucose"], d["tgfb"], d["il12"], occ,
                                                     self._claims, tgt, died, born, counts))
        fn("car_t_fate_resolve")(g, (THREADS,), geo + (d["t_count"], *table, self._claims, tgt, born, counts))
        fn("car_t_claim_reset")(g, (THREADS,), geo + (d["t_count"], self._claims, tgt))
        live = cp.arange(C)[None, :] < d["t_count"][:, None]
        need = (live & (died.reshape(R, C) == 0)).sum(axis=1) + (live & (born.reshape(R, C) != 0)).sum(axis=1)
        if bool((need > C).any()):
            worst = int(cp.argmax(need))
            raise CapacityError(
                f"replicate {int(self.replicates[worst])} needs {int(need[worst])} CAR-T slots but "
                f"car_t.capacity_per_replicate is {C}; raise it (0 means one slot per voxel)")
        out = [t.copy() for t in table]
        overflow = cp.zeros(R, cp.int32)
        fn("car_t_compact")(_grid(R), (THREADS,), (np.int32(R), np.int32(C), k, d["t_count"], *table, *out,
                                                   died, born, tgt, overflow))
        for f, arr in zip(TABLE_FIELDS, out):
            d[f] = arr
        # migration on the new table
        occ.fill(-1)
        tgt.fill(-1)
        dsel = cp.zeros(RC, cp.int8)
        mv.get_function("car_t_move_occ")(g, (THREADS,), geo + (d["t_count"], d["t_pos"], occ))
        for m in range(ctp.n_sub):
            mv.get_function("car_t_move_decide")(
                g, (THREADS,), geo + (np.int32(m), mk, seed, step, self._reps, d["t_count"], d["t_pos"],
                                      d["t_dir"], d["kind"], d["ecm"], d["chemokine"], occ,
                                      self._claims, tgt, dsel))
            mv.get_function("car_t_move_apply")(
                g, (THREADS,), geo + (d["t_count"], d["t_pos"], d["t_dir"], occ, self._claims, tgt, dsel))
            mv.get_function("car_t_move_reset")(g, (THREADS,), geo + (d["t_count"], self._claims, tgt))
        self._host_view = None
        c = counts.astype(cp.int64).get()
        ev = {"car_t_deaths": c[:, 4], "car_t_births": c[:, 5]}
        if ctp.p_mem > 0:
            ev["memory_conversions"] = c[:, 6]
        if engaged_any:
            ev.update(kills_tumour=c[:, 0], kills_healthy=c[:, 1], engagements=c[:, 2],
                      memory_reactivations=c[:, 7])
            if ctp.trog256 and c[:, 3].any():
                ev["trogocytosis"] = c[:, 3]
        return ev

    def _solve(self, fs, c, a, s, fixed, fixed_value):
        """FieldSolver.solve on the device: returns the sweeps per replicate (device int32)."""
        cp = self.cp
        mod = module("fields.cu")
        prep, colour, after = (mod.get_function(n) for n in
                               ("fields_prepare", "fields_sor_colour", "fields_after_sweep"))
        R, Z, Y, X = c.shape
        n = c.size
        den = cp.empty_like(c)
        prep(_grid(n), (THREADS,), (np.int64(n), np.float32(fs._den0), a, den, c, fixed,
                                    np.float32(fixed_value)))
        active = cp.full(R, 1 if fs.max_iter > 0 else 0, cp.uint8)
        iters = cp.zeros(R, cp.int32)
        maxchg = cp.zeros(R, cp.uint32)
        nt = R * Z * Y * ((X + 1) // 2)
        geo = (np.int32(R), np.int32(Z), np.int32(Y), np.int32(X),
               np.int32(fs.boundary == "dirichlet"), np.float32(fs.boundary_value),
               np.float32(fs._dh), np.float32(fs._omega), np.int32(fs.floor is not None),
               np.float32(0.0 if fs.floor is None else fs.floor))
        done = fs.max_iter == 0
        while not done:
            for _ in range(SWEEPS_PER_POLL):
                for col in (0, 1):
                    colour(_grid(nt), (THREADS,), (np.int32(col),) + geo + (c, s, den, fixed, active, maxchg))
                after(_grid(R), (THREADS,), (np.int32(R), np.float32(fs._tol), np.int32(fs.max_iter),
                                             active, iters, maxchg))
            done = not bool(active.any())  # one host read per SWEEPS_PER_POLL sweeps
        return iters

    def _tumour(self) -> dict:
        cp, d = self.cp, self.d
        mod = module("tumour.cu")
        R = len(self.replicates)
        Z, Y, X = self.shape
        n = R * self.nvox
        counts = cp.zeros((R, len(TUMOUR_COUNTS)), cp.uint64)
        kind_out = cp.empty_like(d["kind"])
        geo = (np.int32(R), np.int32(Z), np.int32(Y), np.int32(X), self._tumour_k,
               np.uint32(self.seed), np.uint32(self.step_index), self._reps)
        null = np.uint64(0)  # a null pointer argument: the state has no such array
        extra = tuple(d.get(k, null) for k in ("antigen_a_base", "antigen_b_base", "pdl1"))
        mod.get_function("tumour_decide_kernel")(
            _grid(n), (THREADS,), geo + (d["kind"], kind_out, d["antigen_a"], d["antigen_b"]) + extra
            + (d["ecm"], d["o2"], d["glucose"], self._claims, counts))
        mod.get_function("tumour_births_kernel")(
            _grid(n), (THREADS,), geo + (kind_out, d["antigen_a"], d["antigen_b"]) + extra
            + (self._claims, counts))
        d["kind"] = kind_out
        self._host_view = None
        return {k: counts[:, i].astype(cp.int64).get() for i, k in enumerate(TUMOUR_COUNTS)}

    # -- observation (host copies; the NumPy engine's own code) ---------------------------------
    def _observe(self):
        self._host.state = self._download()
        return self._host

    @property
    def last_events(self) -> dict:
        return {k: (v.get() if hasattr(v, "get") else np.asarray(v)) for k, v in self._events.items()}

    def metrics(self):
        return self._observe().metrics()

    def snapshot(self, n: int):
        return self._observe().snapshot(n)

    def endpoints(self):
        return self._observe().endpoints()

    @property
    def time_days(self) -> float:
        return self.step_index * self.dt_min / 1440.0


# --- systemic phase: host parts of the device step (per-replicate float64, the NumPy phase's own
# expressions in its order; tests/test_kernels_entry.py checks them bitwise against
# systemic.systemic_phase together with the kernels of entry.cu and systemic.cu) ----------------
def systemic_host_pre(sp, step: int, blood: np.ndarray, csf: np.ndarray) -> tuple[int, float]:
    """The doses due at ``step`` into the blood and CSF pools (in place), as systemic_phase.
    Returns ``(n_inject, lam_face)``: the cells the intratumoral placement puts into the domain
    (0 unless an intratumoral dose is due) and the cells the regional face receives this step
    (0.0 outside a regional infusion)."""
    dose = sp.dose_steps.get(step, 0.0)
    n_inject, lam_face = 0, 0.0
    if sp.route == "intravenous":
        blood += dose
    elif sp.route == "intratumoral":
        if dose > 0:
            blood += dose * sp.leak
            n_inject = int(math.floor(dose * (1.0 - sp.leak) * sp.domain_share + 0.5))
    else:  # regional
        if dose > 0:
            blood += dose * sp.regional_bf
            csf += dose * (1.0 - sp.regional_bf)
        for s0, dd in sp.dose_steps.items():
            if s0 <= step < s0 + sp.infusion_steps:
                lam_face += dd * (1.0 - sp.regional_bf) * sp.face_share / sp.infusion_steps
    return n_inject, lam_face


def regional_csf(sp, csf: np.ndarray, entered: np.ndarray) -> None:
    """The CSF pool loses the face entrants scaled to the whole surface (in place)."""
    if sp.face_share > 0:
        csf -= entered / sp.face_share
        np.maximum(csf, 0.0, out=csf)


def systemic_host_post(sp, blood: np.ndarray, csf: np.ndarray, entered: np.ndarray) -> None:
    """After the vessel entry: homing, clearance (floor 0) and the CSF decay (in place)."""
    blood -= entered
    blood -= blood * sp.homing_per_step
    blood *= sp.clearance_factor
    np.maximum(blood, 0.0, out=blood)
    csf *= sp.clearance_factor


def inject_shells(site_d2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(order, shell)`` of kernels/entry_logic.cuh inject_select: the voxels sorted by (squared
    distance to the nearest site, voxel) as int32, and the int32 starts of the runs of equal
    distance in that order, ending with V."""
    order = np.argsort(site_d2, kind="stable")
    d = site_d2[order]
    starts = np.flatnonzero(np.concatenate(([True], d[1:] != d[:-1])))
    return order.astype(np.int32), np.concatenate((starts, [d.size])).astype(np.int32)


def check_capacity(replicates: np.ndarray, t_count: np.ndarray, entered: np.ndarray, C: int) -> None:
    """CapacityError, worded as systemic._append's, when appending ``entered`` cells would exceed
    the table's C slots in some replicate (checked before the append kernel runs)."""
    from ..errors import CapacityError

    new = np.asarray(t_count, np.int64) + np.asarray(entered, np.int64)
    if new.max(initial=0) > C:
        worst = int(np.argmax(new))
        raise CapacityError(
            f"replicate {int(replicates[worst])} needs {int(new[worst])} CAR-T slots but "
            f"car_t.capacity_per_replicate is {C}; raise it (0 means one slot per voxel)")


def car_t_tumour_count(xp, kind, t_count, t_pos):
    """CAR-T cells in or next to a tumour cell's voxel, per replicate (int64 (R,)): the engine's
    ``Simulation._car_t_tumour`` (a live cell counts when its voxel or one of its Moore neighbours
    inside the domain holds a tumour cell), as array operations of ``xp`` (CuPy on the device,
    NumPy in the tests): the tumour mask dilated by one voxel (engine._dilate, Chebyshev radius 1
    = the Moore neighbourhood, z left out in 2D) read at the live cells' positions."""
    from ..engine import _dilate
    from ..model.lattice import Kind

    R, C = t_pos.shape
    near = _dilate(kind == int(Kind.TUMOUR), 1).reshape(R, -1)
    live = xp.arange(C)[None, :] < t_count[:, None]
    pos = xp.where(live, t_pos, 0)
    return (near[xp.arange(R)[:, None], pos] & live).sum(axis=1).astype(xp.int64)
