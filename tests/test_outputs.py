"""Observation outputs (issue 11, item 7): each checked against a value computed independently —
hand-built states with known distances, profiles and histograms, synthetic series for progression
and persistence, event sums against cumulative counters — plus the file, the reader's tolerance of
files without the new datasets, and summary / compare / report showing them."""

from __future__ import annotations

import math

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from gpusim.study import compare as an
from gpusim.cli import main
from gpusim.engine import ENDPOINTS, EVENTS, METRICS, PROFILES, SERIES_ENDPOINTS, Simulation
from gpusim.io import ResultWriter, open_results
from gpusim.model import outputs as obs
from gpusim.model.lattice import Kind, TState
from gpusim.study.runner import run
from gpusim.scenario import load_scenario

H = 20.0
SMALL = ["domain.x_voxels=24", "domain.y_voxels=24", "tumour.radius_um=120",
         "run.output_interval_hours=2", "run.snapshot_interval_hours=0",
         "run.checkpoint_interval_hours=0", "run.replicates=3", "delivery.dose_cells=3e8"]


# -- distance transform and depth ---------------------------------------------------------------
@pytest.mark.parametrize("shape", [(1, 30, 40), (7, 9, 11), (12, 5, 8), (1, 1, 9)])
def test_edt_matches_scipy(shape):
    nd = pytest.importorskip("scipy.ndimage")
    rng = np.random.default_rng(sum(shape))
    m = rng.random(shape) < 0.15
    m.flat[0] = True
    ref = nd.distance_transform_edt(~m, sampling=H)
    np.testing.assert_allclose(np.sqrt(obs.edt_sq(m, H)), ref, rtol=0, atol=1e-9)
    pts = np.nonzero(rng.random(shape) < 0.3)
    np.testing.assert_allclose(np.sqrt(obs.edt_sq(m, H, pts)), ref[pts], rtol=0, atol=1e-9)


def test_edt_without_features_is_infinite():
    assert np.isinf(obs.edt_sq(np.zeros((1, 4, 5), bool), H)).all()


def _square(n=21, lo=6, hi=14):
    kind = np.full((1, n, n), Kind.HEALTHY, np.uint8)
    kind[0, lo:hi + 1, lo:hi + 1] = Kind.TUMOUR
    return kind


def test_signed_depth_of_hand_built_square():
    # tumour voxels 6..14 in y and x: the centre (10, 10) is 5 voxels from the nearest outside
    # centre, the rim voxel 1, the voxel just outside 1 voxel from the nearest tumour centre
    mass = obs.tumour_mass(_square())
    flat = lambda y, x: y * 21 + x
    pos = np.array([flat(10, 10), flat(10, 14), flat(10, 15), flat(15, 15), flat(10, 18), flat(8, 9)])
    want = [5 * H - H / 2, H / 2, -H / 2, -(math.sqrt(2) * H - H / 2), -(4 * H - H / 2),
            3 * H - H / 2]
    np.testing.assert_allclose(obs.signed_depth(mass, H, pos), want, rtol=0, atol=1e-9)
    # no tumour: NaN
    assert np.isnan(obs.signed_depth(np.zeros_like(mass), H, pos)).all()


def test_closing_fills_a_killed_cell_hole_and_keeps_the_outline():
    kind = _square()
    kind[0, 10, 10] = Kind.EMPTY  # a killed cell's voxel, cleared
    kind[0, 12, 9] = Kind.APOPTOTIC
    open_mass = obs.tumour_mass(kind, 0)
    closed = obs.tumour_mass(kind, 2)
    assert not open_mass[0, 10, 10] and closed[0, 10, 10] and closed[0, 12, 9]
    np.testing.assert_array_equal(closed, obs.tumour_mass(_square()))  # a square is closed
    d = obs.signed_depth(closed, H, np.array([10 * 21 + 10]))
    assert d[0] == pytest.approx(5 * H - H / 2)
    assert obs.signed_depth(open_mass, H, np.array([10 * 21 + 10]))[0] == pytest.approx(-H / 2)


