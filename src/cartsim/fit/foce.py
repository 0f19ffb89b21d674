"""FOCE-I: the first-order conditional estimation of a population fit, as NONMEM's ``METHOD=1 INTERACTION``.

Each patient's marginal likelihood is the Laplace approximation around its conditional mode (the empirical Bayes
estimate, EBE) with the Gauss-Newton Hessian ``J'J + Omega^-1`` (``J``: derivatives of the residuals in
:mod:`cartsim.fit.problem` with respect to eta). With residuals on the log scale the residual variance does not
depend on the prediction, so this is FOCE with interaction. The objective is ``-2 log L``::

    OFV = sum_i [ sum_j (r_ij^2 + c_ij) + eta_i' Omega^-1 eta_i + log det(I + Omega J_i' J_i) ]

(constants included: ``c_ij = log(2 pi sigma^2)`` of each measured record). The conditional modes of all patients
and all parameter sets are found together by a damped Gauss-Newton iteration, one engine call per iteration
(the trial point and its finite-difference neighbours in one population). The outer problem (log theta, log
omega, log sigma) is minimised by SciPy's L-BFGS-B within box bounds, its gradient a forward difference
whose points are solved in the same population; standard errors come from the observed Fisher information, half the
Hessian of the OFV (statsmodels' finite differences), on the log scale.

Why this is written here: nlmixr2, NONMEM and Monolix are not Python libraries, and the Python ones (e.g.
pharmpy) drive those programs; the estimation must call cartsim's batched engine.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import optimize, stats
from statsmodels.tools.numdiff import approx_hess3

from cartsim.fit.problem import Problem

STEP = 1e-4            # finite-difference step in eta (log scale)
INNER_TOL = 1e-5       # conditional modes: largest eta step at convergence
INNER_FTOL = 1e-7      # conditional modes: an accepted step that lowers -2 log p by less has converged
INNER_MAX = 60


@dataclass
class Modes:
    """Conditional modes of S parameter sets: eta (S, n, k), the Jacobian (S, m, k), residuals and constants."""

    eta: np.ndarray
    jac: np.ndarray
    r: np.ndarray
    c: np.ndarray
    iterations: int = 0
    converged: bool = True


def split(problem: Problem, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """log theta (S, k), log omega (S, k), log sigma (S, d) from rows of x (S, 2k + d)."""
    x = np.atleast_2d(x)
    k = problem.k
    return x[:, :k], x[:, k:2 * k], x[:, 2 * k:]


def _evaluate(problem: Problem, log_theta, eta, log_sigma, active=None):
    """Residuals at eta and at eta + STEP e_q for each q, from one engine call: r (S, m), J (S, m, k), c.

    ``active`` (S, n) limits the solves to those patients (the others' records come back NaN)."""
    s, n, k = eta.shape
    points = np.concatenate([eta[:, None], eta[:, None] + STEP * np.eye(k)[None, :, None, :]], axis=1)
    log_phi = log_theta[:, None, None, :] + points                      # (S, k+1, n, k)
    act = None if active is None else np.repeat(active, k + 1, axis=0)
    f = problem.predict(log_phi.reshape(s * (k + 1), n, k), act).reshape(s, k + 1, -1)
    sig = np.repeat(log_sigma, k + 1, axis=0)
    r, c = problem.residuals(f.reshape(s * (k + 1), -1), sig)
    r = r.reshape(s, k + 1, -1)
    with np.errstate(invalid="ignore"):                                  # inf - inf: a failed solve, 0 below
        jac = (r[:, 1:] - r[:, :1]) / STEP                                  # (S, k, m)
    jac[~np.isfinite(jac)] = 0.0
    return r[:, 0], np.moveaxis(jac, 1, 2), c.reshape(s, k + 1, -1)[:, 0]


def conditional_objective(problem: Problem, r, c, eta, log_omega) -> np.ndarray:
    """Each patient's -2 log p(y_i, eta_i) without log det Omega: (S, n)."""
    return problem.per_patient(r ** 2 + c) + np.sum(eta ** 2 * np.exp(-2 * log_omega)[:, None, :], axis=2)


def conditional_modes(problem: Problem, log_theta, log_omega, log_sigma, eta0=None) -> Modes:
    """The EBEs of every patient under every parameter set (S rows), by damped Gauss-Newton (Levenberg)."""
    log_theta, log_omega, log_sigma = (np.atleast_2d(a) for a in (log_theta, log_omega, log_sigma))
    s, n, k = log_theta.shape[0], problem.data.n, problem.k
    eta = np.zeros((s, n, k)) if eta0 is None else np.array(eta0, dtype=float)
    prec = np.exp(-2 * log_omega)[:, None, :]                             # (S, 1, k)
    r, jac, c = _evaluate(problem, log_theta, eta, log_sigma)
    obj = conditional_objective(problem, r, c, eta, log_omega)
    lam = np.full((s, n), 1e-3)
    done = np.zeros((s, n), bool)
    it = 0
    for it in range(1, INNER_MAX + 1):
        jtj, jtr = _normal_equations(problem, jac, r)
        a = jtj + prec[..., None] * np.eye(k)
        g = jtr + prec * eta
        damped = a + lam[..., None, None] * np.eye(k) * np.diagonal(a, axis1=2, axis2=3)[..., None]
        delta = -np.linalg.solve(damped, g[..., None])[..., 0]
        delta[done] = 0.0
        trial = eta + delta
        r_t, jac_t, c_t = _evaluate(problem, log_theta, trial, log_sigma, ~done)     # converged patients rest
        obj_t = conditional_objective(problem, r_t, c_t, trial, log_omega)
        better = (obj_t <= obj) & np.isfinite(obj_t)
        flat = better & (obj - obj_t < INNER_FTOL)                       # no measurable gain: at the mode
        eta = np.where(better[..., None], trial, eta)
        obj = np.where(better, obj_t, obj)
        rows = better[:, problem.data.patient]                            # (S, m): records of improved patients
        r = np.where(rows, r_t, r)
        jac = np.where(rows[..., None], jac_t, jac)
        lam = np.where(better, lam / 3.0, lam * 4.0)
        done |= np.max(np.abs(delta), axis=2) < INNER_TOL                 # a step this small: at the mode
        done |= flat
        done |= lam > 1e8                                                 # no descent left at this point
        if done.all():
            break
    return Modes(eta, jac, r, c, it, bool(done.all()))


def _normal_equations(problem: Problem, jac, r):
    """Per patient J'J (S, n, k, k) and J'r (S, n, k)."""
    s, m, k = jac.shape
    jtj = np.zeros((s, problem.data.n, k, k))
    jtr = np.zeros((s, problem.data.n, k))
    np.add.at(jtj, (slice(None), problem.data.patient), jac[..., :, None] * jac[..., None, :])
    np.add.at(jtr, (slice(None), problem.data.patient), jac * r[..., None])
    return jtj, jtr


def ofv_terms(problem: Problem, modes: Modes, log_omega) -> np.ndarray:
    """Each patient's FOCE-I contribution to -2 log L: (S, n)."""
    log_omega = np.atleast_2d(log_omega)
    jtj, _ = _normal_equations(problem, modes.jac, modes.r)
    omega2 = np.exp(2 * log_omega)[:, None, :, None]
    _, logdet = np.linalg.slogdet(np.eye(problem.k) + omega2 * jtj)
    return conditional_objective(problem, modes.r, modes.c, modes.eta, log_omega) + logdet


def start_points(problem: Problem, log_theta, log_omega, log_sigma, starts: int = 32, seed: int = 0
                 ) -> np.ndarray:
    """Each patient's best of ``starts`` candidate etas (0 and scrambled-Sobol normal draws scaled by omega,
    out to 2.5 omega), by the conditional objective: (S, n, k) starting points for the mode search.

    The conditional objective of a CAR-T patient can have several local minima (B cells coming back early
    with slow expansion, or late with fast), so a local search from 0 alone can stop in the wrong one."""
    log_theta, log_omega, log_sigma = (np.atleast_2d(a) for a in (log_theta, log_omega, log_sigma))
    s, n, k = log_theta.shape[0], problem.data.n, problem.k
    z = stats.norm.ppf(np.clip(stats.qmc.Sobol(k, seed=seed).random(starts), 0.006, 0.994))
    cand = np.concatenate([np.zeros((1, k)), z])                            # (C, k)
    c = cand.shape[0]
    eta = cand[None, :, None, :] * np.exp(log_omega)[:, None, None, :]     # (S, C, 1, k)
    eta = np.broadcast_to(eta, (s, c, n, k)).reshape(s * c, n, k)
    lt, lo, ls = (np.repeat(a, c, axis=0) for a in (log_theta, log_omega, log_sigma))
    f = problem.predict(lt[:, None, :] + eta)
    r, const = problem.residuals(f, ls)
    obj = conditional_objective(problem, r, const, eta, lo).reshape(s, c, n)
    obj = np.where(np.isfinite(obj), obj, np.inf)
    best = np.argmin(obj, axis=1)                                            # (S, n)
    return eta.reshape(s, c, n, k)[np.arange(s)[:, None], best, np.arange(n)[None, :]]


@dataclass
class Objective:
    """The OFV as a function of x = (log theta, log omega, log sigma).

    Each evaluation starts every patient's mode search from the individual parameters (log theta + eta) at
    the lowest OFV seen so far: a far-off trial point of a line search does not move the starting point."""

    problem: Problem
    phi: np.ndarray | None = None          # (n, k) individual log parameters at the best x so far
    best_x: np.ndarray | None = None
    best: float = np.inf
    evaluations: int = 0
    inner_failures: int = 0

    def __call__(self, x: np.ndarray) -> float:
        return float(self.many(np.atleast_2d(x))[0])

    def many(self, xs: np.ndarray) -> np.ndarray:
        """OFVs of several rows of x, solved as one population."""
        xs = np.atleast_2d(xs)
        lt, lo, ls = split(self.problem, xs)
        modes = conditional_modes(self.problem, lt, lo, ls, self._start(lt, lo, ls))
        self.evaluations += xs.shape[0]
        self.inner_failures += int(not modes.converged)
        ofv = ofv_terms(self.problem, modes, lo).sum(axis=1)
        ofv = np.where(np.isfinite(ofv), ofv, np.inf)
        i = int(np.argmin(ofv))
        if ofv[i] < self.best:
            self.best, self.best_x = float(ofv[i]), xs[i].copy()
            self.phi = lt[i][None, :] + modes.eta[i]
        return ofv

    def _start(self, lt, lo, ls) -> np.ndarray:
        if self.phi is None:                 # the first point: search each patient's best start
            return start_points(self.problem, lt, lo, ls)
        return self.phi[None] - lt[:, None, :]

    def modes_at(self, x: np.ndarray) -> tuple[float, Modes]:
        """The OFV at ``x`` and every patient's conditional mode there."""
        lt, lo, ls = split(self.problem, x)
        modes = conditional_modes(self.problem, lt, lo, ls, self._start(lt, lo, ls))
        return float(ofv_terms(self.problem, modes, lo).sum()), modes

    def search_at(self, x: np.ndarray) -> tuple[float, Modes, float]:
        """As :meth:`modes_at`, but each patient's mode is searched both from the warm start and from the best of
        a fresh set of candidates, keeping the one with the lower OFV term; also the OFV from the warm starts
        alone, so the caller sees what the search gained."""
        lt, lo, ls = split(self.problem, x)
        start = self._start(lt, lo, ls)
        fresh = start_points(self.problem, lt, lo, ls, seed=1)
        two = conditional_modes(self.problem, *(np.concatenate([a, a]) for a in (lt, lo, ls)),
                                np.concatenate([start, fresh]))
        terms = ofv_terms(self.problem, two, np.concatenate([lo, lo]))
        terms = np.where(np.isfinite(terms), terms, np.inf)
        pick = (terms[1] < terms[0]).astype(int)                               # (n,) 1 where fresh is lower
        rec = pick[self.problem.data.patient]                                  # (m,)
        m = np.arange(rec.size)
        modes = Modes(two.eta[pick, np.arange(pick.size)][None], two.jac[rec, m][None], two.r[rec, m][None],
                      two.c[rec, m][None], two.iterations, two.converged)
        return float(terms[pick, np.arange(pick.size)].sum()), modes, float(terms[0].sum())

    def restart_from(self, x: np.ndarray, modes: Modes, ofv: float) -> None:
        """Make ``modes`` at ``x`` the starting point of later evaluations."""
        self.best, self.best_x = ofv, np.array(x, float)
        self.phi = x[None, :self.problem.k] + modes.eta[0]


@dataclass(frozen=True)
class Estimate:
    """A converged fit: the estimates on the log scale, their covariance, the OFV and the EBEs."""

    x: np.ndarray                 # (2k + d,) log theta, log omega, log sigma
    cov: np.ndarray | None        # covariance of x (None when the information matrix is not positive definite)
    ofv: float
    eta: np.ndarray               # (n, k) EBEs
    success: bool
    message: str
    evaluations: int
    covariance_message: str
    iterations: int = 0
    inner_failures: int = 0


def initial_x(problem: Problem, omega: float = 0.3, sigma: float = 0.3) -> np.ndarray:
    return np.concatenate([np.log(problem.initial), np.full(problem.k, np.log(omega)),
                           np.full(problem.d, np.log(sigma))])


THETA_FOLD = 20.0       # estimates stay within this factor of the therapy's value (an estimate at the bound is
                        # reported as such)
FAILED = 1e12           # the OFV where the model cannot be solved: finite, so the line search backs off
OMEGA_BOUNDS = (0.01, 3.0)
SIGMA_BOUNDS = (0.005, 5.0)
RESTARTS = 4            # at most this many L-BFGS-B runs, each after a search found better modes
GRAD_STEP = 1e-3        # forward-difference step of the OFV gradient (log scale)


def bounds(problem: Problem) -> list[tuple[float, float]]:
    """Box bounds on x: theta within THETA_FOLD of its start, omega and sigma within their plausible ranges."""
    fold = np.log(THETA_FOLD)
    return ([(v - fold, v + fold) for v in np.log(problem.initial)] + [tuple(np.log(OMEGA_BOUNDS))] * problem.k
            + [tuple(np.log(SIGMA_BOUNDS))] * problem.d)


def estimate(problem: Problem, x0: np.ndarray | None = None, max_iterations: int = 200,
             progress=None) -> Estimate:
    """Minimise the FOCE-I OFV from ``x0`` (default: the therapy's values, omega 0.3, sigma 0.3) by L-BFGS-B.

    Each gradient is a forward difference whose 2k + d + 1 points are solved as one population (one engine
    call per inner iteration), so an outer iteration costs a few engine calls whatever the number of
    parameters."""
    x0 = initial_x(problem) if x0 is None else np.asarray(x0, float)
    obj = Objective(problem)
    dim = x0.size
    steps = GRAD_STEP * np.eye(dim)

    def value_and_gradient(x):
        f = obj.many(np.vstack([x, x + steps]))
        if not np.isfinite(f[0]):
            return FAILED, np.zeros(dim)
        grad = np.where(np.isfinite(f[1:]), (f[1:] - f[0]) / GRAD_STEP, 0.0)
        if progress is not None:
            progress(obj.evaluations, float(f[0]))
        return float(f[0]), grad

    x, nit = x0, 0
    for _ in range(RESTARTS):
        res = optimize.minimize(value_and_gradient, x, jac=True, method="L-BFGS-B", bounds=bounds(problem),
                                options={"maxiter": max_iterations, "ftol": 1e-9, "gtol": 1e-3})
        x, nit = res.x, nit + int(res.nit)
        ofv, modes, here = obj.search_at(x)          # a patient whose mode search stopped in a local minimum
        if ofv > here - 1e-3:
            break
        obj.restart_from(x, modes, ofv)               # ... moves to the better one, and the fit goes on
    eta = modes.eta[0]
    cov, why = covariance(problem, x, eta)
    return Estimate(x, cov, ofv, eta, bool(res.success), str(res.message), obj.evaluations, why,
                    nit, obj.inner_failures)


def covariance(problem: Problem, x: np.ndarray, eta: np.ndarray, step: float = 0.02
               ) -> tuple[np.ndarray | None, str]:
    """Covariance of x from the observed information (half the OFV's Hessian; statsmodels' central differences).

    statsmodels asks for the OFV point by point; its points are recorded in a first pass, solved together as
    one population (every point's mode search starting from the estimate's modes), and handed back in order."""
    points: list[np.ndarray] = []
    approx_hess3(x, lambda v: points.append(np.array(v, float)) or 0.0, epsilon=step)
    values = iter(Objective(problem, phi=x[None, :problem.k] + eta, best_x=x.copy()).many(np.array(points)))
    hess = approx_hess3(x, lambda v: next(values), epsilon=step)
    hess = (hess + hess.T) / 2
    try:
        inv = np.linalg.inv(hess / 2.0)
    except np.linalg.LinAlgError:
        return None, "the information matrix is singular"
    if not np.all(np.isfinite(inv)) or np.any(np.linalg.eigvalsh(hess) <= 0):
        return None, "the information matrix is not positive definite (a parameter may not be identifiable)"
    return inv, "ok"
