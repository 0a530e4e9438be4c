"""Scenarios: the plain-data description of a run, validated against :mod:`gpusim.params`.

A scenario file is TOML whose tables are parameter sections; every key it omits takes the default
from the parameter table.  A scenario names a bundled file (``gpusim scenarios``) or a path.
``--set section.key=value`` overrides one parameter; the value is parsed as TOML, and if that fails
taken as a plain string (so ``--set car_t.targets=A|B`` works unquoted).
"""

from __future__ import annotations

import difflib
import math
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Iterable, Mapping, NamedTuple

from .errors import ScenarioError
from .params import BY_KEY, PARAMS, SECTIONS, Param


@dataclass(frozen=True)
class Scenario:
    """A fully resolved, validated scenario: every parameter has a value."""

    values: Mapping[str, Any]

    def __getitem__(self, key: str) -> Any:
        return self.values[key]

    @property
    def name(self) -> str:
        return self.values["scenario.name"]

    @property
    def shape(self) -> tuple[int, int, int]:
        """Lattice shape (Z, Y, X)."""
        v = self.values
        return (v["domain.z_voxels"], v["domain.y_voxels"], v["domain.x_voxels"])

    def replace(self, **updates: Any) -> "Scenario":
        """A new scenario with some parameters changed (keys with '__' for '.'), validated."""
        new = dict(self.values)
        for k, val in updates.items():
            key = k.replace("__", ".")
            new[key] = _coerce(_param(key), val, origin="argument")
        return Scenario(_check(new))

    def to_toml(self) -> str:
        """The resolved scenario as TOML that loads back to the same scenario."""
        lines = [f"# gpusim scenario '{self.name}' (fully resolved)"]
        for section in SECTIONS:
            lines.append("")
            lines.append(f"[{section}]")
            for p in PARAMS:
                if p.section == section:
                    name = p.key.split(".", 1)[1]
                    lines.append(f"{name} = {_toml_value(self.values[p.key])}")
        return "\n".join(lines) + "\n"


def bundled() -> dict[str, str]:
    """Bundled scenarios: name -> one-line description."""
    out = {}
    for entry in sorted(resources.files("gpusim.scenarios").iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".toml"):
            data = _parse(entry.read_text(encoding="utf-8"), entry.name)
            out[entry.name[:-5]] = data.get("scenario", {}).get("description", "").split("\n")[0]
    return out


def load_scenario(scenario: str | Path | Mapping[str, Any] = "quickstart",
                  overrides: Iterable[str] | Mapping[str, Any] = ()) -> Scenario:
    """Load and validate a scenario.

    Parameters
    ----------
    scenario : str, Path or Mapping
        A bundled name (``"quickstart"``), a path to a TOML file, or a mapping with the same
        nested layout as the TOML.
    overrides : iterable of str, or Mapping
        ``"section.key=value"`` strings (as ``--set`` takes) or a mapping
        ``{"section.key": value}``.

    Returns
    -------
    Scenario
        The validated scenario, every parameter resolved (defaults filled in).

    Raises
    ------
    ScenarioError
        One line naming the key and what is allowed.
    """
    if isinstance(scenario, Mapping):
        data, origin = dict(scenario), "scenario mapping"
    else:
        text, origin = _read(scenario)
        data = _parse(text, origin)
    values = {p.key: p.default for p in PARAMS}
    for key, val in _flatten(data, origin):
        values[key] = _coerce(_param(key, origin), val, origin)
    if not isinstance(scenario, Mapping) and "scenario.name" not in dict(_flatten(data, origin)):
        values["scenario.name"] = Path(str(scenario)).stem
    items = overrides.items() if isinstance(overrides, Mapping) else (_split_set(s) for s in overrides)
    for key, val in items:
        values[key] = _coerce(_param(key, "--set"), val, "--set")
    return Scenario(_check(values))


# ---------------------------------------------------------------------------------------------
def _read(scenario: str | Path) -> tuple[str, str]:
    s = str(scenario)
    if not s.endswith(".toml") and "/" not in s and "\\" not in s:
        entry = resources.files("gpusim.scenarios").joinpath(f"{s}.toml")
        if entry.is_file():
            return entry.read_text(encoding="utf-8"), f"bundled scenario '{s}'"
        names = sorted(bundled())
        hint = _did_you_mean(s, names)
        raise ScenarioError(f"no bundled scenario '{s}'{hint}; bundled: {', '.join(names)} "
                            "(or give a path to a .toml file)")
    path = Path(s)
    if not path.is_file():
        raise ScenarioError(f"scenario file '{path}' does not exist")
    try:
        return path.read_text(encoding="utf-8"), f"'{path}'"
    except (OSError, UnicodeDecodeError) as e:
        raise ScenarioError(f"cannot read scenario file '{path}': {e}") from None