def test_depth_stats_are_numpy_mean_and_quantiles():
    d = np.array([-30.0, 10.0, np.nan, 50.0, 90.0])
    s = obs.depth_stats(d)
    f = d[np.isfinite(d)]
    assert s["mean"] == pytest.approx(f.mean())
    for q in obs.DEPTH_QUANTILES:
        assert s[f"p{round(q * 100)}"] == pytest.approx(np.quantile(f, q))
    assert all(math.isnan(v) for v in obs.depth_stats(np.array([np.nan])).values())


# -- a hand-built state in a Simulation ----------------------------------------------------------
def _sim_with(kind2d, cells, exh):
    """A 2-replicate Simulation on a 1 x 21 x 21 lattice with the given tissue (both replicates)
    and CAR-T cells (replicate 0 only): cells = [(y, x, state)]."""
    sc = load_scenario("quickstart", ["domain.x_voxels=21", "domain.y_voxels=21", "tumour.radius_um=100",
                                      "run.replicates=2", "outputs.profile_bins=5"])
    sim = Simulation(sc)
    st = sim.state
    st.kind[:] = kind2d
    st.t_count[:] = 0
    st.t_state[:] = 0
    for i, ((y, x, s), e) in enumerate(zip(cells, exh)):
        st.t_pos[0, i] = y * 21 + x
        st.t_state[0, i] = s
        st.t_exh[0, i] = e
    st.t_count[0] = len(cells)
    return sim


def test_depth_profiles_and_histogram_of_a_hand_built_state():
    cells = [(10, 10, TState.EFFECTOR), (10, 14, TState.EXHAUSTED), (10, 15, TState.MEMORY),
             (0, 0, TState.EFFECTOR)]
    exh = [0.0, 0.95, 1.0, 0.35]
    sim = _sim_with(_square(), cells, exh)
    m = sim.metrics()
    depths = np.array([5 * H - H / 2, H / 2, -H / 2, -(math.hypot(6, 6) * H - H / 2)])
    assert m["infiltration_depth_mean_um"][0] == pytest.approx(depths.mean())
    for q in (10, 50, 90):
        assert m[f"infiltration_depth_p{q}_um"][0] == pytest.approx(np.quantile(depths, q / 100))
    assert m["car_t_inside_tumour_fraction"][0] == pytest.approx(0.5)
    assert np.isnan(m["infiltration_depth_mean_um"][1])  # no CAR-T cell in replicate 1

    p = sim.profiles()
    assert set(p) == set(PROFILES)
    # radial shells: distance of voxel centres from the nodule centre (10.5 voxels = 210 µm)
    c = 10.5 * H
    yy, xx = np.mgrid[0:21, 0:21]
    dist = np.hypot((yy + 0.5) * H - c, (xx + 0.5) * H - c)
    edges = np.linspace(0, dist.max(), 6)
    np.testing.assert_allclose(sim.profile_bins()["car_t_radial"][0], edges)
    want_car = np.histogram([dist[y, x] for y, x, _ in cells], bins=edges)[0]
    np.testing.assert_array_equal(p["car_t_radial"][0], want_car)
    np.testing.assert_array_equal(p["car_t_radial"][1], 0)
    want_tum = np.histogram(dist[_square()[0] == Kind.TUMOUR], bins=edges)[0]
    np.testing.assert_array_equal(p["tumour_radial"][0], want_tum)
    np.testing.assert_array_equal(p["tumour_radial"][1], want_tum)
    # exhaustion: 10 bins, the last closed (np.histogram's convention)
    np.testing.assert_array_equal(p["exhaustion_histogram"][0], np.histogram(exh, bins=obs.EXHAUSTION_EDGES)[0])

    ep = sim.endpoints()
    assert ep["final_car_t_effector"][0] == 2 and ep["final_car_t_exhausted"][0] == 1
    assert ep["final_car_t_memory"][0] == 1 and ep["final_tumour_cells"][0] == 81
    assert ep["final_healthy_cells"][0] == 21 * 21 - 81
    assert set(ep) == set(ENDPOINTS)
    for k in SERIES_ENDPOINTS:  # no series given: fill values
        assert np.isnan(ep[k]).all() if ep[k].dtype.kind == "f" else (ep[k] == -1).all()


