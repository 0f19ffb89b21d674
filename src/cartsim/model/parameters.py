"""The parameter table: every number in the model with its provenance.

The table lives in ``cartsim/data/parameters.toml``; this module loads and
checks it. ``kind`` is one of literature, derived, calibrated or assumed.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Iterator

KINDS = ("literature", "derived", "calibrated", "assumed")
DISTRIBUTIONS = ("lognormal", "loguniform", "uniform", "normal")
UNCERTAIN_KINDS = ("assumed", "calibrated")      # kinds whose value needs an uncertainty range
CITED_KINDS = ("literature", "calibrated")       # kinds whose value needs a reference
_Z975 = 1.959963984540054                        # the standard normal 97.5th percentile


@dataclass(frozen=True)
class Uncertainty:
    """How uncertain a parameter's value is: ``low``/``high`` are the 2.5th and 97.5th percentiles of a
    lognormal or normal distribution, or the bounds of a uniform or loguniform one; ``reason`` says why.
    :meth:`ppf` maps a quantile in (0, 1) to a value, for samplers."""

    distribution: str
    low: float
    high: float
    reason: str

    @property
    def bounded(self) -> bool:
        """True for uniform and loguniform ranges (``low``/``high`` are hard bounds)."""
        return self.distribution in ("uniform", "loguniform")

    def dist(self):
        """The range as a frozen ``scipy.stats`` distribution."""
        from scipy import stats

        lo, hi = self.low, self.high
        if self.distribution == "uniform":
            return stats.uniform(loc=lo, scale=hi - lo)
        if self.distribution == "loguniform":
            return stats.loguniform(lo, hi)
        if self.distribution == "normal":
            return stats.norm(loc=(lo + hi) / 2, scale=(hi - lo) / (2 * _Z975))
        if self.distribution == "lognormal":
            return stats.lognorm(s=math.log(hi / lo) / (2 * _Z975), scale=math.sqrt(lo * hi))
        raise ValueError(f"uncertainty.distribution must be one of {DISTRIBUTIONS}, got {self.distribution!r}")

    def ppf(self, u):
        """The value at quantile ``u`` (a number or array in (0, 1); 0 and 1 only for a bounded range)."""
        return self.dist().ppf(u)

    def problems(self, value: float | None, bounds: tuple[float, float] | None = None) -> list[str]:
        out = []
        if self.distribution not in DISTRIBUTIONS:
            out.append(f"uncertainty.distribution must be one of {DISTRIBUTIONS}, got {self.distribution!r}")
        if not self.low < self.high:
            out.append(f"uncertainty.low ({self.low:g}) must be below uncertainty.high ({self.high:g})")
        if self.distribution in ("lognormal", "loguniform") and self.low <= 0:
            out.append(f"uncertainty.low must be > 0 for a {self.distribution} range, got {self.low:g}")
        # a value fitted onto its physical lower bound may start a uniform range there
        on_bound = (value is not None and self.distribution == "uniform" and bounds is not None
                    and value == bounds[0] == self.low < self.high)
        if value is not None and not (self.low < value < self.high or on_bound):
            out.append(f"the value {value:g} lies outside its uncertainty range {self.low:g}..{self.high:g} "
                       "(low < value < high, or low = value = the lower bound for a uniform range)")
        if bounds is not None:
            lo, hi = bounds
            if not self.bounded and (math.isfinite(hi) or (self.distribution == "normal" and math.isfinite(lo))
                                     or (self.distribution == "lognormal" and lo > 0)):
                out.append(f"uncertainty.distribution of a parameter bounded to [{lo:g}, {hi:g}] must be uniform "
                           f"or loguniform (a {self.distribution} range leaves the bounds), got {self.distribution!r}")
            elif not lo <= self.low < self.high <= hi:
                out.append(f"uncertainty range {self.low:g}..{self.high:g} leaves the parameter's bounds "
                           f"[{lo:g}, {hi:g}]")
        if not self.reason.strip():
            out.append("uncertainty.reason is empty")
        return out


@dataclass(frozen=True)
class ParameterRecord:
    name: str
    value: float | None      # None for derived parameters (computed from others)
    unit: str
    component: str
    kind: str
    source: str
    description: str
    iiv_omega: float = 0.0      # inter-individual variability: SD of log-normal eta (omega), 0 = none
    uncertainty: Uncertainty | None = None   # how uncertain the value is (assumed and calibrated parameters)
    reference: tuple[str, ...] = ()          # machine-readable citations (literature and calibrated parameters)
    bounds: tuple[float, float] | None = None   # allowed interval of the value (fractions: [0, 1])
    no_uncertainty: str = ""    # why an assumed value has no uncertainty range (a placeholder, switch or guard)
    iiv_kind: str = ""          # provenance of iiv_omega when it differs from the value's ("" = as ``kind``)
    iiv_source: str = ""        # where iiv_omega comes from, when iiv_kind is given

    @property
    def omega_kind(self) -> str:
        """The provenance of ``iiv_omega``: literature, calibrated or assumed (the value's own unless stated)."""
        return self.iiv_kind or self.kind

    def problems(self) -> list[str]:
        """What is wrong with this record on its own (an empty list when nothing is)."""
        out = []
        if self.kind not in KINDS:
            out.append(f"kind must be one of {KINDS}, got {self.kind!r}")
        if not self.source.strip():
            out.append("source is empty")
        if not self.unit.strip():
            out.append("unit is empty")
        if self.kind != "derived" and self.value is None:
            out.append("value is missing")
        if any(not isinstance(c, str) or not c.strip() for c in self.reference):
            out.append("reference must be a non-empty citation string or a list of them")
        if self.bounds is not None:
            lo, hi = self.bounds
            if not lo < hi:
                out.append(f"bounds must be [low, high] with low < high, got [{lo:g}, {hi:g}]")
            elif self.value is not None and not lo <= self.value <= hi:
                out.append(f"the value {self.value:g} lies outside its bounds [{lo:g}, {hi:g}]")
        if self.iiv_kind or self.iiv_source:
            if self.iiv_kind not in KINDS or self.iiv_kind == "derived":
                out.append(f"iiv_kind must be one of {tuple(k for k in KINDS if k != 'derived')}, "
                           f"got {self.iiv_kind!r}")
            if self.iiv_omega <= 0:
                out.append("iiv_kind and iiv_source describe an iiv_omega, and this parameter has none")
            if not self.iiv_source.strip():
                out.append("iiv_kind needs iiv_source: where the between-patient SD comes from")
        if self.uncertainty is not None:
            if self.kind == "derived":
                out.append("a derived parameter takes its uncertainty from the parameters it is made of")
            if self.no_uncertainty.strip():
                out.append("has both uncertainty and no_uncertainty")
            out += self.uncertainty.problems(self.value, self.bounds)
        return out

    def completeness_problems(self) -> list[str]:
        """What the shipped table also demands: ranges for assumed and calibrated values, references for
        literature and calibrated ones, and a stated assumption for an assumed value that cites nothing."""
        out = []
        if self.kind in UNCERTAIN_KINDS and self.uncertainty is None and not self.no_uncertainty.strip():
            out.append(f"{_article(self.kind)} {self.kind} parameter needs uncertainty = {{ distribution, low, high, reason }} "
                       "(or no_uncertainty = \"why\" for a placeholder, switch or numerical guard)")
        if self.kind == "calibrated" and self.no_uncertainty.strip():
            out.append("a calibrated parameter needs an uncertainty range, not no_uncertainty")
        if self.kind in CITED_KINDS and not self.reference:
            out.append(f"{_article(self.kind)} {self.kind} parameter needs a reference (the paper it comes from"
                       + (", or its calibration target's paper)" if self.kind == "calibrated" else ")"))
        if (self.kind == "assumed" and not self.reference and not self.no_uncertainty.strip()
                and "assum" not in self.source.lower() and not self.source.startswith("as ")):
            out.append("an assumed parameter without a reference must say in its source that, and why, it is assumed "
                       "(or 'as <parameter>' to share another's provenance)")
        return out


def _article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


class ParameterTable:
    """An immutable mapping name -> :class:`ParameterRecord`."""

    def __init__(self, records: list[ParameterRecord]):
        self._records = {r.name: r for r in records}
        if len(self._records) != len(records):
            raise ValueError("duplicate parameter names in the parameter table")
        for r in records:
            problems = r.problems()
            if problems:
                raise ValueError(f"parameter {r.name!r}: " + "; ".join(problems))

    def __getitem__(self, name: str) -> ParameterRecord:
        try:
            return self._records[name]
        except KeyError:
            raise KeyError(f"parameter {name!r} is not in the parameter table") from None

    def __contains__(self, name: object) -> bool:
        return name in self._records

    def __iter__(self) -> Iterator[ParameterRecord]:
        return iter(self._records.values())

    def __len__(self) -> int:
        return len(self._records)

    def value(self, name: str) -> float:
        v = self[name].value
        if v is None:
            raise ValueError(f"parameter {name!r} is derived and has no table value")
        return float(v)


FIELDS = ("value", "unit", "component", "kind", "source", "description", "iiv_omega", "uncertainty", "reference",
          "bounds", "no_uncertainty", "iiv_kind", "iiv_source")


def parse_table(raw: dict, complete: bool = True) -> ParameterTable:
    """A parameter table from its TOML tables (name -> fields). ``complete``: also demand what the shipped
    table must have (:meth:`ParameterRecord.completeness_problems`). Errors name the parameter and field."""
    records = []
    for name, entry in raw.items():
        if not isinstance(entry, dict):
            raise ValueError(f"parameter {name!r}: must be a table of fields ({', '.join(FIELDS)})")
        unknown = sorted(set(entry) - set(FIELDS))
        if unknown:
            raise ValueError(f"parameter {name!r}: unknown field(s) {unknown} (allowed: {', '.join(FIELDS)})")
        record = ParameterRecord(
            name=name,
            value=entry.get("value"),
            unit=entry.get("unit", ""),
            component=entry.get("component", ""),
            kind=entry.get("kind", ""),
            source=entry.get("source", ""),
            description=entry.get("description", ""),
            iiv_omega=float(entry.get("iiv_omega", 0.0)),
            uncertainty=_uncertainty(name, entry.get("uncertainty")),
            reference=_reference(name, entry.get("reference")),
            bounds=_bounds(name, entry.get("bounds")),
            no_uncertainty=str(entry.get("no_uncertainty", "")),
            iiv_kind=str(entry.get("iiv_kind", "")),
            iiv_source=str(entry.get("iiv_source", "")),
        )
        if complete:
            problems = record.problems() + record.completeness_problems()
            if problems:
                raise ValueError(f"parameter {name!r}: " + "; ".join(problems))
        records.append(record)
    return ParameterTable(records)


@lru_cache(maxsize=1)
def load_table() -> ParameterTable:
    text = resources.files("cartsim.data").joinpath("parameters.toml").read_text()
    return parse_table(tomllib.loads(text))


def _uncertainty(name: str, entry: dict | None) -> Uncertainty | None:
    """A table's ``uncertainty = {distribution, low, high, reason}`` entry (None when there is none)."""
    if entry is None:
        return None
    if not isinstance(entry, dict):
        raise ValueError(f"parameter {name!r}: uncertainty must be a table {{ distribution, low, high, reason }}")
    unknown = set(entry) - {"distribution", "low", "high", "reason"}
    if unknown:
        raise ValueError(f"parameter {name!r}: uncertainty has unknown keys {sorted(unknown)} "
                         "(allowed: distribution, low, high, reason)")
    try:
        return Uncertainty(str(entry["distribution"]), float(entry["low"]), float(entry["high"]),
                           str(entry.get("reason", "")))
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(f"parameter {name!r}: uncertainty needs distribution, numbers low and high, and a "
                         f"reason ({err})") from None


def _reference(name: str, entry: object) -> tuple[str, ...]:
    """``reference = "..."`` or ``reference = ["...", ...]`` as a tuple of citations."""
    if entry is None:
        return ()
    if isinstance(entry, str):
        entry = [entry]
    if not isinstance(entry, list) or not entry or not all(isinstance(c, str) and c.strip() for c in entry):
        raise ValueError(f"parameter {name!r}: reference must be a non-empty citation string or a list of them")
    return tuple(c.strip() for c in entry)


def _bounds(name: str, entry: object) -> tuple[float, float] | None:
    if entry is None:
        return None
    try:
        lo, hi = (float(x) for x in entry)   # type: ignore[union-attr]
    except (TypeError, ValueError):
        raise ValueError(f"parameter {name!r}: bounds must be [low, high], two numbers") from None
    return lo, hi


def checked_overrides(owner: str, overrides: dict, provenance: dict, table: ParameterTable) -> dict[str, float]:
    """Parameter values that a disease or therapy sets, each a known parameter with a kind and a source."""
    for key in overrides:
        table[key]  # must be a known parameter
        if provenance.get(key, {}).get("kind") not in KINDS or not provenance.get(key, {}).get("source"):
            raise ValueError(f"{owner}: override {key!r} needs a kind and a source")
        try:
            _reference(key, provenance[key].get("reference"))
        except ValueError:
            raise ValueError(f"{owner}: override {key!r} reference must be a non-empty citation string or a list of "
                             "them") from None
        value = float(overrides[key])
        entry = provenance[key]
        u = _uncertainty(key, entry.get("uncertainty"))
        if u is not None:
            if u.distribution not in DISTRIBUTIONS or not u.low < value < u.high or not u.reason.strip():
                raise ValueError(f"{owner}: override {key!r} uncertainty must be one of {DISTRIBUTIONS} with "
                                 f"low < {value:g} < high and a reason")
        elif entry.get("kind") in UNCERTAIN_KINDS and value != 0 and not str(entry.get("no_uncertainty", "")).strip():
            raise ValueError(f"{owner}: override {key!r} is {entry.get('kind')} and needs uncertainty = "
                             "{ distribution, low, high, reason } (or no_uncertainty = \"why\")")
        bounds = table[key].bounds
        if bounds is not None and not bounds[0] <= value <= bounds[1]:
            raise ValueError(f"{owner}: override {key!r} = {overrides[key]} lies outside the parameter's bounds "
                             f"[{bounds[0]:g}, {bounds[1]:g}]")
    return {k: float(v) for k, v in overrides.items()}
