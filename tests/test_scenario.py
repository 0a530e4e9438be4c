"""Scenario loading, overrides, validation and the TOML round trip."""

import tomllib

import pytest

from gpusim.errors import ScenarioError
from gpusim.params import PARAMS
from gpusim.scenario import bundled, load_scenario


def test_every_parameter_is_declared_fully():
    keys = [p.key for p in PARAMS]
    assert len(keys) == len(set(keys))
    for p in PARAMS:
        assert p.doc and p.source, p.key
        assert p.section in {"scenario", "run", "domain", "tumour", "stroma", "vessels", "healthy",
                             "oxygen", "glucose", "chemokine", "car_t", "delivery"} or p.section
        if p.type in (int, float) and not isinstance(p.default, bool):
            lo = -float("inf") if p.lo is None else p.lo
            hi = float("inf") if p.hi is None else p.hi
            assert lo <= p.default <= hi, p.key
        if p.choices:
            assert p.default in p.choices, p.key


@pytest.mark.parametrize("name", sorted(bundled()))
def test_bundled_scenarios_round_trip_through_toml(name, tmp_path):
    sc = load_scenario(name)
    text = sc.to_toml()
    tomllib.loads(text)
    f = tmp_path / "s.toml"
    f.write_text(text)
    again = load_scenario(f)
    assert dict(again.values) == dict(sc.values)


def test_set_overrides_and_parsing():
    sc = load_scenario("quickstart", ["car_t.targets=A|B", "run.days=3", "delivery.dose_days=[0, 7]",
                                      "tumour.layout=patches"])
    assert sc["car_t.targets"] == "A|B"
    assert sc["run.days"] == 3.0 and isinstance(sc["run.days"], float)
    assert sc["delivery.dose_days"] == [0.0, 7.0]
    assert sc["tumour.layout"] == "patches"


@pytest.mark.parametrize("override,fragment", [
    ("tumour.radius=3", "did you mean 'tumour.radius_um'"),
    ("tumor.radius_um=3", "did you mean 'tumour.radius_um'"),
    ("run.days=abc", "expected a number"),
    ("domain.x_voxels=2.5", "expected an integer"),
    ("run.days=-1", "out of range; allowed 0 to 3650 day"),
    ("car_t.targets=C", "allowed values are"),
    ("tumour.fraction_a_pos_b_neg=0.5", "must add up to 1"),
    ("run.days", "expected section.key=value"),
])
def test_bad_overrides_name_the_problem(override, fragment):
    with pytest.raises(ScenarioError) as e:
        load_scenario("quickstart", [override])
    assert fragment in str(e.value)


def test_bad_files(tmp_path):
    with pytest.raises(ScenarioError, match="does not exist"):
        load_scenario(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[run\ndays = 3")
    with pytest.raises(ScenarioError, match="not valid TOML"):
        load_scenario(bad)
    unknown = tmp_path / "unknown.toml"
    unknown.write_text("[car_t]\nspeed_um_per_mn = 3\n")
    with pytest.raises(ScenarioError, match="did you mean 'car_t.speed_um_per_min'"):
        load_scenario(unknown)
    with pytest.raises(ScenarioError, match="no bundled scenario 'quikstart'.*did you mean 'quickstart'"):
        load_scenario("quikstart")


def test_partial_file_takes_defaults(tmp_path):
    f = tmp_path / "mine.toml"
    f.write_text("[car_t]\ntargets = \"B\"\n")
    sc = load_scenario(f)
    assert sc["car_t.targets"] == "B"
    assert sc.name == "mine"
    assert sc["run.dt_min"] == 6.0
