"""Multigrid V(1,1)-cycles for a field without a floor: the same discrete system as
:class:`~gpusim.model.fields.FieldSolver` (its module docstring), solved in a few cycles where
SOR's slow modes make it expensive (glucose: nearly a Laplace problem; docs/fields.md).

Hierarchy
---------
Level 0 is the field's lattice ``(Z, Y, X)``; level ``l + 1`` halves every extent above 1
(``(n + 1) // 2``), down to one voxel. A level is 3D when the field's lattice is (also once its
Z has come down to 1). Per level (rediscretized 5-/7-point operator; coarse levels hold no voxel
fixed and solve for a correction: neumann, or dirichlet at 0)::

    dh_0 = float32(D / h^2),   dh_l = float32(D / (h 2^l)^2)  (= dh_0 / 4^l exactly)
    den0_l = dh_l * float32(n_nb)
    den_0 = den0_0 + a           (every voxel; fixed voxels are set to their value)
    a_{l+1}[J] = (sum of the children's sink) / (number of possible children)
    den_{l+1} = den0_{l+1} + a_{l+1}

The children of a coarse voxel ``J`` are the fine voxels ``2J + d`` (``d`` in {0, 1} per axis of
extent above 1); the sum is, in float32, the child ``d = 0`` plus each further child in the order
(dz, dy, dx), a child outside the lattice (past the far edge of an odd extent) adding 0, a fixed
child counting ``K = dh_0 * float32(4 n_nb)``; it is divided by 2 per coarsened axis (a coarse
voxel half outside the lattice has half the sink, as its restricted residual below).

Transfers (cell-centred, per axis of extent ``n`` above 1; fine index ``i``, ``J = i // 2``): a
fine voxel interpolates from ``lo``, ``hi`` with weights ``wlo``, ``whi``: ``i`` even ``(J - 1, J)``
with ``(0.25, 0.75)``, ``i`` odd ``(J, J + 1)`` with ``(0.75, 0.25)``; where the far one lies
outside, the value at ``J`` itself. Prolongation-add, per fine voxel not fixed, axis by axis z
(3D), then y, then x (each ``t = wlo * t(lo) + whi * t(hi)``, float32), then ``c = e + c``.
Restriction is its transpose: per axis a coarse ``J`` gathers the fine ``i = 2J - 1 + k``,
``k = 0..3``, with weight ``(wlo[i] if lo[i] == J) + (whi[i] if hi[i] == J)`` (a value outside the
lattice is 0, its weight 0), axis by axis x, y, z (3D), each ``t = w_0 t(i_0)``, then
``t = t + w_k t(i_k)`` for k = 1, 2, 3, then ``t = t * 0.5`` (an axis of length 1: the value
itself, scale 1).

Residual (per voxel; 0 at fixed voxels), in float64 and rounded once to float32 (in float32 the
two near-equal terms of a weakly absorbing field would cancel to rounding noise, which the coarse
levels amplify by about ``1 / a``)::

    nb = c[x-1] + c[x+1] + c[y-1] + c[y+1] (+ c[z-1] + c[z+1])   # left to right, boundaries as SOR
    t = dh * nb;  t = t + s;  u = den * c;  r = float32(t - u)    # every operand widened first

Smoother: one red-black Gauss-Seidel sweep, the SOR sweep of the contract with ``omega = 1``.
The one-voxel level is solved exactly: ``c = s / a`` (neumann: every neighbour is the voxel
itself; 0 where ``a`` is 0), ``c = s / den`` (dirichlet).

Cycle (``V(l)``): a sweep, the residual, its restriction to ``s_{l+1}``, ``c_{l+1} = 0``, then
``V(l + 1)`` (the exact solve on the one-voxel level), the prolongation-add, a sweep; a lattice of
one voxel is one sweep per cycle. A solve runs cycles from the warm start ``c``; after each, per
replicate, ``d`` = the max over the voxels of ``|c - c_before|`` (an exact max) and the stopping
rule of :func:`~gpusim.model.fields.converged` with ``rho_min = 0.3`` (the asymptotic contraction
of a cycle on the fields' states is 0.25-0.5, while the ratio of the first two changes reads as
low as 0.07; docs/fields.md) decides, per replicate; a converged replicate is frozen. ``solve``
returns the cycles each replicate received. A cycle is a stationary linear iteration, so the
bound of docs/fields.md holds for it as for SOR.

NumPy realisation: every level is a :class:`~gpusim.model.fields.FieldSolver` (omega 1) whose
parity sub-lattices hold the level's c, s and den (its sweep is the smoother); the transfers read
and write those sub-lattices axis by axis, even and odd indices apart; converged replicates are
compacted out. The CUDA twin is ``kernels/multigrid.cu`` (the smoother is ``kernels/fields.cu``'s
colour pass).
"""

