"""CuPy backend: the state lives on the GPU; phases run as the CUDA kernels of ``kernels/``.

:class:`CupySimulation` has the interface of :class:`gpusim.engine.Simulation` (``step``,
``metrics``, ``snapshot``, ``endpoints``, ``state``, ``time_days``, ``last_events``).  Every state
array of a batch is a device array with the leading replicate axis; every replicate of the batch
is served by one launch per kernel.  Output (metrics, snapshots, endpoints, checkpoints) copies the
state to the host and uses the NumPy engine's own code, so reported numbers cannot drift.

Which phases run on the device (``DEVICE_PHASES``):

* fields — the red-black SOR solver (``kernels/fields.cu``); the per-voxel sink/source coefficients
  are CuPy element-wise operations in the order of ``environment.FieldsPhase.solve``;
* tumour — ``kernels/tumour.cu`` (decide + claims by ``atomicMin`` + births);
* systemic and CAR-T still run the NumPy phase on a host copy of the state (copy out, run, copy
  back) — correct, but a host round trip inside the step.  The CAR-T migration kernels
  (``kernels/car_t_move.cu``, host-harness verified against ``car_t._migrate``) and the
  prefix-sum compaction (``backends/compaction.py``) are ready for a device CAR-T phase but not
  wired in, because the NumPy CAR-T phase is one function.  ``AVAILABLE`` is therefore False: the
  backend is not offered to users (``auto`` takes NumPy, ``--backend cupy`` is refused) until every
  phase has its kernel.

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
import warnings

import numpy as np

from ..errors import BackendError
from .sources import NVCC_OPTIONS, kernel_dir, kernel_source

#: True only when every phase of the current engine runs on the device (see the module docstring)
AVAILABLE = False
DEVICE_PHASES = ("fields", "tumour")
HOST_PHASES = ("systemic", "car_t")

#: sha256 of the NumPy sources the device step mirrors (engine at commit 2db17b5); see
#: twin_fingerprint().  Update together with the kernels, never alone.
TWIN_FINGERPRINT = "934977e87e4abf1a5468b2e1a7e9f890fb63cd2231d40688a6b35ef88b855f62"

THREADS = 256
SWEEPS_PER_POLL = 8  # field sweeps between two host reads of the convergence flags

_MODULES: dict[tuple[int, str], object] = {}


def twin_fingerprint() -> str:
    """Hash of the Python sources the device step mirrors (step order, fields coefficients,
    tumour phase, state layout)."""
    from .. import engine
    from ..model import environment, tumour

    parts = [inspect.getsource(engine.Simulation.step), inspect.getsource(environment.FieldsPhase),
             inspect.getsource(tumour), repr(engine.STATE_ARRAYS)]
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
            f = h.fields
            self._luts = {k: cp.asarray(getattr(f, k)) for k in
                          ("o2_sink", "glucose_sink", "chem_sink", "chem_src")}

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

    def _host_phase(self, fn, *args) -> dict:
        """Run a NumPy phase function on a host copy of the state and copy the result back."""
        st = self._download()
        events: dict = {}
        fn(st, *args, self.seed, self.step_index, events)
        self._upload(st)
        self.step_index = st.step
        return events

    def _device_step(self) -> None:
        from ..model.car_t import car_t_phase
        from ..model.lattice import Kind
        from ..model.systemic import systemic_phase

        cp, d, h = self.cp, self.d, self._host
        R = len(self.replicates)
        events = self._host_phase(systemic_phase, h.systemic_params)
        self._fields()
        events.update(self._tumour())
        ev = self._host_phase(car_t_phase, h.car_t_params)
        for k, v in ev.items():
            events[k] = events.get(k, 0) + np.asarray(v, np.int64)
        d = self.d
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
        d["last_car_t_step"] = cp.where(d["t_count"] > 0, self.step_index, d["last_car_t_step"])
        self._events = evd
        self._host_view = None

    def _tcell_mask(self):
        cp, d = self.cp, self.d
        R, C = d["t_state"].shape
        live = cp.arange(C)[None, :] < d["t_count"][:, None]
        n = R * self.nvox
        gpos = cp.where(live, cp.arange(R)[:, None] * self.nvox + d["t_pos"].astype(cp.int64), n)
        m = cp.zeros(n + 1, dtype=cp.bool_)  # slot n takes the padding (no data-dependent size)
        m[gpos.ravel()] = True
        return m[:n].reshape(d["kind"].shape)

    def _fields(self) -> None:
        """environment.FieldsPhase.solve on the device (same coefficient order)."""
        cp, d, f, lut = self.cp, self.d, self._host.fields, self._luts
        kind = d["kind"]
        vessel = (kind == 6).astype(cp.uint8)
        tcell = self._tcell_mask()
        zero = cp.zeros(kind.shape, cp.float32)
        nofix = cp.zeros(kind.shape, cp.uint8)
        a = lut["o2_sink"][kind]
        a = cp.where(tcell, a + f.o2_t, a).astype(cp.float32)
        self._solve(f.o2, d["o2"], a, zero, vessel, f.o2_vessel)
        a = lut["glucose_sink"][kind]
        a = cp.where(tcell, a + f.glucose_t, a).astype(cp.float32)
        self._solve(f.glucose, d["glucose"], a, zero, vessel, f.glucose_vessel)
        a = lut["chem_sink"][kind]
        s = (lut["chem_src"][kind] + d["chemokine"] * f.inv_dt).astype(cp.float32)
        self._solve(f.chemokine, d["chemokine"], a, s, nofix, np.float32(0))

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
               np.float32(fs._dh), np.float32(fs._omega))
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
