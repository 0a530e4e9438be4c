"""The one diffusion-reaction solver for every field: deterministic red-black SOR.

Every field c (float32, shape ``(R, Z, Y, X)``; 2D is ``Z == 1`` and then has no z-direction at
all) satisfies, at every voxel not held fixed::

    D/h^2 * sum_nb (c_nb - c) - a * c + s = 0

``a`` (1/min) is the total linear sink (uptake + decay, plus 1/dt for a backward-Euler step) and
``s`` (conc/min) the source (plus c_old/dt for backward Euler). Voxels in ``fixed_mask`` (vessels)
are held at ``fixed_value``. The domain boundary is per field: ``"dirichlet"`` (a neighbour
outside the domain has the value ``boundary_value``) or ``"neumann"`` (no flux: a neighbour
outside the domain has the voxel's own current value).

Arithmetic contract (the CUDA twin must follow it to the bit)
-------------------------------------------------------------
All arithmetic is IEEE float32, round-to-nearest, no fused multiply-add (the kernel is compiled
with ``--fmad=false``). Host constants, each computed once:

* ``dh    = float32(D / (h * h))``            (D/(h*h) in float64, then rounded to float32)
* ``n_nb  = 4`` in 2D, ``6`` in 3D (always, also at the domain boundary)
* ``den0  = dh * float32(n_nb)``              (float32 product)
* ``omega = float32(omega)``, ``tol = float32(tol)``

Once per ``solve``, per voxel: ``den = den0 + a`` (float32), and every fixed voxel is set to
``fixed_value`` (float32).

One *sweep* = colour 0, then colour 1, where ``colour = (x + y + z) % 2`` (z = 0 in 2D). Within a
colour the voxel order is irrelevant: a voxel of one colour reads only voxels of the other colour,
and its own value. Colour 0 reads the values from the end of the previous sweep, colour 1 reads
the colour-0 values just written. For each voxel of the colour that is not fixed::

    nb  = c[x-1]                       # neighbour values; out-of-domain ones are
    nb  = nb + c[x+1]                  #   float32(boundary_value) (dirichlet) or c (neumann)
    nb  = nb + c[y-1]
    nb  = nb + c[y+1]
    nb  = nb + c[z-1]                  # 3D only
    nb  = nb + c[z+1]                  # 3D only
    t   = dh * nb
    t   = t + s
    gs  = t / den                      # Gauss-Seidel value
    t   = gs - c
    t   = omega * t
    cn  = c + t                        # the new value (omega == 1 is plain Gauss-Seidel)
    if cn < floor: cn = floor          # only with a floor (projected SOR), see below
    change = |t|                       # the step; with a floor |cn - c|, the step taken
    c   = cn

Floor (optional, ``floor=`` of the constructor; oxygen with zero-order consumption): the sweep is
*projected* SOR for the discrete obstacle problem ``c >= floor``: right after ``cn = c + t`` the
new value is raised to ``float32(floor)`` if it lies below it: ``if cn < floor: cn = floor``
(exactly this comparison: a NaN stays NaN, and ``-0.0`` stays ``-0.0`` at a floor of 0). At
convergence a voxel either satisfies the equation above or sits at the floor with
``gs <= floor`` (the sink and source there would drive it below the floor: zero-order
consumption stops where the oxygen is exhausted), and the change is the step taken,
``|cn - c|`` (a voxel held at the floor keeps a nonzero ``t``). Without a floor (``floor=None``,
the default) the operation is absent and the change is the step ``|t|``, which differs from
``|cn - c|`` only by the rounding of ``cn`` (until issue 14's fifth round it was ``|cn - c|``; the
step needs no second pass over the new values in the NumPy realisation).

Fixed voxels are never written (their change is 0). After every sweep ``k`` (1, 2, ...), per
replicate, ``d = max over the replicate's voxels of change`` (a max is exact, so its order does
not matter), and the *stopping rule* (docs/fields.md derives it) is evaluated per replicate in
float32, in exactly this order, from the replicate's ``d_prev`` (``d`` of the previous sweep,
0 before the first) and ``r_prev`` (``r`` of the previous sweep, 0 before the first)::

    r    = d / d_prev if d_prev > 0 else 1     # contraction ratio of this sweep
    rho  = max(r, r_prev)                      # estimate of the asymptotic rate,
    rho  = max(rho, rho_min)                   #   at least rho_min = omega - 1 (float32)
    lhs  = d * rho
    lhs  = lhs + lhs                           # safety factor 2 (docs/fields.md)
    rhs  = 1 - rho
    rhs  = tol * rhs
    converged = lhs <= rhs or (d <= noise and r >= 1 and d_prev > 0)
                                               # 2 d rho / (1 - rho) <= tol, or stagnation
                                               #   at the rounding level: a change that did
                                               #   not shrink, measured (not on sweep 1)
    d_prev = d; r_prev = r

with ``rho_min = float32(omega - 1)`` and, per replicate, ``noise = max(cmax, scale) * 2**-18``
(float32; exact, a power of two), where ``cmax`` is the max over the replicate's voxels of ``|c|``
once the fixed voxels are set (an exact max) and ``scale`` (``scale=`` of the constructor,
``float32``) a floor of the field's magnitude: ``noise`` is 16 to 32 ulp of it.  With
``scale = 0`` (the default) this branch is off (``noise = 0``): the pure error rule.

``d * rho / (1 - rho)`` estimates the max-norm distance to the converged solution of the same
discrete system (the sum of all later changes when they shrink geometrically with ratio rho), so
a replicate stops once twice that estimate is at most ``tol``; a change at the float32 rounding
level (``noise``) that did not shrink stops too, since over-relaxed float32 sweeps cycle there
instead of settling; ``d == 0`` (an exact fixed point) always
stops (``0 <= rhs`` also for rho = 1 on the first sweep). A converged replicate is not swept
again and its values stay bitwise frozen. The solve stops when every replicate has converged or
after ``max_iter`` sweeps; it returns the number of sweeps each replicate received
(``max_iter`` for one that did not converge; nothing is raised, the caller decides). Convergence
is decided per replicate and never across replicates, so a replicate's result does not depend on
which other replicates share its batch.

Choosing tol: in float32 an over-relaxed sweep does not settle on a fixed point but keeps cycling
in the last few ulps (max change ~8 ulp of the field's largest value for omega = 1.8; exactly 0
is typical only for omega = 1). ``tol * (1 - rho) / (2 rho)`` must sit above that, otherwise the
replicate runs to max_iter: with rho ~ 0.9, tol >= ~1e-4 of the field's scale.

NumPy realisation (free to differ, as long as every voxel sees the operations above): the
lattice is split into its 4 (2D) or 8 (3D) parity sub-lattices (x % 2, y % 2, z % 2), each stored
as its own padded, contiguous block per replicate, so that every neighbour of a sub-lattice is
another sub-lattice shifted by a constant flat offset and each operation above is one contiguous
NumPy call over all active replicates. A colour is 2 (2D) or 4 (3D) sub-lattices. Padding
positions ("ghosts") hold ``boundary_value`` (dirichlet) or, refreshed at the start of every
sweep, a copy of the boundary voxel they mirror (neumann: a voxel is written once per sweep, after
it has been read through its ghost, so the start-of-sweep copy is exactly "its own current
value"). Ghosts are computed along with the rest with a relaxation factor of 0 (``t = 0`` there:
``c + 0`` is ``c``) and fixed voxels get ``t = 0``, so neither changes and ``c`` is updated in
place; where ``c + 0`` would not be exact (a held -0.0, or a non-finite input:
``FieldSolver._weights_keep_held``) and with a floor, their values are restored instead. In 3D
a sweep computes only from the first real z-plane of the first block to the last of the last.
Converged replicates are compacted out of the working set, so later sweeps cost only the active
ones.
"""

