"""Speed and accuracy of cartsim's batched engine against libRoadRunner and SciPy on the same model.

All three solve the same virtual patients (mb-cart19 in lupus, daily outputs of
every state for a year, lymphodepletion and CAR-T doses, tocilizumab rescue):

- cartsim: ``Scenario.run`` on the whole population in one compiled call
  (after a warm-up that compiles or loads the cached machine code);
- libRoadRunner (CVODE) on the SBML exported once, looping over patients:
  set the patient's free parameters and dose amounts, ``reset()``, simulate;
- SciPy ``solve_ivp`` (LSODA) looping over patients, with the right-hand side
  lambdified from the same symbolic model (derived parameters substituted).

Accuracy is measured on a few patients against a reference: cartsim's engine at
rtol 1e-10, atol 1e-14, which keeps states non-negative. Unprojected solvers
cannot serve as the reference here: once CAR-T cells have decayed far below any
absolute tolerance they wander below zero, where the switch on ``car_eff +
car_mem > 0`` in the activation rate turns off and CVODE may stall. The
reference is cross-checked against libRoadRunner at rtol 1e-12 on SBML exported
for each reference patient alone, where CVODE finishes. Patients a solver fails
on count as failures and are left out of its error. Run ``python bench/run.py --help``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import libsbml
import numba
import numpy as np
import roadrunner
import scipy
import sympy as sp
from scipy.integrate import solve_ivp

from cartsim.engine import Trigger
from cartsim.exporters.sbml import ExportInputs, export_inputs, to_sbml
from cartsim.model import Model, build_model
from cartsim.model.ir import substitute_derived
from cartsim.population import Population, sample
from cartsim.scenario import RESCUE, Scenario

RTOL, ATOL = 1e-6, 1e-8                 # every method, as cartsim's defaults
REF_RTOL, REF_ATOL = 1e-10, 1e-14         # the cartsim reference
CHECK_RTOL, CHECK_ATOL = 1e-12, 1e-14     # libRoadRunner cross-check of the reference
# relative error |a - b| / max(|b|, FLOOR): 1e-3 in the states' units (one cell per mL of blood, 0.001 pg/mL
# IL-6) is far below anything measurable, and well above the solvers' absolute tolerance of 1e-8
FLOOR = 1e-3


@dataclass(frozen=True)
class Result:
    method: str
    patients: int
    seconds: float                # all patients
    median_ms: float | None       # per patient, for the loops
    max_rel_error: float
    worst_state: str
    note: str

    @property
    def ms_per_patient(self) -> float:
        return 1e3 * self.seconds / self.patients


def accuracy(model: Model, values: np.ndarray, refs: np.ndarray) -> tuple[float, str]:
    """The largest relative error over the reference patients a solver finished, days and states, and its state."""
    rel = np.abs(values[:len(refs)] - refs) / np.maximum(np.abs(refs), FLOOR)
    if np.isnan(rel).all():
        return float("nan"), "-"
    worst = np.unravel_index(np.nanargmax(rel), rel.shape)
    return float(rel[worst]), model.state_names[worst[2]]


def _failures(values: np.ndarray) -> str:
    failed = int(np.isnan(values).any(axis=(1, 2)).sum())
    return f"; failed on {failed} of {len(values)}" if failed else ""


# ---- cartsim ------------------------------------------------------------------------------------------------


def run_cartsim(model: Model, scenario: Scenario, population: Population, times: np.ndarray,
                rtol: float = RTOL, atol: float = ATOL) -> np.ndarray:
    sol = scenario.run(population, columns=model.state_names, times=times, model=model, rtol=rtol, atol=atol,
                       max_steps=2_000_000)
    if sol.failures:
        raise RuntimeError(f"cartsim failed: {sol.failures}")
    return sol.values


# ---- libRoadRunner ------------------------------------------------------------------------------------------


def _roadrunner(text: str, rtol: float, atol: float, model: Model) -> roadrunner.RoadRunner:
    rr = roadrunner.RoadRunner(text)
    integrator = rr.getIntegrator()
    integrator.relative_tolerance = rtol
    integrator.absolute_tolerance = atol
    integrator.setValue("maximum_num_steps", 1_000_000)
    rr.timeCourseSelections = list(model.state_names)
    return rr


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


def run_roadrunner(model: Model, scenario: Scenario, population: Population, times: np.ndarray,
                   patients: list[ExportInputs]) -> tuple[np.ndarray, np.ndarray, float]:
    """Trajectories and seconds of every patient, and the seconds spent loading (compiling) the SBML once."""
    t = time.perf_counter()
    text = to_sbml(model, scenario, population, 0)
    rr = _roadrunner(text, RTOL, ATOL, model)
    load = time.perf_counter() - t
    restart = _event_variables(text)
    names = list(_patient_values(model, patients[0]))
    out = np.empty((len(patients), times.size, len(model.states)))
    seconds = np.empty(len(patients))
    for i, inputs in enumerate(patients):
        t = time.perf_counter()
        values = _patient_values(model, inputs)
        if list(values) != names:
            raise ValueError(f"patient {i} has a different dose schedule than patient 0")
        for name, value in values.items():
            rr.setValue(name, float(value))
        rr.reset()  # time, states (initial assignments from the new parameters) and the events at time 0
        for name, value in restart.items():
            rr.setValue(name, value)
        try:
            out[i] = rr.simulate(times=list(times - inputs.start))
        except RuntimeError:  # CVODE gave up (too much work)
            out[i] = np.nan
        seconds[i] = time.perf_counter() - t
    return out, seconds, load


def roadrunner_check(model: Model, scenario: Scenario, population: Population, times: np.ndarray,
                     row: int) -> np.ndarray:
    """One patient at tight tolerance on SBML exported for that patient alone; NaN where CVODE fails."""
    rr = _roadrunner(to_sbml(model, scenario, population, row), CHECK_RTOL, CHECK_ATOL, model)
    try:
        return np.asarray(rr.simulate(times=list(times - scenario.start)))
    except RuntimeError:
        return np.full((times.size, len(model.states)), np.nan)


# ---- SciPy LSODA --------------------------------------------------------------------------------------------


def _lambdify(model: Model, exprs: list[sp.Expr], args: list) -> Callable:
    return sp.lambdify(args, [substitute_derived(model, e) for e in exprs], modules="math", cse=True)


@dataclass(frozen=True)
class Lambdified:
    """The model as plain Python functions of (states, free parameters)."""

    rhs: Callable           # (y, p) -> dy
    initial: Callable       # (p) -> y0
    triggers: tuple[tuple[Callable, Callable, int, int], ...]  # (y, p) -> [observable]; p -> [threshold, amount]

    @staticmethod
    def build(model: Model, triggers: tuple[Trigger, ...]) -> Lambdified:
        y = [sp.Symbol(n) for n in model.state_names]
        p = [sp.Symbol(n) for n in model.parameters]
        rhs = model.rhs()
        return Lambdified(
            _lambdify(model, [rhs[n] for n in model.state_names], [y, p]),
            _lambdify(model, [s.initial for s in model.states], [p]),
            tuple((_lambdify(model, [model.observables[model.observable_index(t.observable)].expr], [y, p]),
                   _lambdify(model, [sp.Symbol(t.threshold), sp.Symbol(t.amount)], [p]),
                   model.state_index(t.state), t.max_fires) for t in triggers))


@dataclass
class _Event:
    """A state trigger of one patient for ``solve_ivp``: a terminal upward crossing."""

    g: Callable
    amount: float
    state: int
    left: int  # fires left


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


def run_lsoda(model: Model, f: Lambdified, inputs: ExportInputs, times: np.ndarray) -> np.ndarray:
    """One patient with the engine's semantics: doses before outputs at the same time, upward-crossing triggers."""
    if any(d.duration > 0 for d in inputs.doses):
        raise ValueError("the SciPy peer handles boluses only")
    q = list(inputs.params)
    events = _events(f, q)
    doses = sorted((d.time, model.state_index(d.state), d.amount) for d in inputs.doses)
    stops = sorted({d[0] for d in doses if d[0] > inputs.start} | {float(times[-1])})
    y, t = np.array(f.initial(q), dtype=float), inputs.start
    out = np.full((times.size, y.size), np.nan)
    for stop in stops:
        while doses and doses[0][0] <= t:
            _, state, amount = doses.pop(0)
            y[state] += amount
        out[times == t] = y
        while t < stop:
            live = [e for e in events if e.left > 0]
            grid = np.union1d(times[(times > t) & (times <= stop)], [stop])
            sol = solve_ivp(lambda _t, yy: f.rhs(yy, q), (t, stop), y, method="LSODA", t_eval=grid,
                            events=[e.g for e in live], rtol=RTOL, atol=ATOL)
            if sol.status < 0:
                raise RuntimeError(sol.message)
            keep = np.isin(sol.t, times)
            out[np.searchsorted(times, sol.t[keep])] = sol.y.T[keep]
            hit = [k for k, te in enumerate(sol.t_events) if te.size]
            if not hit:
                t, y = stop, sol.y[:, -1].copy()
                continue
            k = min(hit, key=lambda k: sol.t_events[k][0])
            t, y = float(sol.t_events[k][0]), sol.y_events[k][0].copy()
            y[live[k].state] += live[k].amount
            live[k].left -= 1
            out[times == t] = y
    return out


