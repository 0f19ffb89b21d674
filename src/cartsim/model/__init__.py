"""The cartsim model: components assembled into one symbolic definition."""

from __future__ import annotations

from functools import lru_cache

from cartsim.model import (anti_cd20, antibodies, bcells, cart, cns, complement, fcrn, lymphodepletion, malignancy,
                           mg, ms_activity, nmosd, toxicity)
from cartsim.model.ir import Flow, Model, ModelBuilder, Observable, State
from cartsim.model.parameters import ParameterRecord, ParameterTable, load_table

COMPONENTS = (lymphodepletion, cart, bcells, anti_cd20, cns, malignancy, fcrn, antibodies, toxicity, ms_activity, nmosd,
              complement, mg)

__all__ = ["Flow", "Model", "ModelBuilder", "Observable", "ParameterRecord", "ParameterTable",
           "State", "build_model", "load_table"]


@lru_cache(maxsize=1)
def build_model() -> Model:
    """The full cartsim model (built once per process)."""
    b = ModelBuilder(load_table())
    for component in COMPONENTS:
        component.add(b)
    return b.build()
