"""The kernel interface, declared once: state codes, count orders, parameter structs and the named
signature of every kernel of ``kernels/*.cu``.

The C header the kernels include, ``kernels/interface.cuh``, is generated from this module
(:func:`render_header`; ``python -m gpusim.backends.interface`` rewrites it, and a test keeps it
current, as ``docs/parameters.md`` is kept).  The header declares every kernel's prototype, so a
``.cu`` definition that disagrees with the declaration here does not compile (C linkage allows no
overloads); launches go by name through :func:`launch`, which orders, casts and checks the
arguments against the same declaration.  No launch in the project passes a positional tuple.

Types: ``i8 u8 i16 i32 u32 i64 u64 f32 f64`` are C scalars passed by value; a trailing ``*`` is a
device pointer to an array of that element type (``const`` for read-only); a struct name
(``TumourK``) is a device pointer to one struct, passed as a uint8 device array of the struct's
bytes (:func:`pack`).  ``@t`` (``@o``) in a signature stands for the nine agent-table pointers
``t_state .. t_prod`` (``o_state .. o_prod``) of :data:`TABLE`.  ``rec`` is the recognition
table of every product, uint64 (P, 65536) flat, indexed ``t_prod * 65536 + antigen_a * 256 +
antigen_b``.
"""

from __future__ import annotations

import numpy as np

from ..model.lattice import Kind, TState
from ..rng import Stream

# ----------------------------------------------------------------------------- scalar types
SCALARS = {"i8": (np.int8, "signed char"), "u8": (np.uint8, "unsigned char"),
           "i16": (np.int16, "short"), "i32": (np.int32, "int"), "u32": (np.uint32, "unsigned int"),
           "i64": (np.int64, "long long"), "u64": (np.uint64, "unsigned long long"),
           "f32": (np.float32, "float"), "f64": (np.float64, "double")}

# ----------------------------------------------------------------------------- state codes
N_KINDS = len(Kind)
#: the agent table: (field, element type) in the order of struct AgentTable
TABLE = (("state", "u8"), ("pos", "i32"), ("exh", "f32"), ("div", "u8"), ("kills", "i32"),
         ("dir", "i8"), ("act", "i16"), ("eng", "u8"), ("prod", "u8"))
TABLE_FIELDS = tuple(f"t_{f}" for f, _ in TABLE)

#: event counts written by the kernels, in the order of their count arrays (R, n)
TUMOUR_COUNTS = ("tumour_apoptosis", "tumour_necrosis", "tumour_divisions", "antigen_a_loss",
                 "antigen_b_loss", "cleared", "vessel_collapse", "healthy_displaced",
                 "fibroblast_displaced")
CART_COUNTS = ("kills_tumour", "kills_healthy", "engagements", "trogocytosis", "car_t_deaths",
               "car_t_births", "memory_conversions", "memory_reactivations", "pd1_reinvigorations")
MICRO_COUNTS = ("antigen_recovered", "kills_innate", "kills_fibroblast")
FIELD_IDS = ("o2", "glucose", "chemokine", "tgfb", "ifng", "il12")
AMAP_BITS = {"AMAP_TCELL": 1, "AMAP_ENG": 2, "AMAP_ACT": 4}  #: field_agent_map_kernel's bits

