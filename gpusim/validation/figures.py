"""One figure per validation case (``gpusim validate --figures DIR``)."""

from __future__ import annotations

import math

import numpy as np

from .cases.antigen_loss import LD_N0
from .core import Z95, Z_CHECK
from .references import greenspan_profile


# ---------------------------------------------------------------------------------------------
# figures
def save(plt, fig, path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def fig_rng(plt, r, path):
    fig, ax = plt.subplots(1, 2, figsize=(9, 3.2))
    h = r.data["hist"]
    ax[0].bar(np.arange(h.size), h, width=1.0, color="tab:blue")
    ax[0].axhline(r.data["n"] / h.size, color="k", lw=1)
    ax[0].set(xlabel="top 8 bits of a word", ylabel="count", title="uniformity")
    names = list(r.data["corr"])
    ax[1].bar(range(len(names)), list(r.data["corr"].values()))
    lim = Z_CHECK / math.sqrt(r.data["n"] / 4)
    ax[1].axhspan(-lim, lim, color="0.9")
    ax[1].set_xticks(range(len(names)), [n.split(" ")[0] for n in names])
    ax[1].set(ylabel="correlation", title="independence (band: tolerance)")
    save(plt, fig, path)


def fig_birth_death(plt, r, path):
    fig, ax = plt.subplots(1, 2, figsize=(9, 3.2))
    z, p, N = r.data["z"], r.data["p"], r.data["N"]
    kmax = min(int(z.max()) + 1, 60)
    ax[0].bar(np.arange(kmax), np.bincount(z, minlength=kmax)[:kmax] / N, label="engine", alpha=0.6)
    ax[0].plot(np.arange(kmax), p[:kmax], "k.", label="exact (pgf)")
    ax[0].set(yscale="log", xlabel="lineage size", ylabel="probability", title="size distribution")
    ax[0].legend()
    t = np.arange(len(r.data["q_path"])) * r.data["dt"] / 60
    ax[1].plot(t, r.data["q_path"], "k-", label="discrete exact")
    ax[1].plot(t, r.data["qc_path"], "r--", label="continuous time")
    ax[1].plot(t[-1], np.mean(z == 0), "bo", label="engine")
    ax[1].set(xlabel="hours", ylabel="P(extinct)", title="extinction")
    ax[1].legend()
    save(plt, fig, path)


def fig_antigen_loss(plt, r, path):
    fig, ax = plt.subplots(1, 3, figsize=(13, 3.2))
    Nc, neg, mu = r.data["Ncell"], r.data["neg"], r.data["mu"]
    order = np.argsort(Nc)
    bins = np.array_split(order, 8)
    xs = [Nc[b].mean() for b in bins]
    ys = [np.mean(neg[b] == 0) for b in bins]
    ax[0].plot(xs, ys, "bo", label="engine")
    nn = np.linspace(Nc.min(), Nc.max(), 100)
    ax[0].plot(nn, (1 - mu) ** (nn - 1), "k-", label="(1-mu)^(N-1)")
    ax[0].set(xlabel="lineage size N", ylabel="P(no antigen-negative)", title="antigen loss")
    ax[0].legend()
    K = min(int(neg.max()) + 1, 40)
    ax[1].bar(np.arange(K), np.bincount(neg, minlength=K)[:K] / neg.size, alpha=0.6, label="engine")
    ax[1].plot(np.arange(K), r.data["law1"][:K], "k.", label="exact law (pgf)")
    ax[1].set(yscale="log", xlabel="antigen-negative cells", ylabel="fraction of lineages",
              title="one founder")
    ax[1].legend()
    cneg = r.data["cneg"]
    K = min(int(cneg.max()) + 1, 40)
    ax[2].bar(np.arange(K), np.bincount(cneg, minlength=K)[:K] / cneg.size, alpha=0.6,
              label="engine")
    ax[2].plot(np.arange(K), r.data["lawc"][:K], "k.", label="exact law (pgf)")
    ax[2].plot(np.arange(K), r.data["ld"][:K], "r-", lw=1, label="Luria-Delbrück (MSS)")
    ax[2].set(yscale="log", xlabel="antigen-negative cells", ylabel="fraction of cultures",
              title=f"{LD_N0} founders; MLE m = {r.data['m_hat']:.2f}")
    ax[2].legend(fontsize=7)
    save(plt, fig, path)


def fig_motility(plt, r, path):
    fig, ax = plt.subplots(1, 3, figsize=(12, 3.2))
    d = r.data
    ax[0].errorbar(d["t"], d["msd"], yerr=Z95 * d["msd_se"], fmt="o", ms=3, label="engine")
    ax[0].plot(d["t"], d["msd_exact"], "k-", label="exact")
    ax[0].set(xlabel="steps", ylabel="MSD (voxel²)", title="random walk")
    ax[0].legend()
    ax[1].plot(d["t"], d["drift"][:, 1], "o", ms=3, label="engine x")
    ax[1].plot(d["t"], d["drift_exact"][:, 1], "k-", label="exact x")
    ax[1].plot(d["t"], d["drift"][:, 0], "s", ms=3, label="engine y")
    ax[1].plot(d["t"], d["drift_exact"][:, 0], "k--", label="exact y")
    ax[1].set(xlabel="steps", ylabel="mean displacement (voxels)", title="chemotaxis")
    ax[1].legend(fontsize=7)
    hit = d["hit"]
    ts = np.arange(d["surv"].size)
    emp = [(hit > k).mean() for k in ts]
    ax[2].plot(ts, emp, label="engine")
    ax[2].plot(ts, d["surv"], "k--", label="exact")
    ax[2].set(xlabel="steps", ylabel="P(not yet crossed)", title="slab crossing")
    ax[2].legend()
    save(plt, fig, path)


def fig_fields(plt, r, path):
    fig, ax = plt.subplots(1, 4, figsize=(16, 3.2))
    d = r.data
    for h, (xx, cc) in d["prof"].items():
        ax[0].plot(xx, cc, ".", ms=3, label=f"engine h={h:g} µm")
    xs = np.linspace(0, max(v[0][-1] for v in d["prof"].values()), 200)
    ax[0].plot(xs, d["analytic"](xs), "k-", lw=1, label="cosh profile")
    ax[0].set(xlabel="x (µm)", ylabel="O2 (mmHg)", title="slab")
    ax[0].legend(fontsize=7)
    ax[1].loglog(d["hs"], d["errs"], "o-", label="max error")
    hs = np.array(d["hs"])
    ax[1].loglog(hs, d["errs"][0] * (hs / hs[0]) ** 2, "k--", label="h²")
    ax[1].set(xlabel="h (µm)", ylabel="error (mmHg)", title="convergence")
    ax[1].legend()
    ax[2].plot(d["sphere_r"], d["sphere_c"], ".", ms=3, label="engine (voxels)")
    for Rb, sty in ((d["R0um"], "k-"), (d["R0um"] + d["h"], "k--")):
        rr = np.linspace(1e-3, Rb, 100)
        ax[2].plot(rr, d["cv"] * Rb * np.sinh(rr / d["lam"]) / (rr * math.sinh(Rb / d["lam"])),
                   sty, label=f"sinh(r/λ)/r, R = {Rb:g} µm")
    ax[2].set(xlabel="r (µm)", ylabel="O2 (mmHg)", title="spheroid (analytic bracket)")
    ax[2].legend(fontsize=7)
    if "gs_r" in d:
        ax[3].plot(d["gs_r"], d["gs_c"], ".", ms=3, label="engine (voxels)")
        for Rb, sty in ((d["gs_R0um"], "k-"), (d["gs_R0um"] + d["h"], "k--")):
            rr = np.linspace(1e-3, Rb, 200)
            ax[3].plot(rr, greenspan_profile(rr, Rb, d["gs_q"], d["D"], d["cv"]), sty,
                       label=f"Greenspan, R = {Rb:g} µm")
        ax[3].axvline(d["gs_rn"], color="tab:red", lw=1, ls=":", label="engine core (vol.-eq.)")
        ax[3].set(xlabel="r (µm)", ylabel="O2 (mmHg)", title="zero-order spheroid (necrotic core)")
        ax[3].legend(fontsize=7)
    save(plt, fig, path)


def fig_well_mixed(plt, r, path):
    fig, ax = plt.subplots(1, 2, figsize=(10, 3.4))
    d = r.data
    for j, (nm, col) in enumerate((("tumour", 2), ("CAR-T effector", 0))):
        ax[0].plot(d["t"], d["traj"][:, :, j].mean(1), label=f"engine {nm} (mean)")
        ax[0].plot(d["t"], d["ode"][:, col], "k--", lw=1)
    ax[0].set(xlabel="days", ylabel="cells", title="(A) growth, expansion, death (dashed: Euler)")
    ax[0].legend(fontsize=7)
    if "traj2" in d:
        for j, nm in enumerate(("tumour", "effector", "memory")):
            ax[1].plot(d["t2"], d["traj2"][:, :, j].mean(1), label=f"engine {nm} (mean)")
            ax[1].plot(d["t2"], d["map2"][:, j], "k:", lw=1)
            ax[1].plot(d["t2"], d["ode2"][:, j], "k--", lw=1)
        ax[1].set(xlabel="days", ylabel="cells",
                  title="(B) with killing and memory (dotted: map, dashed: CARTmath)")
        ax[1].legend(fontsize=7)
    save(plt, fig, path)


def fig_biology(plt, r, path):
    """Paired checks: mean outcome with the mechanism on and off (bars: 95 % CI of the mean)."""
    names = list(r.data)
    fig, axes = plt.subplots(1, max(1, len(names)), figsize=(3.0 * max(1, len(names)), 3.2), squeeze=False)
    for ax, nm in zip(axes[0], names):
        d = r.data[nm]
        m = [d["on"].mean(), d["off"].mean()]
        e = [Z95 * d[k].std(ddof=1) / math.sqrt(d[k].size) for k in ("on", "off")]
        ax.bar([0, 1], m, yerr=e, color=["tab:red", "tab:gray"])
        ax.set_xticks([0, 1], ["on", "off"])
        ax.set_title(nm.split(":")[0] + ":\n" + nm.split(":", 1)[-1][:40], fontsize=7)
    save(plt, fig, path)


FIGURES = {"rng": fig_rng, "birth_death": fig_birth_death, "antigen_loss": fig_antigen_loss, "motility": fig_motility,
         "fields": fig_fields, "well_mixed": fig_well_mixed, "biology": fig_biology}
