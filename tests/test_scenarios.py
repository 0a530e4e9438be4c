"""The bundled scenarios: each runs end to end at a reduced size, is deterministic, and together
they tell the article's story (MODEL.md section 12).

Story tests compare two scenarios on the same seeds with the exact one-sided Mann-Whitney U test
(``scipy.stats.mannwhitneyu``, ``method="exact"``) at ALPHA = 1e-4: under the null "the first
scenario is not better" a pass has probability below 1e-4.  With 8 + 8 replicates the smallest
attainable p-value is 1/C(16, 8) = 7.8e-5, so a pass needs the two ensembles fully separated;
the bigger (slow) versions use 12 + 12 (p down to 3.7e-7).
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import mannwhitneyu, wilcoxon

from gpusim.study.compare import endpoint_table
from gpusim.engine import ENDPOINTS, Simulation, steps_for
from gpusim.study.runner import run
from gpusim.scenario import bundled, load_scenario

ALPHA = 1e-4
SECTION_12 = ("quickstart", "iv_baseline", "intratumoral", "regional_gbm", "dual_target", "armoured",
              "truck_il12", "gen5", "pd1_combo", "stroma_targeting", "healthy_antigen", "no_barriers",
              "large_3d")


def reduced(name: str, size: int = 24, radius: float = 160.0, **over) -> dict:
    """Overrides that shrink a bundled scenario (3D ones to a cube of ``size // 2``)."""
    sc = load_scenario(name)
    v = {"domain.x_voxels": size, "domain.y_voxels": size, "tumour.radius_um": radius,
         "run.replicates": 2, "run.days": 0.25, "run.checkpoint_interval_hours": 0.0,
         "run.snapshot_interval_hours": 3.0}
    if sc["domain.z_voxels"] > 1:
        v.update({"domain.x_voxels": size // 2, "domain.y_voxels": size // 2,
                  "domain.z_voxels": size // 2, "tumour.radius_um": radius / 2})
    v.update({k.replace("__", "."): x for k, x in over.items()})
    return v


def test_every_section_12_scenario_is_bundled_with_a_header():
    have = bundled()
    from importlib import resources
    for name in SECTION_12:
        assert name in have, name
        text = resources.files("gpusim.scenarios").joinpath(f"{name}.toml").read_text()
        assert text.startswith(f"# {name}:"), f"{name}.toml must open with a header comment"
        assert have[name], f"{name} has no description"


@pytest.mark.parametrize("name", SECTION_12)
def test_scenario_runs_end_to_end_at_reduced_size(name):
    sc = load_scenario(name, reduced(name))
    res = run(sc)  # in memory
    assert res.status == "complete"
    for k in ENDPOINTS:
        assert res.endpoints[k].shape == (2,), k
    assert res.timeseries["tumour_cells"].shape[0] == 2
    # and its steps keep every conservation law
    sim = Simulation(sc)
    for _ in range(8):
        sim.step(check=True)


@pytest.mark.parametrize("name", ["intratumoral", "regional_gbm", "truck_il12", "pd1_combo"])
def test_new_scenarios_are_deterministic_across_batches(name):
    sc = load_scenario(name, reduced(name, **{"run.replicates": 3}))
    a, b = Simulation(sc), Simulation(sc)
    one = Simulation(sc, replicates=1, first_replicate=1)
    for _ in range(12):
        a.step()
        b.step()
        one.step()
    assert a.state.digest() == b.state.digest()
    assert a.state.digest(1) == one.state.digest(0)


def _arm(name: str, R: int, days: float, size: int, radius: float, **over):
    sc = load_scenario(name, reduced(name, size=size, radius=radius, **{"run.replicates": R,
                                                                        "run.days": days}, **over))
    return run(sc)


def _assert_less(x, y, what: str) -> None:
    p = mannwhitneyu(x, y, alternative="less", method="exact").pvalue
    assert p < ALPHA, f"{what}: p = {p:.2g} (need < {ALPHA}); {np.round(x, 3)} vs {np.round(y, 3)}"


def test_story_no_barriers_responds_better_than_iv_baseline_quick():
    # the same IV product; without barriers the tumour is smaller after 2 days relative to its
    # own untreated control (same scenario, seed and replicates, no dose): the tumours grow
    # (division with shoving), and a well-vascularised tumour without a capsule grows faster, so
    # the raw final ratios mix growth with response
    nb = _arm("no_barriers", 8, 2.0, 40, 300.0)
    iv = _arm("iv_baseline", 8, 2.0, 40, 300.0)
    nb0 = _arm("no_barriers", 8, 2.0, 40, 300.0, **{"delivery.dose_cells": 0.0})
    iv0 = _arm("iv_baseline", 8, 2.0, 40, 300.0, **{"delivery.dose_cells": 0.0})
    _assert_less(nb.endpoints["final_tumour_ratio"] / nb0.endpoints["final_tumour_ratio"],
                 iv.endpoints["final_tumour_ratio"] / iv0.endpoints["final_tumour_ratio"],
                 "tumour ratio to untreated, no_barriers vs iv_baseline")
    # the comparison table a researcher reads (gpusim compare) carries the toxicity endpoints
    table = endpoint_table([("no_barriers", nb), ("iv_baseline", iv)])
    names = {r.endpoint for r in table.rows}
    assert {"peak_il6", "crs_grade", "icans_index", "final_tumour_ratio"} <= names


@pytest.mark.slow
def test_story_no_barriers_clears_far_more_often_than_iv_baseline():
    nb = _arm("no_barriers", 12, 14.0, 50, 350.0)
    iv = _arm("iv_baseline", 12, 14.0, 50, 350.0)
    assert nb.endpoints["cleared"].sum() >= iv.endpoints["cleared"].sum() + 6
    _assert_less(nb.endpoints["final_tumour_ratio"], iv.endpoints["final_tumour_ratio"], "final ratio")


@pytest.mark.slow
def test_story_single_target_relapses_with_antigen_negative_cells_dual_less():
    dual = _arm("dual_target", 12, 8.0, 60, 450.0)
    single = _arm("dual_target", 12, 8.0, 60, 450.0, **{"car_t.targets": "A"})
    inv_dual = dual.timeseries["tumour_invisible"][:, -1]
    inv_single = single.timeseries["tumour_invisible"][:, -1]
    _assert_less(inv_dual, inv_single, "CAR-invisible tumour cells, A|B vs A")
    assert single.endpoints["antigen_escape"].sum() > dual.endpoints["antigen_escape"].sum()


@pytest.mark.slow
def test_story_local_delivery_beats_iv():
    # same scenario, same seeds: the same tissue, so the replicates pair up (Wilcoxon signed-rank,
    # exact, one-sided; 16 pairs: smallest p 2**-16 = 1.5e-5 < ALPHA)
    it = _arm("intratumoral", 16, 6.0, 50, 350.0)
    iv = _arm("intratumoral", 16, 6.0, 50, 350.0, **{"delivery.route": "intravenous"})
    x, y = it.endpoints["final_tumour_ratio"], iv.endpoints["final_tumour_ratio"]
    p = wilcoxon(x, y, alternative="less", method="exact").pvalue
    assert p < ALPHA, f"final tumour ratio, intratumoral vs IV: p = {p:.2g}; {x} vs {y}"