#: C enums: name -> (underlying type, [(member, value)])
ENUMS = {
    "KindCode": ("u8", [(f"KIND_{k.name}", int(k)) for k in Kind]),
    "TStateCode": ("u8", [(f"TSTATE_{s.name}", int(s)) for s in TState]),
    "Stream": ("u32", [(s.name, int(s)) for s in Stream]),
    "TumourCount": ("u32", [("TC_" + n.upper().replace("TUMOUR_", ""), i)
                            for i, n in enumerate(TUMOUR_COUNTS)] + [("TUMOUR_NCOUNT", len(TUMOUR_COUNTS))]),
    "CarTCount": ("u32", [("CC_" + n.upper().replace("CAR_T_", "").replace("MEMORY_", "MEM_"), i)
                          for i, n in enumerate(CART_COUNTS)] + [("CART_NCOUNT", len(CART_COUNTS))]),
    "MicroCount": ("u32", [("MC_" + n.upper(), i) for i, n in enumerate(MICRO_COUNTS)]
                   + [("MICRO_NCOUNT", len(MICRO_COUNTS))]),
    "FieldId": ("i32", [(f"FIELD_{n.upper()}", i) for i, n in enumerate(FIELD_IDS)]),
    "AgentMapBits": ("u8", list(AMAP_BITS.items())),
}

# ----------------------------------------------------------------------------- parameter structs
#: struct name -> [(member, scalar type, array length or 1)]; member names are the attribute
#: names of the model's parameter objects (see :func:`pack`)
STRUCTS = {
    "TumourK": [(f, "f32", 1) for f in (
        "p_apoptosis", "p_division_max", "p_necrosis_max", "p_clear_apoptotic", "p_clear_necrotic",
        "p_antigen_loss", "o2_full", "o2_zero", "o2_hypoxic", "o2_nec_onset", "o2_nec_max",
        "glucose_half", "block_density", "p_push", "push_ecm_max")]
        + [("collapse_neighbours", "i32", 1), ("push_radius", "i32", 1)],
    "CarTK": [(f, "f32", 1) for f in (
        "p_kill", "exh_per_kill", "inv_tgfb_half", "tgfb_half", "inv_il12_half", "il12_half",
        "kill_boost", "hypoxia_factor", "glucose_half", "exh_tgfb_gain", "exh_recovery",
        "exh_hypoxia",
        "o2_hypoxic", "daughter_exh", "starvation_glucose", "p_mem", "p_react", "inv_act", "g5_div",
        "g5_surv", "g5_mem", "revive_exh")]
        + [("inhib", "f32", 1), ("exh_pd", "f32", 1), ("p_div_step", "f32", 1), ("p_revive", "f32", 1)]
        + [(f, "i32", 1) for f in ("dnTGFbRII", "tgfb_exh_on", "trog256", "activation_steps",
                                   "max_per_voxel")],
    "MoveK": [(f, "f32", 1) for f in ("p_move", "p_persist", "p_chemotaxis", "one_minus_perm",
                                      "crowding", "one_minus_slow")] + [("max_per_voxel", "i32", 1)],
    "MicroK": [(f, "f32", 1) for f in ("r_ifng", "r_hyp", "r_dec", "ifng_half", "o2_hypoxic",
                                       "p_recover", "d_car", "d_drug", "p_innate", "il12_half",
                                       "p_fap", "r_dep", "caf_level", "r_tgf_dep", "caf_half")]
        + [("drug_on", "i32", 1)],
    "FieldCoefK": [(f, "f32", N_KINDS) for f in ("o2_sink", "glucose_sink", "tgfb_src", "o2_src")]
        + [(f, "f32", 1) for f in ("o2_t", "glucose_t", "chem_sec", "chem_base", "chem_boost",
                                   "ifng_half", "tgfb_base", "tgfb_hyp_src", "o2_hypoxic",
                                   "trap_uptake", "ifng_base", "ifng_sec", "il12_base", "il12_sec",
                                   "inv_dt")] + [("trap", "i32", 1)],
}


def struct_dtype(name: str) -> np.dtype:
    """The NumPy record of a parameter struct, byte for byte the C layout (4-byte members)."""
    return np.dtype([(m, SCALARS[t][0], (n,)) if n > 1 else (m, SCALARS[t][0])
                     for m, t, n in STRUCTS[name]])


