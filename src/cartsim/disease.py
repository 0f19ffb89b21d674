"""Disease baselines as data (``cartsim/data/diseases.toml``)."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

from cartsim.model.parameters import checked_overrides, load_table


@dataclass(frozen=True)
class Disease:
    name: str
    description: str
    female_share: float
    age_median: float
    overrides: dict[str, float]
    provenance: dict[str, dict[str, str]]


@lru_cache(maxsize=1)
def diseases() -> dict[str, Disease]:
    raw = tomllib.loads(resources.files("cartsim.data").joinpath("diseases.toml").read_text())
    table = load_table()
    out = {}
    for name, e in raw.items():
        prov = e.get("provenance", {})
        overrides = checked_overrides(f"disease {name!r}", e["overrides"], prov, table)
        out[name] = Disease(name, e["description"], float(e["female_share"]), float(e["age_median"]),
                            overrides, prov)
    return out
