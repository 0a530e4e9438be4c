"""The float64 oracle of the field solver: the converged solution of the discrete system a
:class:`~gpusim.model.fields.FieldSolver` iterates on (a test and benchmark oracle; scipy is not a
run-time dependency)."""

from __future__ import annotations

import numpy as np

from .fields import FieldSolver

__all__ = ["exact_solution"]

_F32 = np.float32


def exact_solution(fs: FieldSolver, a, s, fixed_mask=None, fixed_value=0.0, *, x0=None,
                   direct_max: int = 200_000) -> np.ndarray:
    """The converged solution of the discrete system ``fs`` iterates on, in float64 (scipy.sparse
    direct solve; a test and benchmark oracle, scipy is not a run-time dependency).

    Same system as :meth:`FieldSolver.solve`: the float32 coefficients ``dh`` and ``den0 + a``
    (float32 sum) of the contract, fixed voxels held at ``float32(fixed_value)``, dirichlet
    neighbours at ``float32(boundary_value)``, neumann neighbours outside the domain replaced by
    the voxel itself.  No floor: a solver with a floor (an obstacle problem) is refused.
    The fixed voxels are eliminated (the rest is symmetric positive definite); up to
    ``direct_max`` free voxels per replicate it is a direct solve (SuperLU), above that
    Jacobi-preconditioned CG to a relative residual of 1e-14 from ``x0`` (e.g. the float32
    result).  Returns float64 of ``fs.shape``."""
    if fs.floor is not None:
        raise ValueError("exact_solution: a solver with a floor solves an obstacle problem")
    R, Z, Y, X = fs.shape
    V = Z * Y * X
    a = np.asarray(a, dtype=_F32).reshape(R, V)
    s = np.asarray(s, dtype=_F32).reshape(R, V)
    fixed = (np.zeros((R, V), bool) if fixed_mask is None
             else np.asarray(fixed_mask, dtype=bool).reshape(R, V))
    fv = np.broadcast_to(np.asarray(fixed_value, dtype=_F32), fs.shape).reshape(R, V)
    i_in, j_in, n_out = _neighbour_pairs(fs)
    out = np.empty((R, V), np.float64)
    for r in range(R):
        start = None if x0 is None else np.asarray(x0, np.float64).reshape(R, V)[r]
        out[r] = _solve_one(fs, a[r], s[r], fixed[r], fv[r], i_in, j_in, n_out, start, direct_max)
    return out.reshape(fs.shape)


def _neighbour_pairs(fs: FieldSolver):
    """(voxel, neighbour) flat index arrays of every in-domain neighbour pair, and per voxel the
    count of its neighbours outside the domain (int64 (V,))."""
    _, Z, Y, X = fs.shape
    V = Z * Y * X
    idx = np.arange(V).reshape(Z, Y, X)
    pairs = []  # (voxel, neighbour) index arrays for in-domain neighbours; count of outside ones
    n_out = np.zeros((Z, Y, X), np.int64)
    for ax in ((0, 1, 2) if fs.three_d else (1, 2)):
        for sgn in (-1, 1):
            src = [slice(None)] * 3
            dst = [slice(None)] * 3
            src[ax] = slice(1, None) if sgn < 0 else slice(None, -1)
            dst[ax] = slice(None, -1) if sgn < 0 else slice(1, None)
            pairs.append((idx[tuple(src)].ravel(), idx[tuple(dst)].ravel()))
            edge = [slice(None)] * 3
            edge[ax] = 0 if sgn < 0 else -1
            n_out[tuple(edge)] += 1
    n_out = n_out.ravel()
    return np.concatenate([p[0] for p in pairs]), np.concatenate([p[1] for p in pairs]), n_out


def _solve_one(fs: FieldSolver, a, s, fx, fv, i_in, j_in, n_out, start, direct_max: int):
    """float64 (V,): the exact solution of one replicate (``a``, ``s``, ``fv`` float32 (V,),
    ``fx`` bool (V,) fixed voxels; ``start`` the CG start, float64 (V,) or None)."""
    import scipy.sparse as sp
    import scipy.sparse.linalg as spla

    V = a.shape[0]
    dh, bv = float(fs._dh), float(_F32(fs.boundary_value))
    diag = (fs._den0 + a).astype(np.float64)          # den = den0 + a in float32
    rhs = s.astype(np.float64)
    if fs.boundary == "dirichlet":
        rhs = rhs + dh * bv * n_out
    else:
        diag = diag - dh * n_out
    keep = ~fx[i_in]
    A = sp.csr_matrix((np.concatenate([diag, np.full(int(keep.sum()), -dh)]),
                       (np.concatenate([np.arange(V), i_in[keep]]),
                        np.concatenate([np.arange(V), j_in[keep]]))), shape=(V, V))
    # eliminate the fixed voxels: a symmetric positive definite system in the free ones
    free = np.flatnonzero(~fx)
    xf = np.where(fx, fv.astype(np.float64), 0.0)
    A = A.tocsr()
    Aff = A[free][:, free].tocsc()
    bf = rhs[free] - A[free] @ xf
    x = xf.copy()
    if len(free) <= direct_max:
        x[free] = spla.spsolve(Aff, bf)
    else:  # large 3D: SuperLU's fill-in is too costly; CG to the float64 rounding level
        sol, info = spla.cg(Aff, bf, x0=None if start is None else start[free], rtol=1e-14,
                            atol=0.0, maxiter=100_000, M=sp.diags(1.0 / Aff.diagonal()))
        if info != 0:
            raise RuntimeError(f"exact_solution: CG did not converge (info {info})")
        x[free] = sol
    return x
