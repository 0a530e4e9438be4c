"""Every field of a real engine step ends within its stated bound (docs/fields.md): the max-norm
distance of the float32 result to the float64 converged solution of the same discrete system
(:func:`gpusim.model.fields_exact.exact_solution`) is at most the solver's ``tol``, on a 2D and a 3D
state taken from engine runs."""

from __future__ import annotations

import numpy as np
import pytest

from gpusim.engine import Simulation
from gpusim.model.fields_exact import exact_solution
from gpusim.scenario import load_scenario

FIELDS = ("o2", "glucose", "chemokine", "tgfb", "ifng", "il12")


def recorded_step(sim):
    """Run one step of ``sim`` and return, per field solved in it, (solver, inputs, result)."""
    rec = {}
    for name in FIELDS:
        fs = getattr(sim.fields, name)

        def solve(c, a, s, fixed_mask=None, fixed_value=0.0, _n=name, _fs=fs,
                  _inner=fs.solve):
            inputs = (np.array(a), np.array(s), None if fixed_mask is None else np.array(fixed_mask),
                      fixed_value)
            it = _inner(c, a, s, fixed_mask, fixed_value)
            rec[_n] = (_fs, inputs, c.copy(), it)
            return it

        fs.solve = solve
    try:
        sim.step()
    finally:
        for name in FIELDS:
            del getattr(sim.fields, name).solve
    return rec


CASES = {
    "2d": ("iv_baseline", {"domain.x_voxels": 64, "domain.y_voxels": 64, "tumour.radius_um": 480.0,
                           "run.replicates": 2}, 25),
    "3d": ("large_3d", {"domain.x_voxels": 22, "domain.y_voxels": 22, "domain.z_voxels": 22,
                        "tumour.radius_um": 165.0, "run.replicates": 1}, 8),
}


