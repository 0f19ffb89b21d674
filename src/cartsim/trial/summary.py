"""``summary.json``: each arm's endpoints, reported as the endpoint dictionary prescribes.

How an arm reports an endpoint (endpoint dictionary, "How an arm reports an endpoint"):

- continuous (and count): mean, sd, median, p05, p25, p75, p95, n
- time to event: the same over observed events, plus n_events, n_censored, and the
  Kaplan-Meier km_median with its 95% confidence interval, over the patients to whom
  the endpoint applies (a return needs a fall first); n_not_applicable counts the others,
  and an arm where it applies to no patient reports ``applicable: false``
- ordinal: fractions keyed by grade "0".."4", plus fraction_any (grade >= 1),
  fraction_grade2plus, fraction_grade3plus
- binary / rate: value with its 95% confidence interval (ci95)

Every arm also reports n (patients simulated), n_failed and the seed. Failed
patients have no endpoint values and are left out of every endpoint's statistics.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from cartsim import __version__
from cartsim import stats
from cartsim import endpoint_dictionary as dictionary
from cartsim.endpoint_dictionary import CENSORING_COLUMNS, KINDS, Kind
from cartsim.trial.config import TrialConfig

GRADES = range(5)


def censoring(name: str, columns: list[str]) -> str | None:
    """The censoring column of time-to-event endpoint ``name`` (endpoint dictionary), if the table has it."""
    flag = dictionary.censoring(name)
    return flag if flag in columns else None


def kind_of(name: str) -> Kind:
    """The kind of endpoint ``name`` (endpoint dictionary); a column not in it is continuous."""
    return KINDS.get(name, "continuous")


def time_to_event(time: np.ndarray, censored: np.ndarray) -> dict:
    event = ~censored
    median, ci = stats.kaplan_meier(time, event).median()
    return stats.describe(time[event]) | {"n_events": int(event.sum()), "n_censored": int(censored.sum()),
                                          "km_median": median, "km_median_ci95": ci}


def ordinal(grades: np.ndarray) -> dict:
    n = grades.size
    frac = lambda mask: float(mask.sum() / n) if n else None  # noqa: E731
    return {"fractions": {str(g): frac(grades == g) for g in GRADES}, "fraction_any": frac(grades >= 1),
            "fraction_grade2plus": frac(grades >= 2), "fraction_grade3plus": frac(grades >= 3)}


def binary(values: np.ndarray) -> dict:
    value, ci = stats.wilson(int(values.sum()), values.size)
    return {"value": value, "ci95": ci}


def rate(values: np.ndarray) -> dict:
    """Arm rate over patients followed for the same time: the mean of the patients' rates. Its
    interval is the t interval of a mean, which stays valid for overdispersed events (relapses),
    with its lower end cut at 0 (a rate is never negative; few events make the interval reach below)."""
    value, ci = stats.mean_ci(values)
    return {"value": value, "ci95": None if ci is None else [max(0.0, ci[0]), ci[1]]}


def endpoint(df: pd.DataFrame, name: str, kind: Kind) -> dict:
    """One endpoint of one arm (rows of failed patients already removed)."""
    v = df[name]
    if kind == "time_to_event" and len(v) and v.isna().all():
        # every patient has a time or a censoring time, unless the endpoint does not apply to the arm
        # (e.g. repletion after the last dose of a repeated regimen, in a CAR-T arm)
        return {"kind": kind, "applicable": False}
    if kind == "time_to_event":
        # patients to whom the endpoint does not apply (B cells or autoreactive cells never depleted) have no value
        has = v.notna().to_numpy()
        out = time_to_event(v.to_numpy(float)[has], df[censoring(name, list(df.columns))].to_numpy(bool)[has])
        if not has.all():
            out["n_not_applicable"] = int((~has).sum())
    elif kind == "ordinal":
        out = ordinal(v.dropna().to_numpy(int))
    elif kind == "binary":
        out = binary(v.dropna().to_numpy(bool))
    elif kind == "rate":
        out = rate(v.to_numpy(float, na_value=np.nan))
    else:
        out = stats.describe(v.to_numpy(float, na_value=np.nan))
    return {"kind": kind} | out


def summarize_arm(cfg: TrialConfig, arm: int, rows: pd.DataFrame, endpoints: list[str]) -> dict:
    """The summary of arm ``arm`` from its rows of the patients table (``status`` and ``endpoints``)."""
    spec = cfg.arm[arm]
    names = [e for e in endpoints if e not in CENSORING_COLUMNS]
    res = _results(rows, names, endpoints)
    out = {"name": spec.name, "therapy": spec.therapy, "n": res["n"], "n_failed": res["n_failed"],
           "seed": cfg.trial.seed}
    groups = {}
    if "ms_course" in rows.columns:   # patients per disease course; a population mixing courses: each one's results
        groups = {str(c): g for c, g in rows.groupby("ms_course", sort=True)}
        out["n_by_ms_course"] = {c: len(g) for c, g in groups.items()}
    out["endpoints"] = res["endpoints"]
    if len(groups) > 1:
        out["by_ms_course"] = {c: _results(g, names, endpoints) for c, g in groups.items()}
    return out


def _results(rows: pd.DataFrame, names: list[str], endpoints: list[str]) -> dict:
    """Patients, failures and endpoint statistics of ``rows`` (failed patients left out of the statistics)."""
    ok = rows[rows["status"] == "ok"]
    return {"n": len(rows), "n_failed": int(len(rows) - len(ok)),
            "endpoints": {e: endpoint(ok, e, kind_of(e)) for e in names}}


def intervals(rows: pd.DataFrame, endpoints: list[str]) -> dict[str, dict[str, list[float] | None]]:
    """The 95% intervals a reader needs beside ``summary.json``'s estimates, from the patients' own values:
    the t interval of each measured endpoint's mean, the Wilson intervals of an ordinal endpoint's shares of
    any grade and of grade 3 or more (failed patients left out)."""
    ok = rows[rows["status"] == "ok"]
    out: dict[str, dict[str, list[float] | None]] = {}
    for name in (e for e in endpoints if e not in CENSORING_COLUMNS):
        kind = kind_of(name)
        if kind in ("continuous", "count"):
            out[name] = {"mean": stats.mean_ci(ok[name].to_numpy(float, na_value=np.nan))[1]}
        elif kind == "ordinal":
            grades = ok[name].dropna().to_numpy(int)
            out[name] = {"fraction_any": stats.wilson(int((grades >= 1).sum()), grades.size)[1],
                         "fraction_grade3plus": stats.wilson(int((grades >= 3).sum()), grades.size)[1]}
    return out


def summary_document(cfg: TrialConfig, arms: list[dict]) -> dict:
    """The trial summary from the summaries of its arms (in arm order)."""
    return _finite({"trial": cfg.trial.name, "seed": cfg.trial.seed, "cartsim_version": __version__,
                    "config": cfg.model_dump(mode="json"), "arms": arms})


def summarize(cfg: TrialConfig, patients: pd.DataFrame, endpoints: list[str]) -> dict:
    """The trial summary from the patients table (columns ``arm``, ``status`` and ``endpoints``)."""
    return summary_document(cfg, [summarize_arm(cfg, a, patients[patients["arm"] == a], endpoints)
                                  for a in range(len(cfg.arm))])


def _finite(obj: Any) -> Any:
    """``obj`` with NaN and infinities replaced by None (JSON has neither)."""
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_finite(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj
