"""Fuzz the command line with hypothesis (issue 13): random --set values and random scenario
files.  Whatever the input, a command ends with success or with exit status 2 and one line on
stderr; never a traceback, never a changed pre-existing file, never a half-written output."""

from __future__ import annotations

import tempfile
from pathlib import Path

from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gpusim.cli import main
from gpusim.io import open_results
from gpusim.params import PARAMS

KEYS = [p.key for p in PARAMS]
# keys whose value can make even a tiny run long (lattice size, time step, output density)
RUN_KEYS = [k for k in KEYS if not k.startswith("domain.") and "interval" not in k
            and k not in ("run.dt_min", "run.snapshot_replicates", "car_t.capacity_per_replicate")]
# a tiny run: 16 x 16 voxels, one replicate, a few steps
TINY = ["--set", "domain.x_voxels=16", "--set", "domain.y_voxels=16", "--set", "tumour.radius_um=60",
        "--days", "0.01", "-r", "1", "-q"]

values = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["true", "false", "nan", "inf", "-inf", "1e999", "'A|B'", "A|B", "[1, 2]", "[]",
                     "[[1]]", "{a = 1}", '"', "'", "", " ", "0x10", "1_000", "--", "\\u0000", "é",
                     "numpy", "cupy", "auto", "A,B", "1,2", "=", "a=b"]),
    st.text(max_size=12),
)
keys = st.one_of(st.sampled_from(KEYS), st.text(max_size=20),
                 st.sampled_from(["run", "run.", ".days", "run..days", "RUN.DAYS", "run.days.x",
                                  "domain.x_voxels ", " run.seed"]))
toml_scalars = st.one_of(st.integers(min_value=-(2**64), max_value=2**64).map(str),
                         st.floats().map(lambda x: repr(x).replace("inf", "inf").replace("nan", "nan")),
                         st.sampled_from(["true", "'text'", "[1, 2]", "'A|B'", '"x"', "{}", "1979-05-27"]))


def _check(r, *, created: list[Path] = (), untouched: dict[Path, bytes] | None = None):
    assert r.exit_code in (0, 2), (r.exit_code, repr(r.exception), r.output)
    assert r.exception is None or isinstance(r.exception, SystemExit), repr(r.exception)
    assert "Traceback" not in r.output
    if r.exit_code == 2:
        lines = [x for x in r.stderr.splitlines() if x.strip()]
        errors = [x for x in lines if x.startswith("gpusim: error:")]
        usage = any(x.startswith("Error:") for x in lines)  # click's own usage errors
        assert len(errors) == 1 or usage, r.stderr
        for p in created:
            assert not p.exists(), f"{p} written by a refused command"
    for p, data in (untouched or {}).items():
        assert p.read_bytes() == data, f"{p} was changed"


@settings(max_examples=60, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(sets=st.lists(st.tuples(keys, values), min_size=1, max_size=3))
def test_show_with_random_sets(sets):
    args = [x for k, v in sets for x in ("--set", f"{k}={v}")]
    _check(CliRunner().invoke(main, ["show", "quickstart", *args]))


@settings(max_examples=40, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(body=st.one_of(
    st.lists(st.tuples(st.sampled_from(sorted({k.split(".")[0] for k in KEYS}) + ["nosuch"]),
                       st.one_of(st.sampled_from([k.split(".", 1)[1] for k in KEYS]), st.text(max_size=8)),
                       toml_scalars), max_size=4)
    .map(lambda items: "\n".join(f"[{s}]\n{k!r} = {v}".replace("'", '"', 2) for s, k, v in items)),
    st.text(max_size=80),
    st.binary(max_size=80).map(lambda b: b.decode("latin-1")),
))
def test_show_and_run_with_random_scenario_files(body):
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        f = d / "s.toml"
        f.write_text(body, encoding="utf-8", errors="surrogateescape")
        _check(CliRunner().invoke(main, ["show", str(f)]))
        # an existing output without --force is refused whatever the scenario, untouched
        keep = d / "keep.h5"
        keep.write_bytes(b"precious")
        _check(CliRunner().invoke(main, ["run", str(f), "-o", str(keep), *TINY]),
               untouched={keep: b"precious", f: f.read_bytes()})


@settings(max_examples=6, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(sets=st.lists(st.tuples(st.sampled_from(RUN_KEYS), values), min_size=1, max_size=2))
def test_tiny_runs_with_random_sets(sets):
    args = [x for k, v in sets for x in ("--set", f"{k}={v}")]
    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "o.h5"
        r = CliRunner().invoke(main, ["run", "quickstart", "-o", str(out), *args, *TINY])
        _check(r, created=[out])
        if r.exit_code == 0:
            assert open_results(out).status == "complete"
        assert sorted(p.name for p in Path(d).iterdir()) in ([], ["o.h5"])
