"""The parameter table: every number in the model with its provenance.

The table lives in ``cartsim/data/parameters.toml``; this module loads and
checks it. ``kind`` is one of literature, derived, calibrated or assumed.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Iterator

KINDS = ("literature", "derived", "calibrated", "assumed")


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


class ParameterTable:
    """An immutable mapping name -> :class:`ParameterRecord`."""

    def __init__(self, records: list[ParameterRecord]):
        self._records = {r.name: r for r in records}
        if len(self._records) != len(records):
            raise ValueError("duplicate parameter names in the parameter table")
        for r in records:
            problems = []
            if r.kind not in KINDS:
                problems.append(f"kind must be one of {KINDS}, got {r.kind!r}")
            if not r.source.strip():
                problems.append("source is empty")
            if not r.unit.strip():
                problems.append("unit is empty")
            if r.kind != "derived" and r.value is None:
                problems.append("value is missing")
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


@lru_cache(maxsize=1)
def load_table() -> ParameterTable:
    text = resources.files("cartsim.data").joinpath("parameters.toml").read_text()
    raw = tomllib.loads(text)
    records = []
    for name, entry in raw.items():
        records.append(ParameterRecord(
            name=name,
            value=entry.get("value"),
            unit=entry.get("unit", ""),
            component=entry.get("component", ""),
            kind=entry.get("kind", ""),
            source=entry.get("source", ""),
            description=entry.get("description", ""),
            iiv_omega=float(entry.get("iiv_omega", 0.0)),
        ))
    return ParameterTable(records)


def checked_overrides(owner: str, overrides: dict, provenance: dict, table: ParameterTable) -> dict[str, float]:
    """Parameter values that a disease or therapy sets, each a known parameter with a kind and a source."""
    for key in overrides:
        table[key]  # must be a known parameter
        if provenance.get(key, {}).get("kind") not in KINDS or not provenance.get(key, {}).get("source"):
            raise ValueError(f"{owner}: override {key!r} needs a kind and a source")
    return {k: float(v) for k, v in overrides.items()}
