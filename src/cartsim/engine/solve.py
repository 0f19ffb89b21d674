"""The engine's entry point: solve a batch of patients in one compiled call.

The engine knows states, parameters, doses and triggers by index only; it has
no biology in it. Methods (``solver=``, :mod:`cartsim.engine.tableaus`):
``"rodas5p"`` (the default) and ``"rodas4"``, linearly implicit Rosenbrock
methods with the analytic Jacobian, and ``"dp5"``, the explicit Dormand-Prince
5(4) method, which the model's stiffness limits to small steps. Every method
runs in the one driver (``driver.py``), with the step-size controller of
:mod:`cartsim.engine.controllers`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from cartsim.engine.arrays import Actions, Control, Method, Output, Triggers
from cartsim.engine.compile import compiled
from cartsim.engine.controllers import Controller, default_controller
from cartsim.engine.doses import Doses
from cartsim.engine.tableaus import TABLEAUS, Tableau
from cartsim.model.ir import Model

SOLVERS = tuple(TABLEAUS)
DEFAULT_SOLVER = "rodas5p"

STATUS_TEXT = {0: "ok", 1: "maximum number of steps reached", 2: "step size underflow",
               3: "non-finite values in the solution"}


@dataclass(frozen=True)
class Trigger:
    """When ``observable`` crosses ``threshold`` (a parameter) upwards, add ``amount`` (a parameter) to ``state``."""

    observable: str
    threshold: str
    state: str
    amount: str
    max_fires: int = 1


@dataclass(frozen=True)
class Solution:
    times: np.ndarray            # (T,)
    columns: tuple[str, ...]     # (C,)
    values: np.ndarray           # (N, T, C)
    trigger_times: np.ndarray    # (N, n_triggers, max_fires), NaN where not fired
    status: np.ndarray           # (N,) 0 = ok
    steps: np.ndarray            # (N,) attempted steps
    failures: dict[int, str] = field(default_factory=dict)
    rejected: np.ndarray | None = None    # (N,) rejected steps (counted in ``steps``)
    rhs_evals: np.ndarray | None = None   # (N,) right-hand side evaluations
    jac_evals: np.ndarray | None = None   # (N,) Jacobian evaluations
    solver: str = ""

    def column(self, name: str) -> np.ndarray:
        return self.values[:, :, self.columns.index(name)]


def full_parameters(model: Model, params: np.ndarray) -> np.ndarray:
    """Free + derived parameters for each row of ``params`` (same as the compiled ``derive``), followed by the
    per-patient constants that the generated code precomputes (``N_C`` columns; see ``engine/hoist.py``)."""
    mod = compiled(model)
    q = np.empty((params.shape[0], mod.N_Q + mod.N_C))
    for i in range(params.shape[0]):
        mod.derive(params[i], q[i])
    return q


def solve(model: Model, params: np.ndarray, times: np.ndarray, columns: tuple[str, ...] | None = None,
          doses: Doses | None = None, triggers: tuple[Trigger, ...] = (), t0: float | None = None,
          rtol: float = 1e-6, atol: float = 1e-8, max_steps: int = 200_000,
          solver: str | Tableau = DEFAULT_SOLVER, first_step: float = 0.0, max_step: float = np.inf,
          simd: bool = True, controller: Controller | None = None) -> Solution:
    """Solve every row of ``params`` (free parameters in table order) in one call.

    ``solver`` is one of :data:`SOLVERS` or a :class:`~cartsim.engine.tableaus.Tableau`; ``controller`` the
    step-size controller (default: the method's); ``first_step`` (days; 0: chosen from the initial derivatives)
    and ``max_step`` bound the step size, ``max_steps`` the attempted steps per patient (then status 1). With
    ``simd`` each thread advances four patients at once in the lanes of vector instructions; the numbers are
    bit-identical to ``simd=False``, which advances one at a time."""
    if isinstance(solver, str) and solver not in SOLVERS:
        raise ValueError(f"unknown solver {solver!r}; choose one of {', '.join(SOLVERS)}")
    method = TABLEAUS[solver] if isinstance(solver, str) else solver
    ctl = controller if controller is not None else default_controller(method)
    if not (first_step >= 0.0 and max_step > 0.0):
        raise ValueError("first_step must be >= 0 and max_step > 0")
    mod = compiled(model, 4 if simd else 1)
    params = np.ascontiguousarray(np.atleast_2d(params), dtype=np.float64)
    n = params.shape[0]
    if params.shape[1] != len(model.parameters):
        raise ValueError(f"params must have {len(model.parameters)} columns, got {params.shape[1]}")
    times = np.ascontiguousarray(times, dtype=np.float64)
    if times.ndim != 1 or times.size == 0 or np.any(np.diff(times) < 0):
        raise ValueError("times must be a non-empty, non-decreasing 1-D array")
    doses = doses if doses is not None else Doses.empty(n)
    if doses.n_patients != n:
        raise ValueError(f"doses are for {doses.n_patients} patients, params for {n}")
    t0 = float(times[0] if t0 is None else t0)
    if times[0] < t0:
        raise ValueError("output times must not precede t0")
    early = (doses.amount > 0) & (doses.start < t0)
    if early.any():     # the solver starts at t0: an earlier dose would be given late, silently
        i, k = np.argwhere(early)[0]
        raise ValueError(f"patient {i}: a dose entering at time {doses.start[i, k]:g} comes before t0 = {t0:g}; "
                         "start the solve at the first dose or drop the dose")
    names = (*model.state_names, *model.observable_names)
    columns = tuple(columns) if columns is not None else names
    cols = np.array([names.index(c) for c in columns], dtype=np.int64)
    act = doses.actions()
    q_names = (*model.parameters, *(d for d, _ in model.derived))
    trig_obs = np.array([model.observable_index(t.observable) for t in triggers], dtype=np.int64)
    trig_thr = np.array([q_names.index(t.threshold) for t in triggers], dtype=np.int64)
    trig_state = np.array([model.state_index(t.state) for t in triggers], dtype=np.int64)
    trig_amt = np.array([q_names.index(t.amount) for t in triggers], dtype=np.int64)
    max_fires = max((t.max_fires for t in triggers), default=1)
    out = np.full((n, times.size, cols.size), np.nan)
    fires = np.full((n, len(triggers), max_fires), np.nan)
    status = np.zeros(n, dtype=np.int64)
    stats = np.zeros((n, 4), dtype=np.int64)   # steps, rejected, right-hand sides, Jacobians
    atol_v = np.full(len(model.states), float(atol))
    import numba  # not at module level: importing cartsim should not import numba

    workers = numba.get_num_threads()   # each takes patients one at a time as it frees up
    mod.solve_batch(params, t0, Actions(*act), Triggers(trig_obs, trig_thr, trig_state, trig_amt),
                    Method(method.A, method.C, method.H, np.ascontiguousarray(method.E.reshape(1, -1)),
                           float(method.gamma), float(method.expo), bool(method.explicit), method.error_stage),
                    Control(float(rtol), atol_v, int(max_steps), float(first_step), float(max_step),
                            float(ctl.safety), float(ctl.facmin), float(ctl.facmax), bool(ctl.predictive)),
                    Output(times, cols, out, fires, status, stats), workers)
    failures = {int(i): STATUS_TEXT.get(int(status[i]), "unknown") for i in np.flatnonzero(status)}
    return Solution(times, columns, out, fires, status, stats[:, 0].copy(), failures,
                    rejected=stats[:, 1].copy(), rhs_evals=stats[:, 2].copy(), jac_evals=stats[:, 3].copy(),
                    solver=method.name)