from __future__ import annotations

from itertools import product

import numpy as np

from .fields import (FieldSolver, _check_arguments, check_problem, converged, solve_slots,
                     stopping_state)

__all__ = ["MultigridSolver", "level_shapes", "prolong_axis", "restrict_weights"]

_F32 = np.float32


def level_shapes(shape3) -> list[tuple[int, int, int]]:
    """The lattice shapes of the hierarchy, finest first, down to one voxel."""
    shapes = [tuple(int(n) for n in shape3)]
    while max(shapes[-1]) > 1:
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


def _along(ax: int, a: int, b: int):
    """The index selecting a:b along axis ``ax`` of an (n, Z, Y, X) array."""
    s = [slice(None)] * 4
    s[ax] = slice(a, b)
    return tuple(s)


def _restrict_pair(ev: np.ndarray, od: np.ndarray, ax: int, w: np.ndarray) -> np.ndarray:
    """One axis of the restriction from the fine values of even (``ev``, fine 2j at j) and odd
    (``od``, fine 2j + 1 at j) index along ``ax``: coarse J gets
    ``w0 od[J-1] + w1 ev[J] + w2 od[J] + w3 ev[J+1]`` in that order, a term outside the axis
    being ``0 * 0`` (so the edge entries add +0, as the kernel does)."""
    nc, n1 = w.shape[0], od.shape[ax]
    ws = [1, 1, 1, 1]
    ws[ax] = -1
    col = lambda k, a, b: w[a:b, k].reshape(ws)  # noqa: E731
    shape = list(ev.shape)
    shape[ax] = nc
    acc = np.empty(shape, dtype=_F32)
    acc[_along(ax, 0, 1)] = 0                                     # J = 0: od[-1] is outside
    np.multiply(od[_along(ax, 0, nc - 1)], col(0, 1, nc), out=acc[_along(ax, 1, nc)])
    acc += ev[_along(ax, 0, nc)] * col(1, 0, nc)
    acc[_along(ax, 0, n1)] += od[_along(ax, 0, n1)] * col(2, 0, n1)
    acc[_along(ax, n1, nc)] += _F32(0)                            # od[nc - 1] outside (n odd)
    acc[_along(ax, 0, nc - 1)] += ev[_along(ax, 1, nc)] * col(3, 0, nc - 1)
    acc[_along(ax, nc - 1, nc)] += _F32(0)                        # ev[nc] is outside
    if ev.shape[ax] + od.shape[ax] > 1:                            # a coarsened axis: 1/2
        acc *= _F32(0.5)
    return acc


