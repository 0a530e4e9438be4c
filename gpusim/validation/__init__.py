"""``gpusim validate``: the engine's stochastic machinery against exact and published answers.

Every case drives the engine's own code (``gpusim.rng``, ``tumour_phase``, ``car_t_phase``,
``FieldSolver``) on a state built for the purpose, and compares what it measures with a reference
computed independently here from the *scenario* values (never from the engine's derived
parameter objects, so that a planted error in the engine shows as a failure):

1. ``rng``: Philox4x32-10 known-answer vectors (Random123 ``kat_vectors``); uniformity
   (chi-square) and independence (correlation) across streams, replicates, entities and steps.
2. ``birth_death``: tumour division and apoptosis only, room to spare (lineages stirred within
   their blocks between steps, see ``stir``): a Galton-Watson process per step; mean, variance,
   distribution and extinction against its exact law (probability generating function iterated
   on the unit circle), extinction against the continuous-time limit within the stated
   discretisation error.
3. ``antigen_loss``: pure birth with antigen loss: P(no antigen-negative cell | N) =
   (1 - mu)^(N - 1) exactly, loss events given D divisions ~ Binomial(D, mu), the negative-cell
   count against its exact law (pgf) for one founder and for cultures of 64, and a
   Luria-Delbrück fluctuation analysis (Ma-Sandri-Sarkar likelihood) recovering m = mu x D.
4. ``motility``: CAR-T random walk: mean squared displacement, chemotactic drift and the time to
   cross a slab of stroma against exact Markov-chain values of the lattice walk.
5. ``fields``: steady oxygen in a slab and a spheroid against the exact discrete solution and the
   analytic profiles (first-order uptake: cosh and sinh(r)/r; zero-order consumption: the
   discrete obstacle problem and Greenspan's necrotic radius); second-order convergence.
6. ``well_mixed``: ensemble means of tumour, effector and memory CAR-T counts against the
   explicit-Euler solution of the CARTmath ODE (Barros et al. 2021): growth, expansion and death
   alone (exact Galton-Watson means), then with killing, memory conversion, reactivation and
   memory death in a stirred lattice (against the engine's mean-field map and CARTmath).
7. ``biology`` (only when named): each mechanism switched on and off with paired seeds moves its
   outcome in the published direction (stroma barrier, ECM degradation, retention in dense ECM,
   Kather 2017's combination result, CAR-T crowding); the untreated growth curve against Freyer &
   Sutherland 1986; subclone fractions as declared.  A list of named checks
   (``cases/biology.py`` ``CHECKS``): a mechanism is added as one entry.

False-failure budget: ``ALPHA_SUITE`` = 1e-3 for the whole suite, Bonferroni-split over at most
``STAT_CHECKS`` statistical checks: each two-sided z-test uses z = Phi^-1(1 - alpha/2) with
alpha = ALPHA_SUITE / STAT_CHECKS, each chi-square test the (1 - alpha) quantile.  Standard errors
come from the exact reference law where it is known, else from the sample.  Deterministic checks
(known answers, numerical solutions) carry a stated numerical tolerance.  See docs/validation.md.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

from .cases.antigen_loss import case_antigen_loss
from .cases.biology import case_biology
from .cases.birth_death import case_birth_death
from .cases.fields import case_fields
from .cases.motility import case_motility
from .cases.rng import case_rng
from .cases.well_mixed import case_well_mixed
from .core import CaseResult, STAT_CHECKS, ValidationError, Z95
from .figures import FIGURES
from .phases import DevicePhases, Phases


# ---------------------------------------------------------------------------------------------
CASES: dict[str, Callable[[bool, int], CaseResult]] = {
    "rng": case_rng, "birth_death": case_birth_death, "antigen_loss": case_antigen_loss,
    "motility": case_motility, "fields": case_fields, "well_mixed": case_well_mixed,
    "biology": case_biology,
}
#: the cases run when none is named (``biology`` runs only when named: minutes of simulation)
DEFAULT_CASES = tuple(n for n in CASES if n != "biology")


def resolve_backend(name: str = "auto"):
    """The backend the cases run on (``backends.select``: ``auto`` takes CuPy where it can run
    and says so; ``cupy`` where it cannot is a BackendError with the reason).  On a device backend
    the cases run the device step's own phases (``DevicePhases``); the ``rng`` case checks the host
    Philox, of which the kernels' ``philox.cuh`` is the twin checked by the device tests."""
    from ..backends import select

    return select(name)


