"""Tests of the CUDA kernels of ``kernels/`` that need no GPU.

* the stream ids of ``kernels/philox.cuh`` equal :class:`gpusim.rng.Stream`;
* every ``kernels/*.cu`` compiles with nvcc (skipped, with the reason, where nvcc is absent);
* the kernel logic (``__host__ __device__`` functions) compiled by the host C++ compiler in the
  small harnesses of ``tests/harness/`` gives bitwise the NumPy engine's answers: Philox against
  the Random123 known-answer vectors and :mod:`gpusim.rng`, the field solver against
  :class:`~gpusim.model.fields.FieldSolver`, the tumour phase against
  :func:`~gpusim.model.tumour.tumour_phase`;
* the wheel built from the repository contains the kernel sources.

Harness binaries are compiled once per test session into a temporary directory.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from gpusim import rng
from gpusim.backends.sources import NVCC_OPTIONS, kernel_dir, kernel_files
from gpusim.model.fields import FieldSolver

ROOT = Path(__file__).resolve().parents[1]
HARNESS = Path(__file__).resolve().parent / "harness"
F32 = np.float32
CXX = shutil.which(os.environ.get("CXX", "g++")) or shutil.which("c++")
NVCC = shutil.which("nvcc")
needs_cxx = pytest.mark.skipif(CXX is None, reason="no host C++ compiler (g++/c++) on this machine")


# ----------------------------------------------------------------------------- harness plumbing
@pytest.fixture(scope="session")
def harness(tmp_path_factory):
    """harness(name) -> path of the compiled tests/harness/<name>.cpp (built once per session)."""
    if CXX is None:
        pytest.skip("no host C++ compiler (g++/c++) on this machine")
    out = tmp_path_factory.mktemp("harness")
    built: dict[str, Path] = {}

    def get(name: str) -> Path:
        if name not in built:
            src = HARNESS / f"{name}.cpp"
            exe = out / name
            # IEEE float32 without contraction: the host twin of --fmad=false
            cmd = [CXX, "-std=c++17", "-O2", "-ffp-contract=off", "-fno-fast-math", "-Wall",
                   "-Werror", f"-I{kernel_dir()}", str(src), "-o", str(exe)]
            res = subprocess.run(cmd, capture_output=True, text=True)
            assert res.returncode == 0, f"harness {name} failed to compile:\n{res.stderr}"
            built[name] = exe
        return built[name]

    return get


def run_harness(exe: Path, payload: bytes) -> bytes:
    res = subprocess.run([str(exe)], input=payload, capture_output=True)
    assert res.returncode == 0, f"{exe.name} exited {res.returncode}: {res.stderr.decode()}"
    return res.stdout


def pack(*arrays) -> bytes:
    return b"".join(np.ascontiguousarray(a).tobytes() for a in arrays)


# ----------------------------------------------------------------------------- stream ids
def test_stream_ids_match_python_enum():
    text = (kernel_dir() / "philox.cuh").read_text()
    m = re.search(r"enum\s+Stream\s*:\s*u32\s*\{(.*?)\};", text, re.S)
    assert m, "philox.cuh has no 'enum Stream : u32 { ... };' block"
    cuda = {k: int(v) for k, v in re.findall(r"(\w+)\s*=\s*(\d+)", m.group(1))}
    python = {s.name: int(s) for s in rng.Stream}
    assert cuda == python, f"kernels/philox.cuh Stream ids differ from gpusim.rng.Stream: " \
                           f"only in CUDA {set(cuda.items()) - set(python.items())}, " \
                           f"only in Python {set(python.items()) - set(cuda.items())}"


# ----------------------------------------------------------------------------- philox
# Random123 kat_vectors, philox4x32 with 10 rounds: (counter, key) -> output
KAT = [
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
     (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)),
]


def test_philox_known_answers(harness):
    exe = harness("philox_harness")
    inp = np.array([c + k for c, k, _ in KAT], dtype=np.uint32)
    out = np.frombuffer(run_harness(exe, b"P" + pack(np.uint64(len(KAT)), inp)), np.uint32)
    assert out.reshape(-1, 4).tolist() == [list(o) for _, _, o in KAT]


def test_philox_blocks_and_words_match_numpy(harness):
    exe = harness("philox_harness")
    g = np.random.default_rng(7)
    n = 2000
    seed = g.integers(0, 2**32, n, dtype=np.uint64).astype(np.uint32)
    rep = g.integers(0, 2**32, n, dtype=np.uint64).astype(np.uint32)
    step = g.integers(0, 2**32, n, dtype=np.uint64).astype(np.uint32)
    stream = g.choice([int(s) for s in rng.Stream], n).astype(np.uint32)
    ent = g.integers(0, 2**32, n, dtype=np.uint64).astype(np.uint32)
    draw = g.integers(0, 8, n).astype(np.uint32)
    inp = np.stack([seed, rep, step, stream, ent, draw], axis=1)
    got = np.frombuffer(run_harness(exe, b"B" + pack(np.uint64(n), inp)), np.uint32).reshape(n, 4)
    want = np.stack([rng.blocks(int(seed[i]), rep[i], int(step[i]), rng.Stream(int(stream[i])),
                                ent[i], int(draw[i])) for i in range(n)])
    np.testing.assert_array_equal(got, want)
    # words: word (entity & 3) of block (entity >> 2), as rng.words for sorted voxels
    ent = np.sort(g.integers(0, 10**6, n)).astype(np.uint32)
    inp = np.stack([np.full(n, 11, np.uint32), np.full(n, 3, np.uint32), np.full(n, 5, np.uint32),
                    np.full(n, int(rng.Stream.TUMOUR_EVENT), np.uint32), ent], axis=1)
    got = np.frombuffer(run_harness(exe, b"W" + pack(np.uint64(n), inp)), np.uint32)
    want = rng.words(11, np.full(n, 3), 5, rng.Stream.TUMOUR_EVENT, ent.astype(np.int64))
    np.testing.assert_array_equal(got, want)


def test_threshold_and_choose_match_numpy(harness):
    exe = harness("philox_harness")
    g = np.random.default_rng(8)
    p = np.concatenate([[0.0, 1.0, 0.5, 2.0**-32, 1 - 2.0**-24, np.nextafter(F32(0), F32(1))],
                        g.random(3000)]).astype(F32)
    got = np.frombuffer(run_harness(exe, b"T" + pack(np.uint64(p.size), p)), np.uint64)
    np.testing.assert_array_equal(got, rng.threshold(p))
    w = np.concatenate([[0, 2**32 - 1], g.integers(0, 2**32, 3000, dtype=np.uint64)]).astype(np.uint32)
    n = np.concatenate([[1, 26], g.integers(1, 27, 3000)]).astype(np.uint32)
    got = np.frombuffer(run_harness(exe, b"C" + pack(np.uint64(w.size), np.stack([w, n], 1))), np.uint32)
    np.testing.assert_array_equal(got, rng.choose(w, n))


# ----------------------------------------------------------------------------- field solver
def field_case(shape, boundary, seed, omega=1.6, tol=1e-5, max_iter=500):
    g = np.random.default_rng(seed)
    c = g.uniform(0, 1, shape).astype(F32)
    a = g.uniform(0.01, 0.5, shape).astype(F32)
    s = g.uniform(0, 0.2, shape).astype(F32)
    fixed = g.random(shape) < 0.05
    return dict(c=c, a=a, s=s, fixed=fixed, fixed_value=0.75, boundary=boundary, bv=0.3,
                D=2000.0, h=20.0, omega=omega, tol=tol, max_iter=max_iter)


def solve_both(harness, case):
    shape = case["c"].shape
    fs = FieldSolver(shape, diffusion_um2_per_min=case["D"], voxel_um=case["h"],
                     boundary=case["boundary"], boundary_value=case["bv"], omega=case["omega"],
                     tol=case["tol"], max_iter=case["max_iter"])
    c_np = case["c"].copy()
    it_np = fs.solve(c_np, case["a"], case["s"], case["fixed"], case["fixed_value"])
    R, Z, Y, X = shape
    gi = np.array([R, Z, Y, X, case["boundary"] == "dirichlet", case["max_iter"]], np.int32)
    gf = np.array([case["bv"], fs._dh, fs._omega, fs._den0, fs._tol, case["fixed_value"]], F32)
    out = run_harness(harness("fields_harness"),
                      pack(gi, gf, case["c"], case["a"], case["s"], case["fixed"].astype(np.uint8)))
    n = case["c"].size
    c_cu = np.frombuffer(out[:4 * n], F32).reshape(shape)
    it_cu = np.frombuffer(out[4 * n:], np.int32)
    return c_np, it_np, c_cu, it_cu


@pytest.mark.parametrize("shape,boundary", [
    ((3, 1, 9, 8), "neumann"), ((2, 1, 7, 11), "dirichlet"),
    ((2, 5, 6, 7), "neumann"), ((2, 4, 5, 4), "dirichlet"), ((1, 1, 1, 5), "neumann"),
])
def test_field_solver_kernel_bitwise(harness, shape, boundary):
    c_np, it_np, c_cu, it_cu = solve_both(harness, field_case(shape, boundary, seed=sum(shape)))
    np.testing.assert_array_equal(it_cu, it_np)
    assert it_np.min() > 1, "case too easy: a replicate converged in one sweep"
    assert np.array_equal(c_cu.view(np.uint32), c_np.view(np.uint32)), \
        f"max |diff| {np.abs(c_cu - c_np).max()}"


def test_field_solver_kernel_unconverged_and_zero_iterations(harness):
    case = field_case((2, 1, 10, 10), "neumann", seed=3, tol=0.0, max_iter=7)
    c_np, it_np, c_cu, it_cu = solve_both(harness, case)
    assert it_np.tolist() == [7, 7]
    np.testing.assert_array_equal(it_cu, it_np)
    np.testing.assert_array_equal(c_cu.view(np.uint32), c_np.view(np.uint32))
    case = field_case((2, 1, 6, 6), "dirichlet", seed=4, max_iter=0)
    c_np, it_np, c_cu, it_cu = solve_both(harness, case)
    np.testing.assert_array_equal(it_cu, it_np)
    np.testing.assert_array_equal(c_cu.view(np.uint32), c_np.view(np.uint32))


# ----------------------------------------------------------------------------- nvcc
@pytest.mark.skipif(NVCC is None, reason="nvcc is not on PATH: the kernels' CUDA compile check "
                                         "runs only where the CUDA toolkit is installed")
@pytest.mark.parametrize("src", [p.name for p in kernel_files()])
def test_kernel_compiles_with_nvcc(src, tmp_path):
    cmd = [NVCC, "-ptx", "-arch=compute_90", *NVCC_OPTIONS, "-I", str(kernel_dir()),
           str(kernel_dir() / src), "-o", str(tmp_path / (src + ".ptx"))]
    res = subprocess.run(cmd, capture_output=True, text=True)
    assert res.returncode == 0, f"nvcc failed on {src}:\n{res.stderr}"
    assert (tmp_path / (src + ".ptx")).stat().st_size > 0


def test_kernels_include_only_their_own_headers():
    own = {p.name for p in kernel_dir().glob("*.cuh")}
    for p in list(kernel_dir().glob("*.cu")) + list(kernel_dir().glob("*.cuh")):
        for inc in re.findall(r'^\s*#\s*include\s*[<"]([^>"]+)[>"]', p.read_text(), re.M):
            assert inc in own, f"{p.name} includes {inc!r}; kernels may include only {sorted(own)}"


# ----------------------------------------------------------------------------- wheel
def test_wheel_contains_kernels(tmp_path):
    import importlib.util

    if not (importlib.util.find_spec("wheel") or importlib.util.find_spec("setuptools.command.bdist_wheel")):
        pytest.skip("building a wheel without build isolation needs the 'wheel' package "
                    "(or setuptools >= 70.1)")
    src = tmp_path / "src"
    # a clean copy of the sources (no build/, .venv, caches), so the build cannot race others
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(
        ".venv", ".git", "build", "*.egg-info", "__pycache__", "results", ".pytest_cache", "*.h5"))
    res = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                          "-q", "-w", str(tmp_path / "dist"), str(src)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-3000:]
    (whl,) = (tmp_path / "dist").glob("gpusim-*.whl")
    names = set(zipfile.ZipFile(whl).namelist())
    want = {f"gpusim/kernels/{p.name}" for p in kernel_dir().iterdir() if p.suffix in (".cu", ".cuh")}
    assert want and want <= names, f"missing from the wheel: {sorted(want - names)}"
    assert "gpusim/scenarios/quickstart.toml" in names


# ----------------------------------------------------------------------------- tumour phase
TUMOUR_K_FLOATS = ("p_apoptosis", "p_division_max", "p_necrosis_max", "p_clear_apoptotic",
                   "p_clear_necrotic", "p_antigen_loss", "o2_full", "o2_zero", "o2_hypoxic",
                   "o2_nec_onset", "o2_nec_max", "glucose_half", "block_density")
TUMOUR_COUNTS = ("tumour_apoptosis", "tumour_necrosis", "tumour_divisions", "antigen_a_loss",
                 "antigen_b_loss", "cleared", "vessel_collapse")  # order of TumourCount


EXTRA = (("antigen_a_base", np.uint8), ("antigen_b_base", np.uint8), ("pdl1", np.float32))


def tumour_both(harness, st, tp, seed, step):
    """Run tumour_phase (NumPy, on a copy) and the harness on the same state; return both.
    The optional arrays (baseline antigen levels, PD-L1) take part when the state has them."""
    from types import SimpleNamespace

    from gpusim.model.tumour import tumour_phase

    R, Z, Y, X = st.kind.shape
    names = ("kind", "antigen_a", "antigen_b", "ecm", "o2", "glucose")
    has_extra = all(hasattr(st, k) for k, _ in EXTRA)
    if has_extra:
        names += tuple(k for k, _ in EXTRA)
    ns = SimpleNamespace(**{k: getattr(st, k).copy() for k in names})
    ns.replicates, ns.nvox = np.asarray(st.replicates, np.int64), Z * Y * X
    events: dict = {}
    tumour_phase(ns, tp, seed, step, events)
    payload = pack(np.array([R, Z, Y, X, tp.collapse_neighbours, has_extra], np.int32),
                   np.array([seed, step], np.uint32),
                   np.array([getattr(tp, f) for f in TUMOUR_K_FLOATS], F32),
                   np.asarray(st.replicates).astype(np.uint32), st.kind, st.antigen_a, st.antigen_b,
                   st.ecm, st.o2, st.glucose,
                   *([getattr(st, k).astype(t) for k, t in EXTRA] if has_extra else []))
    out = run_harness(harness("tumour_harness"), payload)
    n = st.kind.size
    outs = [("kind", np.uint8), ("antigen_a", np.uint8), ("antigen_b", np.uint8)]
    if has_extra:
        outs += list(EXTRA)
    got, off = {}, 0
    for k, t in outs:
        nb = n * np.dtype(t).itemsize
        got[k] = np.frombuffer(out[off:off + nb], t).reshape(st.kind.shape)
        off += nb
    counts = np.frombuffer(out[off:], np.uint64).reshape(R, len(TUMOUR_COUNTS))
    got_ev = {k: counts[:, i].astype(np.int64) for i, k in enumerate(TUMOUR_COUNTS)}
    want_ev = {k: np.broadcast_to(np.asarray(events.get(k, 0), np.int64), (R,)) for k in TUMOUR_COUNTS}
    return ns, events, got, got_ev, want_ev


def assert_tumour_equal(ns, got, got_ev, want_ev):
    for k in got:
        diff = np.argwhere(got[k].view(np.uint8) != getattr(ns, k).view(np.uint8))
        assert diff.size == 0, f"{k} differs at {len(diff)} bytes, first {diff[0].tolist()}"
    for k in TUMOUR_COUNTS:
        np.testing.assert_array_equal(got_ev[k], want_ev[k], err_msg=k)


def test_tumour_kernel_bitwise_on_engine_states(harness):
    """States of a real (reduced) run, several steps apart."""
    from gpusim.engine import Simulation
    from gpusim.scenario import load_scenario

    # divisions and antigen loss made frequent, so that 5 sampled steps exercise them
    sc = load_scenario("no_barriers", ["domain.x_voxels=40", "domain.y_voxels=36",
                                      "tumour.radius_um=250", "tumour.division_rate_per_min=0.01",
                                      "tumour.antigen_loss_per_division=0.2"])
    sim = Simulation(sc, replicates=2, first_replicate=5)
    seen = dict.fromkeys(TUMOUR_COUNTS, 0)
    for step in range(40):
        if step % 8 == 0:
            # a state between two steps of the engine (its fields as the last step left them)
            st = sim.state
            ns, _, got, got_ev, want_ev = tumour_both(harness, st, sim.tumour_params, sim.seed, st.step)
            assert_tumour_equal(ns, got, got_ev, want_ev)
            for k in TUMOUR_COUNTS:
                seen[k] += int(want_ev[k].sum())
        sim.step()
    assert seen["tumour_divisions"] > 0 and seen["antigen_a_loss"] > 0, seen


@pytest.mark.parametrize("shape", [(3, 1, 12, 13), (2, 4, 6, 5)])
def test_tumour_kernel_bitwise_synthetic(harness, shape):
    """Random tissue with raised probabilities: every branch (apoptosis, necrosis, division with
    antigen loss, both clearances, vessel collapse, blocked neighbours) fires many times."""
    from dataclasses import replace
    from types import SimpleNamespace

    from gpusim.model.tumour import TumourParams
    from gpusim.scenario import load_scenario

    g = np.random.default_rng(sum(shape))
    tp = replace(TumourParams.from_scenario(load_scenario("quickstart")),
                 p_apoptosis=F32(0.1), p_division_max=F32(0.5), p_necrosis_max=F32(0.3),
                 p_clear_apoptotic=F32(0.4), p_clear_necrotic=F32(0.3), p_antigen_loss=F32(0.3),
                 collapse_neighbours=2)
    kind = g.choice([0, 1, 2, 3, 4, 5, 6], size=shape, p=[.3, .35, .1, .05, .07, .08, .05]).astype(np.uint8)
    st = SimpleNamespace(
        kind=kind, antigen_a=g.integers(0, 256, shape).astype(np.uint8),
        antigen_b=g.integers(0, 256, shape).astype(np.uint8),
        ecm=g.choice([0.0, 0.2, 0.95], size=shape).astype(F32),
        o2=g.uniform(0, 40, shape).astype(F32), glucose=g.uniform(0, 5, shape).astype(F32),
        antigen_a_base=g.integers(0, 256, shape).astype(np.uint8),
        antigen_b_base=g.integers(0, 256, shape).astype(np.uint8),
        pdl1=g.uniform(0, 1, shape).astype(F32), replicates=np.arange(7, 7 + shape[0]))
    ns, _, got, got_ev, want_ev = tumour_both(harness, st, tp, seed=99, step=1234)
    assert_tumour_equal(ns, got, got_ev, want_ev)
    for k in TUMOUR_COUNTS:
        assert want_ev[k].sum() > 0, f"branch {k} never fired: the case does not test it"


# ----------------------------------------------------------------------------- CAR-T migration
MOVE_K = ("p_move", "p_persist", "p_chemotaxis", "one_minus_perm", "crowding")


@pytest.mark.parametrize("shape,C", [((3, 1, 14, 15), 40), ((2, 5, 6, 7), 30)])
def test_car_t_migration_kernel_bitwise(harness, shape, C):
    """Crowded random tables: persistence, chemotaxis, random moves, blocked entries and claim
    conflicts all occur; the final positions and directions must equal car_t._migrate's."""
    from dataclasses import replace
    from types import SimpleNamespace

    from gpusim.model import car_t
    from gpusim.model.lattice import moore_offsets
    from gpusim.scenario import load_scenario

    g = np.random.default_rng(C + shape[1])
    R, Z, Y, X = shape
    V = Z * Y * X
    K = len(moore_offsets(Z))
    cp = replace(car_t.CarTParams.from_scenario(load_scenario("quickstart")), n_sub=3,
                 p_move=F32(0.9), p_persist=F32(0.4), p_chemotaxis=F32(0.6),
                 one_minus_perm=F32(0.7), crowding=F32(0.5))
    count = g.integers(C // 2, C + 1, R).astype(np.int32)
    t_pos = np.zeros((R, C), np.int32)
    t_dir = np.full((R, C), -1, np.int8)
    for r in range(R):
        t_pos[r, :count[r]] = g.choice(V, count[r], replace=False)
        t_dir[r, :count[r]] = g.integers(-1, K, count[r])
    kind = g.choice([0, 1, 2], size=shape, p=[.4, .4, .2]).astype(np.uint8)
    ecm = g.choice([0.0, 0.3, 0.9], size=shape).astype(F32)
    chem = np.round(g.uniform(0, 1, shape), 1).astype(F32)  # rounded: ties in the gradient
    reps = np.arange(2, 2 + R)
    seed, step = 31, 77

    st = SimpleNamespace(kind=kind, ecm=ecm, chemokine=chem, replicates=reps, nvox=V)
    r, s = np.nonzero(np.arange(C)[None, :] < count[:, None])
    a = {"t_pos": t_pos[r, s].copy(), "t_dir": t_dir[r, s].copy()}
    car_t._migrate(st, cp, seed, step, r, a)
    want_pos, want_dir = t_pos.copy(), t_dir.copy()
    want_pos[r, s], want_dir[r, s] = a["t_pos"], a["t_dir"]

    payload = pack(np.array([R, Z, Y, X, C, cp.n_sub], np.int32), np.array([seed, step], np.uint32),
                   np.array([getattr(cp, k) for k in MOVE_K], F32), reps.astype(np.uint32), count,
                   t_pos, t_dir, kind, ecm, chem)
    out = run_harness(harness("car_t_move_harness"), payload)
    got_pos = np.frombuffer(out[:4 * R * C], np.int32).reshape(R, C)
    got_dir = np.frombuffer(out[4 * R * C:], np.int8).reshape(R, C)
    moved = (want_pos != t_pos).sum()
    assert moved > R * C // 4, f"only {moved} cells moved: the case does not exercise migration"
    np.testing.assert_array_equal(got_pos, want_pos)
    np.testing.assert_array_equal(got_dir, want_dir)
