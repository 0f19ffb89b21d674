"""Bayesian population fit for small cohorts: the posterior of (log theta, log omega, log sigma) sampled by
emcee's affine-invariant ensemble, each step's walkers solved as one population.

The likelihood is the FOCE-I marginal likelihood (:mod:`cartsim.fit.foce`: each patient's random effects
integrated by the Laplace approximation around its conditional mode), so the sampled dimension stays 2k + d
whatever the number of patients. Priors (normal on the log scale):

- typical values: centred on the therapy's value, with the width of the parameter table's uncertainty range
  where it has one (its 2.5-97.5% span read as +-1.96 SD), else 10-fold either side;
- omega: median 0.3, log-SD 1; sigma: median 0.2, log-SD 1 (weakly informative).
"""

from __future__ import annotations

from dataclasses import dataclass

import emcee
import numpy as np

from cartsim.fit import foce
from cartsim.fit.problem import Problem

Z975 = 1.959963984540054
WIDE = np.log(10.0) / Z975           # 10-fold either side, as a 95% span


@dataclass(frozen=True)
class Prior:
    mean: np.ndarray      # (2k + d,) on the log scale
    sd: np.ndarray

    def log_density(self, xs: np.ndarray) -> np.ndarray:
        return -0.5 * np.sum(((xs - self.mean) / self.sd) ** 2, axis=1)


def prior(problem: Problem) -> Prior:
    """Priors from the parameter table's uncertainty ranges (see the module docstring)."""
    sd = []
    for name in problem.names:
        u = problem.model.table[name].uncertainty
        if u is not None and u.low > 0:
            sd.append(max((np.log(u.high) - np.log(u.low)) / (2 * Z975), 0.05))
        else:
            sd.append(WIDE)
    mean = np.concatenate([np.log(problem.initial), np.full(problem.k, np.log(0.3)), np.full(problem.d, np.log(0.2))])
    return Prior(mean, np.concatenate([sd, np.ones(problem.k + problem.d)]))


@dataclass(frozen=True)
class Posterior:
    draws: np.ndarray             # (draws, 2k + d) on the log scale, after burn-in, walkers pooled
    acceptance: float             # mean acceptance fraction of the walkers
    autocorr: np.ndarray          # integrated autocorrelation time of each coordinate (steps)
    walkers: int
    steps: int
    burn: int
    prior: Prior


def sample(problem: Problem, start: np.ndarray, walkers: int = 16, steps: int = 200, burn: int | None = None,
           seed: int = 0, progress=None) -> Posterior:
    """Sample the posterior from a ball around ``start`` (the FOCE-I estimate)."""
    dim = start.size
    walkers = max(walkers, 2 * dim + 2)
    burn = steps // 3 if burn is None else burn
    pr = prior(problem)
    obj = foce.Objective(problem)
    low, high = np.array(foce.bounds(problem)).T

    def log_prob(xs: np.ndarray) -> np.ndarray:
        inside = np.all((xs >= low) & (xs <= high), axis=1)
        out = np.full(xs.shape[0], -np.inf)
        if inside.any():
            out[inside] = -0.5 * obj.many(xs[inside]) + pr.log_density(xs[inside])
        return np.where(np.isfinite(out), out, -np.inf)

    rng = np.random.default_rng(seed)
    p0 = start + 0.02 * rng.standard_normal((walkers, dim))
    p0 = np.clip(p0, low + 1e-9, high - 1e-9)
    sampler = emcee.EnsembleSampler(walkers, dim, log_prob, vectorize=True)
    sampler.random_state = np.random.RandomState(seed).get_state()     # emcee draws its moves from this
    for i, _ in enumerate(sampler.sample(p0, iterations=steps)):
        if progress is not None:
            progress(i + 1, steps)
    chain = sampler.get_chain(discard=burn, flat=True)
    tau = sampler.get_autocorr_time(discard=burn, quiet=True) if steps - burn > 1 else np.full(dim, np.nan)
    return Posterior(chain, float(np.mean(sampler.acceptance_fraction)), np.asarray(tau, float), walkers, steps,
                     burn, pr)
