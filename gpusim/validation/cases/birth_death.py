"""Case 2, ``birth_death``: tumour division and apoptosis against the exact Galton-Watson law."""

from __future__ import annotations

import math

import numpy as np

from ..core import CaseResult, Check, chi2_check, p_step, scenario, z_check
from ..lattices import lineage_lattice, per_block, stir
from ..phases import NUMPY, Phases
from ..references import gw_distribution, gw_extinction_path


def run_lineages(phases, sc, tp, seed: int, steps: int, R: int, s: int, batch: int, G: int = 4):
    """Grow G^3 single-founder lineages per replicate with the engine's tumour phase, stirred
    within their blocks after every step (``stir``, margin 1, so lineages never mix), R
    replicates in batches; returns per-lineage cell counts and antigen-A-negative counts and the
    event totals."""
    out = {"N": [], "neg": [], "div": 0, "loss_a": 0, "loss_b": 0}
    for first in range(0, R, batch):
        nb = min(batch, R - first)
        st = lineage_lattice(G, s, nb, first)
        gen = np.random.default_rng([seed, first, s])
        for k in range(steps):
            ev = {}
            phases.tumour(sc, st, tp, seed, k, ev)
            stir(st, gen, s, margin=1)
            for key, name in (("div", "tumour_divisions"), ("loss_a", "antigen_a_loss"),
                              ("loss_b", "antigen_b_loss")):
                out[key] += int(np.sum(ev.get(name, 0)))
        tum = st.kind == 1
        out["N"].append(per_block(tum, G, s))
        out["neg"].append(per_block(tum & (st.antigen_a == 0), G, s))
    out["N"] = np.concatenate(out["N"])
    out["neg"] = np.concatenate(out["neg"])
    return out


BD_RATES = {"division": 0.01, "apoptosis": 0.0075}  # 1/min; per step (6 min) ~0.058 and ~0.044


BD_STEPS = 80


BD_BLOCK = 16  # block edge: stirred lineages of up to ~100 cells in a 14^3 interior (density < 4 %)


def tumour_only(overrides: dict):
    base = {"tumour.glucose_half_mM": 0.0, "tumour.necrosis_max_rate_per_min": 0.0,
            "tumour.apoptotic_clearance_min": 1.0, "tumour.antigen_loss_per_division": 0.0}
    base.update(overrides)
    return scenario(base)


def case_birth_death(quick: bool, seed: int, phases: Phases = NUMPY) -> CaseResult:
    from ...model import tumour as tumour_mod

    res = CaseResult("birth_death", "Birth and death: tumour division and apoptosis only",
                     "Galton-Watson process per step (exact pgf); continuous-time linear "
                     "birth-death extinction (Kendall 1948)")
    b, d = BD_RATES["division"], BD_RATES["apoptosis"]
    sc = tumour_only({"tumour.division_rate_per_min": b, "tumour.apoptosis_rate_per_min": d,
                       "run.seed": seed})
    dt = sc["run.dt_min"]
    n = BD_STEPS
    R = 64 if quick else 192
    tp = tumour_mod.TumourParams.from_scenario(sc)
    lin = run_lineages(phases, sc, tp, seed, n, R, s=BD_BLOCK, batch=8)
    z = lin["N"]
    N = z.size
    # exact reference from the scenario's rates
    pb, pd = p_step(b, dt), p_step(d, dt)
    p = gw_distribution(pb, pd, n)
    k = np.arange(p.size)
    mean = float((k * p).sum())
    var = float(((k - mean) ** 2 * p).sum())
    mu4 = float(((k - mean) ** 4 * p).sum())
    m = 1 + pb - pd
    mean_formula = m ** n
    res.checks.append(z_check(f"mean lineage size after {n} steps", mean, z.mean(),
                               math.sqrt(var / N), note=f"{N} lineages; exact m^n = {mean_formula:.6g}"))
    sv = float(z.var(ddof=1))
    se_var = math.sqrt(max(mu4 - var * var * (N - 3) / (N - 1), 0) / N)
    res.checks.append(z_check("variance of lineage size", var, sv, se_var))
    q = float(p[0])
    qm = float(np.mean(z == 0))
    res.checks.append(z_check("extinction probability (discrete, exact)", q, qm,
                               math.sqrt(q * (1 - q) / N)))
    # continuous-time limit at t = n dt: q(t) = d(e^{(b-d)t} - 1)/(b e^{(b-d)t} - d)
    t = n * dt
    e = math.exp((b - d) * t)
    qc = d * (e - 1) / (b * e - d)
    res.checks.append(z_check("extinction vs continuous-time limit", qc, qm,
                               math.sqrt(q * (1 - q) / N), extra_tol=abs(q - qc),
                               note=f"tolerance adds the discretisation error |q_dt - q| = {abs(q - qc):.2e}"))
    res.checks.append(Check("ultimate extinction pd/pb vs d/b", d / b, pd / pb,
                            (d / b) * ((b - d) * dt / 2 + (b * dt) ** 2), "numeric",
                            note="discretisation error (d/b)((b-d)dt/2 + O((b dt)^2))"))
    kmax = int(z.max()) + 1
    obs = np.bincount(z, minlength=kmax)
    expct = N * p[:kmax].copy()
    expct[-1] += N * p[kmax:].sum()
    res.checks.append(chi2_check("distribution of lineage sizes", obs, expct))
    res.data = {"z": z, "p": p, "N": N, "q_path": gw_extinction_path(pb, pd, n),
                "qc_path": [d * (math.exp((b - d) * j * dt) - 1) / (b * math.exp((b - d) * j * dt) - d)
                            for j in range(n + 1)], "dt": dt}
    return res
