"""Tests of the CUDA kernels of ``kernels/`` that need no GPU.

* the stream ids of ``kernels/philox.cuh`` equal :class:`gpusim.rng.Stream`;
* every ``kernels/*.cu`` compiles with nvcc (skipped, with the reason, where nvcc is absent);
* the kernel logic (``__host__ __device__`` functions) compiled by the host C++ compiler in the
  small harnesses of ``tests/harness/`` gives bitwise the NumPy engine's answers: Philox against
  the Random123 known-answer vectors and :mod:`gpusim.rng`, the field solver against
  :class:`~gpusim.model.fields.FieldSolver`, the tumour phase against
  :func:`~gpusim.model.tumour.tumour_phase`, the whole CAR-T phase against
  :func:`~gpusim.model.car_t.car_t_phase`, the microenvironment phase against
  :func:`~gpusim.model.microenv.microenv_phase` and the field coefficients against
  :meth:`~gpusim.model.environment.FieldsPhase.solve`, on states of real (reduced) engine runs;
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
from gpusim.backends.cupy_backend import CART_COUNTS  # order of CarTCount (car_t_logic.cuh)
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
    floor = case.get("floor")
    fs = FieldSolver(shape, diffusion_um2_per_min=case["D"], voxel_um=case["h"],
                     boundary=case["boundary"], boundary_value=case["bv"], omega=case["omega"],
                     tol=case["tol"], max_iter=case["max_iter"], floor=floor)
    c_np = case["c"].copy()
    it_np = fs.solve(c_np, case["a"], case["s"], case["fixed"], case["fixed_value"])
    R, Z, Y, X = shape
    gi = np.array([R, Z, Y, X, case["boundary"] == "dirichlet", case["max_iter"], floor is not None],
                  np.int32)
    gf = np.array([case["bv"], fs._dh, fs._omega, fs._den0, fs._tol, case["fixed_value"],
                   0.0 if floor is None else floor], F32)
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


# ----------------------------------------------------------------------------- CAR-T phase
CART_TABLE = (("t_state", np.uint8), ("t_pos", np.int32), ("t_exh", F32), ("t_div", np.uint8),
              ("t_kills", np.int32), ("t_dir", np.int8), ("t_act", np.int16), ("t_eng", np.uint8))
CART_LATTICE_IN = ("kind", "antigen_a", "antigen_b", "o2", "glucose", "tgfb", "il12", "pdl1", "ecm",
                   "chemokine")


def kstruct(rec: np.ndarray) -> bytes:
    """A parameter record of the CuPy backend as read_struct (harness_io.h) expects it."""
    return pack(np.uint64(rec.dtype.itemsize), rec)


def car_t_payload(st, cp, seed, step):
    """The car_t_harness input for one phase; the parameter structs are the CuPy backend's own
    records (cupy_backend.car_t_k / move_k), so their packing and layout are checked too."""
    from gpusim.backends.cupy_backend import car_t_k, move_k

    R, Z, Y, X = st.kind.shape
    C = st.t_state.shape[1]
    return pack(np.array([R, Z, Y, X, C, cp.n_sub], np.int32), np.array([seed, step], np.uint32),
                kstruct(car_t_k(cp, step)), kstruct(move_k(cp)),
                np.asarray(st.replicates).astype(np.uint32), cp.rec_threshold.astype(np.uint64),
                st.t_count.astype(np.int32), *[getattr(st, k).astype(t) for k, t in CART_TABLE],
                *[getattr(st, k) for k in CART_LATTICE_IN])


def car_t_both(harness, st, cp, seed, step):
    """car_t_phase (NumPy, on a copy) and the harness on the same state: (numpy ns, events,
    harness arrays, harness counts)."""
    from types import SimpleNamespace

    from gpusim.model.car_t import car_t_phase

    R = st.kind.shape[0]
    C = st.t_state.shape[1]
    names = CART_LATTICE_IN + tuple(k for k, _ in CART_TABLE) + ("t_count",)
    ns = SimpleNamespace(**{k: getattr(st, k).copy() for k in names})
    ns.replicates, ns.nvox = np.asarray(st.replicates, np.int64), int(np.prod(st.kind.shape[1:]))
    events: dict = {}
    car_t_phase(ns, cp, seed, step, events)
    out = run_harness(harness("car_t_harness"), car_t_payload(st, cp, seed, step))
    got, off = {}, 0
    layout = [("t_count", np.int32, (R,))] + [(k, t, (R, C)) for k, t in CART_TABLE] + \
             [(k, np.uint8, st.kind.shape) for k in ("kind", "antigen_a", "antigen_b")]
    for k, t, shp in layout:
        nb = int(np.prod(shp)) * np.dtype(t).itemsize
        got[k] = np.frombuffer(out[off:off + nb], t).reshape(shp)
        off += nb
    counts = np.frombuffer(out[off:], np.uint64).reshape(R, len(CART_COUNTS)).astype(np.int64)
    want_ev = {k: np.broadcast_to(np.asarray(events.get(k, 0), np.int64), (R,)) for k in CART_COUNTS}
    return ns, want_ev, got, {k: counts[:, i] for i, k in enumerate(CART_COUNTS)}


def assert_car_t_equal(ns, want_ev, got, got_ev):
    for k, arr in got.items():
        want = getattr(ns, k)
        assert arr.dtype == want.dtype, (k, arr.dtype, want.dtype)
        diff = np.argwhere(arr.view(np.uint8) != want.view(np.uint8))
        assert diff.size == 0, f"{k} differs at {len(diff)} bytes, first {diff[0].tolist()}"
    for k in CART_COUNTS:
        np.testing.assert_array_equal(got_ev[k], want_ev[k], err_msg=k)


@pytest.mark.parametrize("shape", [(1, 30, 30), (5, 12, 12)])
def test_car_t_phase_kernel_bitwise_on_engine_states(harness, shape):
    """States of a real reduced intratumoral run (CAR-T cells in the tissue, TGF-β, PD-L1,
    hypoxia), several steps apart; the whole CAR-T phase (engagement with suppression, kills,
    trogocytosis, exhaustion, death, division claims, compaction, migration) must equal
    car_t_phase bitwise.  The phase is run with death, division, exhaustion per kill and PD-L1
    terms raised (dataclasses.replace on the scenario's CarTParams) so that every branch fires on
    a few sampled steps; the state itself is the engine's."""
    from dataclasses import replace
    from types import SimpleNamespace

    from gpusim.engine import Simulation
    from gpusim.scenario import load_scenario

    STATE_NAMES = CART_LATTICE_IN + tuple(k for k, _ in CART_TABLE) + ("t_count",)
    Z, Y, X = shape
    sc = load_scenario("intratumoral", [f"domain.z_voxels={Z}", f"domain.y_voxels={Y}",
                                         f"domain.x_voxels={X}", "tumour.radius_um=180",
                                         "car_t.capacity_per_replicate=400"])
    sim = Simulation(sc, replicates=2, first_replicate=4)
    cp = replace(sim.car_t_params, p_death=np.array([[0.05, 0.1], [0.3, 0.4], [0.2, 0.25]], F32),
                 p_division=F32(0.6), p_division_lympho=F32(0.7), exh_per_kill=F32(0.95), exh_hypoxia=F32(0.2),
                 exh_pdl1=0.2, pdl1_inhibition=0.5, p_kill=F32(0.5), activation_steps=3,
                 hypoxia_factor=F32(0.7), o2_hypoxic=F32(19.0))  # about half the voxels hypoxic
    seen = dict.fromkeys(CART_COUNTS, 0)
    exhausted = 0
    g = np.random.default_rng(Z)
    for step in range(24):
        st = sim.state
        if step % 4 == 3:
            ns, want_ev, got, got_ev = car_t_both(harness, st, cp, sim.seed, st.step)
            assert_car_t_equal(ns, want_ev, got, got_ev)
            for k in CART_COUNTS:
                seen[k] += int(want_ev[k].sum())
            exhausted += int((ns.t_state == 2).sum())
            # the same state with an IL-12 field (this run secretes none), and with dnTGFbRII
            st12 = SimpleNamespace(**{k: getattr(st, k) for k in STATE_NAMES}, replicates=st.replicates)
            st12.il12 = g.uniform(0, 0.3, st.il12.shape).astype(F32)
            for cpx in (cp, replace(cp, dnTGFbRII=True)):
                assert_car_t_equal(*car_t_both(harness, st12, cpx, sim.seed, st.step))
        sim.step()
    missing = [k for k in ("kills_tumour", "engagements", "trogocytosis", "car_t_deaths",
                           "car_t_births") if seen[k] == 0]
    assert not missing and exhausted > 0, (seen, exhausted)


@pytest.mark.parametrize("dn,glucose_half", [(False, 0.05), (True, 0.05), (False, 0.0)])
def test_car_t_suppression_bitwise(harness, dn, glucose_half):
    """car_t_suppression gives car_t.suppression's S and T bitwise (every float32 operation in
    its order), over random inputs spanning the hypoxic threshold, glucose 0 and IL-12 0."""
    from dataclasses import replace

    from gpusim.model.car_t import CarTParams, suppression
    from gpusim.scenario import load_scenario

    cp = replace(CarTParams.from_scenario(load_scenario("quickstart")), dnTGFbRII=dn,
                 glucose_half=F32(glucose_half), hypoxia_factor=F32(0.37))
    g = np.random.default_rng(11)
    n = 5000
    tg = g.uniform(0, 3, n).astype(F32)
    il = np.where(g.random(n) < 0.2, 0, g.uniform(0, 1, n)).astype(F32)
    o2 = g.uniform(0, 2 * float(cp.o2_hypoxic), n).astype(F32)
    gl = np.where(g.random(n) < 0.1, 0, g.uniform(0, 5, n)).astype(F32)
    s_np, t_np = suppression(cp, tg, il, o2, gl)
    from gpusim.backends.cupy_backend import car_t_k

    out = run_harness(harness("car_t_suppression_harness"),
                      pack(np.array([n], np.int32), kstruct(car_t_k(cp, 0)), tg, il, o2, gl))
    s_cu = np.frombuffer(out[:4 * n], F32)
    t_cu = np.frombuffer(out[4 * n:], F32)
    np.testing.assert_array_equal(s_cu.view(np.uint32), np.asarray(s_np, F32).view(np.uint32))
    np.testing.assert_array_equal(t_cu.view(np.uint32), np.asarray(t_np, F32).view(np.uint32))


# ----------------------------------------------------------------------------- microenvironment
def microenv_both(harness, st, mp, seed, step):
    """microenv_phase (NumPy, on a copy) and the harness on the same state."""
    from types import SimpleNamespace

    from gpusim.model.microenv import microenv_phase

    R, Z, Y, X = st.kind.shape
    C = st.t_state.shape[1]
    lat = ("kind", "pdl1", "ifng", "o2", "antigen_a", "antigen_b", "antigen_a_base", "antigen_b_base", "ecm")
    ns = SimpleNamespace(**{k: getattr(st, k).copy() for k in lat + ("t_count", "t_state", "t_pos")})
    ns.replicates, ns.nvox = np.asarray(st.replicates, np.int64), Z * Y * X
    events: dict = {}
    microenv_phase(ns, mp, seed, step, events)
    from gpusim.backends.cupy_backend import microenv_k

    out = run_harness(harness("microenv_harness"), pack(
        np.array([R, Z, Y, X, C], np.int32), np.array([seed, step], np.uint32),
        kstruct(microenv_k(mp, step)), np.asarray(st.replicates).astype(np.uint32),
        st.t_count.astype(np.int32), st.t_state, st.t_pos, *[getattr(st, k) for k in lat]))
    n = st.kind.size
    got, off = {}, 0
    for k, t in (("pdl1", F32), ("antigen_a", np.uint8), ("antigen_b", np.uint8), ("ecm", F32)):
        nb = n * np.dtype(t).itemsize
        got[k] = np.frombuffer(out[off:off + nb], t).reshape(st.kind.shape)
        off += nb
    rec = np.frombuffer(out[off:], np.uint64).astype(np.int64)
    want = np.broadcast_to(np.asarray(events.get("antigen_recovered", 0), np.int64), (R,))
    for k, arr in got.items():
        diff = np.argwhere(arr.view(np.uint8) != getattr(ns, k).view(np.uint8))
        assert diff.size == 0, f"{k} differs at {len(diff)} bytes, first {diff[0].tolist()}"
    np.testing.assert_array_equal(rec, want)
    return ns, got, want


@pytest.mark.parametrize("shape", [(1, 30, 30), (5, 12, 12)])
def test_microenv_kernel_bitwise_on_engine_states(harness, shape):
    """States of a reduced intratumoral run with CAR-T and drug ECM degradation (PD-L1 induced by
    IFN-γ and hypoxia, antigens trogocytosed); the phase with antigen recovery made frequent and
    the drug both off (before its start) and on must equal microenv_phase bitwise."""
    from dataclasses import replace

    from gpusim.engine import Simulation
    from gpusim.scenario import load_scenario

    Z, Y, X = shape
    sc = load_scenario("intratumoral", [f"domain.z_voxels={Z}", f"domain.y_voxels={Y}",
                                         f"domain.x_voxels={X}", "tumour.radius_um=180",
                                         "car_t.capacity_per_replicate=400",
                                         "stroma.car_t_degradation_per_day=2.0",
                                         "stroma.drug_degradation_per_day=0.5",
                                         "tumour.pdl1_hypoxia_rate_per_day=20.0"])
    sim = Simulation(sc, replicates=2, first_replicate=1)
    mp = replace(sim.microenv_params, p_recover=F32(0.3))
    recovered = pdl1_on = 0
    for step in range(16):
        st = sim.state
        if step % 4 == 3:
            for drug_start in (st.step + 1, st.step):  # drug off, then on
                ns, got, want = microenv_both(harness, st, replace(mp, drug_start_step=drug_start),
                                              sim.seed, st.step)
                recovered += int(want.sum())
                pdl1_on += int((ns.pdl1 > 0).sum())
        sim.step()
    assert recovered > 0 and pdl1_on > 0, (recovered, pdl1_on)


# ----------------------------------------------------------------------------- field coefficients
FIELD_ORDER = ("o2", "glucose", "chemokine", "tgfb", "ifng", "il12")  # FieldId order


def field_coeffs_both(harness, st, fp):
    """(a, s) of every field as FieldsPhase.solve assembles them (its solvers replaced by
    recorders that leave the fields unchanged, so every coefficient sees the input state) and as
    the harness computes them."""
    from types import SimpleNamespace

    rec = {}
    names = ("kind", "t_count", "t_pos", "t_eng", "t_act", "t_state") + FIELD_ORDER
    ns = SimpleNamespace(**{k: getattr(st, k).copy() for k in names})
    ns.nvox = int(np.prod(st.kind.shape[1:]))
    for name, attr in zip(FIELD_ORDER, ("o2", "glucose", "chemokine", "tgfb", "ifng", "il12")):
        def record(c, a, s, fixed=None, fixed_value=0.0, _n=name):
            rec[_n] = (np.array(a, F32), np.array(s, F32), fixed)
            return np.zeros(c.shape[0], np.int32)
        setattr(fp, attr, SimpleNamespace(solve=record))
    fp.solve(ns)
    R, Z, Y, X = st.kind.shape
    C = st.t_state.shape[1]
    from gpusim.backends.cupy_backend import field_coef_k

    out = run_harness(harness("field_coeffs_harness"), pack(
        np.array([R, Z, Y, X, C], np.int32), kstruct(field_coef_k(fp)), st.t_count.astype(np.int32), st.t_pos,
        st.t_eng, st.t_act, st.t_state, st.kind, *[getattr(st, k) for k in FIELD_ORDER]))
    got = np.frombuffer(out, F32).reshape(6, 2, *st.kind.shape)
    return rec, got


@pytest.mark.parametrize("shape,armour", [((1, 30, 30), "TGFb_trap"), ((5, 12, 12), "none")])
def test_field_coeffs_kernel_bitwise_on_engine_states(harness, shape, armour):
    """Engine states of a reduced intratumoral run (CAR-T cells engaged and activated, hypoxic
    tumour, IFN-γ on); IL-12 secretion switched on (as a 4th-generation product) so every field is
    assembled; a and s of all six fields must equal FieldsPhase.solve's bitwise."""
    from types import SimpleNamespace

    from gpusim.engine import Simulation
    from gpusim.model.environment import FieldsPhase
    from gpusim.model.lattice import Kind
    from gpusim.scenario import load_scenario

    Z, Y, X = shape
    sc = load_scenario("intratumoral", [f"domain.z_voxels={Z}", f"domain.y_voxels={Y}",
                                         f"domain.x_voxels={X}", "tumour.radius_um=180",
                                         "car_t.capacity_per_replicate=400", f"car_t.armour={armour}",
                                         "car_t.generation=fourth"])
    sim = Simulation(sc, replicates=2, first_replicate=2)
    hyp = 0
    for step in range(10):
        sim.step()
        if step % 4 == 1:
            st = sim.state
            # the engine's state, and a copy with every third cell exhausted (activated but no
            # longer an effector: no IL-12)
            ex = SimpleNamespace(**{k: getattr(st, k) for k in ("kind", "t_count", "t_pos", "t_eng",
                                                                 "t_act") + FIELD_ORDER})
            ex.t_state = st.t_state.copy()
            ex.t_state[:, ::3] = np.where(ex.t_state[:, ::3] > 0, 2, 0)
            for s_ in (st, ex):
                fp = FieldsPhase(sc, 2)
                rec, got = field_coeffs_both(harness, s_, fp)
                assert set(rec) == set(FIELD_ORDER), sorted(rec)
                for f, name in enumerate(FIELD_ORDER):
                    for j, what in enumerate("as"):
                        np.testing.assert_array_equal(
                            got[f, j].view(np.uint32),
                            np.broadcast_to(rec[name][j], st.kind.shape).view(np.uint32),
                            err_msg=f"{name}.{what}")
                np.testing.assert_array_equal(rec["o2"][2], st.kind == Kind.VESSEL)
            hyp += int(((st.kind == Kind.TUMOUR) & (st.o2 < fp.o2_hypoxic)).sum())
            assert (st.t_eng > 0).any() and (st.t_act > 0).any() and st.ifng.any()
    assert hyp > 0, "no hypoxic tumour voxel: the hypoxic TGF-β branch is not tested"


# ----------------------------------------------------------------------------- extravasation
@pytest.mark.parametrize("shape", [(1, 32, 32), (6, 16, 16)])
def test_extravasation_kernel_bitwise_on_engine_states(harness, shape):
    """Intravenous runs (reduced iv_baseline, homing raised so that many cells enter per step):
    on steps without a dose, the vessel entry of the systemic phase (chemokine weights, exact
    integer sums, float32 probabilities, EXTRAVASATION words, append in voxel order) must equal
    systemic_phase bitwise: table, counts and car_t_entered."""
    from dataclasses import replace
    from types import SimpleNamespace

    from gpusim.engine import Simulation
    from gpusim.model.systemic import systemic_phase
    from gpusim.scenario import load_scenario

    Z, Y, X = shape
    sc = load_scenario("iv_baseline", [f"domain.z_voxels={Z}", f"domain.y_voxels={Y}",
                                        f"domain.x_voxels={X}", "tumour.radius_um=200",
                                        "delivery.tumour_homing_fraction_per_day=0.5",
                                        "car_t.capacity_per_replicate=600"])
    sim = Simulation(sc, replicates=2, first_replicate=6)
    assert sim.systemic_params.route == "intravenous"
    entered = 0
    for step in range(12):
        st = sim.state
        if step % 3 == 2:
            # homing chosen so that about 60 % of the free vessel voxels admit a cell
            n_ves = int((st.kind == 6).sum())
            sp = replace(sim.systemic_params, weight256=F32(256 * 3.0),
                         homing_per_step=0.6 * n_ves / st.kind.shape[0] / float(st.blood.mean())
                         / sim.systemic_params.domain_share)
            assert sp.dose_steps.get(st.step, 0.0) == 0.0
            names = ("kind", "chemokine", "t_count", "blood", "csf") + tuple(k for k, _ in CART_TABLE)
            ns = SimpleNamespace(**{k: getattr(st, k).copy() for k in names})
            ns.replicates, ns.nvox = np.asarray(st.replicates, np.int64), Z * Y * X
            events: dict = {}
            systemic_phase(ns, sp, sim.seed, st.step, events)
            lam = st.blood * sp.homing_per_step * sp.domain_share  # the host part (float64)
            R, C = st.t_state.shape
            out = run_harness(harness("systemic_harness"), pack(
                np.array([R, Z, Y, X, C, sp.max_divisions], np.int32),
                np.array([sim.seed, st.step], np.uint32), F32(sp.weight256), lam.astype(np.float64),
                np.asarray(st.replicates).astype(np.uint32), st.t_count.astype(np.int32),
                *[getattr(st, k).astype(t) for k, t in CART_TABLE], st.kind, st.chemokine))
            off = 4 * R
            np.testing.assert_array_equal(np.frombuffer(out[:off], np.int32), ns.t_count)
            for k, t in CART_TABLE:
                nb = R * C * np.dtype(t).itemsize
                got = np.frombuffer(out[off:off + nb], t).reshape(R, C)
                off += nb
                np.testing.assert_array_equal(got.view(np.uint8), getattr(ns, k).view(np.uint8), err_msg=k)
            got_e = np.frombuffer(out[off:off + 8 * R], np.uint64).astype(np.int64)
            np.testing.assert_array_equal(got_e, events["car_t_entered"])
            # the exact integer weight sums, against the documented rule (MODEL.md section 7:
            # w = 256 + floor(256 × weight × c) over free vessel voxels)
            free = (st.kind.reshape(R, -1) == 6) & (st.tcell_map().reshape(R, -1) == 0)
            w = 256 + np.floor(sp.weight256 * st.chemokine.reshape(R, -1)).astype(np.int64)
            np.testing.assert_array_equal(np.frombuffer(out[off + 8 * R:], np.uint64).astype(np.int64),
                                          np.where(free, w, 0).sum(axis=1))
            entered += int(got_e.sum())
        sim.step()
    assert entered > 25, f"only {entered} cells entered: the case does not exercise extravasation"
