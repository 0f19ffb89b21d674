"""How long the reset lasts: a trial's CAR-T arms re-run across a range of reset half-lives.

Nobody has measured how long the immune reset after CD19 CAR-T lasts in MS
(in lupus, remissions have held for at least two years). The reset's
half-life (``reset_halflife``) is a scenario parameter; this module re-runs
each CAR-T arm of a trial with the first patients of the arm at several
values and summarises what changes: when autoreactive clones return, relapses,
new lesions and disability. The report shows the table next to the trial's
own results, so the uncertainty is stated in numbers.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from cartsim.trial.chunks import Chunk, simulate_chunk
from cartsim.trial.config import TrialConfig

HALFLIFE_YEARS = (0.5, 2.0, 5.0, 20.0)   # 5 years is the default (parameter table); the others bracket it
MAX_PATIENTS = 200
YEAR = 365.25


def _with_halflife(cfg: TrialConfig, arm: int, years: float) -> TrialConfig:
    arms = list(cfg.arm)
    a = arms[arm]
    arms[arm] = a.model_copy(update={"parameters": {**(a.parameters or {}), "reset_halflife": years * YEAR}})
    return cfg.model_copy(update={"arm": arms})


def car_t_arms(cfg: TrialConfig) -> list[int]:
    return [i for i in range(len(cfg.arm)) if cfg.scenario(i).product is not None]


def durability_range(cfg: TrialConfig, years: tuple[float, ...] = HALFLIFE_YEARS,
                     n: int = MAX_PATIENTS) -> pd.DataFrame:
    """One row per CAR-T arm and reset half-life: the arm's key endpoints over its first ``n`` patients."""
    rows = []
    for arm in car_t_arms(cfg):
        for y in years:
            res = simulate_chunk(_with_halflife(cfg, arm, y), Chunk(arm, 0, 0, min(n, cfg.population.n)))
            p = res.patients[res.patients["status"] == "ok"]
            row: dict[str, float | str | int] = {"arm": cfg.arm[arm].name, "reset_halflife_years": y, "n": len(p)}
            ret = p["autoreactive_return_day"].astype(float)
            back = (ret.notna() & ~p["autoreactive_return_censored"].astype("boolean").fillna(True)).to_numpy(bool)
            row["autoreactive_return_fraction"] = float(back.mean()) if len(p) else np.nan
            row["autoreactive_return_median_day"] = float(np.median(ret[back])) if back.any() else np.nan
            for col in ("annualized_relapse_rate", "gd_lesions_per_scan", "edss_change"):
                if col in p:
                    row[col] = float(p[col].astype(float).mean())
            if "cdp12_fraction" in p:
                row["cdp12_fraction"] = float(p["cdp12_fraction"].astype(float).mean())
            rows.append(row)
    return pd.DataFrame(rows)