def pack(name: str, params, **values) -> np.ndarray:
    """The bytes (uint8 array) of struct ``name``: each member from ``values`` if given, else the
    attribute of the same name of ``params`` (cast to the member's type, float64 host values
    rounded once to float32)."""
    rec = np.zeros((), struct_dtype(name))
    for m, _, _ in STRUCTS[name]:
        v = values[m] if m in values else getattr(params, m)
        rec[m] = np.asarray(v).ravel() if np.ndim(v) else v
    unknown = set(values) - {m for m, _, _ in STRUCTS[name]}
    if unknown:
        raise TypeError(f"{name} has no member(s) {sorted(unknown)}")
    return np.frombuffer(rec.tobytes(), np.uint8).copy()


# ----------------------------------------------------------------------------- kernel signatures
_G = "R:i32 Z:i32 Y:i32 X:i32"
_GC = _G + " C:i32"
_RNG = "seed:u32 step:u32 reps:const u32*"
KERNELS: dict[str, dict[str, str]] = {
    "fields.cu": {
        "fields_prepare": f"{_G} den0:f32 a:const f32* s:const f32* fixed:const u8* fixed_value:f32 c:f32* "
                          "den:f32* s_split:f32* a_split:f32* fixed_split:u8* cmax:u32*",
        "fields_sor_colour": f"colour:i32 {_G} three_d:i32 dirichlet:i32 bv:f32 dh:f32 omega:f32 floor_on:i32 "
                             "floor:f32 c:f32* s:const f32* den:const f32* fixed:const u8* "
                             "active:const u8* maxchg:u32* save:f32* base:const f32*",
        "fields_after_sweep": "R:i32 tol:f32 rho_min:f32 scale:f32 max_iter:i32 active:u8* "
                              "iters:i32* maxchg:u32* dprev:f32* rprev:f32* cmax:const u32*",
    },
    "multigrid.cu": {
        "mg_coarsen": "R:i32 Zf:i32 Yf:i32 Xf:i32 Zc:i32 Yc:i32 Xc:i32 K:f32 den0:f32 a_f:const f32* "
                      "fixed:const u8* a_c:f32* den_c:f32*",
        "mg_residual": f"{_G} three_d:i32 dirichlet:i32 bv:f32 dh:f32 c:const f32* s:const f32* den:const f32* "
                       "fixed:const u8* active:const u8* res:f32*",
        "mg_restrict": "R:i32 Zf:i32 Yf:i32 Xf:i32 Zc:i32 Yc:i32 Xc:i32 three_d:i32 res:const f32* "
                       "s_c:f32* c_c:f32* active:const u8*",
        "mg_prolong": "R:i32 Zf:i32 Yf:i32 Xf:i32 Zc:i32 Yc:i32 Xc:i32 three_d:i32 c_c:const f32* c:f32* "
                      "fixed:const u8* active:const u8*",
        "mg_coarsest": "R:i32 dirichlet:i32 s:const f32* a:const f32* den:const f32* c:f32* "
                       "active:const u8*",
    },
    "field_coeffs.cu": {
        "field_agent_map_kernel": f"{_GC} t_count:const i32* t_pos:const i32* t_eng:const u8* "
                                  "t_act:const i16* t_state:const u8* amap:u32*",
        "field_coeffs_kernel": f"{_G} f:i32 pp:FieldCoefK kind:const u8* amap:const u32* c:f32* "
                               "ifng:const f32* o2:const f32* den0:f32 fixed_value:f32 den:f32* "
                               "s_split:f32* a_split:f32* fixed_split:u8* cmax:u32*",
    },
    "tumour.cu": {
        "tumour_decide_kernel": f"{_G} pp:TumourK {_RNG} kind_in:const u8* kind_out:u8* "
                                "antigen_a:u8* antigen_b:u8* antigen_a_base:u8* antigen_b_base:u8* "
                                "pdl1:f32* ecm:const f32* o2:const f32* glucose:const f32* "
                                "claims:u64* counts:u64*",
        "tumour_births_kernel": f"{_G} pp:TumourK {_RNG} kind_out:u8* antigen_a:u8* antigen_b:u8* "
                                "antigen_a_base:u8* antigen_b_base:u8* pdl1:f32* claims:u64* "
                                "counts:u64*",
    },
    "microenv.cu": {
        "microenv_agents_kernel": f"{_GC} pp:MicroK t_count:const i32* t_state:const u8* "
                                  "t_pos:const i32* ndeg:u32*",
        "microenv_voxel_kernel": f"{_G} pp:MicroK {_RNG} kind:u8* pdl1:f32* ifng:const f32* "
                                 "o2:const f32* il12:const f32* tgfb:const f32* antigen_a:u8* "
                                 "antigen_b:u8* antigen_a_base:const u8* antigen_b_base:const u8* "
                                 "ndeg:const u32* ecm:f32* counts:u64*",
        "microenv_fap_kernel": f"{_G} pp:MicroK {_RNG} kind:u8* ndeg:const u32* counts:u64*",
    },
    "car_t.cu": {
        "car_t_engage_claim": f"{_GC} pp:CarTK {_RNG} t_count:const i32* @t kind:const u8* "
                              "antigen_a:const u8* antigen_b:const u8* pdl1:const f32* rec:const u64* "
                              "claims:u64* tgt:i32* stim:u8* killed:u8* pd_seen:f32* counts:u64*",
        "car_t_engage_resolve": f"{_GC} pp:CarTK {_RNG} t_count:const i32* @t kind:u8* antigen_a:u8* "
                                "antigen_b:u8* o2:const f32* glucose:const f32* tgfb:const f32* "
                                "il12:const f32* pdl1:const f32* rec:const u64* claims:const u64* "
                                "tgt:const i32* stim:u8* killed:u8* pd_seen:f32* counts:u64*",
        "car_t_claim_reset": f"{_GC} t_count:const i32* claims:u64* tgt:const i32*",
        "car_t_exhaustion": f"{_GC} pp:CarTK t_count:const i32* @t o2:const f32* tgfb:const f32* "
                            "il12:const f32* stim:const u8* killed:const u8* pd_seen:const f32*",
        "car_t_fate_claim": f"{_GC} pp:CarTK {_RNG} t_count:const i32* @t o2:const f32* "
                            "glucose:const f32* tgfb:const f32* il12:const f32* p_death_r:const f32* occ:const i32* "
                            "claims:u64* tgt:i32* died:u8* born:u8* counts:u64*",
        "car_t_fate_resolve": f"{_GC} t_count:const i32* @t claims:const u64* tgt:const i32* "
                              "born:u8* counts:u64*",
        "car_t_compact": f"{_GC} pp:CarTK t_count:const i32* @t @o died:const u8* born:const u8* "
                         "tgt:const i32* dst_keep:const i64* dst_born:const i64*",
    },
    "car_t_move.cu": {
        "car_t_move_occ": f"{_GC} t_count:const i32* t_pos:const i32* occ:i32*",
        "car_t_move_decide": f"{_GC} m:i32 pp:MoveK {_RNG} t_count:const i32* t_pos:const i32* "
                             "t_dir:const i8* kind:const u8* ecm:const f32* chem:const f32* "
                             "occ:const i32* claims:u64* tgt:i32* dsel:i8*",
        "car_t_move_apply": f"{_GC} t_count:const i32* t_pos:i32* t_dir:i8* occ:i32* "
                            "claims:const u64* tgt:const i32* dsel:const i8*",
        "car_t_move_reset": f"{_GC} t_count:const i32* claims:u64* tgt:i32*",
    },
    "systemic.cu": {
        "extravasation_weights_kernel": "n:i64 V:i64 weight256:f32 kind:const u8* chem:const f32* "
                                        "occ:const i32* w:i32* wsum:u64*",
        "extravasation_decide_kernel": f"{_G} {_RNG} scale:const f32* w:const i32* enter:u8* "
                                       "counts:u64*",
    },
    "entry.cu": {
        "regional_free_kernel": "R:i32 F:i32 V:i64 face:const i32* occ:const i32* nfree:u64*",
        "regional_decide_kernel": f"R:i32 F:i32 V:i64 {_RNG} lam:const f64* face:const i32* occ:const i32* "
                                  "nfree:const u64* enter:u8* counts:u64*",
    },
}


