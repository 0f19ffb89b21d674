"""The patients of one arm: sampled virtual patients plus the trial's eligibility covariates.

Eligibility draws use extra random streams of the same patient, seeded by
(seed, arm, patient, stream), so a patient's covariates never depend on
chunking.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import truncnorm

from cartsim.disease import diseases
from cartsim.model import Model
from cartsim.population import Population, sample
from cartsim.trial.config import EDSS_STEPS, TrialConfig

AGE_STREAM, EDSS_STREAM = 1, 2


def _rng(cfg: TrialConfig, arm: int, patient: int, stream: int) -> np.random.Generator:
    return np.random.default_rng([cfg.trial.seed, arm, int(patient), stream])


def eligible_ages(cfg: TrialConfig, model: Model, arm: int, patients: np.ndarray, ages: np.ndarray,
                  bounds: tuple[float, float]) -> np.ndarray:
    """Ages within ``bounds``: a patient's sampled age if it lies within, else a draw from the
    age distribution truncated to ``bounds`` (together: exactly the truncated distribution)."""
    lo, hi = bounds
    mean, sd = diseases()[cfg.population.disease].age_median, model.table.value("age_sd")
    out = ages.copy()
    for k in np.flatnonzero((ages < lo) | (ages > hi)):
        u = _rng(cfg, arm, patients[k], AGE_STREAM).random()
        out[k] = truncnorm.ppf(u, (lo - mean) / sd, (hi - mean) / sd, loc=mean, scale=sd)
    return np.clip(out, lo, hi)


def baseline_edss(cfg: TrialConfig, arm: int, patients: np.ndarray, bounds: tuple[float, float]) -> np.ndarray:
    """Baseline EDSS, uniform over the scale's steps within ``bounds``."""
    lo, hi = bounds
    steps = np.array([s for s in EDSS_STEPS if lo <= s <= hi])
    return np.array([_rng(cfg, arm, p, EDSS_STREAM).choice(steps) for p in patients])


def draw(cfg: TrialConfig, model: Model, arm: int, first: int, n: int) -> Population:
    """Patients ``first..first+n-1`` of arm ``arm``, with the trial's covariates."""
    pop = sample(model, diseases()[cfg.population.disease], n, cfg.trial.seed, arm, first, cfg.population.courses)
    cov = pop.covariates.copy()
    ids = cov["patient"].to_numpy()
    if cfg.population.age is not None:
        cov["age"] = eligible_ages(cfg, model, arm, ids, cov["age"].to_numpy(float), cfg.population.age)
    if cfg.population.edss is not None:
        cov["edss"] = baseline_edss(cfg, arm, ids, cfg.population.edss)
    return pop.with_covariates(cov)