def _parse(text: str, origin: str) -> dict:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ScenarioError(f"{origin} is not valid TOML: {e}") from None


def _flatten(data: Mapping[str, Any], origin: str):
    for section, table in data.items():
        if not isinstance(table, Mapping):
            raise ScenarioError(f"{origin}: top-level key '{section}' must be a table "
                                f"[{section}]; sections: {', '.join(SECTIONS)}")
        for name, val in table.items():
            yield f"{section}.{name}", val


def _did_you_mean(word: str, options: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(options), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _param(key: str, origin: str = "argument") -> Param:
    p = BY_KEY.get(key)
    if p is None:
        hint = _did_you_mean(key, BY_KEY)
        section = key.split(".", 1)[0]
        if not hint and section not in SECTIONS:
            hint = f"; sections are {', '.join(SECTIONS)}"
        elif not hint:
            hint = "; see 'gpusim params' for the keys"
        raise ScenarioError(f"{origin}: unknown parameter '{key}'{hint}")
    return p


def _split_set(item: str) -> tuple[str, Any]:
    if "=" not in item:
        raise ScenarioError(f"--set '{item}': expected section.key=value")
    key, raw = item.split("=", 1)
    key, raw = key.strip(), raw.strip()
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    return key, value


def _type_name(t: type) -> str:
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string",
            list: "a list of numbers"}[t]


def _coerce(p: Param, val: Any, origin: str) -> Any:
    where = f"{origin}: {p.key} = {_toml_value(val) if _tomlable(val) else repr(val)}"
    if p.type is float:
        if isinstance(val, bool) or not isinstance(val, (int, float)):
            raise ScenarioError(f"{where}: expected {_type_name(float)}")
        val = float(val)
        if not math.isfinite(val):
            raise ScenarioError(f"{where}: expected a finite number")
        _check_range(p, val, where)
    elif p.type is int:
        if isinstance(val, float) and val.is_integer():
            val = int(val)
        if isinstance(val, bool) or not isinstance(val, int):
            raise ScenarioError(f"{where}: expected {_type_name(int)}")
        _check_range(p, val, where)
    elif p.type is bool:
        if not isinstance(val, bool):
            raise ScenarioError(f"{where}: expected {_type_name(bool)}")
    elif p.type is str:
        if not isinstance(val, str):
            val = str(val) if p.choices and isinstance(val, (int, float)) else val
        if not isinstance(val, str):
            raise ScenarioError(f"{where}: expected {_type_name(str)}")
        if p.choices and val not in p.choices:
            raise ScenarioError(f"{where}: allowed values are {', '.join(repr(c) for c in p.choices)}"
                                f"{_did_you_mean(val, p.choices)}")
    elif p.type is list:
        if isinstance(val, (int, float)) and not isinstance(val, bool):
            val = [val]
        if not isinstance(val, list) or not all(
                isinstance(x, (int, float)) and not isinstance(x, bool) for x in val):
            raise ScenarioError(f"{where}: expected {_type_name(list)}")
        val = [float(x) for x in val]
        for x in val:
            _check_range(p, x, where)
    return val


def _check_range(p: Param, val: float, where: str) -> None:
    if (p.lo is not None and val < p.lo) or (p.hi is not None and val > p.hi):
        raise ScenarioError(f"{where}: out of range; allowed {_fmt(p.lo)} to {_fmt(p.hi)}"
                            + (f" {p.unit}" if p.unit else ""))


def _fmt(x: float | None) -> str:
    return "-inf" if x is None else f"{x:g}"