def test_signal_metrics_are_domain_mean_and_max():
    sim = _sim_with(_square(), [], [])
    st = sim.state
    rng = np.random.default_rng(3)
    for k in ("ifng", "il12", "tgfb"):
        getattr(st, k)[:] = rng.random(st.kind.shape, dtype=np.float32)
    m = sim.metrics()
    for k in ("ifng", "il12", "tgfb"):
        a = getattr(st, k).reshape(2, -1).astype(np.float64)
        np.testing.assert_allclose(m[f"mean_{k}"], a.mean(axis=1), rtol=1e-12)
        np.testing.assert_array_equal(m[f"max_{k}"], a.max(axis=1))


# -- endpoints from synthetic series -------------------------------------------------------------
def test_time_to_progression_on_synthetic_series():
    t = np.arange(6, dtype=float) * 2.0
    tum = np.array([[100, 80, 60, 70, 73, 90],     # nadir 60: 73 > 72 at t = 8
                    [100, 110, 121, 130, 90, 90],  # nadir 100: 121 > 120 at t = 4
                    [100, 90, 100, 108, 108, 108],  # 108 = 1.2 x 90: not strictly above
                    [10, 0, 0, 0, 0, 0],            # cleared: never progresses
                    [50, 50, 50, 50, 50, 61]])      # at the last output
    ttp, ev = obs.progression(t, tum, 1.2)
    np.testing.assert_array_equal(ttp, [8.0, 4.0, np.nan, np.nan, 10.0])
    np.testing.assert_array_equal(ev, [1, 1, 0, 0, 1])
    assert ev.dtype == np.int8


def test_persistence_on_synthetic_series():
    t = np.arange(5, dtype=float)
    f = np.array([[0, 100, 50, 9, 0],    # 10 % of 100: last at t = 2
                  [0, 10, 20, 30, 40],   # still at peak at the end: censored
                  [0, 0, 0, 0, 0],       # never any
                  [5, 100, 10, 10, 5]])  # 10 is >= 10 % of 100: last at t = 3
    days, cens = obs.persistence(t, f, 0.1)
    np.testing.assert_array_equal(days, [2.0, 4.0, 0.0, 3.0])
    np.testing.assert_array_equal(cens, [0, 1, 0, 0])


# -- a run: the file, event sums, reading, showing ----------------------------------------------
@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("outputs")
    sc = load_scenario("quickstart", SMALL + ["run.days=1.5"])
    path = d / "run.h5"
    run(sc, path)
    ctl = d / "control.h5"
    run(sc.replace(delivery__dose_cells=0.0), ctl)
    return path, ctl, sc


def test_file_holds_every_output_with_units(small_run):
    path, _, sc = small_run
    res = open_results(path)
    R, T = res.replicates, res.time_days.size
    assert set(METRICS) <= set(res.timeseries)
    assert set(res.events) == set(EVENTS)
    for k, v in res.events.items():
        assert v.shape == (R, T) and v.dtype == np.int64 and (v[:, 0] == 0).all()
        assert res.units[f"/events/{k}"] and res.descriptions[f"/events/{k}"]
    nb = sc["outputs.profile_bins"]
    assert res.profiles["car_t_radial"].shape == (R, T, nb)
    assert res.profiles["exhaustion_histogram"].shape == (R, T, 10)
    assert res.profile_edges["car_t_radial"].shape == (nb + 1,)
    assert res.units["/profiles/bin_edges/car_t_radial"] == "µm"
    assert res.units["/timeseries/infiltration_depth_mean_um"] == "µm"
    # rows of the profiles sum to the counts of the time series
    np.testing.assert_array_equal(res.profiles["car_t_radial"].sum(axis=2), res.timeseries["car_t_tissue"])
    np.testing.assert_array_equal(res.profiles["exhaustion_histogram"].sum(axis=2), res.timeseries["car_t_tissue"])
    np.testing.assert_array_equal(res.profiles["tumour_radial"].sum(axis=2), res.timeseries["tumour_cells"])
    with h5py.File(path, "r") as f:
        for grp in ("events", "profiles"):
            def check(name, o):
                if isinstance(o, h5py.Dataset):
                    assert "units" in o.attrs and o.attrs["description"], name
            f[grp].visititems(check)
    assert set(res.endpoints) == set(ENDPOINTS)


