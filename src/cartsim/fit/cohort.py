"""Virtual cohorts with known parameters, to test a fit: only the parameters named vary between patients.

A fit estimates the typical values and between-patient variability of a few parameters while every other
parameter is held at its typical value; a cohort simulated with all of the model's variability would fit a
different model. Here the named parameters keep their random effects from :func:`cartsim.population.sample`
(the parameter table's omega), every other random effect is removed, and body weight still varies.
"""

from __future__ import annotations

from dataclasses import replace

import pandas as pd

from cartsim.errors import CartsimInputError
from cartsim.exporters.nonmem import OBSERVATION_TYPES, add_residual_error, simulate_dataset
from cartsim.model.ir import Model
from cartsim.population import Population, iiv_parameters, sample
from cartsim.scenario import Scenario


def varying_only(model: Model, population: Population, scenario: Scenario, names: list[str],
                 field: str = "--vary") -> Population:
    """``population`` with the random effects of every parameter except ``names`` removed."""
    iiv = iiv_parameters(model)
    bad = [n for n in names if n not in iiv]
    if bad:
        raise CartsimInputError(field, f"{bad[0]!r} has no between-patient variability in the parameter table",
                                ", ".join(iiv))
    typical = scenario.typical_of(model, population)
    params = population.params.copy()
    for p in iiv:
        if p not in names:
            j = model.parameters.index(p)
            params[:, j] = typical[:, j]
    return replace(population, params=params)


def cohort(model: Model, scenario: Scenario, n: int, seed: int, vary: list[str], residual_sd: float = 0.1,
           lloq: dict[int, float] | None = None) -> pd.DataFrame:
    """A NONMEM-style dataset of ``n`` patients in which only ``vary`` differ between patients (log-normal,
    the table's omega), with log-normal residual error ``residual_sd`` and BLQ below ``lloq`` (per DVID;
    default each observation type's assay limit)."""
    lloq = {t.dvid: t.additive_sd for t in OBSERVATION_TYPES} if lloq is None else lloq
    population = varying_only(model, sample(model, scenario.disease, n, seed, course=scenario.course),
                              scenario, vary)
    data = simulate_dataset(model, scenario, population)
    return add_residual_error(data, residual_sd, lloq, seed=seed)


def true_values(model: Model, scenario: Scenario, names: list[str]) -> dict[str, tuple[float, float]]:
    """The typical value (as the therapy sets it) and the table's omega of each of ``names``."""
    from cartsim.population import typical

    pop, _ = scenario.patient_inputs(model, typical(model, scenario.disease, scenario.course))
    return {p: (float(pop.column(p)[0]), float(model.table[p].iiv_omega)) for p in names}


__all__ = ["cohort", "true_values", "varying_only"]
