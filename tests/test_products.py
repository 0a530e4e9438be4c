"""Two CAR-T products in one schedule (a product per dose): the schedule syntax, per-product
pools and the product id of the cells, recognition by the product's target rule, and the
outputs per product.  The bitwise device check is the ``two_products`` variant of
tests/test_device.py."""

from __future__ import annotations

import numpy as np
import pytest

from gpusim import rng
from gpusim.backends.selfcheck import reduced
from gpusim.engine import Simulation
from gpusim.errors import ScenarioError
from gpusim.model.systemic import entrant_products
from gpusim.scenario import Dose, dose_plan, load_scenario, parse_doses, products


def test_schedule_takes_an_optional_product_per_dose():
    assert parse_doses("iv 0 5e7 A; iv 7 5e7 b; it 3 1e7; icv 9 1e6 a|b") == [
        Dose("intravenous", 0.0, 5e7, "A"), Dose("intravenous", 7.0, 5e7, "B"),
        Dose("intratumoral", 3.0, 1e7, None), Dose("regional", 9.0, 1e6, "A|B")]
    sc = load_scenario("quickstart", ["car_t.targets=A&B", "delivery.schedule=iv 0 1e7; iv 2 1e7 B; iv 4 1e7 A&B"])
    assert [d.targets for d in dose_plan(sc)] == ["A&B", "B", "A&B"]
    assert products(sc) == ("A&B", "B")  # product 0 is car_t.targets, then new rules in order
    assert products(load_scenario("gbm_prime_boost")) == ("A|B",)


@pytest.mark.parametrize("sched,msg", [
    ("iv 0 1e7 C", "unknown product 'C'; a dose's product is the CAR logic it targets, one of A, B, A|B, A&B"),
    ("iv 0 1e7 A B", "expected 'route day cells [product]'"),
    ("iv 0", "expected 'route day cells [product]'"),
])
def test_bad_dose_product_is_a_one_line_error(sched, msg):
    with pytest.raises(ScenarioError, match=msg.replace("|", r"\|").replace("[", r"\[").replace("]", r"\]")) as e:
        load_scenario("quickstart", [f"delivery.schedule={sched}"])
    assert "\n" not in str(e.value)


def test_entrant_products_follow_the_pools():
    """A single non-empty pool gives every entrant its product (exact); two pools 1:3 give product
    1 to a fraction 0.75 of the entrants: n = 20000, sd = sqrt(0.75 x 0.25 / n) = 0.0031, bound
    5 sd = 0.015."""
    n = 20000
    er, ev = np.zeros(n, np.int64), np.arange(n, dtype=np.int64)
    reps = np.array([4], np.int64)
    only_b = entrant_products(7, reps, 3, er, ev, np.array([[0.0, 5e6, 0.0]]))
    assert (only_b == 1).all()
    mixed = entrant_products(7, reps, 3, er, ev, np.array([[1e6, 3e6]]))
    assert abs(mixed.mean() - 0.75) < 0.015
    assert (entrant_products(7, reps, 3, er, ev, np.array([[0.0, 0.0]])) == 0).all()  # empty: 0
    # the words are those of stream ENTRY_PRODUCT: the first product below the threshold
    u = rng.blocks(7, 4, 3, rng.Stream.ENTRY_PRODUCT, ev)[:, 0]
    assert np.array_equal(mixed == 0, rng.below(u, np.float32(0.25)))


def _only_a_pos_b_neg(schedule: str) -> Simulation:
    sc = reduced("sequential_ab", ["tumour.fraction_a_pos_b_pos=0.0", "tumour.fraction_a_pos_b_neg=1.0",
                                   "tumour.fraction_a_neg_b_pos=0.0", "healthy.antigen_a_fraction=0.0",
                                   f"delivery.schedule={schedule}"], size=20)
    return Simulation(sc, replicates=2, first_replicate=0)


def test_a_b_product_cell_never_kills_an_a_pos_b_neg_cell():
    """Exact: B-CAR cells (product 1; car_t.targets is A) in a tumour of A+B- cells engage and
    kill nothing; the same dose as A-CAR cells does kill (so the check can fail)."""
    seen = {}
    for prod in ("A", "B"):
        sim = _only_a_pos_b_neg(f"iv 0 1e7 {prod}")
        eng = 0
        for _ in range(120):
            sim.step()
            eng += int(sim.last_events["engagements"].sum())
        st = sim.state
        live = np.arange(st.t_prod.shape[1])[None, :] < st.t_count[:, None]
        seen[prod] = (int(st.kills_tumour.sum()), eng, st.t_prod[live], st.t_count.sum())
    kills, eng, tprod, n = seen["B"]
    assert n > 50 and (tprod == 1).all(), "no B-CAR cell in the tissue"
    assert kills == 0 and eng == 0
    kills, eng, tprod, n = seen["A"]
    assert n > 50 and (tprod == 0).all() and kills > 0


def test_pools_keep_products_apart_until_the_second_dose():
    """Before the B dose no B cell exists anywhere; after it, B cells enter from the B pool only
    while the A pool keeps its cells (the pools are not mixed)."""
    sc = reduced("sequential_ab", ["delivery.schedule=iv 0 1e7 A; iv 0.25 1e7 B"], size=20)
    sim = Simulation(sc, replicates=2, first_replicate=0)
    for _ in range(60):  # 6 h
        sim.step()
    st = sim.state
    assert (st.blood[:, 1] == 0).all() and (st.entered_product[:, 1] == 0).all()
    assert (st.t_prod == 0).all() and (st.blood[:, 0] > 0).all()
    blood_a = st.blood[:, 0].copy()
    for _ in range(60):
        sim.step()
    st = sim.state
    assert (st.blood[:, 1] > 0).all() and (st.entered_product[:, 1] > 0).all()
    assert (st.blood[:, 0] < blood_a).all()  # the A pool only drained (no B cells added to it)
    prof = sim.profiles()
    live = np.arange(st.t_prod.shape[1])[None, :] < st.t_count[:, None]
    assert np.array_equal(prof["car_t_product"].sum(axis=1), st.t_count)
    assert np.array_equal(prof["car_t_product"][:, 1], (live & (st.t_prod == 1)).sum(axis=1))
    assert np.array_equal(prof["entered_product"].sum(axis=1), st.car_t_entered)


