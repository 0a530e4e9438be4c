"""Multigrid V(1,1)-cycles for a field without a floor: the same discrete system as
:class:`~gpusim.model.fields.FieldSolver` (its module docstring), solved in fewer sweep-equivalents
where SOR's slow modes make it expensive (glucose: nearly a Laplace problem, docs/fields.md).

Hierarchy
---------
Level 0 is the field's lattice ``(Z, Y, X)``; level ``l + 1`` halves every extent above 1
(``(n + 1) // 2``) while the smallest such extent exceeds ``min_edge`` (4). Per level
(rediscretized 5-/7-point operator; coarse levels hold no voxel fixed)::

    dh_0 = float32(D / h^2),   dh_{l+1} = dh_l * 0.25            (exact)
    den0_l = dh_l * float32(n_nb)
    den_0 = den0_0 + a           (every voxel; fixed voxels are set to their value)
    a_{l+1}[J] = mean of the children's sink, each fixed child counting K = dh_0 * float32(4 n_nb)
    den_{l+1} = den0_{l+1} + a_{l+1}

The children of a coarse voxel ``J`` are the fine voxels ``2J + d`` (``d`` in {0, 1} per split
axis, inside the domain); the mean is, in float32, the child ``d = 0`` plus each further child in
the order (dz, dy, dx) (0 for a child outside the domain), divided by the float32 count of
children inside. Boundaries: level 0 as the field; coarse levels neumann (no flux) or dirichlet
at 0 (a correction).

Transfers (cell-centred, per split axis; fine index ``i``, coarse ``J = i // 2``): a fine voxel
interpolates from two coarse ones, ``lo`` and ``hi`` with weights ``wlo``, ``whi``: ``i`` even:
``(J - 1, J)`` with ``(0.25, 0.75)``, ``i`` odd: ``(J, J + 1)`` with ``(0.75, 0.25)``; where the far
one lies outside the domain, ``(J, J)`` with ``(1, 0)``. Prolongation-add, per fine voxel not
fixed, axis by axis x, then y, then z (each ``t = wlo * t(lo) + whi * t(hi)``, float32), then
``c = c + e``. Restriction is its transpose: per split axis a coarse ``J`` gathers the fine
``i = 2J - 1 + k``, ``k = 0..3``, with weight ``(wlo[i] if lo[i] == J) + (whi[i] if hi[i] == J)``
(0, and ``i`` clamped into the domain, where ``i`` lies outside), axis by axis x, y, z, each
``t = w_0 t(i_0)``, then ``t = t + w_k t(i_k)`` for k = 1, 2, 3; finally ``s_{l+1} = t * 2^-d``
(d = 2 or 3: exact).

Residual (float32, per voxel; zero at fixed voxels)::

    nb = c[x-1] + c[x+1] + c[y-1] + c[y+1] (+ c[z-1] + c[z+1])   # left to right, boundaries as SOR
    t = dh * nb;  t = t + s;  u = den * c;  r = t - u

Smoother: one red-black Gauss-Seidel sweep, the SOR sweep of the contract with ``omega = 1``.

Cycle (``V(l)``): on the coarsest level ``coarse_sweeps`` sweeps (from 0); else a sweep, the
residual, its restriction to ``s_{l+1}``, ``c_{l+1} = 0``, ``V(l + 1)``, the prolongation-add, a
sweep. A solve runs cycles from the warm start ``c``; after each, per replicate, ``d`` = the max
over the voxels of ``|c - c_before|`` (an exact max) and the stopping rule of
:func:`~gpusim.model.fields.converged` with ``rho_min`` (``rho_min`` = 0.1: a cycle contracts by
0.02-0.36 on the fields' states, docs/fields.md) decides, per replicate; a converged replicate is
frozen. ``solve`` returns the cycles each replicate received. A cycle is a stationary linear
iteration, so the bound of docs/fields.md holds for it as for SOR.

NumPy realisation: natural layout with one voxel of padding (ghosts, as the SOR solver), each
colour as 2 (2D) or 4 (3D) strided parity views; converged replicates are compacted out. The CUDA
twin is ``kernels/multigrid.cu`` (the smoother is ``kernels/fields.cu``'s colour pass).
"""

from __future__ import annotations

from itertools import product

import numpy as np