# ---- harness ------------------------------------------------------------------------------------------------


def _timed(fn: Callable, *args) -> tuple[object, float]:
    t = time.perf_counter()
    value = fn(*args)
    return value, time.perf_counter() - t


def _loop_lsoda(model: Model, f: Lambdified, patients: list[ExportInputs],
                times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    values, seconds = [], []
    for inputs in patients:
        t = time.perf_counter()
        try:
            values.append(run_lsoda(model, f, inputs, times))
        except RuntimeError:
            values.append(np.full((times.size, len(model.states)), np.nan))
        seconds.append(time.perf_counter() - t)
    return np.stack(values), np.array(seconds)


def _head(population: Population, n: int) -> Population:
    return Population(population.covariates.iloc[:n], population.params[:n], population.parameter_names)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200, help="patients for cartsim's batched engine")
    ap.add_argument("--peers", type=int, default=20, help="patients for the libRoadRunner and SciPy loops")
    ap.add_argument("--ref", type=int, default=3, help="patients solved at tight tolerance for accuracy")
    ap.add_argument("--days", type=float, default=365)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", type=Path, default=Path(__file__).with_name("results.json"))
    args = ap.parse_args()
    if min(args.n, args.peers, args.ref) < 1 or args.ref > min(args.n, args.peers):
        ap.error("need n >= 1, peers >= 1 and 1 <= ref <= min(n, peers)")

    roadrunner.Logger.setLevel(roadrunner.Logger.LOG_FATAL)  # CVODE failures are counted, not logged
    model = build_model()
    scenario = Scenario.make("mb-cart19", "sle", args.days)
    times = np.arange(scenario.start, np.floor(args.days) + 1)
    population = sample(model, scenario.disease, args.n, seed=args.seed)
    peers = _head(population, args.peers)
    patients = [export_inputs(model, scenario, peers, i) for i in range(args.peers)]

    run_cartsim(model, scenario, peers, times)  # warm-up: compile or load the cached machine code
    refs = run_cartsim(model, scenario, _head(population, args.ref), times, REF_RTOL, REF_ATOL)
    check = np.stack([roadrunner_check(model, scenario, population, times, i) for i in range(args.ref)])
    check_error = accuracy(model, check, refs)

    threads = numba.get_num_threads()
    results = []
    for n_threads in (threads, 1):
        numba.set_num_threads(n_threads)
        values, seconds = _timed(run_cartsim, model, scenario, population, times)
        results.append(Result(f"cartsim batched, {n_threads} thr", args.n, seconds, None,
                              *accuracy(model, values, refs), "one call for all patients"))
    numba.set_num_threads(threads)

    values, seconds, load = run_roadrunner(model, scenario, peers, times, patients)
    results.append(Result("libRoadRunner CVODE loop", args.peers, seconds.sum(), 1e3 * np.median(seconds),
                          *accuracy(model, values, refs),
                          f"+ {load:.2f} s to load the SBML once{_failures(values)}"))

    f, build = _timed(Lambdified.build, model, RESCUE)
    values, seconds = _loop_lsoda(model, f, patients, times)
    results.append(Result("SciPy LSODA loop", args.peers, seconds.sum(), 1e3 * np.median(seconds),
                          *accuracy(model, values, refs),
                          f"+ {build:.2f} s to lambdify the model{_failures(values)}"))

    report(results, args, threads, check_error, _failures(check))


