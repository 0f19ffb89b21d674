"""Two-arm hypothesis tests of a primary endpoint, one per endpoint kind.

Each test takes the per-patient values of arm A and arm B (failed patients
removed) and returns a two-sided p-value and an estimate of the effect of A
relative to B:

- continuous: Welch two-sample t-test (unequal variances); effect: difference in means, A - B
- binary: Fisher's exact test on the 2x2 table; effect: difference in proportions, A - B
- rate and count: negative binomial (NB2) regression of per-patient event counts on the arm, with
  each patient's exposure as offset and the dispersion estimated by maximum likelihood (Poisson
  regression when the data show no overdispersion), likelihood-ratio test; effect: rate ratio A / B
  with its Wald 95% interval
- time to event: log-rank test; effect: hazard ratio A / B of a Cox proportional-hazards model
  (Efron ties) with its Wald 95% interval; not estimable (NaN) when an arm has no events
- ordinal: Mann-Whitney U test; effect: P(A > B) + P(A = B) / 2 (0.5: no difference)

SciPy computes the t-test, Fisher's test, the log-rank test and the U test; statsmodels fits the
Cox and the count regressions.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import stats
from statsmodels.discrete.discrete_model import NegativeBinomial, Poisson
from statsmodels.duration.hazard_regression import PHReg
from statsmodels.tools.sm_exceptions import ConvergenceWarning, HessianInversionWarning

Kind = Literal["continuous", "count", "time_to_event", "ordinal", "binary", "rate"]

TEST_NAMES: dict[str, str] = {
    "continuous": "Welch two-sample t-test (two-sided, unequal variances)",
    "binary": "Fisher's exact test (two-sided)",
    "rate": "negative binomial (NB2) regression of per-patient event counts with exposure, "
            "likelihood-ratio test of the rate ratio (shared dispersion by maximum likelihood)",
    "count": "negative binomial (NB2) regression of per-patient counts, likelihood-ratio test of the "
             "ratio of mean counts (shared dispersion by maximum likelihood)",
    "time_to_event": "log-rank test (two-sided)",
    "ordinal": "Mann-Whitney U test (two-sided; normal approximation with tie and continuity correction, "
               "exact for small samples without ties)",
}
EFFECTS: dict[str, str] = {
    "continuous": "difference in means (A - B)",
    "binary": "difference in proportions (A - B)",
    "rate": "rate ratio (A / B)",
    "count": "ratio of mean counts (A / B)",
    "time_to_event": "hazard ratio (A / B) of a Cox proportional-hazards model (Efron ties); "
                     "not estimable when an arm has no events",
    "ordinal": "probability of a higher grade in A: P(A > B) + P(A = B) / 2",
}


ALPHA_MIN = 1e-5   # NB2 dispersion below which the data are taken as Poisson (variance within 0.01% of it)


@dataclass(frozen=True)
class TestResult:
    """Two-sided p-value (NaN when the data cannot be tested), effect estimate (NaN if not estimable)
    and its 95% interval (None where the test gives none or the effect is not estimable)."""

    p_value: float
    effect: float
    ci95: tuple[float, float] | None = None

    __test__ = False   # not a pytest test class


def _finite(values: np.ndarray) -> np.ndarray:
    v = np.asarray(values, dtype=float)
    return v[np.isfinite(v)]


def welch(a: np.ndarray, b: np.ndarray) -> TestResult:
    """Welch two-sample t-test. Two arms without any spread: p = 1 if their means agree, else 0."""
    a, b = _finite(a), _finite(b)
    if a.size < 2 or b.size < 2:
        return TestResult(math.nan, math.nan)
    effect = float(a.mean() - b.mean())
    if np.ptp(a) == 0 and np.ptp(b) == 0:
        return TestResult(1.0 if effect == 0 else 0.0, effect)
    return TestResult(float(stats.ttest_ind(a, b, equal_var=False).pvalue), effect)


def fisher(a: np.ndarray, b: np.ndarray) -> TestResult:
    """Fisher's exact test of two proportions (values True/False or 1/0)."""
    a, b = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    if a.size == 0 or b.size == 0:
        return TestResult(math.nan, math.nan)
    table = [[int(a.sum()), int(a.size - a.sum())], [int(b.sum()), int(b.size - b.sum())]]
    return TestResult(float(stats.fisher_exact(table).pvalue), float(a.mean() - b.mean()))


def mann_whitney(a: np.ndarray, b: np.ndarray) -> TestResult:
    """Mann-Whitney U test; every value tied (no information): p = 1."""
    a, b = _finite(a), _finite(b)
    if a.size == 0 or b.size == 0:
        return TestResult(math.nan, math.nan)
    res = stats.mannwhitneyu(a, b, alternative="two-sided", use_continuity=True, method="auto")
    effect = float(res.statistic) / (a.size * b.size)
    p = float(res.pvalue)
    return TestResult(1.0 if math.isnan(p) and np.ptp(np.concatenate([a, b])) == 0 else p, effect)