from __future__ import annotations

from itertools import product
from typing import NamedTuple

import numpy as np

__all__ = ["FieldSolver", "check_problem", "converged", "solve_slots", "stopping_state"]

_F32 = np.float32


def _check_arguments(shape, diffusion_um2_per_min, voxel_um, boundary, boundary_value, omega,
                     tol, max_iter, floor, scale) -> None:
    """Raise a one-line ValueError for a bad FieldSolver argument."""
    if len(shape) != 4 or min(shape) < 1:
        raise ValueError(f"shape must be (R, Z, Y, X) with every extent >= 1, got {shape}")
    if boundary not in ("neumann", "dirichlet"):
        raise ValueError(f"boundary must be 'neumann' or 'dirichlet', got {boundary!r}")
    if not (diffusion_um2_per_min > 0 and voxel_um > 0):
        raise ValueError("diffusion_um2_per_min and voxel_um must be > 0")
    if not 0.0 < omega < 2.0:
        raise ValueError(f"omega must lie in (0, 2), got {omega}")
    if not tol >= 0.0:
        raise ValueError(f"tol must be >= 0, got {tol}")
    if not np.isfinite(boundary_value):
        raise ValueError(f"boundary_value must be finite, got {boundary_value}")
    if not (isinstance(max_iter, (int, np.integer)) and not isinstance(max_iter, bool)
            and max_iter >= 0):
        raise ValueError(f"max_iter must be an integer >= 0, got {max_iter!r}")
    if not (np.isfinite(scale) and scale >= 0.0):
        raise ValueError(f"scale must be finite and >= 0, got {scale}")
    if floor is not None and not np.isfinite(floor):
        raise ValueError(f"floor must be None or finite, got {floor}")


