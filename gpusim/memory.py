"""Memory estimate of a run, before anything is allocated, and the check ``run``, ``sweep`` and
``bench`` make with it (issue 13).

The estimate is derived, not tabulated by hand where the code declares it:

* **engine state** (gpusim/engine.py ``STATE_ARRAYS``): the dtype and shape class of every array
  come from the state of a tiny probe simulation (a few voxels, a distinct agent capacity), so an
  array added to the engine, or a dtype changed, changes the estimate: bytes per voxel
  (lattice arrays, ``(R, Z, Y, X)``), per agent slot (``(R, C)``; ``C`` is
  ``car_t.capacity_per_replicate``, 0 meaning ``car_t.max_per_voxel`` slots per voxel) and per replicate.
* **field solvers** (gpusim/model/fields.py ``FieldSolver``): one per field of the probe's
  ``FieldsPhase``; each holds, per parity sub-lattice, a padded block per replicate of the field
  (float32, the state's field dtype) with a margin, and per non-empty sub-lattice the source and
  denominator (float32), the relaxation factors of a block's (y, x) plane and the block-local
  flat indices (intp) of its padding; one sub-lattice's worth of a float32 work buffer (with a
  floor another and a bool one); after the first solve the flat indices (intp) of its fixed
  voxels (vessels for oxygen and glucose) and, with a floor, of all its held positions (padding
  and fixed voxels).  The layout mirrors the module's "NumPy realisation";
  tests/test_memory_estimate.py checks it byte for byte against real solvers.
* **outputs**: the snapshot of ``run.snapshot_replicates`` replicates (dtypes of engine.SNAPSHOTS)
  and one interval of metrics (float64 each), profiles and events; the observation helpers'
  radial shell index and one replicate's working set of the infiltration depth
  (gpusim/model/outputs.py ``work_bytes``).
* **working set**: the temporaries of a step and of the metrics, as lattice-sized arrays of
  the dtypes in :data:`WORK_PER_VOXEL` (and :data:`WORK_PER_SLOT`), an allowance checked against
  the measured peak (tracemalloc) of set-up plus steps in the tests.
* **cupy**: the host also keeps a downloaded copy of the state; the device holds the state plus
  the work buffers the device step allocates (:data:`DEVICE_WORK_PER_VOXEL`,
  :data:`DEVICE_WORK_PER_SLOT`, read off gpusim/backends/cupy_backend.py).

Available memory: host ``MemAvailable`` of /proc/meminfo (else ``os.sysconf`` free pages); device
``cupy.cuda.runtime.memGetInfo`` (free bytes) when CuPy is importable.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from .errors import GpusimError

GiB = 2.0**30

#: lattice-sized temporaries of a NumPy step (the largest phase, or the metrics, whichever is
#: larger), per voxel of the batch: dtype -> how many arrays.  An allowance: the tests check the
#: estimate against the measured peak of set-up plus steps.
WORK_PER_VOXEL = {"int64": 2, "float32": 3, "bool": 8, "uint8": 2}
#: slot-sized temporaries of a NumPy step, per agent slot of the batch.  They grow with the live
#: CAR-T cells, not the capacity: a table near full needs up to ~650 bytes a live cell in 2D (more
#: in 3D: 26 neighbours); this allowance covers a table well below capacity (docs/memory.md)
WORK_PER_SLOT = {"int64": 4, "uint64": 2, "float32": 2, "bool": 4}
#: temporaries of the initial tissue per (replicate, voxel) pair of one work box
#: (model/tissue.py CHUNK pairs at a time; about 103 bytes measured with tracemalloc)
TISSUE_BYTES_PER_PAIR = 128
#: device work buffers of a CuPy step per voxel: claims (uint64), tumour kind out, entry mask
#: (uint8), occupancy and vessel weights (int32), agent map and ECM-degrading effectors per voxel
#: (uint32)
DEVICE_WORK_PER_VOXEL = {"uint64": 1, "uint8": 2, "int32": 2, "uint32": 2}
#: a field solve's problem (cupy_backend ``Problem``): den, s and a (multigrid) float32 and the
#: held mask (uint8), per entry of the colour-split layout (``split_size``: a little over one
#: entry per voxel where X is odd)
DEVICE_SPLIT_PER_ENTRY = {"float32": 3, "uint8": 1}


def _split_per_voxel(shape) -> float:
    """Entries of a colour-split solver array (cupy_backend ``split_size``) per voxel of a level
    ``shape`` (Z, Y, X)."""
    from .backends.cupy_backend import split_size

    return split_size((1,) + tuple(shape)) / float(np.prod(shape))
#: host temporaries of a NumPy multigrid solve per voxel of the batch: the cycle's copy of c
#: (float32), the residual (float32, and two float64 parity blocks at a time) and the transfers'
#: intermediates (about two float32 arrays): an allowance checked against the measured peak
MULTIGRID_WORK_PER_VOXEL = 16


def _device_multigrid_floats(shape) -> float:
    """float32 values per voxel a device multigrid solve allocates besides its problem
    (cupy_backend ``_multigrid_solve``): on the finest level the residual and the cycle's saved c
    (colour-split); on every coarser one c, the colour-split s, den and sink, and the residual
    (not on the one-voxel level)."""
    from .model.multigrid import level_shapes

    shapes = level_shapes(shape)
    V = float(np.prod(shape))
    out = 1.0 + _split_per_voxel(shape)
    for l, s in enumerate(shapes[1:], start=1):
        out += float(np.prod(s)) * (1 + 3 * _split_per_voxel(s) + (l < len(shapes) - 1)) / V
    return out


#: device work buffers of a CuPy step per agent slot: target (int32), stimulated, killed, died,
#: born, keep/born masks (uint8), PD-1 seen (float32), move direction (int8), the compaction
#: destinations (int64) and the second table it writes (18 bytes: uint8 state, div, eng; int32
#: pos, kills; float32 exh; int8 dir; int16 act)
DEVICE_WORK_PER_SLOT = {"int32": 3, "uint8": 9, "float32": 2, "int8": 2, "int64": 2, "int16": 1}

_PROBE_SHAPE = (1, 4, 3)  # Z, Y, X of the probe simulation: 12 voxels
_PROBE_CAPACITY = 5  # distinct from 12 and from 1, so every array's class is unambiguous


def _bytes(table: dict[str, int]) -> int:
    return sum(np.dtype(k).itemsize * n for k, n in table.items())


@dataclass(frozen=True)
class StateLayout:
    per_voxel: int  #: bytes per voxel per replicate (lattice arrays)
    per_slot: int  #: bytes per agent slot per replicate
    per_replicate: int  #: bytes per replicate (systemic values, counters, t_count)
    field_itemsize: int  #: bytes of one field value (the solvers' dtype)
    dtypes: dict = field(default_factory=dict)  #: name -> (class, dtype str)


def _probe_scenario(sc):
    z, y, x = _PROBE_SHAPE
    z = 2 if sc.shape[0] > 1 else z  # a 3D scenario's probe is 3D: its solvers differ
    return sc.replace(domain__z_voxels=z, domain__y_voxels=y, domain__x_voxels=x,
                      car_t__capacity_per_replicate=_PROBE_CAPACITY, run__replicates=1,
                      run__first_replicate=0)


@lru_cache(maxsize=1)
def state_layout() -> StateLayout:
    """Bytes per voxel, per slot and per replicate of the engine state, from a probe simulation."""
    from .engine import STATE_ARRAYS, Simulation
    from .scenario import load_scenario

    sim = Simulation(_probe_scenario(load_scenario("quickstart")), replicates=1)
    per = {"voxel": 0, "slot": 0, "replicate": 0}
    dtypes = {}
    for k in STATE_ARRAYS:
        a = getattr(sim.state, k)
        if a.shape == (1,) + _PROBE_SHAPE:
            cls = "voxel"
        elif a.shape == (1, _PROBE_CAPACITY):
            cls = "slot"
        elif a.shape in ((1,), (1, 1)):  # (R,) and the per-product (R, P), one product here
            cls = "replicate"
        else:  # pragma: no cover - a new kind of state array: extend the estimate
            raise RuntimeError(f"memory estimate: state array {k} of shape {a.shape} has no class")
        per[cls] += a.dtype.itemsize
        dtypes[k] = (cls, a.dtype.str)
    return StateLayout(per["voxel"], per["slot"], per["replicate"], sim.state.o2.dtype.itemsize, dtypes)


def _solver_specs(sc) -> list[tuple[str, bool, bool, bool]]:
    """(name, has_floor, has_fixed, multigrid) of every field solver the fields phase builds for
    ``sc`` (the floors from a probe's phase, the solver choice from ``sc`` itself: it depends on
    the lattice size)."""
    from .model.environment import FieldsPhase, steady_tgfb_own_solver, uses_multigrid

    fp = FieldsPhase(_probe_scenario(sc), 1)
    fixed = {"o2", "glucose"}  # vessels are held at the vessel value (environment.py)
    section = {"o2": "oxygen"}
    out = []
    for k in ("o2", "glucose", "chemokine", "tgfb", "ifng", "il12"):
        floor = getattr(fp, k).floor is not None
        out.append((k, floor, k in fixed, uses_multigrid(sc, section.get(k, k), floor)))
    if steady_tgfb_own_solver(sc):
        out.append(("tgfb_steady", False, False, True))
    return out


def field_solver_bytes(shape, R: int, *, floor: bool, multigrid: bool, itemsize: int = 4,
                       fixed_voxels: int = 0) -> int:
    """Bytes one field's solver holds: a FieldSolver (:func:`solver_bytes`), or a multigrid
    solver's sub-lattice solver per level (the fixed voxels on the finest) and its one-voxel
    level's sink and den."""
    if not multigrid:
        return solver_bytes(shape, R, floor=floor, itemsize=itemsize, fixed_voxels=fixed_voxels)
    from .model.multigrid import level_shapes

    three_d = int(shape[0]) > 1
    return sum(solver_bytes(s, R, floor=False, itemsize=itemsize, three_d=three_d,
                            fixed_voxels=fixed_voxels if l == 0 else 0)
               for l, s in enumerate(level_shapes(shape))) + 2 * R * itemsize


