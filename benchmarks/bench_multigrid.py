"""The multigrid field solver against red-black SOR: the measurements behind its settings and
behind ``run.field_solver = "auto"`` (docs/fields.md, "Multigrid" and "Choosing the solver"), and
what else could cut SOR's sweeps (docs/fields.md, "What else was measured").

``--part settings`` records one engine step's solves per case
(:func:`gpusim.study.fieldbench.record_case`) and replays each field's system from the same warm
start: SOR (its sweeps and error), multigrid with the stopping rule's floor ``rho_min`` at
0.1 / 0.2 / 0.3 / 0.4 (cycles and error at the stop), and the error after each of the first four
cycles, with the estimate the rule would form after cycle 2 from that cycle's ratio alone (why a
stop needs at least three cycles).  Errors are max-norm distances to the float64 solution of the
same discrete system, in units of ``tol``.

``--part choice`` runs whole engine steps (NumPy backend, after ``--warmup`` steps, ``--steps``
timed) with each assignment of fields to multigrid (none = all SOR, glucose, glucose and TGF-β,
every field but the chemokine, every field) and reports step and fields time, device bytes per
voxel-step (:func:`gpusim.study.fieldbench.device_bytes`), and per field the sweeps or cycles and
the error.

``--part sweeps`` measures what else could cut SOR's sweeps at the same stopping rule: each SOR
field's recorded solve replayed with relaxation factors below the defaults (1.3-1.7; sweeps and
error), and whole runs (``--warmup`` steps, then ``--steps`` more) in which every solve is also
replayed from a warm start extrapolated linearly in time from the field's last two solutions
(``max(2 c_n - c_{n-1}, 0)``) instead of from ``c_n`` (mean sweeps or cycles of each, per field).

    python benchmarks/bench_multigrid.py --part settings [--cases 16,100,400,12x3,75x3]
    python benchmarks/bench_multigrid.py --part choice [--cases 100,200,400,75x3]
                                          [--out benchmarks/results/multigrid_choice.json]
    python benchmarks/bench_multigrid.py --part sweeps [--cases 100,400,75x3]
                                          [--out benchmarks/results/field_sweeps.json]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
ASSIGNMENTS = {
    "none": (),
    "glucose": ("glucose",),
    "glucose+tgfb": ("glucose", "tgfb"),
    "all-but-chemokine": ("oxygen", "glucose", "tgfb", "ifng", "il12"),
    "all": ("oxygen", "glucose", "chemokine", "tgfb", "ifng", "il12"),
}


def replay(r: dict) -> dict:
    """SOR and multigrid on one recorded solve (replicates of the record), from its warm start."""
    from gpusim.model.fields import FieldSolver
    from gpusim.model.fields_exact import exact_solution
    from gpusim.model.multigrid import MultigridSolver

    kw = dict(diffusion_um2_per_min=r["D"], voxel_um=r["h"], boundary=r["boundary"],
              boundary_value=r["boundary_value"], scale=r["scale"])
    args = (r["a"], r["s"], r["fixed"], r["fixed_value"])
    shape = r["c"].shape
    sor = FieldSolver(shape, omega=r["omega"], tol=r["tol"], **kw)
    exact = exact_solution(sor, *args, x0=r["c"])

    def err(c):
        return float(np.abs(c.astype(np.float64) - exact).max() / r["tol"])

    out = {}
    c = r["c0"].copy()
    out["sor"] = dict(sweeps=float(sor.solve(c, *args).mean()), err_over_tol=err(c))
    for rho_min in (0.1, 0.2, 0.3, 0.4):
        c = r["c0"].copy()
        it = MultigridSolver(shape, tol=r["tol"], rho_min=rho_min, **kw).solve(c, *args)
        out[f"rho_min={rho_min}"] = dict(cycles=float(it.mean()), err_over_tol=err(c))
    prev, d, errs = r["c0"].astype(np.float64), [], []
    for k in (1, 2, 3, 4):
        c = r["c0"].copy()
        MultigridSolver(shape, tol=0.0, max_iter=k, **kw).solve(c, *args)
        d.append(float(np.abs(c - prev).max()))
        errs.append(err(c))
        prev = c.astype(np.float64)
    rho = max(d[1] / d[0], 0.1) if d[0] > 0 else 0.1
    out["per_cycle"] = dict(err_over_tol=errs, change=d,
                            cycle2_estimate_over_tol=2 * d[1] * rho / (1 - rho) / r["tol"])
    return out


def part_settings(cases) -> dict:
    from gpusim.study.fieldbench import record_case

    res = {}
    for case in cases:
        rec = record_case(case, 1 if case.endswith("x3") else 2, 3, 1)["record"]
        for name, r in rec.items():
            if r["floor"] is not None:
                continue
            row = res[f"{case}/{name}"] = replay(r)
            pc = row["per_cycle"]
            print(f"{case:6} {name:10} SOR {row['sor']['sweeps']:5.1f} sweeps "
                  f"{row['sor']['err_over_tol']:.2f} | "
                  + " ".join(f"{k[8:]}: {v['cycles']:.1f} {v['err_over_tol']:.2f}"
                             for k, v in row.items() if k.startswith("rho_min"))
                  + " | err by cycle " + " ".join(f"{e:.2f}" for e in pc["err_over_tol"])
                  + f" | cycle-2 estimate {pc['cycle2_estimate_over_tol']:.2f}", flush=True)
    return res


def part_choice(cases, steps: int, warmup: int) -> dict:
    from gpusim.model import environment
    from gpusim.study.fieldbench import record_case, summary

    res = {}
    saved = environment.MULTIGRID_AUTO, environment.MULTIGRID_AUTO_MIN_VOXELS
    environment.MULTIGRID_AUTO_MIN_VOXELS = {2: 0, 3: 0}
    try:
        for case in cases:
            R = 1 if case.endswith("x3") else 8
            for name, fields in ASSIGNMENTS.items():
                environment.MULTIGRID_AUTO = {2: fields, 3: fields}
                row = res[f"{case}/{name}"] = summary(record_case(case, R, warmup, steps))
                print(f"{case:6} {name:18} step {row['step_seconds']:.3f} s fields "
                      f"{row['fields_seconds']:.3f} s {row['device_bytes_per_voxel_step']:6.0f} B | "
                      + " ".join(f"{k}:{v['sweeps_mean']:.1f}/{v.get('err_over_tol') or 0:.2f}"
                                 for k, v in row["fields"].items()), flush=True)
    finally:
        environment.MULTIGRID_AUTO, environment.MULTIGRID_AUTO_MIN_VOXELS = saved
    return res


def part_sweeps(cases, steps: int, warmup: int) -> dict:
    from gpusim.engine import Simulation
    from gpusim.model.fields import FieldSolver
    from gpusim.model.fields_exact import exact_solution
    from gpusim.study.fieldbench import FIELDS, record_case, scenario_for

    res = {}
    for case in cases:
        R = 1 if case.endswith("x3") else 8
        for name, r in record_case(case, R, warmup, 1)["record"].items():
            if r.get("multigrid"):
                continue
            k = min(2, R)
            args = (r["a"][:k], r["s"][:k], None if r["fixed"] is None else r["fixed"][:k],
                    r["fixed_value"])
            kw = dict(diffusion_um2_per_min=r["D"], voxel_um=r["h"], boundary=r["boundary"],
                      boundary_value=r["boundary_value"], tol=r["tol"], floor=r["floor"],
                      scale=r["scale"])
            exact, row = None, {}
            for omega in (1.3, 1.4, 1.5, 1.6, 1.7):
                fs = FieldSolver((k,) + r["c"].shape[1:], omega=omega, **kw)
                c = r["c0"][:k].copy()
                sweeps = float(fs.solve(c, *args).mean())
                if r["floor"] is None and exact is None:
                    exact = exact_solution(fs, *args, x0=r["c"][:k])
                err = (None if exact is None
                       else float(np.abs(c.astype(np.float64) - exact).max() / r["tol"]))
                row[f"omega={omega}"] = dict(sweeps=sweeps, err_over_tol=err)
            res[f"{case}/{name}/omega"] = row
            print(f"{case:6} {name:10} default omega {r['omega']} | " + " ".join(
                f"{k[6:]}: {v['sweeps']:.1f}" + ("" if v["err_over_tol"] is None
                                                 else f" {v['err_over_tol']:.2f}")
                for k, v in row.items()), flush=True)
        sim = Simulation(scenario_for(case, R))
        last, count = {}, {n: {"warm": [], "extrapolated": []} for n in FIELDS}
        for name in FIELDS:
            fs = getattr(sim.fields, name)

            def solve(c, a, s, fixed_mask=None, fixed_value=0.0, _name=name, _inner=fs.solve):
                prev = last.get(_name)
                if prev is not None and sim.state.step >= warmup:
                    for mode, g in (("warm", c.copy()),
                                    ("extrapolated", np.maximum(c + (c - prev), 0).astype(c.dtype))):
                        count[_name][mode].append(float(_inner(g, a, s, fixed_mask, fixed_value).mean()))
                last[_name] = c.copy()
                return _inner(c, a, s, fixed_mask, fixed_value)

            fs.solve = solve
        for _ in range(warmup + steps):
            sim.step()
        row = {n: {m: float(np.mean(v)) for m, v in d.items()} for n, d in count.items() if d["warm"]}
        res[f"{case}/warm_start"] = row
        print(f"{case:6} warm start c_n / extrapolated: " + " ".join(
            f"{n}: {v['warm']:.1f} / {v['extrapolated']:.1f}" for n, v in row.items()), flush=True)
    return res


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--part", choices=("settings", "choice", "sweeps"), required=True)
    ap.add_argument("--cases", default=None)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=4)
    ap.add_argument("--out", default=None, help="also write the results as JSON")
    a = ap.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from gpusim.backends import cpu_description
    from gpusim.study.bench import git_commit

    if a.part == "settings":
        res = part_settings((a.cases or "16,100,400,12x3,75x3").split(","))
    elif a.part == "choice":
        res = part_choice((a.cases or "100,200,400,75x3").split(","), a.steps, a.warmup)
    else:
        res = part_sweeps((a.cases or "100,400,75x3").split(","), a.steps, a.warmup)
    if a.out:
        rec = dict(benchmark="bench_multigrid", part=a.part, backend="numpy",
                   device=cpu_description(), commit=git_commit(),
                   date_utc=dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
                   args=vars(a), results=res)
        Path(a.out).write_text(json.dumps(rec, indent=1) + "\n")


if __name__ == "__main__":
    main()