def _flip(p, ax):
    """The parity ``p`` with axis ``ax`` flipped."""
    q = list(p)
    q[ax] ^= 1
    return tuple(q)


def check_problem(shape, c, a, s, fixed_mask, fixed_value):
    """Checked and converted arguments of a solve on ``shape``: (a, s, fixed_mask, fv) float32,
    float32, bool and float32 (a scalar or of ``shape``); fixed_mask and fv are None when no voxel
    is fixed.  A bad argument is a one-line ValueError."""
    if not isinstance(c, np.ndarray) or c.dtype != _F32 or c.shape != shape:
        raise ValueError(f"c must be a float32 ndarray of shape {shape}")
    a = np.asarray(a, dtype=_F32)
    s = np.asarray(s, dtype=_F32)
    if a.shape != shape or s.shape != shape:
        raise ValueError(f"a and s must have shape {shape}")
    if fixed_mask is not None:
        fixed_mask = np.asarray(fixed_mask, dtype=bool)
        if fixed_mask.shape != shape:
            raise ValueError(f"fixed_mask must have shape {shape}")
        if fixed_mask.any():
            fv = np.asarray(fixed_value, dtype=_F32)
            try:
                return a, s, fixed_mask, (np.broadcast_to(fv, shape) if fv.ndim else fv)
            except ValueError:
                raise ValueError(f"fixed_value must be a scalar or broadcast to {shape}, got "
                                 f"shape {fv.shape}") from None
    return a, s, None, None


def solve_slots(R: int, max_iter: int, step, done_of, gather, move, views) -> np.ndarray:
    """The iteration every solver of the fields shares: replicates in slots, the active ones at
    the front.  Per iteration ``step(n)`` advances the first n slots and returns their max change
    (float32 (n,)), ``done_of(d)`` applies the stopping rule (bool (n,)); a converged slot is
    copied out (``gather(slot, replicate)``) and the rest are compacted to the front, in their
    order (``move(src, dst)``, then ``views(n, slot_of)`` rebuilds the views over the n active
    slots; also called once at the start).  After ``max_iter`` iterations the slots still active
    are copied out too.  Returns the iterations per replicate, int32 (R,)."""
    iters = np.zeros(R, dtype=np.int32)
    slot_of = np.arange(R)          # original replicate held by each active slot
    n = R
    views(n, slot_of)
    for _ in range(max_iter):
        d = step(n)
        iters[slot_of[:n]] += 1
        done = done_of(d)
        if not done.any():
            continue
        for k in np.flatnonzero(done):
            gather(k, slot_of[k])
        keep = np.flatnonzero(~done)
        for dst, src in enumerate(keep):
            if dst != src:
                move(src, dst)
                slot_of[dst] = slot_of[src]
        n = len(keep)
        if n == 0:
            break
        views(n, slot_of)
    for k in range(n):              # not converged within max_iter (or max_iter == 0)
        gather(k, slot_of[k])
    return iters


