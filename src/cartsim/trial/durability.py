"""How long the reset lasts: a trial's CAR-T arms re-run across a range of reset half-lives.

Nobody has measured how long the immune reset after CD19 CAR-T lasts in MS
(in lupus, remissions have held for more than two years after B cells came
back, Mueller et al. NEJM 2024). The reset's half-life (``reset_halflife``)
is a scenario parameter; this module re-runs each CAR-T arm of a trial with
the first patients of the arm at several values and summarises what changes:
when autoreactive clones return, relapses, new lesions and disability.

A one-year trial cannot show it (autoreactive clones come back years after
the infusion), so these runs have their own horizon, ``[durability]
horizon_years`` (default 10 years). Their cost is bounded: at most
:data:`MAX_PATIENTS` patients per arm (fewer if the arm is smaller) and
output times daily to day 28, then weekly.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from cartsim import endpoints
from cartsim.model import build_model
from cartsim.trial import cohort
from cartsim.trial.config import TrialConfig
from cartsim.stats import kaplan_meier

HALFLIFE_YEARS = (0.5, 2.0, 5.0, 20.0)   # 5 years is the default (parameter table); the others bracket it
MAX_PATIENTS = 200
YEAR = 365.25
FIRST_YEARS = 1.0         # relapse rate in the first year ...
LATE_YEARS = 5.0          # ... and from year 5 to the horizon (the reset's end shows there)


def _with_halflife(cfg: TrialConfig, arm: int, years: float, horizon_days: float) -> TrialConfig:
    """``cfg`` with arm ``arm`` at reset half-life ``years`` and the trial running ``horizon_days``."""
    arms = list(cfg.arm)
    a = arms[arm]
    arms[arm] = a.model_copy(update={"parameters": {**(a.parameters or {}), "reset_halflife": years * YEAR}})
    return cfg.model_copy(update={"arm": arms,
                                  "trial": cfg.trial.model_copy(update={"horizon_days": horizon_days})})


def car_t_arms(cfg: TrialConfig) -> list[int]:
    """The arms whose CAR-T product can reset autoreactive B cells: CD19 products, which remove the autoreactive
    memory B cells (a BCMA product removes plasma cells and leaves them, so there is no reset to outlast)."""
    return [i for i in range(len(cfg.arm))
            if (p := cfg.scenario(i).product) is not None and p.target == "CD19"]


def output_times(start: float, horizon: float) -> np.ndarray:
    """Daily from the first day to day 28, then weekly, and the horizon."""
    days = np.concatenate([np.arange(start, min(28.0, horizon)), np.arange(28.0, horizon, 7.0), [horizon]])
    return np.unique(days[days >= start])


def _rate_between(sol_t: np.ndarray, cum: np.ndarray, first: float, last: float) -> float:
    """Mean expected events per patient-year between days ``first`` and ``last`` (the model's intensity)."""
    a, b = (np.array([np.interp(d, sol_t, row) for row in cum]) for d in (first, last))
    return float(np.nanmean(b - a) / ((last - first) / YEAR))


def durability_range(cfg: TrialConfig, years: tuple[float, ...] = HALFLIFE_YEARS, n: int = MAX_PATIENTS,
                     horizon_years: float | None = None) -> pd.DataFrame:
    """One row per CAR-T arm and reset half-life: the arm's key endpoints over its first patients.

    Each arm is run with ``min(n, the arm's n)`` patients for ``horizon_years`` (default: the trial's
    ``durability.horizon_years``)."""
    horizon = (cfg.durability.horizon_years if horizon_years is None else horizon_years) * YEAR
    model = build_model()
    rows = []
    for arm in car_t_arms(cfg):
        m = min(n, cfg.arm_n(arm))
        for y in years:
            c = _with_halflife(cfg, arm, y, horizon)
            scenario = c.scenario(arm)
            pop = cohort.draw(c, model, arm, 0, m)
            sol = scenario.run(pop, columns=endpoints.COLUMNS, times=output_times(scenario.start, horizon),
                               model=model)
            ep = endpoints.compute(sol, model.table, scenario.last_dose_day(), pop, c.trial_mri_interval_days,
                                   scenario.infusion_reaction_risks())
            ok = np.asarray(sol.status) == 0
            p = ep[ok]
            row: dict[str, float | str | int] = {"arm": cfg.arm[arm].name, "reset_halflife_years": y,
                                                 "n": int(ok.sum()), "horizon_years": horizon / YEAR}
            ret = p["autoreactive_return_day"].to_numpy(float, na_value=np.nan)
            applies = np.isfinite(ret)      # autoreactive clones removed first
            back = applies & ~p["autoreactive_return_censored"].to_numpy(bool, na_value=True)
            row["autoreactive_return_fraction"] = float(back.sum() / applies.sum()) if applies.any() else np.nan
            km_median = kaplan_meier(ret[applies], back[applies]).median()[0] if applies.any() else None
            row["autoreactive_return_median_years"] = np.nan if km_median is None else km_median / YEAR
            t = sol.times
            cum = sol.column("relapse_cum")[ok]
            if np.nanmax(np.abs(cum), initial=0.0) > 0:
                row["relapse_rate_year1"] = _rate_between(t, cum, 0.0, min(FIRST_YEARS * YEAR, horizon))
                if horizon > LATE_YEARS * YEAR:
                    row["relapse_rate_late"] = _rate_between(t, cum, LATE_YEARS * YEAR, horizon)
            for col in ("annualized_relapse_rate", "gd_lesions_per_scan", "edss_change", "cdp12_fraction"):
                if col in p:
                    row[col] = float(p[col].astype(float).mean())
            rows.append(row)
    return pd.DataFrame(rows)
