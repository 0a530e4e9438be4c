"""Lymphodepleting conditioning (Cy/Flu) as time courses: host float64 functions of the step,
shared by the systemic phase (blood expansion) and the CAR-T phase (division and killing).
docs/model.md, Lymphodepletion.

* Homeostatic cytokines (IL-7 / IL-15) relative to their peak at the first dose::

      H(t) = 2^(−(t − t_0) / half-life)   for t >= t_0, else 0

  They expand the circulating CAR-T cells at ``blood_expansion × H(t)`` per day and raise the
  division rate in tissue × (1 + (m − 1) H(t)).
* Host regulatory cells (Tregs / MDSC): conditioning removes a fraction ``depletion`` at t_0 and
  they recover with their half-life, ``D(t) = 1 − depletion × 2^(−(t − t_0)/recovery)``.  The
  calibrated kill and division rates include the suppression ``q`` of a full complement, so the
  relief factor is ``(1 − q D(t)) / (1 − q)`` (1 without conditioning, >= 1 after it).

Without ``delivery.lymphodepletion`` (or without a dose) H = 0 and the relief is exactly 1.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Conditioning:
    first_step: int | None  # step of the first dose; None: no lymphodepletion
    cytokine_half_steps: float = 1.0
    depletion: float = 0.0
    recovery_half_steps: float = 1.0
    suppression: float = 0.0  # q

    @classmethod
    def from_scenario(cls, sc) -> "Conditioning":
        from ..scenario import doses
        dt = sc["run.dt_min"]
        days = [d for _, d, _ in doses(sc)]
        if not (sc["delivery.lymphodepletion"] and days):
            return cls(None)
        per_day = 1440.0 / dt
        return cls(first_step=int(round(min(days) * per_day)),
                   cytokine_half_steps=sc["delivery.lymphodepletion_cytokine_half_life_days"] * per_day,
                   depletion=float(sc["delivery.lymphodepletion_regulatory_depletion_fraction"]),
                   recovery_half_steps=sc["delivery.lymphodepletion_regulatory_recovery_days"] * per_day,
                   suppression=float(sc["car_t.regulatory_suppression_fraction"]))

    @property
    def on(self) -> bool:
        return self.first_step is not None

    def cytokines(self, step: int) -> float:
        """H(t) at ``step`` (0 before the first dose or without conditioning)."""
        if not self.on or step < self.first_step:
            return 0.0
        return 2.0 ** (-(step - self.first_step) / self.cytokine_half_steps)

    def relief(self, step: int) -> float:
        """(1 − q D(t)) / (1 − q): kill and division factor from the regulatory cells removed."""
        if not self.on or step < self.first_step:
            return 1.0
        left = 1.0 - self.depletion * 2.0 ** (-(step - self.first_step) / self.recovery_half_steps)
        return (1.0 - self.suppression * left) / (1.0 - self.suppression)
