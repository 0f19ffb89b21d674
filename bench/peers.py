"""The per-patient peers of the benchmark: libRoadRunner on cartsim's SBML, and SciPy ``solve_ivp``.

Both loop over patients as a user would and return, like cartsim, the endpoint
columns (:data:`cartsim.endpoints.COLUMNS`) on the output grid and whether the
tocilizumab rescue fired, so that :func:`cartsim.endpoints.compute` applies to
every method alike.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import libsbml
import numpy as np
import roadrunner
import sympy as sp
from scipy.integrate import solve_ivp

from cartsim.engine import Solution, Trigger
from cartsim.exporters.sbml import ExportInputs, to_sbml
from cartsim.model import Model
from cartsim.model.ir import substitute_derived
from cartsim.population import Population
from cartsim.scenario import Scenario


@dataclass(frozen=True)
class Trajectories:
    """Output columns of a loop over patients; NaN rows for patients a solver failed on."""

    values: np.ndarray      # (patients, times, columns)
    fired: np.ndarray       # (patients,) bool: the rescue trigger fired
    failed: np.ndarray      # (patients,) bool
    seconds: np.ndarray     # (patients,) wall time of each patient
    setup: float            # one-off seconds: loading the SBML, or lambdifying the model
    warnings: int = 0       # solver warnings printed (CVODE's, counted instead of shown)

    def solution(self, times: np.ndarray, columns: tuple[str, ...]) -> Solution:
        """As the engine's :class:`Solution`, for :func:`cartsim.endpoints.compute`."""
        n = self.values.shape[0]
        trig = np.where(self.fired, 0.0, np.nan).reshape(n, 1, 1)
        return Solution(times, columns, self.values, trig, self.failed.astype(np.int64), np.zeros(n, np.int64))


# ---- libRoadRunner ------------------------------------------------------------------------------------------


