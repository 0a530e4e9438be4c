"""Case 3, ``antigen_loss``: antigen loss at division against exact laws and Luria-Delbrueck."""

from __future__ import annotations

import math

import numpy as np

from .birth_death import run_lineages, tumour_only
from ..core import CaseResult, Check, chi2_check, p_exact, p_step, z_check
from ..lattices import blank_state, place_tumour, stir
from ..phases import NUMPY, Phases
from ..references import ld_distribution, ld_fit, ld_information, pure_birth_mutants


# ---------------------------------------------------------------------------------------------
# 3. antigen loss
AL_PB = 0.2  # per-step division probability (pure birth)


AL_MU = 0.01  # antigen loss per division


AL_STEPS = 22


AL_BLOCK = 20  # block edge: stirred lineages of up to ~300 cells in an 18^3 interior (mean density 1 %)

# Luria-Delbrück regime: cultures of LD_N0 founders grow ~18-fold in LD_STEPS steps of division
# probability LD_PB, with LD_M expected loss events per culture
LD_N0, LD_PB, LD_STEPS, LD_M, LD_EDGE = 64, 0.1, 30, 1.0, 40


def run_cultures(phases, sc, tp, seed: int, R: int, batch: int):
    """LD_N0 founders at random voxels of a 3D LD_EDGE^3 lattice per replicate (one culture),
    grown LD_STEPS steps by the engine's tumour phase and stirred over the whole lattice after
    every step; returns per-culture antigen-A-negative counts and divisions."""
    neg, div = [], []
    shape = (LD_EDGE,) * 3
    V = LD_EDGE ** 3
    for first in range(0, R, batch):
        nb = min(batch, R - first)
        st = blank_state(shape, nb, first=first)
        gen = np.random.default_rng([seed, first, LD_EDGE])
        for r in range(nb):
            place_tumour(st, r, gen.choice(V, LD_N0, replace=False))
        d = np.zeros(nb, dtype=np.int64)
        for k in range(LD_STEPS):
            ev = {}
            phases.tumour(sc, st, tp, seed, k, ev)
            stir(st, gen, LD_EDGE)
            d += ev.get("tumour_divisions", 0)
        tum = st.kind.reshape(nb, V) == 1
        neg.append((tum & (st.antigen_a.reshape(nb, V) == 0)).sum(axis=1))
        div.append(d)
    return np.concatenate(neg), np.concatenate(div)


def case_antigen_loss(quick: bool, seed: int, phases: Phases = NUMPY) -> CaseResult:
    """Case 3: antigen loss at division against the exact laws and Luria-Delbrück."""
    from ...model import tumour as tumour_mod

    res = CaseResult("antigen_loss", "Antigen loss at division (pure birth)",
                     "(1-mu)^(N-1), Binomial(D, mu) and the mutant-count law (pgf) exactly; "
                     "Luria & Delbrück 1943 via Ma, Sandri & Sarkar 1992")
    rate = -math.log(1 - AL_PB) / 6.0
    sc = tumour_only({"tumour.division_rate_per_min": rate, "tumour.apoptosis_rate_per_min": 0.0,
                       "tumour.antigen_loss_per_division": AL_MU, "run.seed": seed})
    dt = sc["run.dt_min"]
    R = 48 if quick else 192
    tp = tumour_mod.TumourParams.from_scenario(sc)
    lin = run_lineages(phases, sc, tp, seed, AL_STEPS, R, s=AL_BLOCK, batch=8)
    Ncell, neg = lin["N"], lin["neg"]
    mu = p_exact(AL_MU)  # exact probability the engine realises
    p0 = (1 - mu) ** (Ncell - 1)
    none = (neg == 0).astype(float)
    res.checks.append(z_check("lineages with no antigen-negative cell", p0.sum(), none.sum(),
                               math.sqrt(float((p0 * (1 - p0)).sum())),
                               note=f"{Ncell.size} lineages, sizes {Ncell.min()}..{Ncell.max()}; "
                                    "sum of (1-mu)^(N-1)"))
    D = lin["div"]
    for name, L in (("A", lin["loss_a"]), ("B", lin["loss_b"])):
        res.checks.append(z_check(f"antigen {name} loss events given D = {D} divisions", D * mu,
                                   L, math.sqrt(D * mu * (1 - mu)),
                                   note="Binomial(D, mu)"))
    # the whole law of the negative count per lineage (marginal over the lineage size)
    pb = p_step(rate, dt)
    law1 = pure_birth_mutants(pb, mu, AL_STEPS)
    K = int(neg.max()) + 1
    obs = np.bincount(neg, minlength=K).astype(float)
    expct = neg.size * law1[:K]
    expct[-1] += neg.size * law1[K:].sum()
    res.checks.append(chi2_check("negative cells per lineage vs exact law (pgf)", obs, expct))

    ld = _luria_delbrueck_checks(res, phases, quick, seed, dt)
    res.data = {"Ncell": Ncell, "neg": neg, "mu": mu, "law1": law1, **ld}
    return res


