"""Arm-level statistics: descriptive summaries, Kaplan-Meier, Wilson and t intervals.

SciPy computes each of them: the Kaplan-Meier estimate and its Greenwood band on the
log-log scale (``scipy.stats.ecdf``, as R's ``survival`` with ``conf.type = "log-log"``),
the Wilson score interval of a proportion (``scipy.stats.binomtest``) and the Student t
interval of a mean (``scipy.stats.t``). What is cartsim's own is the reading of the
median's interval from the band (where its edges cross one half, as R does).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from scipy import stats

LEVEL = 0.95


def describe(values: np.ndarray) -> dict[str, float | int | None]:
    """mean, sd, median, p05, p25, p75, p95 and n of the finite ``values``."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return {k: None for k in ("mean", "sd", "median", "p05", "p25", "p75", "p95")} | {"n": 0}
    q = np.percentile(v, [50, 5, 25, 75, 95])
    return {"mean": float(v.mean()), "sd": float(v.std(ddof=1)) if v.size > 1 else None,
            "median": float(q[0]), "p05": float(q[1]), "p25": float(q[2]), "p75": float(q[3]),
            "p95": float(q[4]), "n": int(v.size)}


def wilson(successes: int, n: int) -> tuple[float | None, list[float] | None]:
    """Proportion and its 95% Wilson score interval (no continuity correction)."""
    if n == 0:
        return None, None
    ci = stats.binomtest(int(successes), int(n)).proportion_ci(LEVEL, method="wilson")
    return successes / n, [float(ci.low), float(ci.high)]


def mean_interval(mean: float, sd: float | None, n: int) -> list[float] | None:
    """The 95% Student t interval of a mean from the sample's sd and size (None without an sd)."""
    if sd is None or n < 2 or not np.isfinite(sd):
        return None
    if sd == 0:
        return [mean, mean]
    lo, hi = stats.t.interval(LEVEL, n - 1, loc=mean, scale=sd / np.sqrt(n))
    return [float(lo), float(hi)]


def mean_ci(values: np.ndarray) -> tuple[float | None, list[float] | None]:
    """Mean and its 95% t interval (valid for means of skewed values in samples of tens or more)."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return None, None
    m = float(v.mean())
    return m, mean_interval(m, float(v.std(ddof=1)) if v.size > 1 else None, v.size)


@dataclass(frozen=True)
class KaplanMeier:
    """Survival just after each distinct event time, with its pointwise 95% band."""

    time: np.ndarray
    survival: np.ndarray
    lower: np.ndarray      # NaN where undefined (survival 0 or 1)
    upper: np.ndarray

    def quantile_time(self, curve: np.ndarray, level: float = 0.5) -> float | None:
        """First event time at which ``curve`` is at or below ``level``; None if never."""
        hit = np.flatnonzero(curve <= level + 1e-12)
        return float(self.time[hit[0]]) if hit.size else None

    def median(self) -> tuple[float | None, list[float | None]]:
        """Median time and its 95% interval (where the band's edges cross one half)."""
        return self.quantile_time(self.survival), [self.quantile_time(self.lower), self.quantile_time(self.upper)]


def kaplan_meier(time: np.ndarray, event: np.ndarray) -> KaplanMeier:
    """Kaplan-Meier estimate (``scipy.stats.ecdf``) at the distinct event times; a patient censored
    at an event time counts as at risk at it."""
    time = np.asarray(time, dtype=float)
    event = np.asarray(event, dtype=bool)
    t = np.unique(time[event])
    if t.size == 0:
        empty = np.empty(0)
        return KaplanMeier(empty, empty, empty, empty)
    sf = stats.ecdf(stats.CensoredData(uncensored=time[event], right=time[~event])).sf
    with warnings.catch_warnings():     # SciPy warns where the band is undefined (S = 0 or 1): NaN there
        warnings.simplefilter("ignore", RuntimeWarning)
        band = sf.confidence_interval(LEVEL, method="log-log")
    at = np.searchsorted(sf.quantiles, t)      # SciPy also steps at censoring times: keep the event times
    return KaplanMeier(t, sf.probabilities[at], band.low.probabilities[at], band.high.probabilities[at])
