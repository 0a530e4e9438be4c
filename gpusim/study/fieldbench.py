"""The field-solver benchmark behind ``gpusim bench --fields`` and ``benchmarks/bench_fields.py``.

For each case (``"100"``, ``"400"``: iv_baseline 2D at 100^2 / 400^2 with the tumour scaled to
the domain; ``"75x3"``: a large_3d tumour at 75^3) it builds the engine on the NumPy backend,
runs ``warmup`` steps, then times ``steps`` steps (the whole step and the fields phase).  During
the last timed step it records, per field, the inputs of each solve (the previous values, ``a``,
``s``, the vessel mask) and the result, then solves each recorded system in float64
(:func:`gpusim.model.fields_exact.exact_solution`) and reports per field:

* sweeps of the solve (mean and max over replicates),
* ``err``: max-norm distance of the float32 result to the float64 converged solution of the same
  discrete system, against ``tol``, the bound the stopping rule states (docs/fields.md);
* time per voxel-sweep of the fields phase (fields seconds / (voxels x all sweeps));
* device bytes per voxel-step: the bytes a device step's field solves move per voxel, counted
  from the kernels of the version measured (:func:`device_bytes`, its coefficient layout
  :func:`coeff_layout`) with the recorded sweeps;
* device kernel launches and host reads per step (:func:`device_launches`): what a device step
  costs regardless of the lattice's size (each launch some microseconds of host and driver
  time; :func:`launch_overhead_us` measures this code's part).

Every ``gpusim`` import is inside a function and absolute, so that ``benchmarks/bench_fields.py``
can load this file by path into a worker whose ``gpusim`` is an older commit (the comparison
against a reference commit in the same run).
"""

from __future__ import annotations

import datetime as _dt
import re
import time

import numpy as np

FIELDS = ("o2", "glucose", "chemokine", "tgfb", "ifng", "il12")
DEFAULT_CASES = ("100", "400", "75x3")
_CASE = re.compile(r"^(\d+)(x3)?$")


def parse_cases(cases) -> list[str]:
    """Validated case names: ``N`` (2D iv_baseline at N^2) or ``Nx3`` (3D large_3d at N^3)."""
    out = []
    for c in cases:
        c = str(c).strip()
        m = _CASE.match(c)
        if not m or not 8 <= int(m.group(1)) <= 2000:
            raise ValueError(f"field-bench case {c!r}: allowed 'N' (2D, N^2) or 'Nx3' (3D, N^3), "
                             "8 <= N <= 2000, e.g. 100, 400, 75x3")
        out.append(c)
    return out


#: the device layout of a solver's coefficients (s, den, held mask): "colour-split" since issue
#: 14's third round (kernels/fields_logic.cuh ``split_index``), "natural" before
#: (:func:`coeff_layout` tells which the importable ``gpusim`` has)
LAYOUTS = ("colour-split", "natural")


def coeff_layout() -> str:
    """The coefficient layout of the importable ``gpusim``'s device solver."""
    from gpusim.backends import cupy_backend

    return "colour-split" if hasattr(cupy_backend, "split_size") else "natural"


def sweep_bytes(layout: str, fixed: bool) -> int:
    """Bytes per voxel of one sweep (two colour passes, ``fields_sor_colour``; one thread per
    voxel pair of a row, 32-byte sectors).  A pass reads every sector of c (4 B: its own values
    and the neighbours, the other colour's words of the same sectors) and writes half of c (2 B,
    counted as half sectors); of s, den and the held mask it reads its half (2 + 2 + 0.5 B)
    colour-split, every sector (4 + 4 + 1 B) in the natural layout."""
    if layout not in LAYOUTS:
        raise ValueError(f"coefficient layout {layout!r}: allowed {', '.join(LAYOUTS)}")
    half = layout == "colour-split"
    per_pass = 4 + 2 + (4 if half else 8) + (0.5 if half else 1) * fixed
    return int(2 * per_pass)


#: fields whose solve holds voxels (the vessels, at their value) and so has a held mask
HELD = frozenset({"o2", "oxygen", "glucose"})
#: bytes per voxel the coefficients of a field read besides kind, agent map and c: the chemokine
#: the previous step's IFN-γ, TGF-β the oxygen just solved
EXTRA_READS = {"chemokine": 4, "tgfb": 4}