def _prolong_pair(t: np.ndarray, ax: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """One axis of the prolongation to fine length n: the values at the even fine indices 2J
    (``t[0]`` at J = 0, else ``0.25 t[J-1] + 0.75 t[J]``) and at the odd ones 2J + 1
    (``0.75 t[J] + 0.25 t[J+1]``, ``t[J]`` where J + 1 is outside), :func:`prolong_axis`."""
    nc = t.shape[ax]
    q, h = _F32(0.25), _F32(0.75)
    ne, no = (n + 1) // 2, n // 2
    shape = list(t.shape)
    shape[ax] = ne
    ev = np.empty(shape, dtype=_F32)
    ev[_along(ax, 0, 1)] = t[_along(ax, 0, 1)]
    if ne > 1:
        np.add(t[_along(ax, 0, ne - 1)] * q, t[_along(ax, 1, ne)] * h, out=ev[_along(ax, 1, ne)])
    shape[ax] = no
    od = np.empty(shape, dtype=_F32)
    m = min(no, nc - 1)
    if m > 0:
        np.add(t[_along(ax, 0, m)] * h, t[_along(ax, 1, m + 1)] * q, out=od[_along(ax, 0, m)])
    if no > m:
        od[_along(ax, m, no)] = t[_along(ax, nc - 1, nc)]
    return ev, od


class MultigridSolver:
    """V(1,1)-cycles for one field on one lattice shape (the module docstring's contract).

    Same constructor arguments (no ``omega``, no ``floor``) and the same ``solve`` as
    :class:`~gpusim.model.fields.FieldSolver`; ``solve`` returns cycles per replicate.
    """

    omega = 1.0   # the smoother's factor
    floor = None  # no obstacle problems: projected SOR stays with FieldSolver

    def __init__(self, shape, *, diffusion_um2_per_min: float, voxel_um: float,
                 boundary: str = "neumann", boundary_value: float = 0.0, tol: float = 1e-4,
                 max_iter: int = 1000, scale: float = 0.0, rho_min: float = 0.3):
        shape = tuple(int(v) for v in shape)
        _check_arguments(shape, diffusion_um2_per_min, voxel_um, boundary, boundary_value, 1.0,
                         tol, max_iter, None, scale)
        if not (isinstance(rho_min, (int, float, np.floating)) and 0.0 <= rho_min < 1.0):
            raise ValueError(f"rho_min must be a number in [0, 1), got {rho_min!r}")
        self.shape, self.boundary = shape, boundary
        self.boundary_value, self.tol = float(boundary_value), float(tol)
        self.max_iter, self.scale = int(max_iter), float(scale)
        self.diffusion_um2_per_min, self.voxel_um = float(diffusion_um2_per_min), float(voxel_um)
        self.three_d = shape[1] > 1
        self.n_nb = 6 if self.three_d else 4
        self._tol, self._scale = _F32(self.tol), _F32(self.scale)
        self._rho_min = _F32(rho_min)
        self.shapes = level_shapes(shape[1:])
        # one red-black (omega 1) sub-lattice solver per level: dh_l = float32(D / (h 2^l)^2),
        # exactly dh_0 / 4^l; coarse levels solve for a correction (dirichlet at 0)
        self.levels = [FieldSolver(shape[:1] + s3, diffusion_um2_per_min=diffusion_um2_per_min,
                                   voxel_um=voxel_um * 2 ** l, boundary=boundary,
                                   boundary_value=boundary_value if l == 0 else 0.0, omega=1.0,
                                   tol=0.0, max_iter=1, three_d=self.three_d)
                       for l, s3 in enumerate(self.shapes)]
        self._dh, self._den0 = self.levels[0]._dh, self.levels[0]._den0
        self._sink_fixed = _F32(self._dh * _F32(4 * self.n_nb))
        self._axes = (3, 2, 1) if self.three_d else (3, 2)
        self._rw = [{ax: restrict_weights(s3[ax - 1]) for ax in self._axes} for s3 in self.shapes]

    @property
    def _den0s(self) -> list:
        return [lv._den0 for lv in self.levels]

    # ------------------------------------------------------------------ level operations
    @staticmethod
    def _real(lv, buf, p, n, margin=True):
        """The real voxels of sub-lattice p of the first n replicate blocks of ``buf``."""
        return lv._blocks(buf[p], n, margin)[(slice(None),) + lv._real[p]]

    def _residual(self, lv, n: int) -> dict:
        """The residual of every sub-lattice (0 at held voxels): {parity: (n, ...) real part}."""
        subs, ghosts = lv._views[:2]
        for dst, src in ghosts:
            np.copyto(dst, src)
        out = {}
        f64 = np.float64
        for p, sub in zip(lv._sweep_order, subs):
            c, nbs, s, den = sub.c, sub.nbs, sub.s, sub.den
            t = nbs[0].astype(f64)
            for nb in nbs[1:]:
                np.add(t, nb, out=t)                 # float32 operands widen exactly
            np.multiply(f64(lv._dh), t, out=t)
            np.add(t, s, out=t)
            u = den.astype(f64)
            np.multiply(u, c, out=u)
            np.subtract(t, u, out=t)
            r = t.astype(_F32)
            r[sub.fixed] = 0                     # (the padding is not restricted)
            out[p] = lv._blocks(r, n)[(slice(None),) + lv._real[p]]
        return out

    def _restrict(self, l: int, lv, r: dict) -> np.ndarray:
        """The restriction of the residual of level l: natural (n, Zc, Yc, Xc); axes x, y, z."""
        def part(p):
            if p in r:
                return r[p]
            shape = [len(r[next(iter(r))])] + [len(range(q, L, 2)) if ax != 0 or self.three_d else L
                                                for ax, (q, L) in enumerate(zip(p, self.shapes[l]))]
            return np.zeros(shape, dtype=_F32)
        zs = (0, 1) if self.three_d else (0,)
        t = {(pz, py): _restrict_pair(part((pz, py, 0)), part((pz, py, 1)), 3, self._rw[l][3])
             for pz in zs for py in (0, 1)}
        t = {pz: _restrict_pair(t[(pz, 0)], t[(pz, 1)], 2, self._rw[l][2]) for pz in zs}
        acc = _restrict_pair(t[0], t[1], 1, self._rw[l][1]) if self.three_d else t[0]
        return acc

    def _set_coarse(self, lv, n: int, s_nat: np.ndarray) -> None:
        """Coarse level: s from the restricted residual, c = 0."""
        for p in lv._parities:
            lv._c[p].fill(0)
            if p in lv._s:
                self._real(lv, lv._s, p, n, False)[...] = s_nat[(slice(None),) + lv._dom[p]]

    def _coarsest(self, n: int, s: np.ndarray) -> None:
        """The one-voxel level solved exactly: c = s / a (neumann; 0 where a is 0), s / den
        (dirichlet), into its sub-lattice block."""
        lv = self.levels[-1]
        a, den = self._coarse_a[:n], self._coarse_den[:n]
        s = s.reshape(n)
        c = np.zeros(n, dtype=_F32)
        if self.boundary == "dirichlet":
            np.divide(s, den, out=c)
        else:
            np.divide(s, a, out=c, where=a != 0)
        self._real(lv, lv._c, (0, 0, 0), n)[...] = c.reshape(n, 1, 1, 1)

    def _prolong_add(self, l: int, n: int) -> None:
        """Level l's c += the prolongation of level l + 1's c (held voxels keep their value);
        axes z, y, x."""
        lv, cl = self.levels[l], self.levels[l + 1]
        t = np.empty((n,) + self.shapes[l + 1], dtype=_F32)
        for p in cl._parities:
            if p in cl._s:
                t[(slice(None),) + cl._dom[p]] = self._real(cl, cl._c, p, n)
        Z, Y, X = self.shapes[l]
        parts = dict(zip((0, 1), _prolong_pair(t, 1, Z))) if self.three_d else {0: t}
        parts = {(pz, py): v for pz, e in parts.items() for py, v in enumerate(_prolong_pair(e, 2, Y))}
        parts = {k + (px,): v for k, e in parts.items() for px, v in enumerate(_prolong_pair(e, 3, X))}
        for sub, p in zip(lv._views[0], lv._sweep_order):
            keep = sub.c[sub.fixed]                  # (the padding is not added to)
            real = self._real(lv, lv._c, p, n)
            np.add(parts[p], real, out=real)
            sub.c[sub.fixed] = keep

    def _move(self, src: int, dst: int, rule: np.ndarray) -> None:
        """Move slot src's data to slot dst on every level (the stopping rule's with level 0)."""
        spare = np.zeros_like(rule)
        for lv in self.levels:
            lv._move(src, dst, rule if lv is self.levels[0] else spare)
        self._coarse_a[dst], self._coarse_den[dst] = self._coarse_a[src], self._coarse_den[src]

    def _vcycle(self, l: int, n: int) -> None:
        lv = self.levels[l]
        if len(self.levels) == 1:        # a one-voxel lattice: Gauss-Seidel
            lv._sweep(measure=False)
            return
        lv._sweep(measure=False)
        r = self._residual(lv, n)
        s = self._restrict(l, lv, r)
        if l + 1 == len(self.levels) - 1:
            self._coarsest(n, s)
        else:
            self._set_coarse(self.levels[l + 1], n, s)
            self._vcycle(l + 1, n)
        self._prolong_add(l, n)
        lv._sweep(measure=False)

    def _setup(self, start, a, s, fixed, fv) -> None:
        """Scatter the problem into every level (coarse sinks: the children's mean)."""
        R = self.shape[0]
        for l, lv in enumerate(self.levels):
            if l == 0:
                lv._scatter(start, a, s, fixed, fv)
                a = a if fixed is None else np.where(fixed, self._sink_fixed, a)
            else:   # a correction level: its c and s are set by each cycle (_set_coarse)
                a = _child_mean(a, self.shapes[l])
                lv._pose_sink(a)
        # the one-voxel level: its sink and den (slot order; moved with the slots)
        self._coarse_a = a.reshape(R).copy()
        self._coarse_den = (self.levels[-1]._den0 + a).reshape(R)

    def solve(self, c, a, s, fixed_mask=None, fixed_value=0.0) -> np.ndarray:
        """Update c (float32 (R, Z, Y, X)) in place; as :meth:`FieldSolver.solve
        <gpusim.model.fields.FieldSolver.solve>`, returning the cycles per replicate."""
        a, s, fixed, fv = check_problem(self.shape, c, a, s, fixed_mask, fixed_value)
        R = self.shape[0]
        lv0 = self.levels[0]
        start = c.copy()
        if fixed is not None:
            np.copyto(start, fv, where=fixed)
        self._setup(c, a, s, fixed, fv)
        cmax = (np.abs(start).reshape(R, -1).max(axis=1) if self._scale > 0
                else np.zeros(R, _F32))
        rule = stopping_state(cmax, self._scale)

        def cycle(n: int) -> np.ndarray:
            """One V-cycle of the first n slots; their max change."""
            subs = lv0._views[0]
            before = [sub.c.copy() for sub in subs]
            self._vcycle(0, n)
            d = np.zeros(n, dtype=_F32)
            for b, sub in zip(before, subs):
                np.subtract(sub.c, b, out=b)          # (0 at the fixed voxels, which
                np.abs(b, out=b)                      #   keep their value)
                lv0._relax(b, sub.w)                  # 0 in the padding (factor 1 elsewhere)
                np.maximum(d, b.reshape(n, -1).max(axis=1), out=d)
            return d

        def views(n: int, slot_of) -> None:
            for lv in self.levels:
                lv._build_views(n, slot_of)

        iters = solve_slots(R, self.max_iter, cycle,
                            lambda d: converged(d, rule, self._tol, self._rho_min),
                            lambda k, r: lv0._gather(c, k, r),
                            lambda src, dst: self._move(src, dst, rule), views)
        for lv in self.levels:
            lv._fixed_rep = None
        return iters


def _child_mean(a: np.ndarray, cshape) -> np.ndarray:
    """The coarse sink (n, *cshape): the float32 mean of the children of each coarse voxel, in
    the order (dz, dy, dx), an absent child adding 0 to the sum and the count."""
    split = [ax for ax in (1, 2, 3) if a.shape[ax] > 1]
    full = tuple(2 * cshape[ax - 1] if ax in split else a.shape[ax] for ax in (1, 2, 3))
    inner = (slice(None),) + tuple(slice(0, n) for n in a.shape[1:])
    ap = np.zeros(a.shape[:1] + full, dtype=_F32)
    ap[inner] = a
    acc = num = None
    for d in product(*[(0, 1) if ax in split else (0,) for ax in (1, 2, 3)]):
        sl = (slice(None),) + tuple(slice(o, None, 2) if ax in split else slice(None)
                                    for ax, o in zip((1, 2, 3), d))
        acc = ap[sl].copy() if acc is None else acc + ap[sl]
        num = _F32(1) if num is None else num + _F32(1)
    return acc / num