def converged(d: np.ndarray, rule: np.ndarray, tol, rho_min) -> np.ndarray:
    """The stopping rule of the module docstring, per active slot: ``d`` float32 (n,) the max
    change of this sweep (or cycle), ``rule`` float32 (3, R) per slot d_prev, r_prev and noise
    (updated here), ``tol`` and ``rho_min`` float32.  Elementwise float32, in the contract's
    order; every solver of the fields (SOR, multigrid) stops by it."""
    n = len(d)
    dprev, rprev, noise = rule[0, :n], rule[1, :n], rule[2, :n]
    r = np.ones(n, dtype=_F32)
    np.divide(d, dprev, out=r, where=dprev > 0)
    rho = np.where(r > rprev, r, rprev)
    rho = np.where(rho > rho_min, rho, rho_min)
    lhs = d * rho
    lhs = lhs + lhs
    rhs = tol * (_F32(1) - rho)
    measured = dprev > 0          # a ratio was measured (r = 1 on sweep 1 is no evidence)
    np.copyto(dprev, d)
    np.copyto(rprev, r)
    return (lhs <= rhs) | ((d <= noise) & (r >= _F32(1)) & measured)


def stopping_state(cmax: np.ndarray, scale) -> np.ndarray:
    """The stopping rule's per-solve state, float32 (3, R): d_prev and r_prev (0) and the rounding
    level ``noise = max(cmax, scale) * 2**-18`` (``cmax`` float32 (R,), the max of ``|c|`` once
    the fixed voxels are set; 0 when ``scale`` is 0: the branch is off)."""
    if scale > 0:
        cmax = np.where(cmax > scale, cmax, scale).astype(_F32)
    else:
        cmax = np.zeros_like(cmax)
    rule = np.zeros((3, len(cmax)), dtype=_F32)
    np.multiply(cmax, _F32(2.0 ** -18), out=rule[2])
    return rule


class _Run(NamedTuple):
    """A sub-lattice's views over the span a sweep computes (:meth:`FieldSolver._build_views`)."""
    c: np.ndarray
    nbs: list
    s: np.ndarray
    den: np.ndarray
    acc: np.ndarray
    rows: np.ndarray
    gaps: np.ndarray | None
    chg: np.ndarray
    below: np.ndarray


class _Sub(NamedTuple):
    """A sub-lattice's views over the active slots' whole blocks: its values, neighbours, source,
    denominator, relaxation factors (``(y, x) plane, z padding``), the flat indices of its fixed
    voxels and (``_exact``) of all held positions, and the span a sweep computes."""
    c: np.ndarray
    nbs: list
    s: np.ndarray
    den: np.ndarray
    w: tuple
    fixed: np.ndarray
    held: np.ndarray | None
    run: _Run


