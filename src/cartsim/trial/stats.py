"""Arm-level statistics: descriptive summaries, Kaplan-Meier, Wilson and normal intervals.

The Kaplan-Meier estimator is implemented here (a few lines of numpy) rather
than taken from a survival package: it needs only right-censoring at one
horizon, and avoiding the dependency keeps installs small on cluster workers.
Its confidence band follows R's ``survival`` package (Greenwood variance,
``conf.type = "log-log"``), and so does the median's confidence interval.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import norm

Z95 = float(norm.ppf(0.975))


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
    """Proportion and its 95% Wilson score interval."""
    if n == 0:
        return None, None
    p = successes / n
    centre = (p + Z95**2 / (2 * n)) / (1 + Z95**2 / n)
    half = Z95 / (1 + Z95**2 / n) * np.sqrt(p * (1 - p) / n + Z95**2 / (4 * n**2))
    lo = 0.0 if successes == 0 else float(max(0.0, centre - half))   # exact ends, free of rounding
    hi = 1.0 if successes == n else float(min(1.0, centre + half))
    return p, [lo, hi]


def mean_interval(mean: float, sd: float | None, n: int) -> list[float] | None:
    """The normal-approximation 95% interval of a mean from the sample's sd and size (None without an sd)."""
    if sd is None or n < 2:
        return None
    half = Z95 * sd / np.sqrt(n)
    return [mean - half, mean + half] if np.isfinite(half) else None


def mean_ci(values: np.ndarray) -> tuple[float | None, list[float] | None]:
    """Mean and its normal-approximation 95% interval (no distributional assumption on the values)."""
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
    """Kaplan-Meier estimate; patients censored at an event time count as at risk at it."""
    time = np.asarray(time, dtype=float)
    event = np.asarray(event, dtype=bool)
    t = np.unique(time[event])
    at_risk = time.size - np.searchsorted(np.sort(time), t, side="left")
    deaths = np.bincount(np.searchsorted(t, time[event]), minlength=t.size)
    s = np.cumprod(1.0 - deaths / at_risk)
    with np.errstate(divide="ignore", invalid="ignore"):
        greenwood = np.cumsum(deaths / (at_risk * (at_risk - deaths)))
        se = np.sqrt(greenwood) / np.abs(np.log(s))
        lower, upper = s ** np.exp(Z95 * se), s ** np.exp(-Z95 * se)
    undefined = (s <= 0) | (s >= 1)
    return KaplanMeier(t, s, np.where(undefined, np.nan, lower), np.where(undefined, np.nan, upper))