def test_event_sums_per_interval_equal_differences_of_counters(small_run):
    res = open_results(small_run[0])
    ev, ts = res.events, res.timeseries
    for k in ("kills_tumour", "kills_healthy"):
        np.testing.assert_array_equal(ev[k][:, 1:], np.diff(ts[k], axis=1), err_msg=k)
    assert ev["kills_tumour"].sum() > 0 and ev["car_t_entered"].sum() > 0  # not vacuous
    # conservation over each interval
    np.testing.assert_array_equal(np.diff(ts["car_t_tissue"], axis=1),
                                  (ev["car_t_entered"] + ev["car_t_births"] - ev["car_t_deaths"])[:, 1:])
    np.testing.assert_array_equal(np.diff(ts["tumour_cells"], axis=1),
                                  (ev["tumour_divisions"] - ev["tumour_apoptosis"] - ev["tumour_necrosis"]
                                   - ev["kills_tumour"])[:, 1:])


def test_series_endpoints_are_those_of_the_stored_series(small_run):
    path, _, sc = small_run
    res = open_results(path)
    ttp, evf = obs.progression(res.time_days, res.timeseries["tumour_cells"], sc["outputs.progression_multiple"])
    np.testing.assert_array_equal(res.endpoints["time_to_progression_days"], ttp)
    np.testing.assert_array_equal(res.endpoints["progressed"], evf)
    ts = res.timeseries
    pers, cens = obs.persistence(res.time_days, ts["car_t_tissue"] - ts["car_t_exhausted"] + ts["car_t_blood"],
                                 sc["outputs.persistence_fraction"])
    np.testing.assert_array_equal(res.endpoints["car_t_persistence_days"], pers)
    np.testing.assert_array_equal(res.endpoints["car_t_persistence_censored"], cens)
    np.testing.assert_array_equal(res.endpoints["peak_max_tgfb"], ts["max_tgfb"].max(axis=1))
    np.testing.assert_array_equal(res.endpoints["final_infiltration_depth_mean_um"],
                                  ts["infiltration_depth_mean_um"][:, -1])
    for c in ("a_pos_b_pos", "a_pos_b_neg", "a_neg_b_pos", "a_neg_b_neg"):
        np.testing.assert_array_equal(res.endpoints[f"final_tumour_{c}"], ts[f"tumour_{c}"][:, -1])


def test_in_memory_run_equals_the_file(small_run):
    path, _, sc = small_run
    mem, res = run(sc), open_results(path)
    for k in res.events:
        np.testing.assert_array_equal(mem.events[k], res.events[k], err_msg=k)
    for k in res.profiles:
        np.testing.assert_array_equal(mem.profiles[k], res.profiles[k], err_msg=k)
        np.testing.assert_array_equal(mem.profile_edges[k], res.profile_edges[k], err_msg=k)
    for k in res.endpoints:
        np.testing.assert_array_equal(mem.endpoints[k], res.endpoints[k], err_msg=k)


def test_observing_does_not_change_the_dynamics():
    sc = load_scenario("quickstart", SMALL)
    a, b = Simulation(sc), Simulation(sc)
    for _ in range(25):
        a.step()
        b.step()
        b.metrics(), b.profiles(), b.endpoints()
    assert a.state.digest() == b.state.digest()


def _strip_new_outputs(path):
    """Make ``path`` look like a file of the writer before issue 11: no /events, no /profiles, none
    of the new metrics or endpoints."""
    new_ts = [k for k in METRICS if k.startswith(("infiltration_depth", "car_t_inside", "mean_ifng", "max_",
                                                   "mean_il12", "mean_tgfb"))
              and k != "mean_tgfb_tumour"]
    new_ep = [k for k in ENDPOINTS if k.startswith(("final_", "peak_mean", "peak_max", "time_to_prog"))
              or k in ("progressed", "car_t_persistence_censored")]
    new_ep.remove("final_tumour_ratio")  # an endpoint from before
    with h5py.File(path, "r+") as f:
        del f["events"], f["profiles"]
        for k in new_ts:
            del f[f"timeseries/{k}"]
        for k in new_ep:
            del f[f"endpoints/{k}"]