class Param:
    """One kernel parameter: its name, element / scalar type, and how it is passed."""

    __slots__ = ("name", "type", "pointer", "const", "struct")

    def __init__(self, name: str, spec: str):
        self.name = name
        self.const = spec.startswith("const ")
        spec = spec.removeprefix("const ")
        self.struct = spec in STRUCTS
        self.pointer = self.struct or spec.endswith("*")
        self.type = spec.rstrip("*")
        if not self.struct and self.type not in SCALARS:
            raise ValueError(f"parameter {name}: unknown type {spec!r}")

    def c(self) -> str:
        if self.struct:
            return f"const {self.type}* {self.name}"
        base = SCALARS[self.type][1]
        if not self.pointer:
            return f"{base} {self.name}"
        return f"{'const ' if self.const else ''}{base}* {self.name}"


def signature(kernel: str) -> tuple[Param, ...]:
    """The parameters of ``kernel`` in launch order."""
    return _SIGS[kernel]


def _parse(spec: str) -> tuple[Param, ...]:
    out = []
    for tok in spec.split():
        if tok.startswith("@"):
            p = tok[1:]
            out += [Param(f"{p}_{f}", f"{t}*") for f, t in TABLE]
            continue
        name, typ = tok.split(":", 1)
        out.append(Param(name, typ.replace("const_", "const ")))
    return tuple(out)


