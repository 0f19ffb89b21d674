"""Two-arm hypothesis tests of a primary endpoint, one per endpoint kind.

Each test takes the per-patient values of arm A and arm B (failed patients
removed) and returns a two-sided p-value and an estimate of the effect of A
relative to B:

- continuous: Welch two-sample t-test (unequal variances); effect: difference in means, A - B
- binary: Fisher's exact test on the 2x2 table; effect: difference in proportions, A - B
- rate and count: negative binomial (NB2) likelihood-ratio test on per-patient event counts (rate
  times exposure), dispersion shared by the arms and estimated by maximum likelihood (a Poisson test
  when the data show no overdispersion); effect: rate ratio A / B
- time to event: log-rank test; effect: hazard ratio A / B estimated as (O_A / E_A) / (O_B / E_B)
- ordinal: Mann-Whitney U test; effect: P(A > B) + P(A = B) / 2 (0.5: no difference)

SciPy computes the t-test, Fisher's test, the log-rank test and the U test. SciPy has no negative
binomial regression, so its likelihood-ratio test is written here (closed-form means per arm, a
one-dimensional search for the dispersion).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import optimize, special, stats

Kind = Literal["continuous", "count", "time_to_event", "ordinal", "binary", "rate"]

TEST_NAMES: dict[str, str] = {
    "continuous": "Welch two-sample t-test (two-sided, unequal variances)",
    "binary": "Fisher's exact test (two-sided)",
    "rate": "negative binomial (NB2) likelihood-ratio test of the rate ratio on per-patient event counts "
            "(shared dispersion by maximum likelihood)",
    "count": "negative binomial (NB2) likelihood-ratio test of the ratio of mean counts "
             "(shared dispersion by maximum likelihood)",
    "time_to_event": "log-rank test (two-sided)",
    "ordinal": "Mann-Whitney U test (two-sided; normal approximation with tie and continuity correction, "
               "exact for small samples without ties)",
}
EFFECTS: dict[str, str] = {
    "continuous": "difference in means (A - B)",
    "binary": "difference in proportions (A - B)",
    "rate": "rate ratio (A / B)",
    "count": "ratio of mean counts (A / B)",
    "time_to_event": "hazard ratio (A / B), (O_A / E_A) / (O_B / E_B) of the log-rank test",
    "ordinal": "probability of a higher grade in A: P(A > B) + P(A = B) / 2",
}
LOG_ALPHA_BOUNDS = (-12.0, 8.0)   # search range of log(dispersion); below it the data are taken as Poisson


@dataclass(frozen=True)
class TestResult:
    """Two-sided p-value (NaN when the data cannot be tested) and effect estimate (NaN if undefined)."""

    p_value: float
    effect: float

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
    """Log-rank test of two right-censored samples (``event`` False = censored); no events at all: p = 1."""
    ta, ea = np.asarray(time_a, dtype=float), np.asarray(event_a, dtype=bool)
    tb, eb = np.asarray(time_b, dtype=float), np.asarray(event_b, dtype=bool)
    if ta.size == 0 or tb.size == 0:
        return TestResult(math.nan, math.nan)
    o_a, e_a, o_b, e_b = observed_expected(ta, ea, tb, eb)
    with np.errstate(divide="ignore", invalid="ignore"):
        hr = float(np.float64(o_a / e_a) / np.float64(o_b / e_b)) if e_a > 0 and e_b > 0 else math.nan
    if not (ea.any() or eb.any()):
        return TestResult(1.0, hr)
    x = stats.CensoredData(uncensored=ta[ea], right=ta[~ea])
    y = stats.CensoredData(uncensored=tb[eb], right=tb[~eb])
    p = float(stats.logrank(x, y).pvalue)
    return TestResult(1.0 if math.isnan(p) else p, hr)


def observed_expected(ta: np.ndarray, ea: np.ndarray, tb: np.ndarray,
                      eb: np.ndarray) -> tuple[float, float, float, float]:
    """Observed and expected (under equal hazards) events of arms A and B: O_A, E_A, O_B, E_B.

    At each distinct event time, E_A = deaths x at risk in A / at risk overall; a patient censored at an
    event time is at risk at it."""
    times = np.unique(np.concatenate([ta[ea], tb[eb]]))
    at_risk_a = ta.size - np.searchsorted(np.sort(ta), times, side="left")
    at_risk_b = tb.size - np.searchsorted(np.sort(tb), times, side="left")
    deaths = (np.bincount(np.searchsorted(times, ta[ea]), minlength=times.size)
              + np.bincount(np.searchsorted(times, tb[eb]), minlength=times.size))
    e_a = float(np.sum(deaths * at_risk_a / (at_risk_a + at_risk_b)))
    return float(ea.sum()), e_a, float(eb.sum()), float(deaths.sum() - e_a)


def _nb_loglik(y: np.ndarray, mu: np.ndarray, log_alpha: float | None) -> float:
    """NB2 log-likelihood (variance mu + alpha mu^2) of counts ``y`` with means ``mu``; None: Poisson.

    Written with gamma functions, so it also takes counts that are not whole numbers."""
    if log_alpha is None:
        return float(np.sum(special.xlogy(y, mu) - mu - special.gammaln(y + 1)))
    alpha = math.exp(log_alpha)
    r = 1.0 / alpha
    return float(np.sum(special.gammaln(y + r) - special.gammaln(r) - special.gammaln(y + 1)
                        + special.xlogy(y, alpha * mu) - (y + r) * np.log1p(alpha * mu)))


def _nb_profile(y: np.ndarray, mu: np.ndarray) -> float:
    """Log-likelihood maximised over the dispersion (means fixed at their maximum likelihood values)."""
    poisson = _nb_loglik(y, mu, None)   # the limit alpha -> 0, below the search range
    best = optimize.minimize_scalar(lambda la: -_nb_loglik(y, mu, la), bounds=LOG_ALPHA_BOUNDS,
                                    method="bounded", options={"xatol": 1e-8})
    return max(poisson, -float(best.fun))


def negative_binomial(counts_a: np.ndarray, counts_b: np.ndarray) -> TestResult:
    """Likelihood-ratio test of equal means of two NB2 samples with a shared dispersion (chi-square, 1 df).

    Patients share one exposure (the trial's horizon), so the rate ratio is the ratio of mean counts
    and each arm's maximum likelihood mean is its sample mean, whatever the dispersion."""
    a, b = _finite(counts_a), _finite(counts_b)
    if a.size == 0 or b.size == 0 or np.any(a < 0) or np.any(b < 0):
        return TestResult(math.nan, math.nan)
    ma, mb = float(a.mean()), float(b.mean())
    effect = ma / mb if mb > 0 else (math.inf if ma > 0 else math.nan)
    if ma == mb:
        return TestResult(1.0, effect)
    y = np.concatenate([a, b])
    full = _nb_profile(y, np.concatenate([np.full(a.size, ma), np.full(b.size, mb)]))
    null = _nb_profile(y, np.full(y.size, y.mean()))
    lr = max(0.0, 2.0 * (full - null))
    return TestResult(float(stats.chi2.sf(lr, 1)), effect)
