"""The statistical model of a population fit and its likelihood, evaluated for many parameter sets at once.

Individual parameters are log-normal: ``p_i = theta * exp(eta_i)``, ``eta_i ~ N(0, omega^2)`` (diagonal
Omega, as NONMEM's ``THETA * EXP(ETA)``). Residual error is additive on the log scale for each observation
type (DVID): ``log DV = log f + eps``, ``eps ~ N(0, sigma_dvid^2)``; a record below the assay limit (BLQ) adds
the probability of lying below it, ``Phi((log LLOQ - log f) / sigma)`` (Beal's M3). Every likelihood term is
written as a squared residual (a BLQ record's as ``-2 log Phi``), so one Gauss-Newton step treats both.

All parameter sets and patients are solved as one population: one compiled engine call per evaluation
(``sets x patients`` rows, each with the dataset's own doses).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from scipy import stats

from cartsim.engine.solve import Solution, Trigger, solve
from cartsim.errors import CartsimInputError
from cartsim.fit.data import FitData
from cartsim.model.ir import Model
from cartsim.population import typical
from cartsim.scenario import Scenario

LOG_2PI = float(np.log(2 * np.pi))
FLOOR = 1e-300          # predictions are floored here before the log (an undetectable level, not zero)
RTOL, ATOL = 1e-8, 1e-12  # tight: Jacobians are finite differences of the solution


@dataclass(frozen=True)
class Problem:
    """What is fitted: the estimated parameters of ``model`` for the patients of ``data`` under ``scenario``."""

    model: Model
    data: FitData
    names: tuple[str, ...]        # estimated parameters
    base: np.ndarray              # (n, P) each patient's parameter values before the estimated ones are set
    triggers: tuple[Trigger, ...]
    initial: np.ndarray           # (k,) typical values the fit starts from (the therapy's, in the table)

    @property
    def k(self) -> int:
        return len(self.names)

    @property
    def d(self) -> int:
        return len(self.data.dvids)

    def predict(self, log_phi: np.ndarray, active: np.ndarray | None = None) -> np.ndarray:
        """Predictions (S, m) at every observation for individual log parameters ``log_phi`` (S, n, k).

        ``active`` (S, n) picks the patients solved (all by default): the others' records are NaN. Every
        solved patient is one row of one engine call."""
        log_phi = np.asarray(log_phi, dtype=float)
        s, n = log_phi.shape[0], self.data.n
        active = np.ones((s, n), bool) if active is None else np.asarray(active, bool)
        rows = np.full((s, n), -1)
        rows[active] = np.arange(int(active.sum()))
        f = np.full((s, self.data.patient.size), np.nan)
        if not active.any():
            return f
        sol = self.solve(np.nonzero(active)[1], log_phi[active], self.data.times)
        row = rows[:, self.data.patient]                                     # (S, m)
        got = row >= 0
        values = sol.values[row[got], self.data.time_index[np.nonzero(got)[1]],
                            self.data.column()[np.nonzero(got)[1]]]
        values[sol.status[row[got]] != 0] = np.nan
        f[got] = values
        return f

    def solve(self, patients: np.ndarray, log_phi: np.ndarray, times: np.ndarray, **tolerances) -> Solution:
        """One engine call: patient rows ``patients`` (dataset order, repeats allowed) with individual log
        parameters ``log_phi`` (rows, k) and their own doses, observed quantities at ``times`` (the fit's tight
        tolerances unless given)."""
        params = self.base[patients].copy()
        params[:, [self.model.parameters.index(p) for p in self.names]] = np.exp(log_phi)
        doses = self.data.doses.take(patients)
        return solve(self.model, params, times, self.data.quantities, doses, self.triggers, t0=self.data.t0,
                     **({"rtol": RTOL, "atol": ATOL} | tolerances))

    def residuals(self, f: np.ndarray, log_sigma: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Residuals r (S, m) whose squares, plus the constants c (S, m), are each record's -2 log-likelihood.

        ``log_sigma`` is (S, d). A failed or non-finite prediction gives an infinite residual."""
        sigma = np.exp(log_sigma)[:, self.data.column()]
        lf = np.log(np.maximum(f, FLOOR))
        blq = self.data.blq
        r = np.empty_like(lf)
        r[:, ~blq] = (np.log(self.data.dv[~blq]) - lf[:, ~blq]) / sigma[:, ~blq]
        if blq.any():
            z = (np.log(self.data.lloq[blq]) - lf[:, blq]) / sigma[:, blq]
            r[:, blq] = np.sqrt(np.maximum(-2.0 * stats.norm.logcdf(z), 0.0))
        c = np.where(blq, 0.0, LOG_2PI + 2.0 * np.log(sigma))
        r[~np.isfinite(r)] = np.inf
        return r, c

    def per_patient(self, values: np.ndarray) -> np.ndarray:
        """Sum (S, m) values over each patient's records: (S, n)."""
        out = np.zeros((values.shape[0], self.data.n))
        np.add.at(out, (slice(None), self.data.patient), values)
        return out


def make_problem(model: Model, scenario: Scenario, data: FitData, names: list[str]) -> Problem:
    """The fit of ``names`` for ``data``'s patients: the typical patient of the scenario's disease with each
    patient's weight, the values the therapy sets, and the scenario's state-triggered rules."""
    unknown = [p for p in names if p not in model.parameters]
    if unknown:
        raise CartsimInputError("--estimate", f"unknown parameter {unknown[0]!r}",
                                "names listed by `cartsim parameters`")
    if len(set(names)) != len(names) or not names:
        raise CartsimInputError("--estimate", "name each parameter once, at least one",
                                "comma-separated parameter names")
    pop = typical(model, scenario.disease, scenario.course)
    pop = replace(pop, params=np.repeat(pop.params, data.n, axis=0),
                  covariates=pop.covariates.loc[[0] * data.n].reset_index(drop=True))
    pop = pop.with_parameters({"weight_kg": data.weight})
    pop, _ = scenario.patient_inputs(model, pop)      # the therapy's values; the dataset's doses replace its own
    initial = np.array([pop.column(p)[0] for p in names])
    bad = [p for p, v in zip(names, initial) if not v > 0]
    if bad:
        raise CartsimInputError("--estimate", f"{bad[0]} is {pop.column(bad[0])[0]:g} for this therapy: a "
                                "log-normal parameter must be > 0", "parameters with a positive value")
    return Problem(model, data, tuple(names), pop.params, scenario.triggers(), initial)