def _luria_delbrueck_checks(res: CaseResult, phases: Phases, quick: bool, seed: int, dt: float) -> dict:
    """Cultures of many founders (growth >> 1, m = O(1) expected loss events): the negatives per
    culture against the exact law, the Luria-Delbrück MLE of m, and how far the Lea-Coulson limit
    is from the exact law."""
    from ...model import tumour as tumour_mod

    ldr = -math.log(1 - LD_PB) / dt
    pl = p_step(ldr, dt)
    ED = LD_N0 * ((1 + pl) ** LD_STEPS - 1)  # expected divisions per culture
    mu_ld_param = LD_M / ED
    sc2 = tumour_only({"tumour.division_rate_per_min": ldr, "tumour.apoptosis_rate_per_min": 0.0,
                        "tumour.antigen_loss_per_division": mu_ld_param, "run.seed": seed})
    mu_ld = p_exact(mu_ld_param)
    Rc = 128 if quick else 512
    cneg, cdiv = run_cultures(phases, sc2, tumour_mod.TumourParams.from_scenario(sc2), seed, Rc, batch=16)
    lawc = pure_birth_mutants(pl, mu_ld, LD_STEPS, n0=LD_N0, M=16384)
    Kc = int(cneg.max()) + 1
    obs_c = np.bincount(cneg, minlength=Kc).astype(float)
    exp_c = Rc * lawc[:Kc]
    exp_c[-1] += Rc * lawc[Kc:].sum()
    res.checks.append(chi2_check(f"negatives per culture ({LD_N0} founders) vs exact law",
                                  obs_c, exp_c))
    # fluctuation analysis: the Luria-Delbrück maximum-likelihood m against mu x divisions; the
    # Lea-Coulson law is the limit (N0 large, N/N0 large, continuous time) of the exact law, and
    # the m an infinite sample of the exact law would give (m_inf) differs from mu E[D] by the
    # stated approximation error, added to the tolerance
    m_exact = mu_ld * ED
    m_inf = ld_fit(lawc[:4000], m_exact)
    m_hat = ld_fit(obs_c, m_exact)
    m_ref = mu_ld * float(cdiv.mean())
    se = 1.0 / math.sqrt(Rc * ld_information(m_exact))
    res.checks.append(z_check("Luria-Delbrück MLE of m (MSS) vs mu x divisions", m_ref, m_hat, se,
                               extra_tol=abs(m_inf - m_exact),
                               note=f"{Rc} cultures, N0 = {LD_N0} -> ~{LD_N0 * (1 + pl) ** LD_STEPS:.0f} "
                                    f"cells; SE from the Fisher information; LD approximation "
                                    f"error |m_inf - mu E[D]| = {abs(m_inf - m_exact):.3f}"))
    ldl = ld_distribution(m_exact, lawc.size - 1)
    res.checks.append(Check("total variation: exact law vs Luria-Delbrück", 0.0,
                            0.5 * float(np.abs(lawc - ldl).sum()), 0.0, "info",
                            note="how far the Lea-Coulson limit is from the engine's exact law here"))
    return {"cneg": cneg, "lawc": lawc, "ld": ldl, "m_hat": m_hat}