@contextmanager
def _solver_output(lines: list[str]) -> Iterator[None]:
    """Capture what native code writes to stdout and stderr (CVODE's warnings) into ``lines``."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 1)
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            for fd, copy in zip((1, 2), saved):
                os.dup2(copy, fd)
                os.close(copy)
            tmp.seek(0)
            lines.extend(tmp.read().decode(errors="replace").splitlines())


def _patient_values(model: Model, inputs: ExportInputs) -> dict[str, float]:
    """The SBML constants that differ between patients: free parameters and dose amounts."""
    return {**dict(zip(model.parameters, inputs.params)),
            **{f"dose_{k}": d.amount for k, d in enumerate(inputs.doses, start=1)}}


def _event_variables(text: str) -> dict[str, float]:
    """Non-constant parameters that only events change (trigger counters, infusion rates), with their start values.

    libRoadRunner's ``reset()`` restores states and time but not these, so each patient sets them back.
    """
    m = libsbml.readSBMLFromString(text).getModel()
    return {p.getId(): p.getValue() for p in m.getListOfParameters()
            if not p.getConstant() and m.getRuleByVariable(p.getId()) is None}


def roadrunner_loop(model: Model, scenario: Scenario, population: Population, patients: list[ExportInputs],
                    times: np.ndarray, columns: tuple[str, ...], rtol: float, atol: float) -> Trajectories:
    """Load the SBML of patient 0 once; per patient: set its parameters and doses, ``reset()``, simulate."""
    roadrunner.Logger.setLevel(roadrunner.Logger.LOG_FATAL)   # CVODE failures are counted, not logged
    t = time.perf_counter()
    text = to_sbml(model, scenario, population, 0)
    rr = roadrunner.RoadRunner(text)
    integrator = rr.getIntegrator()
    integrator.relative_tolerance, integrator.absolute_tolerance = rtol, atol
    integrator.setValue("maximum_num_steps", 1_000_000)
    rescue = scenario.events(model)[0].name       # the tocilizumab rescue: its fire counter is an output too
    rr.timeCourseSelections = [*columns, f"{rescue}_fires"]
    setup = time.perf_counter() - t
    restart = _event_variables(text)
    names = list(_patient_values(model, patients[0]))
    n = len(patients)
    out = np.full((n, times.size, len(columns) + 1), np.nan)
    failed, seconds = np.zeros(n, bool), np.empty(n)
    messages: list[str] = []
    with _solver_output(messages):
        for i, inputs in enumerate(patients):
            t = time.perf_counter()
            values = _patient_values(model, inputs)
            if list(values) != names:
                raise ValueError(f"patient {i} has a different dose schedule than patient 0")
            for name, value in values.items():
                rr.setValue(name, float(value))
            rr.reset()   # time, states (initial assignments from the new parameters) and the events at time 0
            for name, value in restart.items():
                rr.setValue(name, value)
            try:
                out[i] = rr.simulate(times=list(times - inputs.start))
            except RuntimeError:   # CVODE gave up
                failed[i] = True
            seconds[i] = time.perf_counter() - t
    warnings = sum("WARNING" in line for line in messages)
    return Trajectories(out[:, :, :-1], out[:, -1, -1] > 0, failed, seconds, setup, warnings)


# ---- SciPy --------------------------------------------------------------------------------------------------


def _lambdify(model: Model, exprs: list[sp.Expr], args: list, modules: str = "math") -> Callable:
    return sp.lambdify(args, [substitute_derived(model, e) for e in exprs], modules=modules, cse=True)


def _column_expr(model: Model, name: str) -> sp.Expr:
    return sp.Symbol(name) if name in model.state_names else model.observables[model.observable_index(name)].expr


@dataclass(frozen=True)
class Lambdified:
    """The model as plain Python functions of (states, free parameters)."""

    rhs: Callable           # (y, p) -> dy
    initial: Callable       # p -> y0
    columns: Callable       # (y of shape (states, times), p) -> rows of the output columns
    triggers: tuple[tuple[Callable, Callable, int, int], ...]  # observable (y, p); p -> (threshold, amount)

    @staticmethod
    def build(model: Model, triggers: tuple[Trigger, ...], columns: tuple[str, ...]) -> Lambdified:
        y = [sp.Symbol(n) for n in model.state_names]
        p = [sp.Symbol(n) for n in model.parameters]
        rhs = model.rhs()
        return Lambdified(
            _lambdify(model, [rhs[n] for n in model.state_names], [y, p]),
            _lambdify(model, [s.initial for s in model.states], [p]),
            _lambdify(model, [_column_expr(model, c) for c in columns], [y, p], modules="numpy"),
            tuple((_lambdify(model, [_column_expr(model, t.observable)], [y, p]),
                   _lambdify(model, [sp.Symbol(t.threshold), sp.Symbol(t.amount)], [p]),
                   model.state_index(t.state), t.max_fires) for t in triggers))


@dataclass
class _Event:
    """A state trigger of one patient for ``solve_ivp``: a terminal upward crossing."""

    g: Callable
    amount: float
    state: int
    left: int   # fires left


def _crossing(observable: Callable, threshold: float, q: list[float]) -> Callable:
    def g(t: float, y: np.ndarray) -> float:
        return observable(y, q)[0] - threshold

    g.terminal, g.direction = True, 1.0
    return g


def _events(f: Lambdified, q: list[float]) -> list[_Event]:
    out = []
    for observable, constants, state, max_fires in f.triggers:
        threshold, amount = constants(q)
        out.append(_Event(_crossing(observable, threshold, q), amount, state, max_fires))
    return out


def solve_patient(model: Model, f: Lambdified, inputs: ExportInputs, times: np.ndarray, method: str,
                  rtol: float, atol: float) -> tuple[np.ndarray, bool]:
    """States of one patient on ``times`` and whether a trigger fired, with the engine's semantics:
    doses before outputs at the same time, upward-crossing triggers. Raises RuntimeError on failure."""
    q = list(inputs.params)
    events = _events(f, q)
    doses = sorted((d.time, model.state_index(d.state), d.amount) for d in inputs.doses)
    stops = sorted({d[0] for d in doses if d[0] > inputs.start} | {float(times[-1])})
    y, t = np.array(f.initial(q), dtype=float), inputs.start
    out = np.full((times.size, y.size), np.nan)
    fired = False
    rhs = lambda _t, yy: f.rhs(yy, q)   # noqa: E731
    for stop in stops:
        while doses and doses[0][0] <= t:
            _, state, amount = doses.pop(0)
            y[state] += amount
        out[times == t] = y
        while t < stop:
            live = [e for e in events if e.left > 0]
            grid = np.union1d(times[(times > t) & (times <= stop)], [stop])
            sol = solve_ivp(rhs, (t, stop), y, method=method, t_eval=grid, events=[e.g for e in live],
                            rtol=rtol, atol=atol)
            if sol.status < 0:
                raise RuntimeError(sol.message)
            sol_t, sol_y = np.asarray(sol.t), np.asarray(sol.y)     # SciPy 1.17 can return plain lists
            keep = np.isin(sol_t, times)
            out[np.searchsorted(times, sol_t[keep])] = sol_y.T[keep]
            hit = [k for k, te in enumerate(sol.t_events) if te.size]
            if not hit:
                t, y = stop, sol_y[:, -1].copy()
                continue
            k = min(hit, key=lambda k: sol.t_events[k][0])
            t, y = float(sol.t_events[k][0]), sol.y_events[k][0].copy()
            y[live[k].state] += live[k].amount
            live[k].left -= 1
            fired = True
            out[times == t] = y
    return out, fired


def scipy_loop(model: Model, f: Lambdified, patients: list[ExportInputs], times: np.ndarray, n_columns: int,
               method: str, rtol: float, atol: float, setup: float = 0.0) -> Trajectories:
    """``solve_ivp`` patient by patient; the output columns are computed from the states."""
    if any(d.duration > 0 for p in patients for d in p.doses):
        raise ValueError("the SciPy peer handles boluses only")
    n = len(patients)
    out = np.full((n, times.size, n_columns), np.nan)
    fired, failed, seconds = np.zeros(n, bool), np.zeros(n, bool), np.empty(n)
    with warnings.catch_warnings(record=True) as caught, np.errstate(all="ignore"):
        warnings.simplefilter("always")
        for i, inputs in enumerate(patients):
            t = time.perf_counter()
            try:
                states, fired[i] = solve_patient(model, f, inputs, times, method, rtol, atol)
                cols = f.columns(states.T, list(inputs.params))
                out[i] = np.stack([np.broadcast_to(np.asarray(c, dtype=float), times.shape) for c in cols], axis=1)
            except (RuntimeError, ValueError, ArithmeticError):
                failed[i] = True
            seconds[i] = time.perf_counter() - t
    return Trajectories(out, fired, failed, seconds, setup, len(caught))