def _check(v: dict[str, Any]) -> dict[str, Any]:
    """Checks that involve several parameters."""
    fr = [v["tumour.fraction_a_pos_b_pos"], v["tumour.fraction_a_pos_b_neg"],
          v["tumour.fraction_a_neg_b_pos"], v["tumour.fraction_a_neg_b_neg"]]
    if abs(sum(fr) - 1.0) > 1e-6:
        raise ScenarioError(
            "tumour.fraction_a_pos_b_pos + fraction_a_pos_b_neg + fraction_a_neg_b_pos + "
            f"fraction_a_neg_b_neg = {sum(fr):g}: the subclone fractions must add up to 1")
    if v["tumour.o2_proliferation_full_mmHg"] <= v["tumour.o2_proliferation_zero_mmHg"]:
        raise ScenarioError("tumour.o2_proliferation_full_mmHg must be above "
                            "tumour.o2_proliferation_zero_mmHg")
    if v["tumour.o2_necrosis_onset_mmHg"] <= v["tumour.o2_necrosis_max_mmHg"]:
        raise ScenarioError("tumour.o2_necrosis_onset_mmHg must be above tumour.o2_necrosis_max_mmHg")
    dt = v["run.dt_min"]
    # a tumour cell's competing events share one random word: their per-step probabilities
    # 1 - exp(-rate dt) must add up to at most 1
    total = sum(-math.expm1(-v[k] * dt) for k in ("tumour.division_rate_per_min",
                                                   "tumour.apoptosis_rate_per_min",
                                                   "tumour.necrosis_max_rate_per_min"))
    if total > 1.0:
        raise ScenarioError(f"tumour division, apoptosis and necrosis probabilities per step add "
                            f"up to {total:.4g} > 1; lower the rates or run.dt_min")
    if v["run.output_interval_hours"] * 60.0 < dt:
        raise ScenarioError(f"run.output_interval_hours = {v['run.output_interval_hours']:g} "
                            f"is shorter than one step (run.dt_min = {dt:g})")
    if v["domain.z_voxels"] == 1 and v["domain.x_voxels"] * v["domain.y_voxels"] > 2**31:
        raise ScenarioError("domain too large: at most 2**31 voxels")
    if v["domain.x_voxels"] * v["domain.y_voxels"] * v["domain.z_voxels"] >= 2**31:
        raise ScenarioError("domain too large: x_voxels × y_voxels × z_voxels must be below 2**31")
    _check_schedule(v)
    return v


#: dose-schedule route names -> the route of the model
ROUTES = {"iv": "intravenous", "intravenous": "intravenous", "intratumoral": "intratumoral",
          "it": "intratumoral", "intraventricular": "regional", "icv": "regional",
          "intracavitary": "regional", "regional": "regional"}


#: the CAR logics a dose's product may name (those of ``car_t.targets``)
TARGETS = BY_KEY["car_t.targets"].choices


class Dose(NamedTuple):
    """One dose of a schedule: route (intravenous, intratumoral, regional), day, cells, and the
    product's target rule (a ``car_t.targets`` logic; None in :func:`parse_doses` when the entry
    names none, i.e. the scenario's ``car_t.targets``)."""

    route: str
    day: float
    cells: float
    targets: str | None = None


def parse_doses(text: str) -> list[Dose]:
    """``delivery.schedule`` -> its doses in the written order: ``route day cells [product]`` per
    entry, ``;`` between entries.  Raises ScenarioError naming the bad entry and what is allowed."""
    out = []
    for i, item in enumerate(x.strip() for x in text.split(";")):
        if not item:
            continue
        parts = item.split()
        where = f"delivery.schedule dose {i + 1} '{item}'"
        if len(parts) not in (3, 4):
            raise ScenarioError(f"{where}: expected 'route day cells [product]', e.g. 'iv 0 1e8' "
                                "or 'iv 7 1e8 B'")
        route = ROUTES.get(parts[0].lower())
        if route is None:
            raise ScenarioError(f"{where}: unknown route '{parts[0]}'; routes: "
                                "iv, intratumoral, intraventricular (or regional, intracavitary)")
        try:
            day, cells = float(parts[1]), float(parts[2])
        except ValueError:
            raise ScenarioError(f"{where}: day and cells must be numbers") from None
        if not (math.isfinite(day) and 0.0 <= day <= 3650.0):
            raise ScenarioError(f"{where}: day out of range; allowed 0 to 3650")
        if not (math.isfinite(cells) and 0.0 <= cells <= 1e13):
            raise ScenarioError(f"{where}: cells out of range; allowed 0 to 1e13")
        targets = parts[3].upper() if len(parts) == 4 else None
        if targets is not None and targets not in TARGETS:
            raise ScenarioError(f"{where}: unknown product '{parts[3]}'; a dose's product is the "
                                f"CAR logic it targets, one of {', '.join(TARGETS)} "
                                "(omitted: car_t.targets)")
        out.append(Dose(route, day, cells, targets))
    return out