def solve_bytes(name: str, layout: str, multigrid: bool, cmax: bool) -> int:
    """Bytes per voxel of posing one solve's problem (before its sweeps or cycles), by its
    kernels (C order, one thread per voxel):

    * colour-split: ``field_coeffs_kernel`` reads kind (1), the agent map (4), c (4) and
      :data:`EXTRA_READS`, and writes den and s (4 + 4), the held mask and the held voxels' c
      (1 + 4, :data:`HELD` fields only) and a (4, a multigrid solve only);
    * natural (the kernels before issue 14's third round): ``field_coeffs_kernel`` read kind,
      the agent map, c (4, the backward-Euler fields only) and :data:`EXTRA_READS` and wrote a
      and s (4 + 4); ``fields_prepare`` read a and c (4 + 4) and the mask (1, held) and wrote
      den (4) and the held voxels' c (4); ``fields_cmax`` read c (4, where ``cmax``)."""
    held = name in HELD
    extra = EXTRA_READS.get(name, 0)
    if layout == "colour-split":
        return 1 + 4 + 4 + extra + 8 + (5 if held else 0) + (4 if multigrid else 0)
    return (1 + 4 + (0 if held else 4) + extra + 8 + 8 + 4 + (5 if held else 0)
            + (4 if cmax else 0))


def device_bytes(sweeps: dict, cmax: bool, multigrid: dict | None = None,
                 layout: str = "colour-split") -> float:
    """Bytes per voxel-step that the field solves of one device step move, counted from
    kernels/fields.cu, multigrid.cu and field_coeffs.cu (one thread per voxel, C order, 32-byte
    sectors) for the coefficient ``layout`` of the kernels (:data:`LAYOUTS`): per solve
    :func:`solve_bytes`, then per sweep :func:`sweep_bytes` (the held mask for the
    :data:`HELD` fields) or a multigrid solve's :func:`multigrid_bytes` per cycle and for its
    set-up.

    ``sweeps``: field -> mean sweeps (or cycles) per replicate of a solve (0 for a skipped
    solve); ``multigrid``: field -> the level shapes of the fields solved by multigrid;
    ``cmax``: the rounding-level stop's ``max |c|`` (a pass of its own in the natural layout)."""
    total = 0.0
    for name, n in sweeps.items():
        if n <= 0:
            continue
        mg = bool(multigrid and name in multigrid)
        total += solve_bytes(name, layout, mg, cmax)
        if mg:
            setup, cycle = multigrid_bytes(multigrid[name], layout, name in HELD)
            total += setup + cycle * n
        else:
            total += sweep_bytes(layout, name in HELD) * n
    return total


def multigrid_bytes(shapes, layout: str = "colour-split", held: bool = True) -> tuple[float, float]:
    """(set-up, per cycle) bytes per fine voxel of a multigrid solve on the level ``shapes``
    (kernels/multigrid.cu; ``f_l`` the size of level l over the finest's; ``held``: the finest
    level has a held mask, read where noted):

    * set-up, per coarse level: ``mg_coarsen`` reads the finer sink (4 B, and the held mask (1)
      at level 1) and writes a and den (8 B);
    * per cycle: the cycle's change: colour-split, the finest level's first smoothing saves c
      and its last measures the change from it (8 B), natural, a copy of c and ``mg_change``
      (16 B); per level above the coarsest two smoothing sweeps (:func:`sweep_bytes`, the held
      mask at level 0 only: colour-split 21 B at level 0 and 20 B above, natural 30 and 28),
      ``mg_residual`` (c, s, den, the mask; writes res: 17 B at level 0, 16 above),
      ``mg_restrict`` (reads res 4 B; writes s and c of the coarser level, 8 B there),
      ``mg_prolong`` (c read and written 8 B, the mask 1 at level 0; the coarse values 4 B
      there); ``mg_coarsest`` on the one-voxel level (s, a, den read, c written: 16 B there).
      A one-voxel lattice is a single sweep per cycle."""
    V0 = float(np.prod(shapes[0]))
    f = [float(np.prod(s)) / V0 for s in shapes]
    L = len(shapes)
    h = 1 if held else 0
    if L == 1:   # colour-split: the sweep's own change is the cycle's
        return 0.0, (0.0 if layout == "colour-split" else 16.0) + sweep_bytes(layout, held)
    setup = sum((4 + (h if l == 1 else 0)) * f[l - 1] + 8 * f[l] for l in range(1, L))
    cycle = (8.0 if layout == "colour-split" else 16.0) + 16 * f[-1]
    for l in range(L - 1):
        fixed = h if l == 0 else 0
        cycle += f[l] * (2 * sweep_bytes(layout, bool(fixed)) + 16 + fixed + 4 + 8 + fixed) + f[l + 1] * (8 + 4)
    return setup, cycle