def logrank(time_a: np.ndarray, event_a: np.ndarray, time_b: np.ndarray, event_b: np.ndarray) -> TestResult:
    """Log-rank test of two right-censored samples (``event`` False = censored) with the Cox hazard
    ratio; no events at all: p = 1."""
    ta, ea = np.asarray(time_a, dtype=float), np.asarray(event_a, dtype=bool)
    tb, eb = np.asarray(time_b, dtype=float), np.asarray(event_b, dtype=bool)
    if ta.size == 0 or tb.size == 0:
        return TestResult(math.nan, math.nan)
    hr, ci = cox_hazard_ratio(ta, ea, tb, eb)
    if not (ea.any() or eb.any()):
        return TestResult(1.0, hr, ci)
    x = stats.CensoredData(uncensored=ta[ea], right=ta[~ea])
    y = stats.CensoredData(uncensored=tb[eb], right=tb[~eb])
    p = float(stats.logrank(x, y).pvalue)
    return TestResult(1.0 if math.isnan(p) else p, hr, ci)


def cox_hazard_ratio(ta: np.ndarray, ea: np.ndarray, tb: np.ndarray,
                     eb: np.ndarray) -> tuple[float, tuple[float, float] | None]:
    """Hazard ratio A / B and its Wald 95% interval from a Cox model with the arm as covariate
    (statsmodels ``PHReg``, Efron ties). An arm without events has no finite maximum likelihood
    estimate: (NaN, None), "not estimable"."""
    if not (ea.any() and eb.any()):
        return math.nan, None
    time = np.concatenate([ta, tb])
    arm_a = np.concatenate([np.ones(ta.size), np.zeros(tb.size)])[:, None]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", (ConvergenceWarning, HessianInversionWarning, RuntimeWarning))
        fit = PHReg(time, arm_a, status=np.concatenate([ea, eb]).astype(float), ties="efron").fit()
    beta, (lo, hi) = float(fit.params[0]), fit.conf_int(0.05)[0]
    if not (np.isfinite(beta) and np.isfinite(lo) and np.isfinite(hi)):
        return math.nan, None
    return math.exp(beta), (math.exp(lo), math.exp(hi))


def _count_fit(y: np.ndarray, design: np.ndarray, exposure: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Log-likelihood, coefficients and their Wald 95% intervals of the better of the NB2 and the
    Poisson maximum likelihood fits (NB2 tends to Poisson as its dispersion goes to 0, where its
    optimiser stops short of the boundary)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", (ConvergenceWarning, HessianInversionWarning, RuntimeWarning))
        fits = [Poisson(y, design, exposure=exposure).fit(disp=0, method="newton", maxiter=100)]
        try:
            fits.append(NegativeBinomial(y, design, exposure=exposure, loglike_method="nb2").fit(
                disp=0, method="bfgs", maxiter=1000, gtol=1e-10))
        except (np.linalg.LinAlgError, ValueError):
            pass
        llf = [float(f.llf) if np.isfinite(f.llf) else -math.inf for f in fits]
        # NB2's log-likelihood loses digits as its dispersion nears 0: below ALPHA_MIN it is the Poisson limit
        best = 1 if len(fits) > 1 and fits[1].params[-1] > ALPHA_MIN and llf[1] > llf[0] else 0
        return llf[best], np.asarray(fits[best].params), np.asarray(fits[best].conf_int(0.05))


def negative_binomial(counts_a: np.ndarray, counts_b: np.ndarray, exposure_a: np.ndarray | None = None,
                      exposure_b: np.ndarray | None = None) -> TestResult:
    """Likelihood-ratio test (chi-square, 1 df) of the arm in a negative binomial (NB2) regression of
    per-patient counts with a shared dispersion and each patient's exposure (default 1) as offset.

    The effect is the rate ratio A / B (the ratio of mean counts with equal exposure); its interval is
    the Wald one of the arm coefficient, None when an arm has no events (ratio 0 or infinite)."""
    a, b = np.asarray(counts_a, dtype=float), np.asarray(counts_b, dtype=float)
    xa = np.ones(a.size) if exposure_a is None else np.asarray(exposure_a, dtype=float)
    xb = np.ones(b.size) if exposure_b is None else np.asarray(exposure_b, dtype=float)
    keep_a, keep_b = np.isfinite(a) & np.isfinite(xa), np.isfinite(b) & np.isfinite(xb)
    a, b, xa, xb = a[keep_a], b[keep_b], xa[keep_a], xb[keep_b]
    if a.size == 0 or b.size == 0 or np.any(a < 0) or np.any(b < 0) or np.any(xa <= 0) or np.any(xb <= 0):
        return TestResult(math.nan, math.nan)
    ra, rb = a.sum() / xa.sum(), b.sum() / xb.sum()
    if ra == 0 or rb == 0:    # an arm without events: the rate ratio is 0 or infinite, not a fitted value
        effect = math.nan if ra == rb else (0.0 if ra == 0 else math.inf)
    y, exposure = np.concatenate([a, b]), np.concatenate([xa, xb])
    if y.sum() == 0:
        return TestResult(1.0, math.nan)
    arm_a = np.concatenate([np.ones(a.size), np.zeros(b.size)])
    llf_full, params, intervals = _count_fit(y, np.column_stack([np.ones(y.size), arm_a]), exposure)
    llf_null = _count_fit(y, np.ones((y.size, 1)), exposure)[0]
    p = float(stats.chi2.sf(max(0.0, 2.0 * (llf_full - llf_null)), 1))
    if ra == 0 or rb == 0:
        return TestResult(p, effect)
    lo, hi = intervals[1]
    ci = (math.exp(lo), math.exp(hi)) if np.isfinite(lo) and np.isfinite(hi) else None
    return TestResult(p, math.exp(float(params[1])), ci)
