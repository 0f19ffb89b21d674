"""Typical-patient simulation: the typed Python API behind ``cartsim simulate``."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from cartsim import endpoints
from cartsim.model import build_model
from cartsim.population import typical
from cartsim.scenario import Scenario

TRAJECTORY_COLUMNS = ("b_blood_per_uL", "b_tissue", "naive_fraction_blood", "car_blood_per_uL", "car_eff",
                      "car_mem", "t_blood_per_uL", "il6_signal", "icans_signal", "crs_grade", "icans_grade",
                      "toci_conc", "igg", "autoantibody", "plasma_cells", "malignant", "mab_conc", "fcrnb_conc",
                      "c5i_conc", "cns_b", "cns_plasma_cells", "intrathecal_igg", "car_csf_per_uL",
                      "autoreactive_level", "gd_active", "relapse_rate", "mg_adl")


@dataclass(frozen=True)
class SimulationResult:
    scenario: Scenario
    trajectories: pd.DataFrame     # one row per output time, column "day" first
    endpoints: dict[str, float]
    tocilizumab_days: list[float]
    dosing: list[tuple[float, str]]   # drug administrations: (day, label)


def simulate(therapy: str, disease: str = "sle", days: float = 365, dose: str | None = None,
             lymphodepletion: str | None = None, regimen: str | None = None,
             parameters: dict[str, float] | None = None) -> SimulationResult:
    """Simulate the typical patient of ``disease`` given ``therapy``.

    >>> r = simulate("mb-cart19", "sle", days=120)
    >>> bool(r.trajectories.query("day == 7").b_blood_per_uL.iloc[0] < 1.0)
    True
    """
    model = build_model()
    scenario = Scenario.make(therapy, disease, days, dose, lymphodepletion, regimen, parameters=parameters)
    population = typical(model, scenario.disease, scenario.course)
    sol = scenario.run(population,
                       columns=tuple(dict.fromkeys(TRAJECTORY_COLUMNS + endpoints.COLUMNS)))
    if sol.failures:
        raise RuntimeError(f"simulation failed: {sol.failures[0]}")
    df = pd.DataFrame(sol.values[0], columns=sol.columns)[list(TRAJECTORY_COLUMNS)]
    df.insert(0, "day", sol.times)
    ep = endpoints.compute(sol, model.table, scenario.last_dose_day(), population).iloc[0].to_dict()
    fires = [float(t) for t in sol.trigger_times[0].ravel() if t == t]
    return SimulationResult(scenario, df, ep, fires, scenario.dosing())