def check_arguments(cases, seed) -> list[str]:
    """The case names to run (all when ``cases`` is empty); ValidationError on an unknown case
    or a seed outside 0 .. 2**32-1."""
    names = list(cases) if cases else list(DEFAULT_CASES)
    bad = [n for n in names if n not in CASES]
    if bad:
        raise ValidationError(f"unknown validation case {', '.join(map(repr, bad))}; "
                              f"allowed: {', '.join(CASES)}")
    if not 0 <= int(seed) < 2 ** 32:
        raise ValidationError(f"seed must lie in 0 .. 2**32-1, got {seed}")
    return names


def run_validation(cases=None, quick: bool = False, seed: int = 1, figures=None,
                   log: Callable[[str], None] | None = None,
                   backend: str = "numpy") -> list[CaseResult]:
    """Run the named cases (all by default) on ``backend`` ("numpy", "cupy" or "emulated", as
    resolved by ``resolve_backend``) and return their results; with ``figures`` (a directory) write one PNG
    per case (needs matplotlib; skipped with a message otherwise)."""
    if backend not in ("numpy", "cupy", "emulated"):
        raise ValidationError(f"backend must be 'numpy', 'cupy' or 'emulated', got {backend!r}")
    names = check_arguments(cases, seed)
    if backend == "numpy":
        phases = Phases()
    elif backend == "cupy":
        from ..backends.cupy_backend import runtime

        phases = DevicePhases(runtime())
    else:
        from ..backends.emulated import EmulatedRuntime

        phases = DevicePhases(EmulatedRuntime())
    return _run_cases(names, quick, seed, figures, log, phases)


def _run_cases(names, quick, seed, figures, log, phases) -> list[CaseResult]:
    plt = None
    if figures is not None:
        figures = Path(figures)
        if figures.exists() and not figures.is_dir():
            raise ValidationError(f"--figures {figures} exists and is not a directory")
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt  # noqa: F811
        except ImportError:
            if log:
                log("matplotlib is not installed (pip install 'gpusim[plot]'): figures skipped")
        if plt is not None:
            figures.mkdir(parents=True, exist_ok=True)
    out = []
    for n in names:
        t0 = time.perf_counter()
        r = CASES[n](quick, int(seed), phases)
        r.seconds = time.perf_counter() - t0
        if plt is not None:
            path = figures / f"{n}.png"
            FIGURES[n](plt, r, path)
            r.figure = str(path)
        out.append(r)
        if log:
            log(format_case(r))
    nstat = sum(c.kind == "stat" for r in out for c in r.checks)
    assert nstat <= STAT_CHECKS, "more statistical checks than the Bonferroni budget assumes"
    return out


def format_case(r: CaseResult) -> str:
    lines = [f"[{'PASS' if r.passed else 'FAIL'}] {r.name}: {r.title}  ({r.seconds:.1f} s)",
             f"    reference: {r.reference}",
             f"    {'check':<52} {'expected':>12} {'measured ± 95% CI':>24} {'tolerance':>11}  verdict"]
    for c in r.checks:
        ci = f" ± {Z95 * c.se:.3g}" if c.se == c.se and c.kind in ("stat", "paired") else ""
        verdict = "info" if c.kind == "info" else ("pass" if c.passed else "FAIL")
        lines.append(f"    {c.name[:52]:<52} {c.expected:>12.6g} {f'{c.measured:.6g}{ci}':>24} "
                     f"{c.tol:>11.3g}  {verdict}")
        if c.note:
            lines.append(f"        {c.note}")
    if r.figure:
        lines.append(f"    figure: {r.figure}")
    return "\n".join(lines)
