"""CAR-T cell parameters: :class:`CarTParams`, the per-step probabilities and thresholds the
CAR-T phase (model/car_t.py) and its kernels use, derived once from a scenario (host float64,
rounded once to float32)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .. import rng
from .conditioning import Conditioning
from .lattice import ANTIGEN_SCALE
from .rates import per_step

F32 = np.float32


def recognition_table(targets: str, k_a: float, k_b: float) -> np.ndarray:
    """uint64 thresholds (65536,) indexed by ``antigen_a * 256 + antigen_b``: the probability that
    a CAR of the given logic recognises a cell with those levels, p = level/(level + K) per
    antigen; 0 where the logic cannot see the cell."""
    lv = np.arange(256, dtype=np.float64) / ANTIGEN_SCALE
    pa = np.where(lv > 0, lv / (lv + k_a), 0.0)[:, None] * np.ones((1, 256))
    pb = np.where(lv > 0, lv / (lv + k_b), 0.0)[None, :] * np.ones((256, 1))
    if targets == "A":
        p = pa
    elif targets == "B":
        p = pb
    elif targets == "A|B":
        p = 1.0 - (1.0 - pa) * (1.0 - pb)
    elif targets == "A&B":
        p = pa * pb
    else:  # validated by the scenario
        raise ValueError(targets)
    return rng.threshold(p.astype(np.float32).ravel())


def recognition_tables(targets: tuple[str, ...], k_a: float, k_b: float) -> np.ndarray:
    """uint64 (P, 65536): :func:`recognition_table` of each product's target rule, by product id
    (``scenario.products``)."""
    return np.stack([recognition_table(t, k_a, k_b) for t in targets])


@dataclass(frozen=True)
class CarTParams:
    rec_tables: np.ndarray  # (P, 65536) uint64: every product's, by product id
    p_kill: np.float32
    exh_per_kill: np.float32
    dt_min: float
    dnTGFbRII: bool
    inv_tgfb_half: np.float32
    tgfb_half: np.float32
    inv_il12_half: np.float32
    il12_half: np.float32
    kill_boost: np.float32
    hypoxia_factor: np.float32
    glucose_half: np.float32
    exh_tgfb_gain: np.float32  # amplification of stimulation-driven exhaustion at saturating TGF-β
    pdl1_inhibition: float
    exh_pdl1: float
    pd1_dose_steps: tuple
    pd1_half_life_steps: float
    pd1_max_blockade: float
    trog256: int
    exh_recovery: np.float32  # per step
    exh_hypoxia: np.float32  # per step
    o2_hypoxic: np.float32
    activation_steps: int
    p_division: np.float32
    max_divisions: int
    daughter_exh: np.float32
    p_death: np.ndarray  # (3 phenotype rows: effector, exhausted, memory; 2 starving?) float32
    death_rates: np.ndarray  # the same as rates per min (float64), for the per-replicate table
    p_mem: np.float32  # per step: an unstimulated effector becomes a memory cell
    p_react: np.float32  # a memory cell that recognises its candidate target reactivates
    starvation_glucose: np.float32
    n_sub: int
    p_move: np.float32
    p_persist: np.float32
    p_chemotaxis: np.float32
    one_minus_perm: np.float32
    crowding: np.float32
    one_minus_slow: np.float32  # 1 - stroma.dense_speed_fraction
    max_per_voxel: int
    # next-generation mechanisms (docs/model.md, Next-generation designs)
    p_kill64: float = 0.0  # p_kill before rounding (host)
    div_rate_step: float = 0.0  # division rate x dt (host), before conditioning
    lympho_div_gain: float = 0.0  # lymphodepletion_division_multiplier - 1
    conditioning: Conditioning = Conditioning(None)
    steroid_death_per_min: float = 0.0
    inv_act: np.float32 = F32(0)  # 1 / activation steps (the JAK-STAT signal s = t_act x inv_act)
    g5_div: np.float32 = F32(0)
    g5_surv: np.float32 = F32(0)
    g5_mem: np.float32 = F32(0)
    revive_per_step: float = 0.0  # reinvigoration rate x dt at full blockade (host)
    revive_exh: np.float32 = F32(0)

    @classmethod
    def from_scenario(cls, sc) -> "CarTParams":
        """The CAR-T parameters of a scenario.

        Parameters
        ----------
        sc : Scenario
            The resolved scenario.

        Returns
        -------
        CarTParams
            Per-step probabilities (float32, from host float64 rates × ``run.dt_min``).
        """
        dt = sc["run.dt_min"]
        cd28 = sc["car_t.costimulation"] == "CD28"
        return cls(**_engagement_terms(sc, dt, cd28), **_fate_terms(sc, dt, cd28),
                   **_movement_terms(sc, dt))


    def blockade(self, step: int) -> float:
        """Anti-PD-1 blockade fraction at ``step`` (host float64)."""
        expo = 0.0
        for s in self.pd1_dose_steps:
            if s <= step:
                expo += 2.0 ** (-(step - s) / self.pd1_half_life_steps)
        return self.pd1_max_blockade * min(1.0, expo)

    def pdl1_terms(self, step: int) -> tuple[np.float32, np.float32]:
        """(kill inhibition per unit PD-L1, exhaustion per engagement per unit PD-L1) at ``step``."""
        free = 1.0 - self.blockade(step)
        return F32(self.pdl1_inhibition * free), F32(self.exh_pdl1 * free)

    def p_division_at(self, step: int) -> np.float32:
        """Division probability at ``step``: the homeostatic cytokines and the regulatory cells
        removed by lymphodepletion raise it (model/conditioning.py); else ``p_division``."""
        c = self.conditioning
        if not c.on:
            return self.p_division
        rate = self.div_rate_step * (1.0 + self.lympho_div_gain * c.cytokines(step))
        return F32(min(-math.expm1(-rate) * c.relief(step), 1.0))

    def p_kill_at(self, step: int) -> np.float32:
        """Kill probability (before suppression) at ``step``: raised while lymphodepletion has
        removed regulatory cells (model/conditioning.py); else ``p_kill``."""
        c = self.conditioning
        return F32(min(self.p_kill64 * c.relief(step), 1.0)) if c.on else self.p_kill

    def p_revive_at(self, step: int) -> np.float32:
        """Probability per step that an exhausted cell is reinvigorated by anti-PD-1 (rate × the
        blockade fraction at ``step``)."""
        return F32(-math.expm1(-self.revive_per_step * self.blockade(step)))

    def p_death_table(self, steroid: np.ndarray) -> np.ndarray:
        """float32 (R, 3, 2): ``p_death`` of each replicate with the steroid's extra death rate
        (``steroid_tissue_car_t_death_per_day`` × exposure; host float64, rounded once)."""
        extra = self.steroid_death_per_min * np.asarray(steroid, np.float64)
        return (-np.expm1(-(self.death_rates[None] + extra[:, None, None]) * self.dt_min)).astype(F32)


def tgfb_half_field(sc) -> float:
    """The T cell's half-maximal TGF-β in the field's units (total TGF-β1, ng/mL): the active K
    (``car_t.tgfb_half_ng_per_mL``) over the active fraction (``tgfb.active_fraction``)."""
    return sc["car_t.tgfb_half_ng_per_mL"] / sc["tgfb.active_fraction"]


def _engagement_terms(sc, dt: float, cd28: bool) -> dict:
    """Recognition, killing, suppression and exhaustion terms of :meth:`CarTParams.from_scenario`."""
    kill_m = sc["car_t.cd28_kill_multiplier"] if cd28 else 1.0
    exh_m = sc["car_t.cd28_exhaustion_multiplier"] if cd28 else 1.0
    from ..scenario import products
    tables = recognition_tables(products(sc), sc["car_t.affinity_a"], sc["car_t.affinity_b"])
    # Deliberate twins: a declaration table, one line per scenario parameter (alike in shape, not logic).
    return dict(
        rec_tables=tables,
        p_kill=F32(-np.expm1(-sc["car_t.kill_rate_per_min"] * kill_m * dt)),
        exh_per_kill=F32(min(1.0, sc["car_t.exhaustion_per_kill"] * exh_m)),
        dt_min=float(dt),
        dnTGFbRII=sc["car_t.armour"] == "dnTGFbRII",
        inv_tgfb_half=F32(1.0 / tgfb_half_field(sc)),
        tgfb_half=F32(tgfb_half_field(sc)),
        inv_il12_half=F32(1.0 / sc["il12.half"]),
        il12_half=F32(sc["il12.half"]),
        kill_boost=F32(sc["il12.kill_boost"]),
        hypoxia_factor=F32(sc["car_t.hypoxia_factor"]),
        glucose_half=F32(sc["car_t.glucose_half_mM"]),
        exh_tgfb_gain=F32(sc["car_t.exhaustion_tgfb_gain"]),
        pdl1_inhibition=float(sc["car_t.pdl1_inhibition"]),
        exh_pdl1=float(per_step(sc["car_t.exhaustion_pdl1_per_day"], dt)),
        pd1_dose_steps=tuple(sorted(int(round(d * 1440.0 / dt)) for d in sc["pd1.dose_days"])),
        pd1_half_life_steps=sc["pd1.half_life_days"] * 1440.0 / dt,
        pd1_max_blockade=float(sc["pd1.max_blockade_fraction"]),
        trog256=int(round(256 * sc["tumour.trogocytosis_fraction"])),
        exh_recovery=F32(per_step(sc["car_t.exhaustion_recovery_per_day"], dt)),
        exh_hypoxia=F32(per_step(sc["car_t.exhaustion_hypoxia_per_day"], dt)),
        o2_hypoxic=F32(sc["tumour.o2_hypoxic_mmHg"]),
        p_kill64=float(-np.expm1(-sc["car_t.kill_rate_per_min"] * kill_m * dt)),
        revive_per_step=per_step(sc["pd1.reinvigoration_rate_per_day"], dt),
        revive_exh=F32(sc["pd1.reinvigorated_exhaustion"]),
    )


def _fate_terms(sc, dt: float, cd28: bool) -> dict:
    """Activation, division, death and memory terms of :meth:`CarTParams.from_scenario`."""
    gen5 = sc["car_t.generation"] == "fifth"
    div_m = sc["car_t.cd28_division_multiplier"] if cd28 else 1.0
    life_m = sc["car_t.cd28_lifespan_multiplier"] if cd28 else 1.0
    act_steps = min(32767, round(sc["car_t.activation_hours"] * 60.0 / dt))
    life = sc["car_t.lifespan_days"] * 1440.0 * life_m
    mult = sc["car_t.exhausted_death_multiplier"]
    starve = sc["car_t.starvation_death_rate_per_min"]
    mu = sc["car_t.memory_death_rate_per_day"] / 1440.0
    rates = np.array([[1.0 / life, 1.0 / life + starve],
                      [mult / life, mult / life + starve],
                      [mu, mu + starve]])  # per min; rows = car_t._death_row
    return dict(
        activation_steps=act_steps,
        p_division=F32(-np.expm1(-sc["car_t.division_rate_per_min"] * div_m * dt)),
        max_divisions=int(sc["car_t.max_divisions"]),
        daughter_exh=F32(sc["car_t.daughter_exhaustion_fraction"]),
        p_death=(-np.expm1(-rates * dt)).astype(F32),
        death_rates=rates,
        p_mem=F32(-np.expm1(-sc["car_t.memory_conversion_rate_per_day"] / 1440.0 * dt)),
        p_react=F32(sc["car_t.memory_reactivation_probability"]),
        starvation_glucose=F32(sc["car_t.starvation_glucose_mM"]),
        div_rate_step=sc["car_t.division_rate_per_min"] * div_m * dt,
        lympho_div_gain=sc["delivery.lymphodepletion_division_multiplier"] - 1.0,
        conditioning=Conditioning.from_scenario(sc),
        steroid_death_per_min=sc["toxicity.steroid_tissue_car_t_death_per_day"] / 1440.0,
        inv_act=F32(1.0 / act_steps) if act_steps > 0 else F32(0),
        g5_div=F32(sc["car_t.gen5_division_gain"] if gen5 else 0.0),
        g5_surv=F32(sc["car_t.gen5_survival_fraction"] if gen5 else 0.0),
        g5_mem=F32(-np.expm1(-sc["car_t.gen5_memory_rate_per_day"] / 1440.0 * dt) if gen5 else 0.0),
    )


def _movement_terms(sc, dt: float) -> dict:
    """Migration terms of :meth:`CarTParams.from_scenario` (sub-moves per step and their odds)."""
    step_um = sc["car_t.speed_um_per_min"] * dt / sc["domain.voxel_um"]
    n_sub = max(1, math.ceil(step_um))
    return dict(
        n_sub=n_sub,
        p_move=F32(step_um / n_sub),
        p_persist=F32(sc["car_t.persistence"]),
        p_chemotaxis=F32(sc["car_t.chemotaxis_bias"]),
        one_minus_perm=F32(1.0 - sc["stroma.permeability"]),
        crowding=F32(sc["car_t.crowding_factor"]),
        one_minus_slow=F32(1.0 - sc["stroma.dense_speed_fraction"]),
        max_per_voxel=int(sc["car_t.max_per_voxel"]),
    )