@pytest.mark.parametrize("solver", ["sor", "multigrid"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_every_field_within_its_bound_on_a_real_state(case, solver):
    name, overrides, steps = CASES[case]
    sim = Simulation(load_scenario(name, {**overrides, "run.field_solver": solver}))
    for _ in range(steps):
        sim.step()
    rec = recorded_step(sim)
    assert {"o2", "glucose", "chemokine", "tgfb"} <= set(rec)
    kinds = {type(fs).__name__ for fs, *_ in rec.values()}
    assert kinds == {"FieldSolver" if solver == "sor" else "MultigridSolver"}
    for field, (fs, (a, s, fixed, fv), c, it) in rec.items():
        assert (it < fs.max_iter).all(), field
        exact = exact_solution(fs, a, s, fixed, fv)
        err = np.abs(c.astype(np.float64) - exact).max()
        assert err <= fs.tol, (field, err, fs.tol, it)


def test_field_bench_record_and_cli(tmp_path):
    """gpusim bench --fields: the record's per-field numbers are the solves' own (sweeps of the
    recorded step, error against the float64 solve, bytes from the kernel count), and bad cases
    are refused with the allowed form."""
    import json

    from click.testing import CliRunner

    from gpusim.cli import main
    from gpusim.study.fieldbench import device_bytes, multigrid_bytes, run_field_bench

    rec = run_field_bench(["24"], replicates=2, steps=2, warmup=1)
    assert rec["backend"] == "numpy" and rec["commit"] and rec["date_utc"].endswith("Z")
    (row,) = rec["cases"]
    assert row["voxels"] == 24 * 24 and row["replicates"] == 2 and row["timed_steps"] == 2
    f = row["fields"]
    assert {"o2", "glucose", "chemokine", "tgfb"} <= set(f)
    for v in f.values():
        assert 1 <= v["sweeps_mean"] <= v["sweeps_max"]
        assert v["err_over_tol"] == pytest.approx(v["err"] / v["tol"])
    sweeps = {k: v["sweeps_mean"] for k, v in f.items()}
    assert all(v["solver"] == "sor" for v in f.values())   # 24^2: below auto's multigrid size
    # per solve, the coefficients posed as the problem: kind, agent map, c (1 + 4 + 4), the
    # chemokine's IFN-γ / TGF-β's O2 (4), den and s (8), the vessels held (mask and c, 5);
    # per SOR sweep 20 B, 21 with the held mask.  The natural layout's kernels before it:
    # coefficients (c only for the backward-Euler fields), set-up, max |c|; 28 / 30 a sweep
    pose = {"o2": 22, "glucose": 22, "chemokine": 21, "tgfb": 21, "ifng": 17, "il12": 17}
    sweep = {"o2": 21, "glucose": 21}
    want = sum(pose[k] + sweep.get(k, 20) * n for k, n in sweeps.items())
    assert row["coeff_layout"] == "colour-split"
    assert device_bytes(sweeps, True) == pytest.approx(want)
    assert row["device_bytes_per_voxel_step"] == pytest.approx(want, abs=0.05)
    natural = {"o2": 34, "glucose": 34, "chemokine": 37, "tgfb": 37, "ifng": 33, "il12": 33}
    assert device_bytes(sweeps, True, layout="natural") == pytest.approx(
        sum(natural[k] + (30 if k in sweep else 28) * n for k, n in sweeps.items()))
    # launches: the problem and 6 fills per solve, 3 per sweep in blocks of 8 sweeps (until the
    # slowest replicate is done) and the flags' reduction per block; a host read per block and
    # the counts at the end
    blocks = [-(-v["sweeps_max"] // 8) for v in f.values()]
    assert row["device_launches_per_step"] == sum(7 + 25 * b for b in blocks)
    assert row["device_host_reads_per_step"] == sum(b + 1 for b in blocks)
    assert rec["launch_overhead_us"]["bound"] > 0 and rec["launch_overhead_us"]["launch"] > 0
    # a multigrid solve: its set-up and cycles (levels 24, 12, 6, 3, 2, 1)
    shapes = [(1, 24, 24), (1, 12, 12), (1, 6, 6), (1, 3, 3), (1, 2, 2), (1, 1, 1)]
    setup, cycle = multigrid_bytes(shapes)
    mg = {"glucose": shapes}
    assert device_bytes(sweeps, True, mg) == pytest.approx(   # the problem also writes a: 4 B
        want + 4 - 21 * sweeps["glucose"] + setup + cycle * sweeps["glucose"])
    assert row["fields_seconds"] <= row["step_seconds"]

    out = tmp_path / "f.json"
    res = CliRunner().invoke(main, ["bench", "--fields", "16", "-r", "1", "--steps", "1",
                                    "--warmup", "0", "--json", str(out)])
    assert res.exit_code == 0, res.output
    assert "err/tol" in res.output and json.loads(out.read_text())["cases"][0]["voxels"] == 256
    res = CliRunner().invoke(main, ["bench", "--fields", "16q"])
    assert res.exit_code != 0 and "allowed 'N'" in res.output
    res = CliRunner().invoke(main, ["bench", "--fields", "16", "--backend", "cupy"])
    assert res.exit_code != 0 and "NumPy backend" in res.output


def test_multigrid_bytes_by_hand():
    """The kernel byte count of a sweep and of a multigrid solve, by hand for two small
    hierarchies, in the colour-split layout of the kernels and the natural one before it."""
    from gpusim.study.fieldbench import multigrid_bytes, sweep_bytes

    # a colour pass: c every sector (4) and half written (2); colour-split, its half of s, den
    # and the mask (2 + 2 + 0.5); natural, all of them (4 + 4 + 1)
    assert sweep_bytes("colour-split", True) == 2 * (4 + 2 + 2 + 2 + 0.5) == 21
    assert sweep_bytes("colour-split", False) == 20
    assert sweep_bytes("natural", True) == 2 * (4 + 2 + 4 + 4 + 1) == 30
    assert sweep_bytes("natural", False) == 28
    with pytest.raises(ValueError, match="allowed colour-split, natural"):
        sweep_bytes("diagonal", True)
    # one voxel: a sweep per cycle, which measures the cycle's change itself (natural: and
    # the copy and change of c, 16 B); no set-up
    assert multigrid_bytes([(1, 1, 1)]) == (0.0, 21)
    assert multigrid_bytes([(1, 1, 1)], "natural") == (0.0, 16 + 30)
    # 2x2 -> 1: set-up reads a and the mask (5 B) and writes a, den at 1/4 size (2 B);
    # a cycle: the change (c saved by the first smoothing and read by the last: 8 B; natural:
    # copied and compared, 16 B), level 0 two sweeps (42; natural 60) + residual (17) +
    # restrict read (4) + prolong (9), level 1 written by the restriction and read by the
    # prolongation (12 x 1/4) and solved by mg_coarsest (16 x 1/4)
    assert multigrid_bytes([(1, 2, 2), (1, 1, 1)]) == (5 + 2, 8 + 72 + 3 + 4)
    assert multigrid_bytes([(1, 2, 2), (1, 1, 1)], "natural") == (5 + 2, 16 + 90 + 3 + 4)
    # without held voxels: no mask read by the coarsening, the sweeps, residual and prolongation
    assert multigrid_bytes([(1, 2, 2), (1, 1, 1)], held=False) == (4 + 2, 8 + 40 + 16 + 4 + 8 + 3 + 4)


def test_device_launches_by_hand():
    """The launches and host reads of a step's solves, by hand."""
    from gpusim.study.fieldbench import device_launches

    two = [(1, 2, 2), (1, 1, 1)]
    rows = {"o2": {"sweeps_max": 9}, "glucose": {"sweeps_max": 3}, "ifng": {"sweeps_max": 0}}
    # o2: the problem + 6 fills, two blocks of (8 sweeps x 3 launches + the flags' reduction),
    # 2 + 1 reads (the blocks, the counts); glucose (SOR): 7 + 25, 2 reads; ifng skipped
    assert device_launches(rows) == (7 + 50 + 7 + 25, 3 + 2)
    # glucose by multigrid on 2x2 -> 1: the problem + 7 fills, 1 mg_coarsen, 3 cycles x (7 +
    # coarsest, rule, reduction), a read per cycle and the counts; on one voxel: 4 a cycle
    # (two passes, rule, reduction)
    assert device_launches(rows, {"glucose": two}) == (57 + 8 + 1 + 3 * 10, 3 + 4)
    assert device_launches(rows, {"glucose": [(1, 1, 1)]}) == (57 + 8 + 3 * 4, 3 + 4)
    assert device_launches(rows, poll=1) == (7 + 9 * 4 + 7 + 3 * 4, 10 + 4)
    # the natural layout's kernels: coefficients, set-up and max |c| per solve (no max |c|,
    # and one fill fewer, before the rounding-level stop); a copy of c and mg_change per cycle
    assert device_launches(rows, layout="natural") == (9 + 50 + 9 + 25, 3 + 2)
    assert device_launches(rows, layout="natural", cmax=False) == (7 + 50 + 7 + 25, 3 + 2)
    assert device_launches(rows, {"glucose": two}, layout="natural") == (59 + 10 + 1 + 3 * 12, 3 + 4)


def test_step_cost_from_a_phase_record():
    """bench_gpu's count of a device step's field solves from the phase's iterations: the mean
    sweeps for bytes (a converged replicate's later sweeps are no-ops), the max for launches."""
    from types import SimpleNamespace

    from gpusim.study.fieldbench import multigrid_bytes, step_cost

    two = [(1, 2, 2), (1, 1, 1)]
    iterations = {"oxygen": np.array([9, 3]), "glucose": np.array([2, 3]), "ifng": np.zeros(2, int)}
    solvers = {"oxygen": SimpleNamespace(), "glucose": SimpleNamespace(shapes=two),
               "ifng": SimpleNamespace()}
    setup, cycle = multigrid_bytes(two)
    b, n, r = step_cost(iterations, solvers)
    assert b == pytest.approx(22 + 21 * 6 + 26 + setup + cycle * 2.5)
    assert (n, r) == (7 + 50 + 8 + 1 + 3 * 10, 3 + 4)


def test_rounding_level_stop_needs_a_measured_ratio():
    """The rounding-level stop (d <= noise with a change that did not shrink) needs a measured
    ratio: r = 1 on the first sweep is a definition, not evidence of stagnation.  A warm start
    10 tol off in a slow mode (uniform offset, weak uniform sink, no flux, no source: x* = 0;
    Gauss-Seidel, so the changes shrink from the first sweep on) changes by about
    2 a / den x 10 tol = 0.017 tol in its first sweep, below the rounding level
    5 x 2^-18 = 0.038 tol: the solve must go on until rule (1) holds (about 3500 sweeps at the
    rate 1 - a / den), not stop after one sweep 10 tol from x*."""
    from gpusim.model.fields import FieldSolver

    shape = (1, 1, 24, 24)
    fs = FieldSolver(shape, diffusion_um2_per_min=2340.0, voxel_um=20.0, boundary="neumann",
                     omega=1.0, tol=5e-4, scale=5.0, max_iter=20_000)
    a = np.full(shape, 0.02, np.float32)
    s = np.zeros(shape, np.float32)
    c = np.full(shape, 10 * 5e-4, np.float32)
    it = fs.solve(c, a, s)
    exact = exact_solution(fs, a, s)
    assert np.abs(exact).max() < 1e-12
    assert 1 < it[0] < fs.max_iter
    assert np.abs(c.astype(np.float64) - exact).max() <= fs.tol