def test_files_without_the_new_outputs_still_read_and_show(small_run, tmp_path):
    import shutil

    old = tmp_path / "old.h5"
    shutil.copy(small_run[0], old)
    _strip_new_outputs(old)
    res = open_results(old)
    assert res.events == {} and res.profiles == {} and res.profile_edges == {}
    assert "infiltration_depth_mean_um" not in res.timeseries and "progressed" not in res.endpoints
    assert res.time_days.size == open_results(small_run[0]).time_days.size
    r = CliRunner().invoke(main, ["summary", str(old)])
    assert r.exit_code == 0, r.output
    assert "\n  progressed" not in r.output and "final tumour ratio" in r.output
    r = CliRunner().invoke(main, ["compare", str(old), str(small_run[0])])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(main, ["report", str(old), "-o", str(tmp_path / "rep")])
    assert r.exit_code == 0, r.output


def test_summary_compare_and_report_show_the_outputs(small_run, tmp_path):
    path, ctl, _ = small_run
    r = CliRunner().invoke(main, ["summary", str(path), "--untreated", str(ctl)])
    assert r.exit_code == 0, r.output
    for text in ("CAR-T depth in tumour", "progressed", "CAR-T persistence (days)", "peak signal",
                 "final CAR-T eff/exh/mem", "final tumour by class", "tumour vs untreated",
                 "paired per replicate"):
        assert text in r.output, text
    u = an.ratio_to_untreated(open_results(path), open_results(ctl))
    a, b = open_results(path).timeseries["tumour_cells"][:, -1], open_results(ctl).timeseries["tumour_cells"][:, -1]
    assert u.ratio_of_means == pytest.approx(a.mean() / b.mean())
    np.testing.assert_allclose(u.paired, a / b)
    assert f"ratio of means {u.ratio_of_means:.3g}" in r.output

    r = CliRunner().invoke(main, ["compare", str(ctl), str(path)])
    assert r.exit_code == 0, r.output
    for k in ("time_to_progression_days", "progressed", "car_t_persistence_days", "peak_mean_ifng",
              "final_car_t_exhausted", "final_infiltration_depth_mean_um"):
        assert k in r.output, k
    cmp = an.endpoint_table([("ctl", open_results(ctl)), ("run", open_results(path))])
    rows = {(x.arm, x.endpoint): x for x in cmp.rows}
    assert rows[("run", "time_to_progression_days")].method == "Kaplan-Meier median"
    assert rows[("run", "progressed")].method == "Wilson"

    out = tmp_path / "rep"
    r = CliRunner().invoke(main, ["report", str(ctl), str(path), "-o", str(out)])
    assert r.exit_code == 0, r.output
    for name in ("infiltration_depth", "signals", "profiles"):
        assert (out / f"{name}.svg").exists(), name
    assert "time_to_progression_days" in (out / "index.html").read_text()


def test_writer_rejects_bad_profiles_and_events(tmp_path):
    kw = dict(replicates=2, attrs={}, scenario_toml="", metrics={"m": ("1", "x")},
              endpoints={}, events={"e": ("cells", "x")},
              profiles={"p": (np.array([0.0, 1.0, 2.0]), "µm", "edges", "cells", "x")})
    from gpusim.errors import OutputError

    with pytest.raises(OutputError, match="increasing"):
        ResultWriter(tmp_path / "a.h5", **{**kw, "profiles": {"p": (np.array([1.0, 0.0]), "", "", "", "")}})
    with ResultWriter(tmp_path / "b.h5", **kw) as w:
        with pytest.raises(OutputError, match="profile"):
            w.append(0.0, {"m": np.zeros(2)}, events={"e": np.zeros(2)}, profiles={"p": np.zeros((2, 3))})
        w.append(0.0, {"m": np.zeros(2)}, events={"e": np.array([1, 2])}, profiles={"p": np.ones((2, 2))})
        w.finish({})
    res = open_results(tmp_path / "b.h5")
    np.testing.assert_array_equal(res.events["e"], [[1], [2]])
    np.testing.assert_array_equal(res.profiles["p"], np.ones((2, 1, 2)))
    np.testing.assert_array_equal(res.profile_edges["p"], [0.0, 1.0, 2.0])
