"""``cartsim fit``: a population fit of a NONMEM-style dataset, its tables, goodness-of-fit data and VPC.

Data flow: dataset -> :mod:`cartsim.fit.data` (arrays) -> :mod:`cartsim.fit.problem` (statistical model) ->
:mod:`cartsim.fit.foce` (FOCE-I estimates, standard errors, EBEs) -> optionally :mod:`cartsim.fit.bayes`
(posterior) -> :class:`FitResult` (tables) -> :mod:`cartsim.outputs.fit` (files and figures).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from cartsim.errors import CartsimInputError
from cartsim.exporters.nonmem import BY_DVID
from cartsim.fit import bayes, foce
from cartsim.fit.data import fit_data
from cartsim.fit.fitted import Fitted
from cartsim.fit.problem import Problem, make_problem
from cartsim.model import build_model
from cartsim.scenario import Scenario

METHODS = ("foce-i", "bayes")
Z975 = bayes.Z975


@dataclass(frozen=True)
class FitResult:
    """A finished fit: the estimates (``parameters``), each patient's values (``individual``), predictions at
    every observation (``predictions``), the posterior draws of a Bayesian fit, and what it took."""

    method: str
    scenario: Scenario
    problem: Problem
    estimate: foce.Estimate
    parameters: pd.DataFrame
    individual: pd.DataFrame
    predictions: pd.DataFrame
    posterior: bayes.Posterior | None
    seconds: float

    @property
    def aic(self) -> float:
        return self.estimate.ofv + 2 * self.estimate.x.size

    @property
    def bic(self) -> float:
        return self.estimate.ofv + self.estimate.x.size * math.log(self.problem.data.dv.size)

    def fitted(self, dataset: str = "") -> Fitted:
        """The fitted typical values (posterior medians for a Bayesian fit) as a ``--parameters`` file."""
        theta = self.parameters[self.parameters.role == "theta"]
        omega = self.parameters[self.parameters.role == "omega"]
        meta = {"disease": self.scenario.disease.name, "method": self.method, "dataset": dataset,
                "patients": int(self.problem.data.n), "ofv": round(float(self.estimate.ofv), 4)}
        return Fitted(dict(zip(theta.parameter, theta.estimate)), self.scenario.therapy,
                      dict(zip(omega.parameter, omega.estimate)), meta)


def fit(data: pd.DataFrame, therapy: str, estimate: list[str], disease: str = "sle", dvids: list[int] | None = None,
        method: str = "foce-i", walkers: int = 16, steps: int = 200, seed: int = 0, progress=None,
        field: str = "DATA") -> FitResult:
    """Fit ``estimate`` (typical values with log-normal IIV) to a checked NONMEM-style ``data`` set."""
    if method not in METHODS:
        raise CartsimInputError("--method", f"unknown method {method!r}", ", ".join(METHODS))
    began = time.perf_counter()
    model = build_model()
    days = max(1.0, math.ceil(float(data.TIME.max())))
    scenario = Scenario.make(therapy, disease, days)
    fd = fit_data(data, model, dvids, field, start=scenario.start)
    problem = make_problem(model, scenario, fd, list(estimate))
    est = foce.estimate(problem, progress=None if progress is None else lambda e, v: progress("foce", e, v))
    posterior = None
    if method == "bayes":
        posterior = bayes.sample(problem, est.x, walkers, steps, seed=seed,
                                 progress=None if progress is None else lambda i, n: progress("mcmc", i, n))
    return FitResult(method, scenario, problem, est, parameter_table(problem, est, posterior),
                     individual_table(problem, est), prediction_table(problem, est), posterior,
                     time.perf_counter() - began)


def names_of(problem: Problem) -> list[tuple[str, str, str]]:
    """(role, parameter or DVID name, unit) of each coordinate of x."""
    units = [problem.model.table[p].unit for p in problem.names]
    return ([("theta", p, u) for p, u in zip(problem.names, units)]
            + [("omega", p, "log-SD") for p in problem.names]
            + [("sigma", f"DVID {d} ({BY_DVID[d].quantity})", "log-SD") for d in problem.data.dvids])


def parameter_table(problem: Problem, est: foce.Estimate, posterior: bayes.Posterior | None) -> pd.DataFrame:
    """One row per estimated quantity: estimate, standard error of its log, relative SE, 95% interval
    (Wald on the log scale; a Bayesian fit: posterior median and 2.5-97.5% instead), the starting value and
    whether it sits at a bound of the search."""
    se = np.sqrt(np.diag(est.cov)) if est.cov is not None else np.full(est.x.size, np.nan)
    low, high = np.array(foce.bounds(problem)).T
    start = foce.initial_x(problem)
    rows = []
    for i, (role, name, unit) in enumerate(names_of(problem)):
        row = {"role": role, "parameter": name, "unit": unit, "estimate": float(np.exp(est.x[i])),
               "se_log": float(se[i]), "rse_percent": float(100 * se[i]),
               "ci_low": float(np.exp(est.x[i] - Z975 * se[i])), "ci_high": float(np.exp(est.x[i] + Z975 * se[i])),
               "start": float(np.exp(start[i])),
               "at_bound": bool(min(est.x[i] - low[i], high[i] - est.x[i]) < 1e-3)}
        if posterior is not None:
            q = np.exp(np.quantile(posterior.draws[:, i], [0.025, 0.5, 0.975]))
            row |= {"foce_estimate": row["estimate"], "estimate": float(q[1]), "ci_low": float(q[0]),
                    "ci_high": float(q[2]), "se_log": float(np.std(posterior.draws[:, i])),
                    "rse_percent": float(100 * np.std(posterior.draws[:, i]))}
        rows.append(row)
    return pd.DataFrame(rows)


def individual_table(problem: Problem, est: foce.Estimate) -> pd.DataFrame:
    """Each patient's EBE (eta) and individual value of every estimated parameter."""
    out = pd.DataFrame({"ID": problem.data.ids})
    for j, p in enumerate(problem.names):
        out[f"eta_{p}"] = est.eta[:, j]
        out[p] = np.exp(est.x[j] + est.eta[:, j])
    return out