def solver_bytes(shape, R: int, *, floor: bool, itemsize: int = 4, fixed_voxels: int = 0,
                 three_d: bool | None = None) -> int:
    """Bytes a FieldSolver of lattice ``shape`` (Z, Y, X) and R replicates holds once it has
    solved: its buffers (allocated at construction) plus the held-position indices of its views.
    ``fixed_voxels``: held (vessel) voxels over the whole batch; ``three_d`` as the solver's."""
    Z, Y, X = (int(v) for v in shape)
    three_d = Z > 1 if three_d is None else bool(three_d)
    lengths, split = (Z, Y, X), (three_d, True, True)
    qshape = [(L + 1) // 2 + 2 if sp else 1 for L, sp in zip(lengths, split)]
    B = qshape[0] * qshape[1] * qshape[2]
    margin = qshape[1] * qshape[2] if three_d else qshape[2]
    parities = [(pz, py, px) for pz in ((0, 1) if three_d else (0,)) for py in (0, 1) for px in (0, 1)]
    real = []
    for p in parities:
        n = 1
        for ax in range(3):
            n *= len(range(p[ax], lengths[ax], 2)) if split[ax] else 1
        real.append(n)
    active = [n for n in real if n]
    b = itemsize * len(parities) * (2 * margin + R * B)  # c
    b += len(active) * (R * B * 2 + qshape[1] * qshape[2]) * itemsize  # s, den; the factors
    b += R * B * (itemsize + (itemsize + 1 if floor else 0))  # acc; with a floor chg, below
    b += 3 * R * itemsize  # per-replicate max change, and its max and min
    pad = sum(B - n for n in active)  # padding positions of one block (intp indices, kept)
    held = fixed_voxels + (R * pad + fixed_voxels if floor else 0)  # the views' fixed positions,
    b += (pad + held) * np.dtype(np.intp).itemsize                  # all held ones with a floor
    return int(b)


@dataclass
class Estimate:
    """Bytes a run needs; ``parts`` itemises ``host`` (and ``device_parts`` ``device``)."""
    host: int
    parts: dict
    device: int | None = None
    device_parts: dict | None = None
    voxels: int = 0
    replicates: int = 0
    capacity: int = 0

    def per_voxel(self) -> float:
        """Host bytes per voxel of the batch (all parts over replicates × voxels)."""
        return self.host / max(1, self.voxels * self.replicates)


def estimate(sc, replicates: int | None = None, backend: str = "numpy", *,
             snapshot_replicates: int | None = None) -> Estimate:
    """The memory a batch of ``replicates`` of scenario ``sc`` needs on ``backend`` (``numpy`` or
    ``cupy``): host bytes, and device bytes for ``cupy``.  Allocates nothing large."""
    R = int(replicates if replicates is not None else sc["run.replicates"])
    Z, Y, X = sc.shape
    V = Z * Y * X
    C = int(sc["car_t.capacity_per_replicate"] or V * sc["car_t.max_per_voxel"])
    lay = state_layout()
    state = R * (V * lay.per_voxel + C * lay.per_slot + lay.per_replicate)
    vessel_frac = max(sc["vessels.density_tumour_fraction"], sc["vessels.density_normal_fraction"])
    fixed = int(math.ceil(vessel_frac * R * V))
    specs = _solver_specs(sc)
    fields = sum(field_solver_bytes(sc.shape, R, floor=fl, multigrid=mg,
                                    itemsize=lay.field_itemsize, fixed_voxels=fixed if fx else 0)
                 for _, fl, fx, mg in specs)
    # the metrics' tumour zone: flat indices (int64) of the voxels within radius + capsule
    h = sc["domain.voxel_um"]
    rz = (sc["tumour.radius_um"] + sc["stroma.capsule_thickness_um"]) / h
    zone = min(V, (4.0 / 3.0 * math.pi * rz**3) if Z > 1 else math.pi * rz * rz)
    zone_b = int(zone) * 8
    from .engine import METRICS, SNAPSHOTS

    n_snap = min(int(sc["run.snapshot_replicates"] if snapshot_replicates is None else snapshot_replicates), R)
    snap = n_snap * V * sum(np.dtype(d).itemsize for d, _, _ in SNAPSHOTS.values())
    out = snap + R * len(METRICS) * 8
    # observation outputs (gpusim/model/outputs.py): the radial shell index (int64 per voxel), one
    # replicate's depth working set, and one interval of profiles and events per replicate
    from .engine import EVENTS
    from .model.outputs import EXHAUSTION_EDGES, work_bytes

    nbins = 2 * int(sc["outputs.profile_bins"]) + EXHAUSTION_EDGES.size - 1
    out += V * 8 + work_bytes(sc.shape) + R * (nbins + len(EVENTS)) * 8
    from .model.tissue import CHUNK

    # the larger of: a step's temporaries, or (set-up) one work box of the initial tissue
    # (the slot temporaries grow with the live cells: allowed for up to one live cell per voxel)
    work = max(R * (V * _bytes(WORK_PER_VOXEL) + min(C, V) * _bytes(WORK_PER_SLOT)),
               TISSUE_BYTES_PER_PAIR * min(R * V, CHUNK))
    parts = {"state": state, "field solvers": fields, "outputs": out, "working set": work + zone_b}
    mg = any(m for *_, m in specs)
    if mg:   # a multigrid solve's temporaries (gpusim/model/multigrid.py), at most one at a time
        parts["multigrid work"] = R * V * MULTIGRID_WORK_PER_VOXEL
    est = Estimate(host=0, parts=parts, voxels=V, replicates=R, capacity=C)
    if backend == "cupy":
        parts["state copy (downloads)"] = state
        dev = {"state": state,
               "work buffers": R * (V * _bytes(DEVICE_WORK_PER_VOXEL) + C * _bytes(DEVICE_WORK_PER_SLOT)
                                    + int(math.ceil(V * _split_per_voxel(sc.shape))) * _bytes(DEVICE_SPLIT_PER_ENTRY))}
        if mg:
            dev["multigrid buffers"] = R * int(math.ceil(V * _device_multigrid_floats(sc.shape))) * 4
        est.device_parts = dev
        est.device = sum(dev.values())
    est.host = sum(parts.values())
    return est


def host_available() -> int | None:
    """Bytes of host memory available now: MemAvailable of /proc/meminfo, else free pages."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):  # pragma: no cover - not POSIX
        return None


def device_available() -> int | None:
    """Free bytes on the current CUDA device (cupy memGetInfo), or None without CuPy/CUDA."""
    try:
        import cupy

        return int(cupy.cuda.runtime.memGetInfo()[0])
    except Exception:
        return None


class MemoryLimitError(GpusimError):
    """The estimated memory of a run exceeds what is available (``--force-memory`` overrides)."""


def _fmt(b: float) -> str:
    if b >= 1024 * GiB:
        return f"{b / (1024 * GiB):.1f} TiB"
    return f"{b / GiB:.1f} GiB" if b >= 0.1 * GiB else f"{b / 2**20:.1f} MiB"


def check(sc, replicates: int | None = None, backend: str = "numpy", *, force: bool = False,
          what: str = "this run") -> Estimate:
    """Raise :class:`MemoryLimitError` (one line: the estimate and what is available) when the
    estimate exceeds the available host memory, or, for ``cupy``, the free device memory;
    ``force`` skips the refusal.  Returns the estimate."""
    est = estimate(sc, replicates, backend)
    if force:
        return est
    host = host_available()
    if host is not None and est.host > host:
        _refuse(what, est.host, "host memory", f"{est.replicates} replicate(s) x {est.voxels} voxels, "
                f"{est.per_voxel():.0f} bytes/voxel", f"{_fmt(host)} is available")
    if backend == "cupy":
        dev = device_available()
        if dev is not None and est.device > dev:
            _refuse(what, est.device, "GPU memory", f"{est.replicates} replicate(s) x {est.voxels} voxels",
                    f"{_fmt(dev)} is free on the device")
    return est


def _refuse(what: str, need: int, where: str, detail: str, have: str) -> None:
    """Raise the one-line :class:`MemoryLimitError` of a run that needs ``need`` bytes of ``where``."""
    raise MemoryLimitError(f"{what} needs about {_fmt(need)} of {where} ({detail}), but {have}; use fewer "
                           "replicates or a smaller domain, or pass --force-memory to try anyway")


def check_many(items, *, force: bool = False) -> list[Estimate]:
    """:func:`check` for several runs done one after another (sweep points, bench rows): each
    ``(scenario, replicates, backend, what)`` must fit on its own; all are checked before any runs."""
    return [check(sc, r, b, force=force, what=what) for sc, r, b, what in items]