class FieldSolver:
    """Red-black SOR for one field on one lattice shape; preallocates its work buffers.

    The arithmetic order is the module docstring's contract. ``solve`` may be called any number
    of times (warm starts: pass the previous solution as ``c``).
    """

    def __init__(self, shape, *, diffusion_um2_per_min: float, voxel_um: float,
                 boundary: str = "neumann", boundary_value: float = 0.0,
                 omega: float = 1.5, tol: float = 1e-4, max_iter: int = 10_000,
                 floor: float | None = None, scale: float = 0.0, three_d: bool | None = None):
        shape = tuple(int(v) for v in shape)
        _check_arguments(shape, diffusion_um2_per_min, voxel_um, boundary, boundary_value, omega,
                         tol, max_iter, floor, scale)
        self.shape = shape
        self.boundary = boundary
        self.boundary_value = float(boundary_value)
        self.omega = float(omega)
        self.tol = float(tol)
        self.max_iter = int(max_iter)
        self.scale = float(scale)
        self.diffusion_um2_per_min = float(diffusion_um2_per_min)
        self.voxel_um = float(voxel_um)
        self.floor = None if floor is None else float(floor)
        self._floor = None if floor is None else _F32(floor)

        # 3D: the 7-point stencil (z-neighbours, n_nb = 6); by default when Z > 1 (a coarse
        # multigrid level of a 3D lattice is 3D also where its Z has come down to 1)
        self.three_d = shape[1] > 1 if three_d is None else bool(three_d)
        self.n_nb = 6 if self.three_d else 4
        self._dh = _F32(self.diffusion_um2_per_min / (self.voxel_um * self.voxel_um))
        self._den0 = _F32(self._dh * _F32(self.n_nb))
        self._omega = _F32(self.omega)
        self._tol = _F32(self.tol)
        self._rho_min = _F32(self._omega - _F32(1))   # SOR's rate is never below omega - 1
        self._scale = _F32(self.scale)

        lengths, split, strides, active = self._build_sublattices()
        self._build_neighbours(lengths, split, strides, active)
        self._allocate(active)

    def _build_sublattices(self):
        """The parity sub-lattices: padded block shape, real and domain slices, ghosts."""
        _, Z, Y, X = self.shape
        # --- sub-lattice geometry: axes (z, y, x); z is split only in 3D
        lengths = (Z, Y, X)
        split = (self.three_d, True, True)
        qshape = tuple((L + 1) // 2 + 2 if sp else 1 for L, sp in zip(lengths, split))
        B = qshape[0] * qshape[1] * qshape[2]
        strides = (qshape[1] * qshape[2], qshape[2], 1)
        margin = strides[0] if self.three_d else strides[1]
        self._qshape, self._B, self._margin = qshape, B, margin
        parities = list(product((0, 1) if self.three_d else (0,), (0, 1), (0, 1)))
        self._parities = parities

        self._real = {}   # slices of the real voxels inside a padded block
        self._dom = {}    # the matching slices of the (Z, Y, X) lattice
        self._ghost = {}  # per active sub-lattice, the block-local flat indices of its padding
        active = []
        for p in parities:
            real, dom, count = [], [], 1
            for ax in range(3):
                if split[ax]:
                    k = len(range(p[ax], lengths[ax], 2))
                    real.append(slice(1, 1 + k))
                    dom.append(slice(p[ax], None, 2))
                    count *= k
                else:
                    real.append(slice(0, 1))
                    dom.append(slice(None))
            self._real[p], self._dom[p] = tuple(real), tuple(dom)
            if count:
                g = np.ones(qshape, dtype=bool)
                g[self._real[p]] = False
                self._ghost[p] = np.flatnonzero(g)
                active.append(p)
        return lengths, split, strides, active

    def _build_neighbours(self, lengths, split, strides, active) -> None:
        """Each sub-lattice's neighbours, the sweep order and the neumann ghost copies."""
        parities = self._parities
        # neighbours of each sub-lattice, in the contract's order x-, x+, y-, y+, (z-, z+):
        # (other parity, flat offset)
        axes = (2, 1, 0) if self.three_d else (2, 1)
        self._nbspec = {
            p: [(_flip(p, ax), off) for ax in axes
                for off in ((p[ax] - 1) * strides[ax], p[ax] * strides[ax])]
            for p in active
        }
        # colour 0 first, then colour 1
        self._sweep_order = sorted(active, key=lambda p: sum(p) % 2)

        # neumann ghost copies: (dst parity, dst index, src parity, src index) in a block
        self._ghost_copies = []
        for ax in range(3):
            if not split[ax]:
                continue
            L = lengths[ax]
            for p in parities:
                if p[ax] == 1:  # low ghost (coordinate -1) mirrors coordinate 0
                    self._ghost_copies.append((p, ax, 0, _flip(p, ax), 1))
                if p[ax] == L % 2:  # high ghost (coordinate L) mirrors coordinate L - 1
                    src = _flip(p, ax)
                    self._ghost_copies.append((p, ax, L // 2 + 1, src, (L - 1) // 2 + 1))

    def _allocate(self, active) -> None:
        """The flat work buffers."""
        R = self.shape[0]
        margin, B, parities, floor = self._margin, self._B, self._parities, self._floor
        # --- buffers (flat; a block of B per replicate; c has a margin at both ends so that the
        # shifted neighbour views stay inside it)
        bv = _F32(self.boundary_value)
        self._c = {p: np.full(2 * margin + R * B, bv, dtype=_F32) for p in parities}
        self._s = {p: np.zeros(R * B, dtype=_F32) for p in active}
        self._den = {p: np.ones(R * B, dtype=_F32) for p in active}
        # the relaxation factor of each position of a block's (y, x) plane: omega, 0 in the
        # padding; in 3D the padding planes of z are skipped or zeroed apart (``_sweep``,
        # ``_relax``)
        self._w, self._zpad = {}, {}
        for p in active:
            w = np.zeros(self._qshape[1:], dtype=_F32)
            w[self._real[p][1:]] = self._omega
            self._w[p] = w.reshape(-1)
            z = self._real[p][0]
            self._zpad[p] = (slice(0, z.start), slice(z.stop, None)) if self.three_d else ()
        self._acc = np.empty(R * B, dtype=_F32)
        self._chg = np.empty(R * B if floor is not None else 0, dtype=_F32)   # (projected SOR's
        self._below = np.empty(R * B if floor is not None else 0, dtype=bool)  #  step and floor)
        self._red = np.empty(2 * R, dtype=_F32)
        self._maxchg = np.empty(R, dtype=_F32)
        self._views = None

    # ------------------------------------------------------------------ internals
    def _blocks(self, buf, n, has_margin=False):
        """(n, Zq, Yq, Xq) view of the first n replicate blocks of a flat buffer."""
        m = self._margin if has_margin else 0
        return buf[m:m + n * self._B].reshape((n,) + self._qshape)

    def _build_views(self, n: int, slot_of) -> None:
        """Views over the first n (active) slots, rebuilt when n changes; ``slot_of[k]`` is the
        replicate held by slot k."""
        m, B, size = self._margin, self._B, n * self._B
        acc = self._acc[:size]
        subs = []
        for p in self._sweep_order:
            rep = self._fixed_rep[p]
            fixed = np.concatenate([rep[slot_of[k]] + k * B for k in range(n)])
            held = None
            if self._exact:   # every held position, restored after the update
                held = np.concatenate([self._ghost[p] + k * B for k in range(n)] + [fixed])
            # a sweep computes from the first real plane of z of the first block to the last of
            # the last (3D): the padding planes outside are never written; those between two
            # blocks (``gaps``) are computed and their step zeroed
            P = len(self._w[p])
            lo, hi, gaps = 0, size, None
            if self.three_d:
                z = self._real[p][0]
                lo, hi = z.start * P, (n - 1) * B + z.stop * P
                if n > 1:
                    gap = (self._qshape[0] - z.stop + z.start) * P
                    gaps = acc[z.stop * P:z.stop * P + (n - 1) * B].reshape(n - 1, B)[:, :gap]
            run = _Run(self._c[p][m + lo:m + hi],
                       [self._c[q][m + off + lo:m + off + hi] for q, off in self._nbspec[p]],
                       self._s[p][lo:hi], self._den[p][lo:hi], acc[lo:hi],
                       acc[lo:hi].reshape(-1, P), gaps, self._chg[lo:hi], self._below[lo:hi])
            subs.append(_Sub(self._c[p][m:m + size],
                             [self._c[q][m + off:m + off + size] for q, off in self._nbspec[p]],
                             self._s[p][:size], self._den[p][:size], (self._w[p], self._zpad[p]),
                             fixed, held, run))
        ghosts = []
        if self.boundary == "neumann":
            for pd, ax, idst, ps, isrc in self._ghost_copies:
                dst = [slice(None)] * 4
                src = [slice(None)] * 4
                dst[ax + 1], src[ax + 1] = idst, isrc
                ghosts.append((self._blocks(self._c[pd], n, True)[tuple(dst)],
                               self._blocks(self._c[ps], n, True)[tuple(src)]))
        red = self._red[:2 * n]
        self._views = (subs, ghosts, acc, np.arange(n) * B, red[:n], red[n:], self._maxchg[:n])

    def _relax(self, t, w) -> None:
        """``t`` (flat, whole blocks) times the relaxation factors ``w`` of its sub-lattice (a
        view's ``(plane, z padding)``) in place: 0 t in the padding."""
        plane, zpad = w
        rows = t.reshape(-1, len(plane))
        np.multiply(plane, rows, out=rows)
        blocks = t.reshape(-1, self._qshape[0], len(plane))
        for z in zpad:
            blocks[:, z] = 0

    def _sweep(self, measure: bool = True) -> np.ndarray:
        """One red-black sweep over the active replicates; returns their max change (not
        computed, and the returned values meaningless, with ``measure=False``)."""
        subs, ghosts, acc_full, seg, hi, lo, maxchg = self._views
        dh, floor = self._dh, self._floor
        add, mul, maxat, minat = np.add, np.multiply, np.maximum.reduceat, np.minimum.reduceat
        for dst, src in ghosts:
            np.copyto(dst, src)
        maxchg.fill(0)
        for sub in subs:
            c, nbs, s, den, acc, rows, gaps, chg, below = sub.run
            add(nbs[0], nbs[1], out=acc)
            for nb in nbs[2:]:
                add(acc, nb, out=acc)
            mul(dh, acc, out=acc)
            add(acc, s, out=acc)
            np.divide(acc, den, out=acc)        # gs
            np.subtract(acc, c, out=acc)
            mul(sub.w[0], rows, out=rows)       # t = omega t, and 0 in the padding
            if gaps is not None:
                gaps.fill(0)
            held, t = sub.held, acc
            if floor is not None:               # projected SOR: c_new < floor -> floor
                add(c, acc, out=acc)            # c_new
                np.less(acc, floor, out=below)
                np.copyto(acc, floor, where=below)
                acc_full[held] = sub.c[held]    # the padding and fixed voxels keep their value
                t = chg
                np.subtract(acc, c, out=t)      # the step taken, c_new - c
            elif held is not None:              # see _weights_keep_held
                keep = sub.c[held]
                acc_full[held] = 0
            else:
                acc_full[sub.fixed] = 0
            if measure:                         # max |t| = max(max(t), -min(t)) per slot (no
                maxat(t, seg, out=hi)           #   |t| pass; a change of ±0 gives +0, as |t|
                minat(t, seg, out=lo)           #   does: maxchg starts at +0)
                np.negative(lo, out=lo)
                np.maximum(maxchg, hi, out=maxchg)
                np.maximum(maxchg, lo, out=maxchg)
            if floor is not None:
                np.copyto(c, acc)
                continue
            add(c, acc, out=c)                  # c + t in place: a voxel of a colour reads
            if held is not None:                #   only the other colour
                sub.c[held] = keep
        return maxchg

    def _move(self, src: int, dst: int, rule: np.ndarray) -> None:
        """Move the working data of replicate slot src to slot dst."""
        B, m = self._B, self._margin
        rule[:, dst] = rule[:, src]
        for p in self._parities:
            self._c[p][m + dst * B:m + (dst + 1) * B] = self._c[p][m + src * B:m + (src + 1) * B]
        for bufs in (self._s, self._den):
            for buf in bufs.values():
                buf[dst * B:(dst + 1) * B] = buf[src * B:(src + 1) * B]

    def _gather(self, c, slot: int, replicate: int) -> None:
        for p in self._parities:
            blk = self._blocks(self._c[p], slot + 1, True)[slot]
            c[(replicate,) + self._dom[p]] = blk[self._real[p]]

    def _pose_sink(self, a) -> None:
        """Only the denominator ``den0 + a`` of a problem whose ``c`` and ``s`` are set apart
        and start at +0.0 everywhere (a multigrid correction level: nothing fixed, boundary
        value 0; ``_weights_keep_held`` holds)."""
        R, al = self.shape[0], (slice(None),)
        for p in self._s:
            np.add(self._den0, a[al + self._dom[p]],
                   out=self._blocks(self._den[p], R)[al + self._real[p]])
        self._fixed_rep = {p: [np.empty(0, dtype=np.intp)] * R for p in self._s}
        self._exact = False

    def _scatter(self, c, a, s, fixed_mask, fv) -> None:
        """Scatter the problem into the sub-lattice blocks (``fixed_mask`` None: nothing fixed),
        find per sub-lattice and replicate the block-local flat indices of the fixed voxels, and
        decide whether the padding must be restored after each update (``_exact``)."""
        R, B, m = self.shape[0], self._B, self._margin
        al = (slice(None),)
        for p in self._parities:
            real, dom = al + self._real[p], al + self._dom[p]
            self._blocks(self._c[p], R, True)[real] = c[dom]
            if p in self._s:   # not a sub-lattice without voxels (an extent of 1)
                self._blocks(self._s[p], R)[real] = s[dom]
        self._pose_sink(a)
        fixed = {p: np.empty(0, dtype=np.intp) for p in self._s}
        vals = ()
        if fixed_mask is not None:   # the fixed voxels are few: set them by index
            flat = np.flatnonzero(fixed_mask)   # (np.nonzero of 4 axes is 7x slower)
            coords = []
            for n in reversed(self.shape[1:]):
                flat, x = np.divmod(flat, n)
                coords.insert(0, x)
            r = flat
            vals = fv[(r, *coords)] if fv.ndim else fv
            code = np.zeros(len(r), dtype=np.intp)    # the sub-lattice: 4 pz + 2 py + px
            local = np.zeros(len(r), dtype=np.intp)   # the position in its padded block
            for ax, (x, n) in enumerate(zip(coords, self._qshape)):
                split = ax > 0 or self.three_d
                code = 2 * code + (x & 1 if split else 0)
                local = local * n + (x // 2 + 1 if split else x)
            local += r * B
            for p in self._s:
                sel = code == (p[0] * 4 + p[1] * 2 + p[2])
                idx = local[sel]
                self._c[p][m + idx] = vals[sel] if np.ndim(vals) else vals
                self._den[p][idx] = _F32(1)   # keeps the (discarded) value finite
                self._s[p][idx] = _F32(0)
                fixed[p] = idx
        self._fixed_rep = {}
        for p, idx in fixed.items():   # ascending: split at the replicates' blocks
            cuts = np.searchsorted(idx, np.arange(1, R) * B)
            self._fixed_rep[p] = [part - k * B for k, part in enumerate(np.split(idx, cuts))]
        self._exact = self._floor is not None or not self._weights_keep_held(c, a, s, vals)

    def _weights_keep_held(self, c, a, s, fixed_values) -> bool:
        """Whether adding ``t = 0`` in place (the padding's relaxation factor is 0, and a sweep
        without a floor zeroes ``t`` at the fixed voxels) leaves every held value as it is, for
        the whole solve.

        It does unless a held value is -0.0 (``-0.0 + 0.0`` is ``+0.0``) or ``t`` is not
        finite (``0 t`` is NaN). The padding holds the dirichlet boundary value or (neumann)
        copies of the voxels on the domain's faces; a swept voxel never becomes -0.0 (``c + t``
        is -0.0 only for ``c = t = -0.0``, and ``t = omega (gs - c)`` is -0.0 with ``c = -0.0``
        only if ``gs`` is, which makes ``gs - c`` +0.0), so the fixed values and the faces of
        the initial ``c`` decide. ``t`` stays finite where every input is (a NaN shows in a
        max, an infinity in a max or min), unless an intermediate overflows float32: values
        near 1e37 (``|c| dh`` near 3e38) are not guarded against yet (docs/fields.md)."""
        def signed_zero(v):
            v = np.asarray(v, dtype=_F32)
            return bool(np.any(v.view(np.uint32) == np.uint32(0x80000000)))

        for x in (c, a, s, fixed_values):
            if np.size(x) and not (np.isfinite(np.max(x)) and np.isfinite(np.min(x))):
                return False
        if signed_zero(fixed_values):
            return False
        if self.boundary == "dirichlet":
            return not signed_zero(self.boundary_value)
        split = (self.three_d, True, True)
        return not any(split[ax] and (signed_zero(np.take(c, 0, axis=ax + 1))
                                      or signed_zero(np.take(c, -1, axis=ax + 1)))
                       for ax in range(3))

    def _stopping_rule(self, R: int) -> np.ndarray:
        """float32 (3, R) per slot: d_prev, r_prev (0) and noise (:func:`stopping_state`)."""
        al = (slice(None),)
        cmax = np.zeros(R, dtype=_F32)
        for p in self._parities if self._scale > 0 else ():
            if p in self._s:
                blk = np.abs(self._blocks(self._c[p], R, True)[al + self._real[p]])
                np.maximum(cmax, blk.reshape(R, -1).max(axis=1), out=cmax)
        return stopping_state(cmax, self._scale)

    # ------------------------------------------------------------------ API
    def solve(self, c, a, s, fixed_mask=None, fixed_value=0.0) -> np.ndarray:
        """Update c (float32 (R,Z,Y,X)) in place to the discrete steady state.

        ``a`` and ``s`` are float32 arrays of c's shape (other dtypes are converted);
        ``fixed_mask`` is None or a bool array of c's shape; ``fixed_value`` a scalar or an array
        broadcastable to c's shape. c is the initial guess (warm start). Returns the number of
        sweeps each replicate received, int32 (R,): ``max_iter`` for one that did not converge.
        """
        a, s, fixed_mask, fv = check_problem(self.shape, c, a, s, fixed_mask, fixed_value)
        R = self.shape[0]
        self._scatter(c, a, s, fixed_mask, fv)
        rule = self._stopping_rule(R)
        iters = solve_slots(R, self.max_iter, lambda n: self._sweep(),
                            lambda d: converged(d, rule, self._tol, self._rho_min),
                            lambda k, r: self._gather(c, k, r),
                            lambda src, dst: self._move(src, dst, rule), self._build_views)
        self._fixed_rep = None          # per-solve; the views keep only their own indices
        return iters