def device_launches(fields: dict, multigrid: dict | None = None, poll: int = 8,
                    layout: str = "colour-split", cmax: bool = True) -> tuple[int, int]:
    """(kernel launches, host reads) of the field solves of one device step
    (gpusim.backends.cupy_backend), CuPy's own fills and reductions included:

    * per solve: posing the problem (``field_coeffs_kernel``; natural ``layout``: and
      ``fields_prepare``, and ``fields_cmax`` where ``cmax``) and the fills of its per-replicate
      arrays (the flags, counts, changes, the rule's state and ``max |c|``: six for an SOR solve,
      seven for a multigrid one (the smoothing's scratch); without ``cmax`` one fewer); a host
      read of the counts at the end;
    * an SOR solve sweeps every replicate until the last one has converged, in blocks of
      ``poll`` sweeps (``SWEEPS_PER_POLL``), three launches a sweep (two colour passes,
      ``fields_after_sweep``), then a reduction of the flags and a host read per block;
    * a multigrid solve launches ``mg_coarsen`` per coarse level once, then per cycle seven
      launches per level above the coarsest (two smoothing passes before and after,
      ``mg_residual``, ``mg_restrict``, ``mg_prolong``), ``mg_coarsest``,
      ``fields_after_sweep`` and the reduction, and a host read (a one-voxel lattice: one
      sweep's two passes, the rule, the reduction); the natural layout's kernels also copied c
      and launched ``mg_change`` each cycle.

    Not counted: the per-step checks whether IFN-γ and IL-12 are solved at all.
    ``fields``: field -> a row of :func:`analyse` (``sweeps_max``: the most sweeps or cycles of
    any replicate, 0 for a skipped solve); ``multigrid``: field -> level shapes."""
    launches = reads = 0
    natural = layout == "natural"
    for name, row in fields.items():
        n = int(row["sweeps_max"])
        if n <= 0:
            continue
        mg = bool(multigrid and name in multigrid)
        pose = (2 + (1 if cmax else 0)) if natural else 1
        fills = (6 if mg else 5) + (1 if cmax else 0)
        launches += pose + fills
        reads += 1
        if mg:
            L = len(multigrid[name])
            launches += (L - 1) + n * ((3 if L == 1 else 7 * (L - 1) + 2) + 1 + (2 if natural else 0))
            reads += n
        else:
            blocks = -(-n // poll)
            launches += (3 * poll + 1) * blocks
            reads += blocks
    return launches, reads


def step_cost(iterations: dict, solvers: dict) -> tuple[float, int, int]:
    """(device bytes per voxel, kernel launches, host reads) of one device step's field solves
    from what they did: ``iterations`` the phase's ``FieldsPhase.iterations`` (field -> sweeps or
    cycles per replicate, all zero for a skipped solve), ``solvers`` field -> its solver (a
    multigrid one has ``shapes``); the kernels of this checkout (:func:`device_bytes`,
    :func:`device_launches`)."""
    rows = {k: dict(sweeps_mean=float(np.mean(v)), sweeps_max=int(np.max(v, initial=0)))
            for k, v in iterations.items()}
    mg = {k: solvers[k].shapes for k in rows if hasattr(solvers[k], "shapes")}
    return (device_bytes({k: r["sweeps_mean"] for k, r in rows.items()}, True, mg),
            *device_launches(rows, mg))


def launch_overhead_us(calls: int = 2000) -> dict:
    """Microseconds of host time per launch that :mod:`gpusim.backends.interface` itself spends
    (a field sweep's 20 arguments, a kernel that does nothing, on this machine): ``launch``
    (every argument checked and cast at each call) and a launcher from ``bind`` (checked once;
    the solver loops use it).  The CUDA driver's and CuPy's part comes on top of either."""
    from gpusim.backends.interface import bind, launch

    class _Module:
        @staticmethod
        def get_function(name):
            return lambda grid, block, args: None

    c = np.zeros(64, np.float32)
    u8, u32 = np.zeros(64, np.uint8), np.zeros(4, np.uint32)
    args = dict(colour=0, R=1, Z=1, Y=8, X=8, three_d=0, dirichlet=0, bv=0.0, dh=1.0, omega=1.7,
                floor_on=0, floor=0.0, c=c, s=c, den=c, fixed=u8, active=u8, maxchg=u32,
                save=None, base=None)
    t0 = time.perf_counter()
    for _ in range(calls):
        launch(_Module, "fields_sor_colour", 64, **args)
    t1 = time.perf_counter()
    go = bind(_Module, "fields_sor_colour", 64, **args)
    for _ in range(calls):
        go()
    t2 = time.perf_counter()
    return dict(launch=round((t1 - t0) / calls * 1e6, 2), bound=round((t2 - t1) / calls * 1e6, 2))


def scenario_for(case: str, replicates: int, tolerance: float | None = None):
    """The scenario of a case (see the module docstring), ``replicates`` per batch."""
    from gpusim.scenario import load_scenario

    extra = {} if tolerance is None else {"run.field_tolerance": tolerance}
    if case.endswith("x3"):
        n = int(case[:-2])
        return load_scenario("large_3d", {"domain.x_voxels": n, "domain.y_voxels": n,
                                          "domain.z_voxels": n, "tumour.radius_um": 1200.0 * n / 160,
                                          "run.replicates": replicates, **extra})
    n = int(case)
    return load_scenario("iv_baseline", {"domain.x_voxels": n, "domain.y_voxels": n,
                                         "tumour.radius_um": 1500.0 * n / 200.0,
                                         "run.replicates": replicates, **extra})


def _recorder(name, fs, record: dict):
    inner = fs.solve

    def rec(c, a, s, fixed_mask=None, fixed_value=0.0):
        c0 = c.copy()
        it = inner(c, a, s, fixed_mask, fixed_value)
        record[name] = dict(c0=c0, a=np.array(a), s=np.array(s),
                            fixed=None if fixed_mask is None else np.array(fixed_mask),
                            fixed_value=float(fixed_value), c=c.copy(), sweeps=it.copy(),
                            tol=fs.tol, omega=fs.omega, floor=fs.floor, boundary=fs.boundary,
                            boundary_value=fs.boundary_value, D=fs.diffusion_um2_per_min,
                            h=fs.voxel_um, scale=getattr(fs, "scale", 0.0),
                            multigrid=list(fs.shapes) if hasattr(fs, "shapes") else None)
        return it

    return rec


def record_case(case: str, replicates: int, warmup: int, steps: int,
                tolerance: float | None = None) -> dict:
    """Run one case on the NumPy backend of the importable ``gpusim``: times, sweeps and the
    recorded solves of the last timed step (a dict; :func:`summary` reduces it)."""
    from gpusim.engine import Simulation

    sim = Simulation(scenario_for(case, replicates, tolerance))
    f = sim.fields
    for _ in range(warmup):
        sim.step()
    fields_s, step_s, sweeps_total, record = 0.0, 0.0, 0, {}
    orig = f.solve

    def timed(st):
        nonlocal fields_s
        t0 = time.perf_counter()
        orig(st)
        fields_s += time.perf_counter() - t0

    f.solve = timed
    for k in range(steps):
        wrapped = []
        if k == steps - 1:  # record the inputs and results of every solve of this step
            for name in FIELDS:
                fs = getattr(f, name)
                fs.solve = _recorder(name, fs, record)
                wrapped.append(fs)
        t0 = time.perf_counter()
        sim.step()
        step_s += time.perf_counter() - t0
        sweeps_total += sum(int(np.sum(v)) for v in f.iterations.values())
        for fs in wrapped:
            del fs.solve
    vox = int(np.prod(sim.state.kind.shape[1:]))
    return dict(case=case, replicates=replicates, voxels=vox, steps=steps, warmup=warmup,
                layout=coeff_layout(), step_seconds=step_s / steps, fields_seconds=fields_s / steps,
                seconds_per_voxel_sweep=fields_s / max(1, sweeps_total) / vox, record=record)


def analyse(res: dict, check: int = 2) -> dict:
    """Per-field sweeps (all replicates) and error against the float64 converged solution (the
    first ``check`` replicates: the exact solves are the slow part)."""
    from gpusim.model.fields import FieldSolver
    from gpusim.model.fields_exact import exact_solution

    out = {}
    for name, r in res["record"].items():
        row = dict(solver="multigrid" if r.get("multigrid") else "sor",
                   sweeps_mean=float(np.mean(r["sweeps"])), sweeps_max=int(np.max(r["sweeps"])),
                   omega=r["omega"], tol=r["tol"])
        if r["floor"] is None:
            k = min(check, r["c"].shape[0])
            fs = FieldSolver((k,) + r["c"].shape[1:], diffusion_um2_per_min=r["D"],
                             voxel_um=r["h"], boundary=r["boundary"],
                             boundary_value=r["boundary_value"], omega=r["omega"], tol=r["tol"])
            ex = exact_solution(fs, r["a"][:k], r["s"][:k],
                                None if r["fixed"] is None else r["fixed"][:k], r["fixed_value"],
                                x0=r["c"][:k])
            err = float(np.abs(r["c"][:k].astype(np.float64) - ex).max())
            row.update(err=err, err_over_tol=err / r["tol"] if r["tol"] else None,
                       max_value=float(np.abs(ex).max()))
        out[name] = row
    return out


def summary(res: dict) -> dict:
    """The JSON row of one recorded case."""
    fields = analyse(res)
    sweeps = {k: v["sweeps_mean"] for k, v in fields.items()}
    cmax = any(r.get("scale", 0.0) > 0 for r in res["record"].values())
    mg = {k: r["multigrid"] for k, r in res["record"].items() if r.get("multigrid")}
    layout = res.get("layout", "natural")
    launches, reads = device_launches(fields, mg, layout=layout, cmax=cmax)
    return dict(case=res["case"], replicates=res["replicates"], voxels=res["voxels"],
                timed_steps=res["steps"], warmup_steps=res["warmup"],
                step_seconds=round(res["step_seconds"], 4),
                fields_seconds=round(res["fields_seconds"], 4),
                ns_per_voxel_sweep=round(res["seconds_per_voxel_sweep"] * 1e9, 3),
                device_bytes_per_voxel_step=round(device_bytes(sweeps, cmax, mg, layout), 1),
                coeff_layout=layout, device_launches_per_step=launches,
                device_host_reads_per_step=reads, fields=fields)


def run_field_bench(cases=DEFAULT_CASES, replicates: int | None = None, steps: int = 3,
                    warmup: int = 4, log=None) -> dict:
    """Every case on the NumPy backend of this checkout; a JSON-ready record with the device,
    the commit and the date.  ``replicates``: per case (default 8 in 2D, 1 in 3D)."""
    from gpusim.backends import cpu_description
    from gpusim.study.bench import git_commit

    cases = parse_cases(cases)
    if steps < 1 or warmup < 0 or (replicates is not None and replicates < 1):
        raise ValueError(f"steps must be >= 1, warmup >= 0 and replicates >= 1, got steps={steps}, "
                         f"warmup={warmup}, replicates={replicates}")
    rows = []
    for case in cases:
        R = replicates or (1 if case.endswith("x3") else 8)
        if log:
            log(f"bench --fields {case} x {R} ...")
        rows.append(summary(record_case(case, R, warmup, steps)))
    return dict(benchmark="bench_fields", schema="gpusim-bench-fields/1", backend="numpy",
                device=cpu_description(), commit=git_commit(),
                launch_overhead_us=launch_overhead_us(),
                date_utc=_dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
                cases=rows)


def format_table(record: dict) -> str:
    """One line per (case, field): solver, sweeps (cycles for multigrid), error in units of tol;
    one per case for the cost."""
    lines = [f"{'case':<8} {'field':<10} {'solver':<10} {'sweeps':>8} {'max':>5} {'err/tol':>8}"]
    for row in record["cases"]:
        for name, f in row["fields"].items():
            e = f.get("err_over_tol")
            lines.append(f"{row['case']:<8} {name:<10} {f.get('solver', 'sor'):<10} "
                         f"{f['sweeps_mean']:8.1f} {f['sweeps_max']:5d} "
                         + (f"{e:8.3f}" if e is not None else f"{'-':>8}"))
        lines.append(f"{row['case']:<8} step {row['step_seconds']:.3f} s, fields "
                     f"{row['fields_seconds']:.3f} s, {row['ns_per_voxel_sweep']:.2f} ns/voxel-sweep, "
                     f"{row['device_bytes_per_voxel_step']:.0f} device B/voxel-step, "
                     f"{row['device_launches_per_step']} launches and "
                     f"{row['device_host_reads_per_step']} host reads a step")
    return "\n".join(lines)
