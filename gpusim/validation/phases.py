"""How the validation cases advance the engine: the NumPy phases, or a device backend's."""

from __future__ import annotations

import numpy as np


class Phases:
    """The engine's phases as the cases call them, each advancing an engine State in place: the
    NumPy reference engine's own phase functions and field solver."""

    name = "numpy"

    def tumour(self, sc, st, tp, seed: int, step: int, events: dict) -> None:
        from ..model import tumour as tumour_mod

        tumour_mod.tumour_phase(st, tp, seed, step, events)

    def car_t(self, sc, st, cp, seed: int, step: int, events: dict) -> None:
        from ..model import car_t as car_t_mod

        car_t_mod.car_t_phase(st, cp, seed, step, events)

    def fields(self, sc, st) -> tuple[int, int]:
        """FieldsPhase.solve on ``st``; returns (oxygen sweeps of replicate 0, max_iter)."""
        from ..model.environment import FieldsPhase

        fp = FieldsPhase(sc, st.kind.shape[0])
        fp.solve(st)
        return int(fp.iterations["oxygen"][0]), fp.o2.max_iter

    def solve(self, fs, c, a, s, fixed, fixed_value) -> np.ndarray:
        return fs.solve(c, a, s, fixed, fixed_value)


class DevicePhases(Phases):
    """The same calls on a device backend (``cupy``, or ``emulated``: the same device step with
    the kernels compiled for the host): the State is uploaded into a device Simulation, the
    backend's own phases (``gpusim.backends.cupy_backend.DevicePhases``) run their kernels, and
    the result is copied back into the State, so the cases (stirring included) run unchanged.  The
    parameters come from the scenario (as ``TumourParams`` / ``CarTParams.from_scenario`` of the
    NumPy path); the seed and step are the call's."""

    def __init__(self, runtime):
        self.rt = runtime
        self.name = runtime.name
        self._key = self._cached = None

    def _sim(self, sc, st, seed: int, step: int):
        """A device Simulation of ``sc`` holding ``st`` (built once per scenario and shape)."""
        from ..backends.cupy_backend import device_phases
        from ..engine import Simulation

        key = (id(sc), st.kind.shape, st.t_state.shape, int(st.replicates[0]))
        if key != self._key:
            self._cached = Simulation(sc, replicates=st.kind.shape[0],
                                      first_replicate=int(st.replicates[0]), state=st,
                                      phases=device_phases(self.rt))
            self._key = key
        sim = self._cached
        sim.state = st
        sim.seed = int(seed)
        sim.work.step = int(step)
        return sim

    @staticmethod
    def _back(sim, st, events: dict, ev: dict) -> None:
        from ..engine import STATE_ARRAYS

        new = sim.state
        for k in STATE_ARRAYS:
            np.copyto(getattr(st, k), getattr(new, k))
        for k, v in ev.items():
            if v.any():
                events[k] = events.get(k, 0) + v

    def _phase(self, name, sc, st, seed, step, events) -> None:
        from ..engine import EVENTS

        sim = self._sim(sc, st, seed, step)
        ev = {k: np.zeros(st.kind.shape[0], np.int64) for k in EVENTS}
        getattr(sim.phases, name)(sim.work, ev)
        self._back(sim, st, events, ev)

    def tumour(self, sc, st, tp, seed, step, events):
        self._phase("tumour", sc, st, seed, step, events)

    def car_t(self, sc, st, cp, seed, step, events):
        self._phase("car_t", sc, st, seed, step, events)

    def fields(self, sc, st):
        sim = self._sim(sc, st, sc["run.seed"], st.step)
        sim.phases.fields(sim.work)
        self._back(sim, st, {}, {})
        return int(sim.fields.iterations["oxygen"][0]), sim.fields.o2.max_iter

    def solve(self, fs, c, a, s, fixed, fixed_value):
        from ..backends.cupy_backend import device_solve

        xp = self.rt.xp
        cd = xp.asarray(c)
        fx = None if fixed is None else xp.asarray(np.asarray(fixed, np.uint8))
        iters = device_solve(self.rt, fs, cd, xp.asarray(np.asarray(a, np.float32)),
                             xp.asarray(np.asarray(s, np.float32)), fx, fixed_value)
        np.copyto(c, cd.get())
        return iters


#: the NumPy phases (stateless): the default of every case
NUMPY = Phases()
