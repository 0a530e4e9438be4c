"""Would multigrid meet the fields' stopping bound at less cost than red-black SOR?  A float64
prototype on recorded solves (not the solver; docs/fields.md, "Multigrid: measured feasibility").

For each case it records one engine step's solves (:func:`gpusim.study.fieldbench.record_case`), takes
replicate 0 of each field's system (the float32 coefficients of the solver's contract, vessels
held), and iterates V(nu, nu)-cycles from the same warm start the SOR solve had:

* fine level: red-black Gauss-Seidel on the 5- or 7-point operator, vessel voxels held;
* prolongation: cell-centred (bi/tri)linear interpolation (weights 3/4, 1/4 per axis; a coarse
  cell beyond the domain edge gives its weight to the nearest one), zero at held voxels;
  restriction its transpose;
* coarse operator ``--coarse galerkin``: ``P^T A P`` (9-/27-point; symmetric Gauss-Seidel on the
  coarse levels), or ``--coarse rediscretized``: the 5-/7-point operator of the coarse lattice
  (``dh / 4`` per level, the children's mean sink) with the restricted residual divided by
  ``2^d``, the held fine voxels entering the mean sink as ``--sink`` x ``n_nb dh`` (a held voxel
  pins its neighbourhood); red-black Gauss-Seidel on every level;
* down to a lattice edge of 4, solved there directly.

Per cycle it prints the error against the converged solution in units of ``tol`` and the ratio
of successive changes, and marks (``*``) the cycle at which the stopping rule of docs/fields.md,
``2 d rho / (1 - rho) <= tol`` with ``rho = max(r_k, r_{k-1})``, would stop.  ``work`` is the
cost of one cycle in fine-sweep equivalents (``2 nu + 1.5`` per level, weighted by its size).

    python benchmarks/mg_feasibility.py [--cases 100,400] [--fields glucose,o2,chemokine]
                                        [--coarse rediscretized] [--sink 4] [--nu 1]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

ROOT = Path(__file__).resolve().parent.parent


def neighbour_pairs(shape):
    """In-domain neighbour index pairs and the count of out-of-domain neighbours per voxel."""
    Z, Y, X = shape
    idx = np.arange(Z * Y * X).reshape(shape)
    rows, cols, n_out = [], [], np.zeros(shape)
    for ax in ((0, 1, 2) if Z > 1 else (1, 2)):
        for sgn in (-1, 1):
            src, dst, edge = [slice(None)] * 3, [slice(None)] * 3, [slice(None)] * 3
            src[ax] = slice(1, None) if sgn < 0 else slice(None, -1)
            dst[ax] = slice(None, -1) if sgn < 0 else slice(1, None)
            edge[ax] = 0 if sgn < 0 else -1
            rows.append(idx[tuple(src)].ravel())
            cols.append(idx[tuple(dst)].ravel())
            n_out[tuple(edge)] += 1
    return np.concatenate(rows), np.concatenate(cols), n_out.ravel()


def operator(shape, dh, diag, fixed, neumann):
    """The 5-/7-point matrix: free rows ``diag c - dh sum c_nb`` (neumann: minus dh per missing
    neighbour), held rows the identity."""
    i, j, n_out = neighbour_pairs(shape)
    d = np.where(fixed, 1.0, diag - (dh * n_out if neumann else 0.0))
    keep = ~fixed[i] & ~fixed[j]
    V = d.size
    return sp.csr_matrix((np.concatenate([d, np.full(int(keep.sum()), -dh)]),
                          (np.concatenate([np.arange(V), i[keep]]),
                           np.concatenate([np.arange(V), j[keep]]))), shape=(V, V))


def interp_1d(n):
    nc = (n + 1) // 2
    if n == 1:
        return sp.identity(1, format="csr")
    rows, cols, w = [], [], []
    for i in range(n):
        near, far = i // 2, i // 2 - 1 if i % 2 == 0 else i // 2 + 1
        if 0 <= far < nc:
            rows += [i, i]
            cols += [near, far]
            w += [0.75, 0.25]
        else:
            rows.append(i)
            cols.append(near)
            w.append(1.0)
    return sp.csr_matrix((w, (rows, cols)), shape=(n, nc))


def hierarchy(A, fixed, shape, dh, sink, neumann, coarse, k_sink):
    """Levels [(A, fixed, shape, P to the next level or None)], finest first."""
    levels = []
    while min(s for s in shape if s > 1) > 4:
        Z, Y, X = shape
        P = sp.diags((~fixed).astype(float)) @ sp.kron(sp.kron(interp_1d(Z), interp_1d(Y)),
                                                       interp_1d(X)).tocsr()
        levels.append((A, fixed, shape, P))
        cshape = tuple((s + 1) // 2 if s > 1 else 1 for s in shape)
        if coarse == "galerkin":
            A = (P.T @ A @ P).tocsr()
            fixed = np.asarray(A.diagonal() == 0)
            A = A + sp.diags(fixed.astype(float))
        else:
            zz, yy, xx = np.indices(shape)
            parent = (((zz // 2 if Z > 1 else zz) * cshape[1] + yy // 2) * cshape[2] + xx // 2).ravel()
            n_nb = 6 if Z > 1 else 4
            a = np.where(fixed, k_sink * n_nb * dh, sink)
            sink = np.bincount(parent, weights=a) / np.bincount(parent)
            dh = dh / 4.0
            fixed = np.zeros(sink.size, bool)
            A = operator(cshape, dh, n_nb * dh + sink, fixed, neumann)
        shape = cshape
    levels.append((A, fixed, shape, None))
    return levels


def smooth(level, x, b, nu, coarse, fine):
    A, fixed, shape, _ = level
    if coarse == "galerkin" and not fine:  # 9-/27-point: symmetric Gauss-Seidel
        L, U = sp.tril(A, format="csr"), sp.triu(A, k=1, format="csr")
        for _ in range(nu):
            x = spla.spsolve_triangular(L, b - U @ x, lower=True)
        return x
    colour = (np.indices(shape).sum(0) % 2).ravel()
    D = A.diagonal()
    for _ in range(nu):
        for c in (0, 1):
            m = (colour == c) & ~fixed
            x[m] += (b - A @ x)[m] / D[m]
    return x


def vcycle(levels, k, x, b, nu, coarse):
    A, fixed, shape, P = levels[k]
    if P is None:
        free = ~fixed
        x[free] = spla.spsolve(A[free][:, free].tocsc(), b[free])
        return x
    x = smooth(levels[k], x, b, nu, coarse, k == 0)
    r = np.where(fixed, 0.0, b - A @ x)
    rc = P.T @ r
    if coarse != "galerkin":
        rc = rc / (8.0 if shape[0] > 1 else 4.0)
    x = x + P @ vcycle(levels, k + 1, np.zeros(P.shape[1]), rc, nu, coarse)
    return smooth(levels[k], x, b, nu, coarse, k == 0)


def run_field(r, coarse, k_sink, nu, max_cycles=30):
    """V-cycles on replicate 0 of one recorded solve; a dict of the per-cycle history."""
    from gpusim.model.fields import FieldSolver
    from gpusim.model.fields_exact import exact_solution

    shape = r["c"].shape[1:]
    fs = FieldSolver((1,) + shape, diffusion_um2_per_min=r["D"], voxel_um=r["h"],
                     boundary=r["boundary"], boundary_value=r["boundary_value"], omega=r["omega"],
                     tol=r["tol"])
    fixed = np.zeros(int(np.prod(shape)), bool) if r["fixed"] is None else r["fixed"][0].ravel()
    fv = np.where(fixed, float(np.float32(r["fixed_value"])), 0.0)
    dh, neumann = float(fs._dh), fs.boundary == "neumann"
    a = r["a"][0].ravel().astype(np.float64)
    A_full = operator(shape, dh, (fs._den0 + r["a"][0].ravel()).astype(np.float64),
                      np.zeros_like(fixed), neumann)
    b = r["s"][0].ravel().astype(np.float64)
    if not neumann:
        b = b + dh * float(np.float32(fs.boundary_value)) * neighbour_pairs(shape)[2]
    b = np.where(fixed, fv, b - (A_full @ fv - A_full.diagonal() * fv))  # held neighbours moved
    A = operator(shape, dh, (fs._den0 + r["a"][0].ravel()).astype(np.float64), fixed, neumann)
    ex = exact_solution(fs, r["a"][:1], r["s"][:1], None if r["fixed"] is None else r["fixed"][:1],
                        r["fixed_value"], x0=r["c"][:1]).ravel()
    levels = hierarchy(A, fixed, shape, dh, a, neumann, coarse, k_sink)
    work = sum((2 * nu + 1.5) * lv[0].shape[0] / A.shape[0] for lv in levels[:-1])
    x = np.where(fixed, fv, r["c0"][0].ravel().astype(np.float64))
    hist, d_prev, r_prev, stop_at = [], 0.0, 0.0, None
    for k in range(1, max_cycles + 1):
        x0 = x.copy()
        x = vcycle(levels, 0, x, b, nu, coarse)
        d = float(np.abs(x - x0).max())
        ratio = d / d_prev if d_prev > 0 else 1.0
        rho = max(ratio, r_prev)
        hist.append(dict(cycle=k, err_over_tol=float(np.abs(x - ex).max() / r["tol"]), ratio=ratio))
        if stop_at is None and rho < 1 and 2 * d * rho / (1 - rho) <= r["tol"]:
            stop_at = k
            break
        d_prev, r_prev = d, ratio
    return dict(levels=len(levels), work_per_cycle=round(work, 2), cycles_to_rule=stop_at,
                sweep_equivalents=None if stop_at is None else round(stop_at * work, 1),
                sor_sweeps=int(r["sweeps"][0]), history=hist)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cases", default="100,400")
    ap.add_argument("--fields", default="glucose,o2,chemokine")
    ap.add_argument("--coarse", choices=("rediscretized", "galerkin"), default="rediscretized")
    ap.add_argument("--sink", type=float, default=4.0)
    ap.add_argument("--nu", type=int, default=1)
    ap.add_argument("--replicates", type=int, default=2)
    ap.add_argument("--out", default=None, help="also write the results as JSON")
    a = ap.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from gpusim.study.fieldbench import record_case

    out = {}
    for case in a.cases.split(","):
        rec = record_case(case, 1 if case.endswith("x3") else a.replicates, 3, 1)["record"]
        for name in a.fields.split(","):
            if name not in rec or rec[name]["floor"] is not None:
                continue
            res = run_field(rec[name], a.coarse, a.sink, a.nu)
            out[f"{case}/{name}"] = res
            print(case, name, {k: v for k, v in res.items() if k != "history"},
                  " ".join(f"{h['cycle']}:{h['err_over_tol']:.2g}" for h in res["history"]),
                  flush=True)
    if a.out:
        Path(a.out).write_text(json.dumps(dict(args=vars(a), results=out), indent=1) + "\n")


if __name__ == "__main__":
    main()