def _tokens(spec: str) -> str:  # "a:const f32*" -> "a:const_f32*" so that split() keeps pairs
    return spec.replace("const ", "const_")


_SIGS = {k: _parse(_tokens(s)) for f in KERNELS.values() for k, s in f.items()}
_NAMES = {k: {p.name for p in sig} for k, sig in _SIGS.items()}


def table_args(arrays: dict, prefix: str = "t", table: dict | None = None) -> dict:
    """``{prefix_state: ..., prefix_prod: ...}`` from a dict holding ``t_state .. t_prod``."""
    src = table if table is not None else arrays
    return {f"{prefix}_{f}": src[f"t_{f}"] for f, _ in TABLE}


def _arg(kernel: str, p: Param, v):
    """The value passed for parameter ``p``: a device array of its element type (checked), None
    (a null pointer), or a scalar cast to its C type."""
    if not p.pointer:
        return SCALARS[p.type][0](v)
    if v is None:
        return None
    dt = getattr(v, "dtype", None)
    want = np.uint8 if p.struct else SCALARS[p.type][0]
    if dt is None or np.dtype(dt) != np.dtype(want) or isinstance(v, np.generic):
        raise TypeError(f"{kernel}: argument {p.name} must be a device array of "
                        f"{np.dtype(want).name}, got {type(v).__name__} {dt}")
    if p.struct and v.size != struct_dtype(p.type).itemsize:
        raise TypeError(f"{kernel}: argument {p.name} holds {v.size} bytes, "
                        f"struct {p.type} has {struct_dtype(p.type).itemsize}")
    return v