from .fields import _check_arguments, check_problem, converged, stopping_state

__all__ = ["MultigridSolver", "level_shapes", "prolong_axis", "restrict_weights"]

_F32 = np.float32


def level_shapes(shape3, min_edge: int = 4) -> list[tuple[int, int, int]]:
    """The lattice shapes of the hierarchy, finest first."""
    shapes = [tuple(int(n) for n in shape3)]
    while min((n for n in shapes[-1] if n > 1), default=0) > min_edge:
        shapes.append(tuple((n + 1) // 2 if n > 1 else 1 for n in shapes[-1]))
    return shapes


def prolong_axis(n: int):
    """Per fine index of an axis of length n: ``lo``, ``hi`` (int64) and ``wlo``, ``whi``
    (float32), the module docstring's interpolation."""
    nc = (n + 1) // 2
    i = np.arange(n)
    J = i // 2
    even = i % 2 == 0
    lo = np.where(even, J - 1, J)
    hi = np.where(even, J, J + 1)
    wlo = np.where(even, 0.25, 0.75)
    whi = np.where(even, 0.75, 0.25)
    edge = (lo < 0) | (hi >= nc)
    lo, hi = np.where(edge, J, lo), np.where(edge, J, hi)
    wlo, whi = np.where(edge, 1.0, wlo), np.where(edge, 0.0, whi)
    return lo, hi, wlo.astype(_F32), whi.astype(_F32)


def restrict_weights(n: int) -> np.ndarray:
    """Per coarse index ``J`` of an axis of fine length n, float32 (nc, 4): the weights of the fine
    ``i = 2J - 1 + k`` (k = 0..3; 0 where ``i`` lies outside the domain), the transpose of
    :func:`prolong_axis`."""
    lo, hi, wlo, whi = prolong_axis(n)
    nc = (n + 1) // 2
    i = 2 * np.arange(nc)[:, None] - 1 + np.arange(4)[None, :]
    ic = np.clip(i, 0, n - 1)
    J = np.arange(nc)[:, None]
    w = (np.where(lo[ic] == J, wlo[ic], _F32(0)).astype(_F32)
         + np.where(hi[ic] == J, whi[ic], _F32(0)).astype(_F32))
    return np.where((i >= 0) & (i < n), w, _F32(0)).astype(_F32)


def _restrict_along(t: np.ndarray, ax: int, w: np.ndarray) -> np.ndarray:
    """One axis of the restriction: ``sum_k w[J, k] t[2J - 1 + k]`` in the order k = 0..3 (a value
    outside the domain is 0)."""
    n, nc = t.shape[ax], w.shape[0]
    pad = [(0, 0)] * t.ndim
    pad[ax] = (1, 2 * nc + 1 - n)
    tp = np.pad(t, pad)
    ws = [1] * t.ndim
    ws[ax] = nc
    sl = [slice(None)] * t.ndim
    acc = None
    for k in range(4):
        sl[ax] = slice(k, k + 2 * nc, 2)
        term = tp[tuple(sl)] * w[:, k].reshape(ws)
        acc = term if acc is None else np.add(acc, term, out=acc)
    return acc


def _prolong_along(t: np.ndarray, ax: int, n: int) -> np.ndarray:
    """One axis of the prolongation: fine ``i`` gets ``wlo t[lo] + whi t[hi]``
    (:func:`prolong_axis`); at an edge (weights 1 and 0) that is ``t[J]`` exactly."""
    nc = t.shape[ax]
    shape = list(t.shape)
    shape[ax] = n
    out = np.empty(shape, dtype=_F32)

    def at(a, b, step=1):
        s = [slice(None)] * t.ndim
        s[ax] = slice(a, b, step)
        return tuple(s)
    q, h = _F32(0.25), _F32(0.75)
    ne = (n + 1) // 2              # even fine indices 0, 2, ..: J = 0 .. ne - 1
    out[at(0, 1)] = t[at(0, 1)]    # i = 0: (J, J) with (1, 0)
    if ne > 1:                     # i = 2J, J >= 1: 0.25 t[J - 1] + 0.75 t[J]
        out[at(2, n, 2)] = t[at(0, ne - 1)] * q + t[at(1, ne)] * h
    no = n // 2                    # odd fine indices 2J + 1, J = 0 .. no - 1
    inner = min(no, nc - 1)        # with J + 1 < nc: 0.75 t[J] + 0.25 t[J + 1]
    if inner > 0:
        out[at(1, 2 * inner, 2)] = t[at(0, inner)] * h + t[at(1, inner + 1)] * q
    if no > inner:                 # i = n - 1 odd (n even): (J, J) with (1, 0)
        out[at(n - 1, n)] = t[at(nc - 1, nc)]
    return out


class _Level:
    """One level's arrays in the x-parity layout and its colour views (module docstring).

    An array of a level is float32 ``(2, n, Zp, Y + 2, W)``: component ``px`` holds the voxels
    with ``x % 2 == px`` (``x = 2 j + px`` stored at ``j + 1``), with one ghost layer on every side
    (``Zp = Z + 2`` in 3D, 1 in 2D; ``W = (X + 1) // 2 + 2``), so that every operand of a colour
    pass is a slice with unit stride along x.
    """

    def __init__(self, shape3, dh, three_d: bool):
        self.shape3 = shape3
        Z, Y, X = shape3
        self.three_d = three_d
        self.dh = dh
        self.count = ((X + 1) // 2, X // 2)     # voxels per row in each component
        self.pshape = (Z + 2 if three_d else 1, Y + 2, (X + 1) // 2 + 2)
        self.zin = slice(1, Z + 1) if three_d else slice(0, 1)
        # the real voxels of component px, without the component axis
        self.real = [(slice(None), self.zin, slice(1, Y + 1), slice(1, 1 + m)) for m in self.count]
        self.colours = ([], [])
        for pz, py, px in product((0, 1) if three_d else (0,), (0, 1), (0, 1)):
            zs = slice(1 + pz, 1 + Z, 2) if three_d else slice(0, 1)
            if (three_d and pz >= Z) or py >= Y or not self.count[px]:
                continue
            own = (slice(None), zs, slice(1 + py, 1 + Y, 2), slice(1, 1 + self.count[px]))
            self.colours[(px + py + pz) % 2].append((px, own, self._nbs(px, own)))
        # every voxel of a component (the residual)
        self.all = [(px, self.real[px], self._nbs(px, self.real[px])) for px in (0, 1) if self.count[px]]

    def _nbs(self, px, own):
        """Neighbour views of the voxels ``own`` of component px, in the contract's order x-, x+,
        y-, y+ (, z-, z+): (component, view)."""
        m = self.count[px]
        out = [(1 - px, own[:3] + (slice(px, px + m),)), (1 - px, own[:3] + (slice(1 + px, 1 + px + m),))]
        for ax in (2, 1) if self.three_d else (2,):
            for d in (-1, 1):
                s = list(own)
                s[ax] = slice(own[ax].start + d, own[ax].stop + d, own[ax].step)
                out.append((px, tuple(s)))
        return out

    def ghosts(self, c) -> None:
        """Neumann ghosts: a copy of the boundary voxel each one mirrors."""
        Z, Y, X = self.shape3
        c[1, ..., 0] = c[0, ..., 1]                                # x = -1 mirrors x = 0
        c[X % 2, ..., X // 2 + 1] = c[(X - 1) % 2, ..., (X - 1) // 2 + 1]   # x = X mirrors X - 1
        c[:, :, :, 0, :] = c[:, :, :, 1, :]
        c[:, :, :, Y + 1, :] = c[:, :, :, Y, :]
        if self.three_d:
            c[:, :, 0] = c[:, :, 1]
            c[:, :, Z + 1] = c[:, :, Z]

    def split(self, nat: np.ndarray, out: np.ndarray) -> None:
        """Write the natural-layout (n, Z, Y, X) values into the real voxels of ``out``."""
        for px in (0, 1):
            if self.count[px]:
                out[px][self.real[px]] = nat[..., px::2]

    def merge(self, comp: np.ndarray) -> np.ndarray:
        """The real voxels of ``comp`` in natural layout (n, Z, Y, X), a new array."""
        n = comp.shape[1]
        nat = np.empty((n,) + self.shape3, dtype=comp.dtype)
        for px in (0, 1):
            if self.count[px]:
                nat[..., px::2] = comp[px][self.real[px]]
        return nat


class MultigridSolver:
    """V(1,1)-cycles for one field on one lattice shape (the module docstring's contract).

    Same constructor arguments (no ``omega``, no ``floor``) and the same ``solve`` as
    :class:`~gpusim.model.fields.FieldSolver`; ``solve`` returns cycles per replicate.
    """

    omega = 1.0   # the smoother's factor
    floor = None  # no obstacle problems: projected SOR stays with FieldSolver

    def __init__(self, shape, *, diffusion_um2_per_min: float, voxel_um: float,
                 boundary: str = "neumann", boundary_value: float = 0.0, tol: float = 1e-4,
                 max_iter: int = 200, scale: float = 0.0, rho_min: float = 0.1,
                 coarse_sweeps: int = 8, min_edge: int = 4):
        shape = tuple(int(v) for v in shape)
        _check_arguments(shape, diffusion_um2_per_min, voxel_um, boundary, boundary_value, 1.0,
                         tol, max_iter, None, scale)
        if not 0.0 <= rho_min < 1.0:
            raise ValueError(f"rho_min must lie in [0, 1), got {rho_min}")
        if int(coarse_sweeps) < 1 or int(min_edge) < 1:
            raise ValueError("coarse_sweeps and min_edge must be >= 1")
        self.shape, self.boundary = shape, boundary
        self.boundary_value, self.tol = float(boundary_value), float(tol)
        self.max_iter, self.scale = int(max_iter), float(scale)
        self.diffusion_um2_per_min, self.voxel_um = float(diffusion_um2_per_min), float(voxel_um)
        self.coarse_sweeps = int(coarse_sweeps)
        self.three_d = shape[1] > 1
        self.n_nb = 6 if self.three_d else 4
        self._dh = _F32(self.diffusion_um2_per_min / (self.voxel_um * self.voxel_um))
        self._den0 = _F32(self._dh * _F32(self.n_nb))
        self._tol, self._scale = _F32(self.tol), _F32(self.scale)
        self._rho_min = _F32(rho_min)
        self._sink_fixed = _F32(self._dh * _F32(4 * self.n_nb))
        self.shapes = level_shapes(shape[1:], min_edge)
        dh, self.levels = self._dh, []
        for s3 in self.shapes:
            self.levels.append(_Level(s3, dh, self.three_d))
            dh = _F32(dh * _F32(0.25))
        self._den0s = [_F32(lv.dh * _F32(self.n_nb)) for lv in self.levels]
        self._axes = (3, 2, 1) if self.three_d else (3, 2)
        self._rw = [{ax: restrict_weights(s3[ax - 1]) for ax in self._axes} for s3 in self.shapes]
        self._rscale = _F32(0.125 if self.three_d else 0.25)

    # ------------------------------------------------------------------ level operations
    def _sweep(self, lv, c, s, den, held) -> None:
        """One red-black Gauss-Seidel sweep (the SOR sweep with omega = 1); ``held``: None or the
        fixed voxels (:meth:`_held`), reset after each colour."""
        if self.boundary == "neumann":
            lv.ghosts(c)
        dh = lv.dh
        for colour in lv.colours:
            for px, own, nbs in colour:
                (q0, v0), (q1, v1) = nbs[0], nbs[1]
                t = np.add(c[q0][v0], c[q1][v1])
                for q, v in nbs[2:]:
                    np.add(t, c[q][v], out=t)
                np.multiply(dh, t, out=t)
                np.add(t, s[px][own], out=t)
                np.divide(t, den[px][own], out=t)        # gs
                cv = c[px][own]
                np.subtract(t, cv, out=t)
                np.add(cv, t, out=t)                     # c + (gs - c)
                c[px][own] = t
            if held is not None:
                c.reshape(-1)[held[0]] = held[1]

    def _residual(self, lv, c, s, den, held) -> list:
        """The residual of every component, natural within it: float32 (n, Z, Y, count[px])."""
        if self.boundary == "neumann":
            lv.ghosts(c)
        out = []
        for px, own, nbs in lv.all:
            (q0, v0), (q1, v1) = nbs[0], nbs[1]
            t = np.add(c[q0][v0], c[q1][v1])
            for q, v in nbs[2:]:
                np.add(t, c[q][v], out=t)
            np.multiply(lv.dh, t, out=t)
            np.add(t, s[px][own], out=t)
            np.subtract(t, den[px][own] * c[px][own], out=t)
            if held is not None:
                t.reshape(-1)[held[2][px]] = 0
            out.append(t)
        return out

    def _restrict(self, l: int, r: list) -> np.ndarray:
        """The restriction of the residual components of level l: natural (n, Zc, Yc, Xc)."""
        n0, n1 = self.levels[l].count
        Xc = self.shapes[l + 1][2]
        ev = r[0]
        od = r[1] if n1 else np.zeros(ev.shape[:3] + (0,), dtype=_F32)
        pad = [(0, 0)] * 3
        evp = np.pad(ev, pad + [(0, Xc + 1 - n0)])   # fine 2J: evp[J]
        odp = np.pad(od, pad + [(1, Xc - n1)])       # fine 2J - 1: odp[J]
        w = self._rw[l][3]
        acc = odp[..., 0:Xc] * w[:, 0]
        acc += evp[..., 0:Xc] * w[:, 1]
        acc += odp[..., 1:Xc + 1] * w[:, 2]
        acc += evp[..., 1:Xc + 1] * w[:, 3]
        for ax in self._axes[1:]:
            acc = _restrict_along(acc, ax, self._rw[l][ax])
        return np.multiply(acc, self._rscale, out=acc)

    def _prolong_add(self, l: int, cc: np.ndarray, c: np.ndarray, held) -> None:
        """c (level l) += the prolongation of the level-l+1 correction ``cc``; axes z, y, x."""
        lv = self.levels[l]
        t = self.levels[l + 1].merge(cc)
        for ax in self._axes[:0:-1]:
            t = _prolong_along(t, ax, self.shapes[l][ax - 1])
        n0, n1 = lv.count
        Xc = t.shape[3]
        q, h = _F32(0.25), _F32(0.75)
        e = np.empty(t.shape[:3] + (n0,), dtype=_F32)   # fine 2J
        e[..., 0] = t[..., 0]
        if n0 > 1:
            np.add(t[..., :n0 - 1] * q, t[..., 1:n0] * h, out=e[..., 1:])
        np.add(e, c[0][lv.real[0]], out=e)
        c[0][lv.real[0]] = e
        if n1:
            e = np.empty(t.shape[:3] + (n1,), dtype=_F32)   # fine 2J + 1
            m = min(n1, Xc - 1)
            np.add(t[..., :m] * h, t[..., 1:m + 1] * q, out=e[..., :m])
            if n1 > m:
                e[..., m:] = t[..., Xc - 1:Xc]
            np.add(e, c[1][lv.real[1]], out=e)
            c[1][lv.real[1]] = e
        if held is not None:
            c.reshape(-1)[held[0]] = held[1]

    def _coarsen(self, a: np.ndarray, fixed) -> list[np.ndarray]:
        """den of every level (component layout), from level 0's sink ``a`` (n, Z, Y, X)."""
        dens = []
        for l, lv in enumerate(self.levels):
            if l:
                a = self._child_mean(l - 1, a)
            den = np.ones((2, len(a)) + lv.pshape, dtype=_F32)
            lv.split(self._den0s[l] + a, den)
            dens.append(den)
            if l == 0 and fixed is not None:
                a = np.where(fixed, self._sink_fixed, a)
        return dens

    def _child_mean(self, l: int, a: np.ndarray) -> np.ndarray:
        """The coarse sink of level l + 1: the float32 mean of the children (module docstring)."""
        split = [ax for ax in (1, 2, 3) if a.shape[ax] > 1]
        cshape = self.shapes[l + 1]
        pad = [(0, 0)] + [(0, 2 * cshape[ax - 1] - a.shape[ax]) if ax in split else (0, 0)
                          for ax in (1, 2, 3)]
        ap = np.pad(a, pad)
        cnt = np.pad(np.ones((1,) + a.shape[1:], dtype=_F32), pad)
        acc = num = None
        for d in product(*[(0, 1) if ax in split else (0,) for ax in (1, 2, 3)]):
            sl = (slice(None),) + tuple(slice(o, None, 2) if ax in split else slice(None)
                                        for ax, o in zip((1, 2, 3), d))
            acc = ap[sl].copy() if acc is None else acc + ap[sl]
            num = cnt[sl].copy() if num is None else num + cnt[sl]
        return acc / num

    # ------------------------------------------------------------------ the cycle
    def _vcycle(self, l: int, cs, ss, dens, held) -> None:
        lv = self.levels[l]
        h = held if l == 0 else None
        if l == len(self.levels) - 1:
            for _ in range(self.coarse_sweeps):
                self._sweep(lv, cs[l], ss[l], dens[l], h)
            return
        self._sweep(lv, cs[l], ss[l], dens[l], h)
        r = self._residual(lv, cs[l], ss[l], dens[l], h)
        self.levels[l + 1].split(self._restrict(l, r), ss[l + 1])
        cs[l + 1].fill(0)
        self._vcycle(l + 1, cs, ss, dens, held)
        self._prolong_add(l, cs[l + 1], cs[l], h)
        self._sweep(lv, cs[l], ss[l], dens[l], h)

    def _held(self, fixed, c0):
        """The fixed voxels: (flat indices into the level-0 array c0, their values, per component
        the flat indices into its residual array), or None."""
        if fixed is None:
            return None
        assert c0.flags.c_contiguous   # the resets write through c0.reshape(-1)
        lv = self.levels[0]
        full = np.zeros(c0.shape, dtype=bool)
        lv.split(fixed, full)
        idx = np.flatnonzero(full)
        return idx, c0.reshape(-1)[idx], [np.flatnonzero(fixed[..., px::2]) for px in (0, 1)]

    def solve(self, c, a, s, fixed_mask=None, fixed_value=0.0) -> np.ndarray:
        """Update c (float32 (R, Z, Y, X)) in place; as :meth:`FieldSolver.solve
        <gpusim.model.fields.FieldSolver.solve>`, returning the cycles per replicate."""
        a, s, fixed, fv = check_problem(self.shape, c, a, s, fixed_mask, fixed_value)
        R = self.shape[0]
        lv0 = self.levels[0]
        start = c.copy()
        if fixed is not None:
            np.copyto(start, fv, where=fixed)
        cs = [np.full((2, R) + lv.pshape, _F32(self.boundary_value if l == 0 else 0), dtype=_F32)
              for l, lv in enumerate(self.levels)]
        ss = [np.zeros((2, R) + lv.pshape, dtype=_F32) for lv in self.levels]
        lv0.split(start, cs[0])
        lv0.split(s, ss[0])
        dens = self._coarsen(a, fixed)
        held = self._held(fixed, cs[0])
        cmax = (np.abs(start).reshape(R, -1).max(axis=1) if self._scale > 0
                else np.zeros(R, _F32))
        rule = stopping_state(cmax, self._scale)
        iters = np.zeros(R, dtype=np.int32)
        slot_of = np.arange(R)
        for _ in range(self.max_iter):
            n = len(slot_of)
            before = [cs[0][px][lv0.real[px]].copy() for px in (0, 1) if lv0.count[px]]
            self._vcycle(0, cs, ss, dens, held)
            d = np.zeros(n, dtype=_F32)
            for px, b in enumerate(before):
                np.subtract(cs[0][px][lv0.real[px]], b, out=b)
                np.maximum(d, np.abs(b, out=b).reshape(n, -1).max(axis=1), out=d)
            iters[slot_of] += 1
            done = converged(d, rule, self._tol, self._rho_min)
            if not done.any():
                continue
            out = lv0.merge(cs[0])
            for k in np.flatnonzero(done):
                c[slot_of[k]] = out[k]
            keep = np.flatnonzero(~done)
            if len(keep) == 0:
                return iters
            slot_of = slot_of[keep]
            cs = [np.take(cs[0], keep, axis=1)] + [x[:, :len(keep)] for x in cs[1:]]
            ss = [np.take(ss[0], keep, axis=1)] + [x[:, :len(keep)] for x in ss[1:]]
            dens = [np.take(dn, keep, axis=1) for dn in dens]
            fixed = None if fixed is None else fixed[keep]
            held = self._held(fixed, cs[0])
            rule = np.ascontiguousarray(rule[:, np.concatenate([keep, np.flatnonzero(done)])])
        c[slot_of] = lv0.merge(cs[0])    # not converged within max_iter
        return iters
