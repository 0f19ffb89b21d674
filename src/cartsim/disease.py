"""Disease baselines as data (``cartsim/data/diseases.toml``)."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

from cartsim.model.parameters import KINDS, load_table


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
        for key in e["overrides"]:
            table[key]  # must be a known parameter
            if prov.get(key, {}).get("kind") not in KINDS or not prov.get(key, {}).get("source"):
                raise ValueError(f"disease {name!r}: override {key!r} needs a kind and a source")
        out[name] = Disease(name, e["description"], float(e["female_share"]), float(e["age_median"]),
                            {k: float(v) for k, v in e["overrides"].items()}, prov)
    return out