def prediction_table(problem: Problem, est: foce.Estimate) -> pd.DataFrame:
    """Every fitted observation with its population (PRED, eta 0) and individual (IPRED, EBE) prediction and
    the individual weighted residual on the log scale (IWRES; empty for BLQ records)."""
    k = problem.k
    lt = est.x[:k]
    etas = np.stack([np.zeros_like(est.eta), est.eta])
    f = problem.predict(lt[None, None, :] + etas)
    sigma = np.exp(est.x[2 * k:])[problem.data.column()]
    d = problem.data
    iwres = (np.log(d.dv) - np.log(np.maximum(f[1], 1e-300))) / sigma
    return pd.DataFrame({"ID": d.ids[d.patient], "TIME": d.time, "DVID": d.dvid, "DV": d.dv,
                         "BLQ": d.blq.astype(int), "PRED": f[0], "IPRED": f[1],
                         "IWRES": np.where(d.blq, np.nan, iwres)})


def vpc(problem: Problem, x: np.ndarray, replicates: int = 100, seed: int = 0) -> np.ndarray:
    """``replicates`` simulated copies of the dataset's observations (R, m) under the estimates: new random
    effects for every patient and new residual errors, all replicates solved as one population."""
    k = problem.k
    rng = np.random.default_rng(seed)
    eta = rng.standard_normal((replicates, problem.data.n, k)) * np.exp(x[k:2 * k])
    f = problem.predict(x[None, None, :k] + eta)
    sigma = np.exp(x[2 * k:])[problem.data.column()]
    return f * np.exp(rng.standard_normal(f.shape) * sigma)


def individual_curves(problem: Problem, est: foce.Estimate, patients: np.ndarray, points: int = 200
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Individual predictions of ``patients`` (row indices) on a fine grid: times (T,), values (P, T, Q)."""
    d = problem.data
    times = np.unique(np.concatenate([np.linspace(d.t0, d.times.max(), points), d.times]))
    sol = problem.solve(patients, est.x[:problem.k] + est.eta[patients], times, rtol=1e-6, atol=1e-8)
    return times, sol.values