def bind(module, kernel: str, threads: int, block: int = 256, **args):
    """A launch of ``kernel`` of ``module`` over ``threads`` threads (1-D grid) with the
    arguments ``args`` checked and cast once: the returned function launches it, taking the
    kernel's other parameters by name (checked and cast at each call).  For the loops of the
    field solves, which launch the same kernel with the same arrays hundreds of times a step:
    there the checks would cost more host time than the launch itself."""
    sig = _SIGS[kernel]
    extra = [n for n in args if n not in _NAMES[kernel]]
    free = [i for i, p in enumerate(sig) if p.name not in args]
    if extra:
        raise TypeError(f"{kernel}: unknown arguments {extra}")
    free_names = {sig[i].name for i in free}
    values = [None if i in free else _arg(kernel, p, args[p.name]) for i, p in enumerate(sig)]
    fn = module.get_function(kernel)
    grid = (max(1, (int(threads) + block - 1) // block),)
    blk = (block,)

    def go(**rest) -> None:
        if rest.keys() != free_names:
            raise TypeError(f"{kernel}: missing arguments {sorted(free_names - rest.keys())}, "
                            f"unknown arguments {sorted(rest.keys() - free_names)}")
        vals = values
        if free:
            vals = list(values)
            for i in free:
                vals[i] = _arg(kernel, sig[i], rest[sig[i].name])
        fn(grid, blk, tuple(vals))

    return go


def launch(module, kernel: str, threads: int, block: int = 256, **args) -> None:
    """Launch ``kernel`` of ``module`` over ``threads`` threads (1-D grid), with its arguments by
    name.  Scalars are cast to the declared C type (CuPy would pass a Python int as 8 bytes and a
    float as a double); arrays must be device arrays of the declared element type (a struct: a
    uint8 array of its size, from :func:`pack`), or None for a null pointer.  A missing, unknown or
    mistyped argument is a TypeError naming the kernel and the parameter.  :func:`bind` checks
    them once for a launch repeated in a loop."""
    sig = _SIGS[kernel]
    missing = [p.name for p in sig if p.name not in args]
    extra = [n for n in args if n not in _NAMES[kernel]]
    if missing or extra:
        raise TypeError(f"{kernel}: missing arguments {missing}, unknown arguments {extra}")
    grid = max(1, (int(threads) + block - 1) // block)
    module.get_function(kernel)((grid,), (block,), tuple(_arg(kernel, p, args[p.name]) for p in sig))


# ----------------------------------------------------------------------------- the C header
HEADER = "interface.cuh"


def render_header() -> str:
    """The text of ``kernels/interface.cuh``."""
    lines = ["// interface.cuh -- GENERATED from gpusim/backends/interface.py by",
             "// `python -m gpusim.backends.interface`; do not edit (tests/test_device.py keeps it",
             "// current).  State codes, count orders, parameter structs and the prototype of every",
             "// kernel; a .cu definition that disagrees with its prototype does not compile.",
             "#pragma once", '#include "common.cuh"', "", "namespace gpusim {", ""]
    for name, (typ, members) in ENUMS.items():
        lines.append(f"enum {name} : {typ} {{")
        lines += [f"    {m} = {v}," for m, v in members]
        lines += ["};", ""]
    lines += [f"static constexpr i32 N_KINDS = {N_KINDS};", ""]
    for name, members in STRUCTS.items():
        lines.append(f"struct {name} {{")
        lines += [f"    {SCALARS[t][1]} {m}{f'[{n}]' if n > 1 else ''};" for m, t, n in members]
        lines += ["};", ""]
    lines.append("struct AgentTable {")
    lines += [f"    {SCALARS[t][1]}* {f};" for f, t in TABLE]
    lines += ["};", "", "}  // namespace gpusim", ""]
    for f, ks in KERNELS.items():
        lines.append(f"// {f}")
        for k in ks:
            params = ", ".join(p.c() for p in _SIGS[k])
            lines.append(f'extern "C" __global__ void {k}({params});')
        lines.append("")
    # the structs are named without namespace in the prototypes
    text = "\n".join(lines)
    for s in STRUCTS:
        text = text.replace(f"const {s}* ", f"const gpusim::{s}* ")
    return text


def main() -> None:  # pragma: no cover - a maintenance entry point
    from .nvrtc import kernel_dir

    (kernel_dir() / HEADER).write_text(render_header(), encoding="ascii")
    print(f"wrote kernels/{HEADER}")


if __name__ == "__main__":  # pragma: no cover
    main()
