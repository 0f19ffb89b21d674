"""Drugs given by a regimen, as data: the anti-CD20 antibodies (``cartsim/data/antibodies.toml``), the
MS immunomodulators (``cartsim/data/immunomodulators.toml``), the FcRn blockers
(``cartsim/data/fcrn_blockers.toml``) and the complement C5 inhibitors
(``cartsim/data/complement_inhibitors.toml``): model parameters, dosed states and a regimen."""

from __future__ import annotations

import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from functools import lru_cache
from importlib import resources

from cartsim.data import DRUG_FILES
from cartsim.model.parameters import KINDS, checked_overrides, load_table
from cartsim.therapy.regimen import Dose, Regimen

# anti-CD20 antibodies: model states that receive doses, by route
DOSE_STATE = {"IV": "mab_central", "SC": "mab_depot"}
# states set to 1 by the first dose (the clocks of time-dependent clearance and target synthesis)
FIRST_DOSE_STATES = ("mab_started", "mab_clock")


@dataclass(frozen=True)
class Antibody:
    name: str
    description: str
    regimen: Regimen
    source: str
    overrides: dict[str, float]
    provenance: dict[str, dict[str, str]]
    dose_states: dict[str, str] = field(default_factory=lambda: dict(DOSE_STATE))
    first_dose_states: tuple[str, ...] = FIRST_DOSE_STATES
    kind: str = "anti-CD20 antibody"
    # probability of an infusion-related reaction at the first IV infusion and at each later one (None: no data)
    infusion_reactions: tuple[float, float] | None = None
    max_dose_mg: float | None = None    # cap of a mg/kg dose (e.g. a label's flat dose above some weight)
    level: str | None = "mab_conc"      # the model observable of the drug's serum level (None: not modelled)

    @property
    def default_duration_h(self) -> dict[str, float]:
        """Infusion duration used when a regimen omits 'over': the labelled one of the default regimen."""
        iv = [s.duration_h for s in self.regimen.segments if s.route == "IV" and s.duration_h is not None]
        return {"IV": iv[-1]} if iv else {}

    def with_regimen(self, text: str | None, field: str = "--regimen") -> "Antibody":
        if text is None:
            return self
        return replace(self, regimen=Regimen.parse(text, default_duration_h=self.default_duration_h, field=field))

    def model_parameters(self) -> dict[str, float]:
        """Parameter-table values this antibody replaces."""
        return dict(self.overrides)

    def doses(self, horizon_days: float) -> list[Dose]:
        return self.regimen.doses(horizon_days)

    def infusion_reaction_risks(self, horizon_days: float) -> list[float] | None:
        """The probability of an infusion-related reaction at each IV infusion before ``horizon_days``
        (None for a drug without such data)."""
        if self.infusion_reactions is None:
            return None
        first, later = self.infusion_reactions
        n = sum(d.route == "IV" for d in self.doses(horizon_days))
        return [first] + [later] * (n - 1) if n else []


def drug_class(level: str, drugs: Iterable[Antibody | None]) -> str | None:
    """What the drugs whose serum level is ``level`` are, for a panel's title ('anti-CD19 antibody', or 'anti-CD19
    antibody or anti-CD20 antibody' where two classes share the level); None where none of them has it."""
    kinds = sorted({d.kind for d in drugs if d is not None and d.level == level})
    return " or ".join(kinds) or None


def infusion_reaction_data(owner: str, entry: dict) -> tuple[float, float]:
    """The (first, later) infusion-reaction risks of a drug's data entry: two probabilities with a kind and a
    source; a clear error names the entry and the field otherwise."""
    risks = []
    for field_ in ("first", "later"):
        value = entry.get(field_)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
            raise ValueError(f"{owner}: {field_!r} must be a probability from 0 to 1, got {value!r}")
        risks.append(float(value))
    if entry.get("kind") not in KINDS or not str(entry.get("source", "")).strip():
        raise ValueError(f"{owner}: needs a kind (one of {', '.join(KINDS)}) and a source")
    return risks[0], risks[1]


@lru_cache(maxsize=1)
def antibodies() -> dict[str, Antibody]:
    """Every drug given by a regimen, by name."""
    table = load_table()
    out = {}
    for file in DRUG_FILES:
        raw = tomllib.loads(resources.files("cartsim.data").joinpath(file).read_text())
        for name, e in raw.items():
            prov = e.get("provenance", {})
            overrides = checked_overrides(f"{file} {name!r}", e["overrides"], prov, table)
            regimen = Regimen.parse(e["regimen"], field=f"{file} [{name}] regimen")
            extra = {}
            if "dose_states" in e:
                extra = {"dose_states": dict(e["dose_states"]), "first_dose_states": tuple(e.get("first_dose_states", ())),
                         "kind": e["kind"], "level": e.get("level")}
            if "kind" in e:
                extra["kind"] = e["kind"]
            if "max_dose_mg" in e:
                extra["max_dose_mg"] = float(e["max_dose_mg"])
            if "infusion_reactions" in e:
                extra["infusion_reactions"] = infusion_reaction_data(f"{file} [{name}.infusion_reactions]",
                                                                     e["infusion_reactions"])
            out[name] = Antibody(name, e["description"], regimen, e["source"], overrides, prov, **extra)
    return out