def test_a_then_b_kills_more_a_neg_b_pos_cells_than_a_then_a():
    """Paired seeds (same replicates, so the same tissue and the same run until the second dose):
    a tumour with A+B+, A+B- and A-B+ subclones, 1e7 A-CAR cells IV on day 0 and 1e7 cells on day
    0.5, of B-CAR or again of A-CAR (equal total cells), 1.5 days.  A-CAR cells cannot see A-B+
    cells, so fewer A-B+ cells are left after A then B.  Required: fewer in every one of 6 pairs
    (a one-sided sign test: probability 2^-6 = 0.016 if the second product made no difference)."""
    left = {}
    for second in ("B", "A"):
        sc = reduced("sequential_ab", [f"delivery.schedule=iv 0 1e7 A; iv 0.5 1e7 {second}"], size=24)
        sim = Simulation(sc, replicates=6, first_replicate=0)
        for _ in range(int(1.5 * 1440 / sc["run.dt_min"])):
            sim.step()
        left[second] = sim.metrics()["tumour_a_neg_b_pos"]
    assert (left["B"] < left["A"]).all(), left


def test_file_and_summary_show_each_product(tmp_path):
    """The HDF5 file holds the per-product profiles with units and the products named in the bin
    edges' description; ``gpusim summary`` prints a row per product."""
    from click.testing import CliRunner

    from gpusim.cli import main
    from gpusim.io import open_results

    out = tmp_path / "ab.h5"
    r = CliRunner().invoke(main, [
        "run", "sequential_ab", "-o", str(out), "--set", "domain.x_voxels=16", "--set",
        "domain.y_voxels=16", "--set", "tumour.radius_um=120", "--set", "delivery.tumour_volume_cm3=1e-4",
        "--set", "run.days=0.5", "--set", "run.replicates=2", "--set", "run.output_interval_hours=3",
        "--set", "delivery.schedule=iv 0 1e7 A; iv 0.25 1e7 B"])
    assert r.exit_code == 0, r.output
    res = open_results(out)
    prof = res.profiles["car_t_product"]
    assert prof.shape == (2, res.time_days.size, 2)
    assert np.array_equal(prof.sum(axis=2), res.timeseries["car_t_tissue"])
    assert (res.profiles["entered_product"][:, -1, 1] > 0).all()
    assert (res.profiles["entered_product"][:, 1, 1] == 0).all()  # 3 h: before the B dose
    assert res.units["/profiles/car_t_product"] == "cells"
    assert "1 = 'B'" in res.descriptions["/profiles/bin_edges/car_t_product"]
    r = CliRunner().invoke(main, ["summary", str(out)])
    assert r.exit_code == 0, r.output
    assert "product 0 (A) CAR-T (now)" in r.output and "product 1 (B) CAR-T (now)" in r.output
    assert "dose 1 (intravenous day 0.25 B) entered" in r.output
    assert np.array_equal(res.profiles["entered_dose"], res.profiles["entered_product"])  # a dose each


def test_two_product_replicate_is_the_same_in_any_batch():
    """The entrants' product draws are keyed by replicate: replicate 1 alone equals replicate 1
    of a batch of two, every state array, after both products entered."""
    sc = reduced("sequential_ab", ["delivery.schedule=iv 0 1e8 A; intraventricular 0 1e8 B; iv 0.05 1e8 B",
                                   "delivery.regional_surface_cm2=1.0"], size=16)
    pair, one = Simulation(sc, replicates=2, first_replicate=0), Simulation(sc, replicates=1, first_replicate=1)
    for _ in range(40):
        pair.step()
        one.step()
    assert (pair.state.entered_product > 0).all()
    assert pair.state.digest(1) == one.state.digest(0)


def test_entrants_are_counted_per_dose():
    """Per-dose bookkeeping: a product's two doses share its pools; the per-dose pools add up to
    the product's pool (to float64 rounding, 1e-9 relative), no entrant is attributed to a dose
    before it is given, and the per-dose counts add up to the per-product ones and to every
    entrant."""
    sc = reduced("sequential_ab", ["delivery.schedule=iv 0 1e7 A; it 0.1 2e7 B; iv 0.2 1e7 A"], size=20)
    sim = Simulation(sc, replicates=2, first_replicate=0)
    for step in range(60):
        sim.step()
        if step == 40:  # 4.1 h: after the intratumoral B dose, before the second A dose
            st = sim.state
            assert (st.entered_dose[:, 2] == 0).all() and (st.entered_dose[:, 1] > 0).all()
            assert np.array_equal(st.entered_dose[:, 1], st.entered_product[:, 1])
    st = sim.state
    assert (st.entered_dose > 0).all()
    assert np.array_equal(st.entered_dose[:, 0] + st.entered_dose[:, 2], st.entered_product[:, 0])
    assert np.array_equal(st.entered_dose.sum(axis=1), st.car_t_entered)
    np.testing.assert_allclose(st.blood_dose[:, 0] + st.blood_dose[:, 2], st.blood[:, 0], rtol=1e-9)
    np.testing.assert_allclose(st.blood_dose[:, 1], st.blood[:, 1], rtol=1e-9)
    assert np.array_equal(sim.profiles()["entered_dose"], st.entered_dose)
