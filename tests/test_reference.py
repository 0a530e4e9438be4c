"""Golden references: every bundled scenario, at a reduced size, against stored results.

A change that moves any trajectory (a model change, a new random draw, a different float order)
fails here even when no statistical test would notice.  ``tests/reference/reference.json``
holds, per bundled scenario, the SHA-256 of every state array after ``STEPS`` steps and the
endpoints of that short run.  Regenerate it only on purpose, with

    pytest tests/test_reference.py --update-reference

and say in the change's note why the references moved.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from gpusim.backends.selfcheck import reduced
from gpusim.engine import Simulation
from gpusim.scenario import bundled

PATH = Path(__file__).with_name("reference") / "reference.json"
STEPS = 30


def observe(name: str) -> dict:
    """Digests of the state after STEPS steps and the endpoints of the same run."""
    sim = Simulation(reduced(name), replicates=2, first_replicate=5)
    for _ in range(STEPS):
        sim.step()
    d = sim.state.digest()
    ep = {k: [repr(float(x)) for x in np.asarray(v, np.float64)] for k, v in sim.endpoints().items()}
    return {"state": d, "state_sha256": hashlib.sha256("".join(d[k] for k in sorted(d)).encode()).hexdigest(),
            "endpoints": ep}


@pytest.fixture(scope="module")
def stored(request):
    if request.config.getoption("--update-reference"):
        PATH.parent.mkdir(exist_ok=True)
        PATH.write_text(json.dumps({n: observe(n) for n in sorted(bundled())}, indent=1, sort_keys=True) + "\n")
    return json.loads(PATH.read_text())


@pytest.mark.parametrize("name", sorted(bundled()))
def test_bundled_scenario_matches_its_reference(stored, name):
    assert name in stored, f"no reference for {name}: run pytest {__file__} --update-reference"
    got, want = observe(name), stored[name]
    moved = [k for k in want["state"] if got["state"].get(k) != want["state"][k]]
    assert not moved, (f"{name}: state arrays {moved} differ from the reference after {STEPS} steps; "
                       "if the change is meant to move trajectories, rerun with --update-reference "
                       "and say why in the change's note")
    assert got["endpoints"] == want["endpoints"], f"{name}: endpoints differ from the reference"


def test_reference_covers_every_bundled_scenario(stored):
    assert set(stored) == set(bundled())