def parse_schedule(text: str) -> list[tuple[str, float, float]]:
    """``delivery.schedule`` -> ``[(route, day, cells), ...]`` in the written order (route one of
    intravenous, intratumoral, regional; the products are :func:`parse_doses`').  Raises
    ScenarioError naming the bad entry."""
    return [(d.route, d.day, d.cells) for d in parse_doses(text)]


def doses(sc) -> list[tuple[str, float, float]]:
    """The doses of a scenario, ``[(route, day, cells), ...]``: ``delivery.schedule`` when set,
    else one dose of ``dose_cells`` by ``delivery.route`` at each of ``dose_days``."""
    return [(d.route, d.day, d.cells) for d in dose_plan(sc)]


def dose_plan(sc) -> list[Dose]:
    """The doses of a scenario with their products resolved: a schedule entry without a product
    (and every legacy ``dose_days`` dose) is the scenario's ``car_t.targets``."""
    if sc["delivery.schedule"].strip():
        return [d._replace(targets=d.targets or sc["car_t.targets"])
                for d in parse_doses(sc["delivery.schedule"])]
    return [Dose(sc["delivery.route"], d, sc["delivery.dose_cells"], sc["car_t.targets"])
            for d in sc["delivery.dose_days"]]


def products(sc) -> tuple[str, ...]:
    """The CAR-T products of a scenario, by product id: 0 is ``car_t.targets``, then every other
    target rule the schedule names, in the order of its first dose.  A product differs from
    another only in the target rule (recognition); every other CAR-T property is the scenario's."""
    out = [sc["car_t.targets"]]
    for d in dose_plan(sc):
        if d.targets not in out:
            out.append(d.targets)
    return tuple(out)


def _check_schedule(v: dict[str, Any]) -> None:
    if not v["delivery.schedule"].strip():
        return
    sched = parse_schedule(v["delivery.schedule"])
    if not sched:
        raise ScenarioError("delivery.schedule has no dose; leave it empty to use delivery.dose_days")
    for key in ("delivery.route", "delivery.dose_cells", "delivery.dose_days"):
        if v[key] != BY_KEY[key].default:
            raise ScenarioError(f"{key} = {_toml_value(v[key])} and delivery.schedule are both set: "
                                "the schedule gives every dose's route, day and cells; leave "
                                f"{key} at its default or drop the schedule")
    if v["delivery.lymphodepletion"] and min(d for _, d, _ in sched) > 0.0:
        raise ScenarioError("delivery.lymphodepletion with delivery.schedule: the conditioning "
                            "window starts at day 0, so the first scheduled dose must be on day 0")


def _tomlable(val: Any) -> bool:
    return isinstance(val, (bool, int, float, str, list))


def _toml_value(val: Any) -> str:
    if isinstance(val, bool):
        return "true" if val else "false"
    if isinstance(val, int):
        return str(val)
    if isinstance(val, float):
        r = repr(val)
        return r if ("." in r or "e" in r or "n" in r) else r + ".0"
    if isinstance(val, str):
        return '"' + val.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    if isinstance(val, list):
        return "[" + ", ".join(_toml_value(x) for x in val) + "]"
    raise TypeError(f"cannot write {val!r} as TOML")


def parameter_reference_markdown() -> str:
    """docs/parameters.md, generated from the parameter table."""
    out = ["# Parameter reference", "",
           "Generated from `gpusim/params.py` by `gpusim params --markdown`; do not edit by hand.",
           "Units are in the key names. *assumed* marks values chosen by the gpusim authors.", ""]
    for section in SECTIONS:
        out += [f"## [{section}]", "", "| key | unit | default | allowed | description | source |",
                "| --- | --- | --- | --- | --- | --- |"]
        for p in PARAMS:
            if p.section != section:
                continue
            if p.choices:
                allowed = ", ".join(f"`{c}`" for c in p.choices)
            elif p.lo is not None or p.hi is not None:
                allowed = f"{_fmt(p.lo)} to {_fmt(p.hi)}"
            else:
                allowed = "any"
            src = "*assumed*" if p.source == "assumed" else p.source
            cells = [f"`{p.key}`", p.unit, f"`{_toml_value(p.default)}`", allowed, p.doc, src]
            # a '|' inside a cell (the CAR logic A|B) must be escaped or it splits the row
            out.append("| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |")
        out.append("")
    return "\n".join(out)