def report(results: list[Result], args: argparse.Namespace, threads: int, check: tuple[float, str],
           check_failures: str) -> None:
    base = results[0].ms_per_patient
    head = (f"{'method':<26} {'patients':>8} {'ms/patient':>11} {'median ms':>10} {'x cartsim':>10} "
            f"{'max rel err':>12} {'worst state':<14} note")
    print(f"mb-cart19 in sle, {args.days:g} days, daily outputs of all states; rtol {RTOL:g}, atol {ATOL:g}; "
          f"error vs cartsim at rtol {REF_RTOL:g}, atol {REF_ATOL:g} on {args.ref} patients (floor {FLOOR:g})")
    print(f"reference vs libRoadRunner at rtol {CHECK_RTOL:g}: max rel err {check[0]:.2e} ({check[1]})"
          f"{check_failures}")
    print(head)
    print("-" * len(head))
    for r in results:
        median = "" if r.median_ms is None else f"{r.median_ms:.3f}"
        print(f"{r.method:<26} {r.patients:>8} {r.ms_per_patient:>11.3f} {median:>10} "
              f"{r.ms_per_patient / base:>10.1f} {r.max_rel_error:>12.2e} {r.worst_state:<14} {r.note}")
    payload = {
        "scenario": {"therapy": "mb-cart19", "disease": "sle", "days": args.days, "outputs": "daily, all states"},
        "tolerances": {"rtol": RTOL, "atol": ATOL, "reference_rtol": REF_RTOL, "reference_atol": REF_ATOL,
                       "error_floor": FLOOR},
        "reference_check": {"method": f"libRoadRunner CVODE rtol {CHECK_RTOL:g}, atol {CHECK_ATOL:g}",
                            "max_relative_error": check[0], "worst_state": check[1],
                            "failures": check_failures.removeprefix("; ")},
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "numba_threads": threads,
                    "python": platform.python_version(), "numba": numba.__version__,
                    "roadrunner": roadrunner.__version__, "scipy": scipy.__version__},
        "seed": args.seed,
        "reference_patients": args.ref,
        "results": [{"method": r.method, "patients": r.patients, "seconds": r.seconds,
                     "ms_per_patient": r.ms_per_patient, "median_ms_per_patient": r.median_ms,
                     "relative_to_cartsim": r.ms_per_patient / base,
                     "median_relative_to_cartsim": None if r.median_ms is None else r.median_ms / base,
                     "max_relative_error": r.max_rel_error,
                     "worst_state": r.worst_state, "note": r.note} for r in results],
    }
    tmp = args.out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=2) + "\n")
    os.replace(tmp, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
