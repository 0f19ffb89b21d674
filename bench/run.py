"""Speed and endpoint accuracy of cartsim's batched engine against libRoadRunner and SciPy, and a large trial.

Every method solves the same virtual patients (MB-CART19.1 in SLE, seed 1):
730 days with daily outputs, lymphodepletion and CAR-T doses, tocilizumab
rescue, at rtol 1e-6 and atol 1e-8:

- cartsim: ``Scenario.run`` on the whole population in one compiled call,
  on all of numba's threads (after a warm-up that loads or compiles the
  machine code), with its default solver (Rodas5P) and, for comparison in
  the same process, with each of its other solvers (Rodas4, Dormand-Prince);
- libRoadRunner (CVODE) on cartsim's SBML export (loaded once), looping over
  patients as a user would: set the patient's parameters and doses,
  ``reset()``, simulate;
- SciPy ``solve_ivp`` (LSODA) looping over patients, with the right-hand side
  lambdified from the same symbolic model.

Throughput is patients per second per core: cartsim's divided by its number
of threads, the loops run on one. Accuracy is the largest relative error of
the endpoints (:func:`cartsim.endpoints.compute`) against a reference:
CVODE at rtol 1e-10, atol 1e-14, an implicit solver suited to this stiff model,
independent of cartsim's code and fast at that tolerance. cartsim's engine at
the same tolerance is solved too and compared with it, which bounds how much
the choice of reference matters.

Equal tolerances do not give equal accuracy, so cartsim and libRoadRunner are
also compared at matched accuracy: each at the loosest tolerance of a ladder
(rtol 1e-5 to 1e-9) at which all its endpoints are within 1e-4 of the
reference. The two matched points are then timed again in alternation
(``--rounds`` rounds of: cartsim on all patients, on all threads and on one;
libRoadRunner on the round's share of the patients), so that both meet the
same spells of a shared machine; their ratio is the headline. Where
libRoadRunner's endpoints met the goal at a looser rung except for patients
CVODE failed on, the rounds also time it re-running just those patients at
the tighter rungs, as a careful user would. CVODE stalls on a few patients at
some tolerances (``STALL_FACTOR``), so the ratio against libRoadRunner's median
patient is reported beside the ratio of total times.

The harness also times ``cartsim trial`` end to end on a two-arm trial
(``--trial-n`` patients in all) with its peak memory, and with ``--million``
checks that a million-patient trial runs in flat memory. Run
``python bench/run.py --help``; results go to ``bench/results/latest.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import libsbml
import numba
import numpy as np
import pandas as pd
import psutil
import roadrunner
import scipy

import cartsim
from cartsim import endpoints
from cartsim.engine import Solution
from cartsim.engine.solve import DEFAULT_SOLVER, SOLVERS
from cartsim.exporters.sbml import export_inputs
from cartsim.model import Model, build_model
from cartsim.outputs.files import write_text_atomic
from cartsim.population import Population, sample
from cartsim.scenario import Scenario

sys.path.insert(0, str(Path(__file__).parent))
from peers import Lambdified, Trajectories, roadrunner_loop, scipy_loop  # noqa: E402
from trial_timing import config_text, million, run_trial  # noqa: E402

RTOL, ATOL = 1e-6, 1e-8            # every method: cartsim's defaults
REF_RTOL, REF_ATOL = 1e-10, 1e-14  # the reference
# Relative error |a - b| / max(|b|, FLOOR), in each endpoint's own unit: 1e-3 cells/uL is a thousandth of the
# flow-cytometry detection limit, 1e-3 day is under 2 minutes, 1e-3 of baseline for fractions. Endpoints far
# below it (B-cell nadirs of 1e-6 cells/uL) are measured by their absolute error relative to the floor.
FLOOR = 1e-3
# Matched accuracy: each method at the loosest tolerance of this ladder (atol = rtol / 100, as cartsim's defaults)
# whose endpoints all come within ACCURACY_GOAL of the reference, with no failed or mismatched patient.
ACCURACY_GOAL = 1e-4
LADDER = ((1e-5, 1e-7), (1e-6, 1e-8), (1e-7, 1e-9), (1e-8, 1e-10), (1e-9, 1e-11))
# CVODE's variable-order BDF stalls on a few patients at some tolerances (tiny steps for tens of thousands of steps:
# orders 3-5 are not stable near the imaginary axis, and libRoadRunner does not expose CVODE's stability-limit
# detection); a patient over this multiple of the median patient's time counts as stalled, and the ratio against
# the median patient is reported beside the total so that the headline does not rest on them
STALL_FACTOR = 20.0
COLUMNS = endpoints.COLUMNS
TRIAL_WALL_LIMIT_S, TRIAL_MEMORY_LIMIT_MB = 300.0, 4096.0
RESULTS = Path(__file__).parent / "results" / "latest.json"


@dataclass(frozen=True)
class Accuracy:
    """Endpoint errors of one method against the reference, over patients both solved."""

    max_rel_error: float
    worst_endpoint: str
    per_endpoint: dict[str, float]
    failed: int        # patients the method failed on
    mismatched: int    # patients whose flags, grades or defined/undefined endpoints differ from the reference


@dataclass(frozen=True)
class Method:
    name: str
    key: str             # key in the results file
    patients: int
    seconds: float       # all patients
    threads: int
    accuracy: Accuracy
    note: str

    @property
    def per_core(self) -> float:
        return self.patients / self.seconds / self.threads


def accuracy(values: pd.DataFrame, failed: np.ndarray, ref: pd.DataFrame, ref_failed: np.ndarray) -> Accuracy:
    """Largest relative error over the numeric endpoints; flags and grades are compared for equality."""
    both = ~failed & ~ref_failed
    a, b = values[both].reset_index(drop=True), ref[both].reset_index(drop=True)
    numeric = [c for c in b.columns if pd.api.types.is_float_dtype(b[c])]
    per: dict[str, float] = {}
    mismatch = np.zeros(len(b), bool)
    for c in b.columns:
        x, y = a[c].to_numpy(float, na_value=np.nan), b[c].to_numpy(float, na_value=np.nan)
        defined = np.isfinite(x) & np.isfinite(y)
        mismatch |= np.isfinite(x) != np.isfinite(y)
        if c in numeric:
            if defined.any():
                per[c] = float(np.max(np.abs(x - y)[defined] / np.maximum(np.abs(y[defined]), FLOOR)))
        else:
            mismatch |= defined & (x != y)
    worst = max(per, key=per.get) if per else "-"
    return Accuracy(per.get(worst, float("nan")), worst, per, int(failed.sum()), int(mismatch.sum()))


def _head(population: Population, n: int) -> Population:
    return Population(population.covariates.iloc[:n], population.params[:n], population.parameter_names)


def _endpoints(model: Model, sol: Solution) -> pd.DataFrame:
    return endpoints.compute(sol, model.table)


def _cartsim(model: Model, scenario: Scenario, population: Population, times: np.ndarray, rtol: float = RTOL,
             atol: float = ATOL, solver: str = DEFAULT_SOLVER, simd: bool = True) -> tuple[Solution, float]:
    t = time.perf_counter()
    sol = scenario.run(population, columns=COLUMNS, times=times, model=model, rtol=rtol, atol=atol,
                       max_steps=2_000_000, solver=solver, simd=simd)
    return sol, time.perf_counter() - t


def _loop(model: Model, traj: Trajectories, times: np.ndarray) -> pd.DataFrame:
    return _endpoints(model, traj.solution(times, COLUMNS))


def _steps(sol: Solution) -> dict[str, float]:
    s = sol.steps.astype(float)
    return {"median": float(np.median(s)), "mean": float(s.mean()), "p99": float(np.percentile(s, 99)),
            "max": float(s.max())}


def _work(sol: Solution) -> dict[str, float]:
    """Mean work per patient: steps (attempted), rejected steps, right-hand sides, Jacobians."""
    return {"steps": float(sol.steps.mean()), "rejected": float(sol.rejected.mean()),
            "rhs_evals": float(sol.rhs_evals.mean()), "jac_evals": float(sol.jac_evals.mean())}


@dataclass(frozen=True)
class Rung:
    """One method at one tolerance of the ladder."""

    rtol: float
    atol: float
    seconds: float
    threads: int
    patients: int
    accuracy: Accuracy

    @property
    def per_core(self) -> float:
        return self.patients / self.seconds / self.threads

    @property
    def meets_goal(self) -> bool:
        a = self.accuracy
        return a.max_rel_error <= ACCURACY_GOAL and a.failed == 0 and a.mismatched == 0

    def record(self) -> dict:
        return {"rtol": self.rtol, "atol": self.atol, "seconds": self.seconds, "threads": self.threads,
                "patients_per_s_per_core": self.per_core, "meets_goal": self.meets_goal} | _accuracy_record(self.accuracy)


def matched(run: Callable[[float, float], Rung], known: dict[tuple[float, float], Rung]) -> list[Rung]:
    """Walk :data:`LADDER` from its loosest tolerance until a rung meets :data:`ACCURACY_GOAL` (``known`` rungs are
    reused, not re-run); the last rung returned is the method's matched-accuracy point, unless none met the goal."""
    rungs: list[Rung] = []
    for tol in LADDER:
        rung = known.get(tol) or run(*tol)
        rungs.append(rung)
        if rung.meets_goal:
            break
    return rungs


@dataclass(frozen=True)
class HeadToHead:
    """cartsim and libRoadRunner, each at its matched-accuracy tolerance, timed in alternation.

    Each round times one cartsim call on every patient on all threads, the same call on one thread, and
    libRoadRunner's loop over the round's share of the patients; the rounds cover every patient once for
    libRoadRunner. Throughputs are patients over total seconds for each, so a slow spell of the machine
    weighs on all of them as it falls, instead of on whichever happened to be timed then. Where the ladder passed
    over a rung only because CVODE failed on some patients, each round also times libRoadRunner re-running those
    patients at tighter rungs (:func:`retrying`).
    """

    patients: int
    threads: int
    cartsim_seconds: tuple[float, ...]          # per round: all patients, all threads
    cartsim_1thread_seconds: tuple[float, ...]  # per round: all patients, one thread
    roadrunner_seconds: tuple[float, ...]       # per round: that round's share of the patients
    roadrunner_accuracy: Accuracy               # the loop's endpoints over all rounds against the reference
    retry_seconds: tuple[float, ...] = ()       # per round: the same share at a looser rung, failures re-run
    retry_accuracy: Accuracy | None = None
    roadrunner_patient_seconds: tuple[float, ...] = ()   # each patient's seconds in the loop, over all rounds

    @property
    def cartsim_per_core(self) -> float:
        return self.patients * len(self.cartsim_seconds) / sum(self.cartsim_seconds) / self.threads

    @property
    def cartsim_1thread(self) -> float:
        return self.patients * len(self.cartsim_1thread_seconds) / sum(self.cartsim_1thread_seconds)

    @property
    def roadrunner_per_core(self) -> float:
        return self.patients / sum(self.roadrunner_seconds)

    @property
    def ratio(self) -> float:
        return self.cartsim_per_core / self.roadrunner_per_core

    @property
    def ratio_1thread(self) -> float:
        return self.cartsim_1thread / self.roadrunner_per_core

    @property
    def roadrunner_median_patient(self) -> float:
        """libRoadRunner's patients per second at its median patient's time: its speed without the patients on
        which CVODE stalls (see STALL_FACTOR), so a ratio against it does not rest on them."""
        return 1.0 / float(np.median(self.roadrunner_patient_seconds))

    @property
    def roadrunner_stalls(self) -> int:
        """Patients that took CVODE more than STALL_FACTOR times its median patient's time."""
        seconds = np.asarray(self.roadrunner_patient_seconds)
        return int(np.sum(seconds > STALL_FACTOR * np.median(seconds)))

    @property
    def ratio_median_patient(self) -> float:
        return self.cartsim_per_core / self.roadrunner_median_patient

    @property
    def retry_per_core(self) -> float | None:
        return self.patients / sum(self.retry_seconds) if self.retry_seconds else None

    @property
    def ratio_retrying(self) -> float | None:
        return self.cartsim_per_core / self.retry_per_core if self.retry_seconds else None

    def record(self) -> dict:
        return {"rounds": len(self.cartsim_seconds), "patients": self.patients, "threads": self.threads,
                "cartsim_seconds": list(self.cartsim_seconds),
                "cartsim_1thread_seconds": list(self.cartsim_1thread_seconds),
                "roadrunner_seconds": list(self.roadrunner_seconds),
                "cartsim_patients_per_s_per_core": self.cartsim_per_core,
                "cartsim_1thread_patients_per_s": self.cartsim_1thread,
                "roadrunner_patients_per_s_per_core": self.roadrunner_per_core,
                "ratio_vs_roadrunner": self.ratio, "ratio_vs_roadrunner_1thread": self.ratio_1thread,
                "roadrunner_median_patient_per_s": self.roadrunner_median_patient,
                "roadrunner_stalled_patients": self.roadrunner_stalls,
                "ratio_vs_roadrunner_median_patient": self.ratio_median_patient,
                "roadrunner_accuracy": _accuracy_record(self.roadrunner_accuracy),
                "roadrunner_retrying_seconds": list(self.retry_seconds) or None,
                "roadrunner_retrying_patients_per_s_per_core": self.retry_per_core,
                "ratio_vs_roadrunner_retrying": self.ratio_retrying,
                "roadrunner_retrying_accuracy": _accuracy_record(self.retry_accuracy) if self.retry_accuracy else None}


def _shares(patients: int, rounds: int) -> list[tuple[int, int]]:
    """Contiguous ``(lo, hi)`` shares of ``patients``, one per round, as even as can be."""
    edges = np.linspace(0, patients, rounds + 1).round().astype(int)
    return [(int(lo), int(hi)) for lo, hi in zip(edges[:-1], edges[1:])]


def _joined(parts: list[Trajectories]) -> Trajectories:
    return Trajectories(*(np.concatenate([getattr(x, f) for x in parts])
                          for f in ("values", "fired", "failed", "seconds")), setup=0.0)


def retrying(solve: Callable[[list[int], float, float], Trajectories], indices: list[int],
             tolerances: list[tuple[float, float]]) -> Trajectories:
    """libRoadRunner as a careful user runs it: every patient at the first tolerance, those CVODE failed on again
    at the next, and so on (``solve(indices, rtol, atol)``); each patient's seconds are the sum of its attempts."""
    first = solve(indices, *tolerances[0])
    values, fired, failed, seconds = first.values.copy(), first.fired.copy(), first.failed.copy(), first.seconds.copy()
    for tol in tolerances[1:]:
        again_at = np.flatnonzero(failed)
        if again_at.size == 0:
            break
        again = solve([indices[i] for i in again_at], *tol)
        values[again_at], fired[again_at], failed[again_at] = again.values, again.fired, again.failed
        seconds[again_at] += again.seconds
    return Trajectories(values, fired, failed, seconds, first.setup, first.warnings)


def head_to_head(cartsim_call: Callable[[], float], roadrunner_share: Callable[[int, int], Trajectories],
                 score: Callable[[Trajectories], Accuracy], patients: int, threads: int, rounds: int,
                 retry_share: Callable[[int, int], Trajectories] | None = None) -> HeadToHead:
    """Alternate ``rounds`` times: ``cartsim_call`` (seconds for all patients) on all threads and on one, then
    ``roadrunner_share(lo, hi)`` on patients ``lo:hi`` (a contiguous share, the shares covering all patients)
    and, when given, ``retry_share(lo, hi)`` on the same patients."""
    cs, cs1, rrs, shares, retries = [], [], [], [], []
    for lo, hi in _shares(patients, rounds):
        cs.append(cartsim_call())
        numba.set_num_threads(1)
        cs1.append(cartsim_call())
        numba.set_num_threads(threads)
        shares.append(roadrunner_share(lo, hi))
        rrs.append(float(shares[-1].seconds.sum()))
        if retry_share is not None:
            retries.append(retry_share(lo, hi))
    loop = _joined(shares)
    return HeadToHead(patients, threads, tuple(cs), tuple(cs1), tuple(rrs), score(loop),
                      tuple(float(r.seconds.sum()) for r in retries), score(_joined(retries)) if retries else None,
                      tuple(float(x) for x in loop.seconds))


def _retry_rung(rungs: list[Rung]) -> Rung | None:
    """The loosest rung tried whose solved patients all meet the goal although CVODE failed on some: the ladder
    passes over it, but a user could re-run the failed patients at a tighter tolerance instead."""
    for r in rungs:
        a = r.accuracy
        if a.failed and a.max_rel_error <= ACCURACY_GOAL and not a.mismatched:
            return r
    return None


def benchmark(args: argparse.Namespace) -> tuple[list[Method], dict]:
    """Solve the population with every method and the reference; timings and endpoint errors."""
    load = os.getloadavg()
    model = build_model()
    scenario = Scenario.make("mb-cart19", "sle", args.days)
    times = np.arange(scenario.start, np.floor(args.days) + 1)
    population = sample(model, scenario.disease, args.n, seed=args.seed)
    patients = [export_inputs(model, scenario, population, i) for i in range(args.n)]

    # warm-up: load or compile the machine code (each solver's kernel compiles on its first call)
    warmup = {solver: _cartsim(model, scenario, _head(population, 8), times, solver=solver)[1] for solver in SOLVERS}
    threads = numba.get_num_threads()
    timed: dict[str, tuple[Solution, float]] = {}
    for solver in SOLVERS:   # every solver of the engine, in this process, one after the other
        runs = [_cartsim(model, scenario, population, times, solver=solver) for _ in range(args.repeat)]
        timed[solver] = runs[0][0], float(np.median([s for _, s in runs]))
    _cartsim(model, scenario, _head(population, 8), times, simd=False)   # compiles the one-lane driver
    runs = [_cartsim(model, scenario, population, times, simd=False) for _ in range(args.repeat)]
    no_simd = runs[0][0], float(np.median([s for _, s in runs]))
    sol, seconds = timed[DEFAULT_SOLVER]
    numba.set_num_threads(1)
    _, one_thread = _cartsim(model, scenario, population, times)
    numba.set_num_threads(threads)

    everyone = list(range(args.n))

    def rr_loop(indices: list[int], rtol: float, atol: float) -> Trajectories:
        """libRoadRunner's loop over patients ``indices`` (the SBML loaded once per call)."""
        return roadrunner_loop(model, scenario, population, [patients[i] for i in indices], times, COLUMNS,
                               rtol, atol)

    ref = rr_loop(everyone, REF_RTOL, REF_ATOL)
    ref_ep, ref_failed = _loop(model, ref, times), ref.failed
    check, _ = _cartsim(model, scenario, population, times, REF_RTOL, REF_ATOL)
    agreement = accuracy(_endpoints(model, check), check.status != 0, ref_ep, ref_failed)

    def acc(ep: pd.DataFrame, failed: np.ndarray) -> Accuracy:
        return accuracy(ep, failed, ref_ep, ref_failed)

    def loop_acc(traj: Trajectories) -> Accuracy:
        return acc(_loop(model, traj, times), traj.failed)

    failed = sol.status != 0
    methods = [Method(f"cartsim {DEFAULT_SOLVER} ({threads} thr)", "cartsim", args.n, seconds, threads,
                      acc(_endpoints(model, sol), failed),
                      f"default solver; one call; median of {args.repeat}; {_work(sol)['steps']:.0f} steps/patient"),
               Method(f"cartsim {DEFAULT_SOLVER} (1 thr)", "cartsim_1thread", args.n, one_thread, 1,
                      acc(_endpoints(model, sol), failed), "same call on one thread"),
               Method(f"cartsim no SIMD ({threads} thr)", "cartsim_no_simd", args.n,
                      no_simd[1], threads, acc(_endpoints(model, no_simd[0]), no_simd[0].status != 0),
                      f"simd=False: one patient at a time per thread; median of {args.repeat}; "
                      f"bit-identical: {np.array_equal(no_simd[0].values, sol.values, equal_nan=True)}")]
    for solver in SOLVERS:
        if solver != DEFAULT_SOLVER:
            other, secs = timed[solver]
            methods.append(Method(f"cartsim {solver} ({threads} thr)", f"cartsim_{solver}", args.n, secs, threads,
                                  acc(_endpoints(model, other), other.status != 0),
                                  f"solver={solver!r}; median of {args.repeat}; "
                                  f"{_work(other)['steps']:.0f} steps/patient"))
    rr = rr_loop(everyone, RTOL, ATOL)
    rr_accuracy = loop_acc(rr)
    methods.append(Method("libRoadRunner CVODE loop", "roadrunner", args.n, rr.seconds.sum(), 1, rr_accuracy,
                          f"+ {rr.setup:.2f} s to load the SBML once; median {1e3 * np.median(rr.seconds):.1f} ms; "
                          f"{rr.warnings} CVODE warnings"))
    # matched accuracy: cartsim (all threads, median of --repeat) and libRoadRunner down the tolerance ladder
    def cartsim_rung(rtol: float, atol: float) -> Rung:
        runs = [_cartsim(model, scenario, population, times, rtol, atol) for _ in range(args.repeat)]
        s = runs[0][0]
        return Rung(rtol, atol, float(np.median([t for _, t in runs])), threads, args.n,
                    acc(_endpoints(model, s), s.status != 0))

    def roadrunner_rung(rtol: float, atol: float) -> Rung:
        r = rr_loop(everyone, rtol, atol)
        return Rung(rtol, atol, float(r.seconds.sum()), 1, args.n, loop_acc(r))

    ladders = {"cartsim": matched(cartsim_rung, {(RTOL, ATOL): Rung(RTOL, ATOL, seconds, threads, args.n,
                                                                     methods[0].accuracy)}),
               "roadrunner": matched(roadrunner_rung, {(RTOL, ATOL): Rung(RTOL, ATOL, rr.seconds.sum(), 1, args.n,
                                                                           rr_accuracy)})}
    points = {k: _point(v) for k, v in ladders.items()}
    versus = None
    if points["cartsim"] and points["roadrunner"] and args.rounds > 0:
        c, r = points["cartsim"], points["roadrunner"]
        loose = _retry_rung(ladders["roadrunner"])
        retry_share = None
        if loose is not None:   # its rung and every tighter one of the ladder, down to the matched point
            tolerances = LADDER[LADDER.index((loose.rtol, loose.atol)):LADDER.index((r.rtol, r.atol)) + 1]
            retry_share = lambda lo, hi: retrying(rr_loop, list(range(lo, hi)), list(tolerances))  # noqa: E731
        _cartsim(model, scenario, population, times, c.rtol, c.atol)   # a full-size call first, not timed
        versus = head_to_head(
            lambda: _cartsim(model, scenario, population, times, c.rtol, c.atol)[1],
            lambda lo, hi: rr_loop(list(range(lo, hi)), r.rtol, r.atol),
            loop_acc, args.n, threads, args.rounds, retry_share)
    t = time.perf_counter()
    f = Lambdified.build(model, scenario.triggers(model), COLUMNS)
    sp_ = scipy_loop(model, f, patients, times, len(COLUMNS), "LSODA", RTOL, ATOL, time.perf_counter() - t)
    methods.append(Method("SciPy LSODA loop", "scipy", args.n, sp_.seconds.sum(), 1,
                          loop_acc(sp_),
                          f"+ {sp_.setup:.2f} s to lambdify; median {1e3 * np.median(sp_.seconds):.1f} ms; "
                          f"{sp_.warnings} warnings"))
    reference = {"method": f"libRoadRunner CVODE, rtol {REF_RTOL:g}, atol {REF_ATOL:g}",
                 "seconds": float(ref.seconds.sum()), "failed": int(ref_failed.sum()), "cvode_warnings": ref.warnings,
                 "cartsim_at_reference_tolerance": _accuracy_record(agreement) | {"steps": _steps(check)}}
    solvers = {solver: {"steps_per_patient": _steps(timed[solver][0]), "work_per_patient": _work(timed[solver][0]),
                        "warmup_s": warmup[solver]} for solver in SOLVERS}
    return methods, {"reference": reference, "cartsim_steps": _steps(sol), "threads": threads, "load": load,
                     "solvers": solvers, "ladders": ladders, "head_to_head": versus}


def _accuracy_record(a: Accuracy) -> dict:
    return {"max_rel_error": a.max_rel_error, "worst_endpoint": a.worst_endpoint, "per_endpoint": a.per_endpoint,
            "failed": a.failed, "mismatched": a.mismatched}


# ---- trial --------------------------------------------------------------------------------------------------


def trial(args: argparse.Namespace, work: Path) -> dict | None:
    """``cartsim trial`` on ``--trial-n`` patients in all (two arms), timed with its peak memory."""
    if args.trial_n <= 0:
        return None
    run = run_trial(work / "trial", config_text(args.trial_n // 2, args.days), args.trial_workers)
    out = run.record()
    if run.n_per_arm * run.arms >= 100_000:
        out["acceptance"] = {"wall_limit_s": TRIAL_WALL_LIMIT_S, "memory_limit_mb": TRIAL_MEMORY_LIMIT_MB,
                             "wall_ok": run.completed and run.wall_s <= TRIAL_WALL_LIMIT_S,
                             "memory_ok": run.peak_rss_mb <= TRIAL_MEMORY_LIMIT_MB}
    return out


# ---- report -------------------------------------------------------------------------------------------------


def _git_commit() -> str | None:
    try:
        res = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True,
                             text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    if res.returncode != 0:
        return None
    return res.stdout.strip() or None


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine(threads: int, load: tuple[float, float, float]) -> dict:
    return {"platform": platform.platform(), "cpu": _cpu_model(), "cpus": os.cpu_count(),
            "cpus_available": len(os.sched_getaffinity(0)), "memory_gb": psutil.virtual_memory().total / 1024**3,
            "load_average_at_start": load, "load_average_at_end": os.getloadavg(),
            "numba_threads": threads, "numba_threading_layer": _layer(),
            "python": platform.python_version(), "cartsim": cartsim.__version__, "numpy": np.__version__,
            "numba": numba.__version__, "scipy": scipy.__version__, "roadrunner": roadrunner.__version__,
            "libsbml": libsbml.getLibSBMLDottedVersion()}


def _layer() -> str | None:
    try:
        return numba.threading_layer()
    except ValueError:    # no parallel region has run
        return None


def print_table(methods: list[Method], extra: dict, args: argparse.Namespace) -> None:
    rr = next(m for m in methods if m.key == "roadrunner")
    agree = extra["reference"]["cartsim_at_reference_tolerance"]
    print(f"\nMB-CART19.1 in SLE, {args.n} patients, {args.days:g} days, daily outputs; rtol {RTOL:g}, atol {ATOL:g}")
    print(f"endpoint errors against {extra['reference']['method']} (relative, floor {FLOOR:g}); "
          f"cartsim at that tolerance agrees to {agree['max_rel_error']:.1e} ({agree['worst_endpoint']})")
    head = (f"{'method':<26} {'patients':>8} {'seconds':>8} {'thr':>4} {'patients/s/core':>15} {'x RR':>6} "
            f"{'max rel err':>11} {'worst endpoint':<28} {'failed':>6} {'mism.':>5}  note")
    print(head)
    print("-" * len(head))
    for m in methods:
        a = m.accuracy
        print(f"{m.name:<26} {m.patients:>8} {m.seconds:>8.2f} {m.threads:>4} {m.per_core:>15.1f} "
              f"{m.per_core / rr.per_core:>6.2f} {a.max_rel_error:>11.2e} {a.worst_endpoint:<28} {a.failed:>6} "
              f"{a.mismatched:>5}  {m.note}")


def _point(rungs: list[Rung]) -> Rung | None:
    """The matched-accuracy point of a ladder walk: its last rung, if that met the goal."""
    return rungs[-1] if rungs and rungs[-1].meets_goal else None


def matched_ratio(ladders: dict[str, list[Rung]]) -> float | None:
    """cartsim's speed per core over libRoadRunner's, each at its matched-accuracy point (None if one has none)."""
    cartsim, rr = _point(ladders["cartsim"]), _point(ladders["roadrunner"])
    return cartsim.per_core / rr.per_core if cartsim and rr else None


def matched_record(ladders: dict[str, list[Rung]], versus: HeadToHead | None) -> dict:
    """The ladders, and the ratio at matched accuracy: from the alternating timing when it ran, else the ladders'."""
    points = {k: _point(v) for k, v in ladders.items()}
    return {"goal_max_rel_error": ACCURACY_GOAL, "ladder": [list(t) for t in LADDER],
            "rule": "each method at the loosest ladder tolerance whose endpoints all meet the goal, "
                    "no failed or mismatched patient",
            **{k: {"rungs": [r.record() for r in v], "point": points[k].record() if points[k] else None}
               for k, v in ladders.items()},
            "ladder_ratio_vs_roadrunner": matched_ratio(ladders),
            "head_to_head": versus.record() if versus else None,
            "ratio_vs_roadrunner": versus.ratio if versus else matched_ratio(ladders),
            "ratio_vs_roadrunner_1thread": versus.ratio_1thread if versus else None,
            "ratio_vs_roadrunner_retrying": versus.ratio_retrying if versus else None,
            "ratio_vs_roadrunner_median_patient": versus.ratio_median_patient if versus else None}


def print_matched(ladders: dict[str, list[Rung]], versus: HeadToHead | None) -> None:
    print(f"\nmatched accuracy: each method at the loosest tolerance (rtol; atol = rtol/100) whose max rel err "
          f"<= {ACCURACY_GOAL:g}")
    for key, rungs in ladders.items():
        walk = ", ".join(f"rtol {r.rtol:g}: {r.per_core:.1f}/s/core, err {r.accuracy.max_rel_error:.1e}"
                         f"{'' if r.accuracy.failed + r.accuracy.mismatched == 0 else ' (failed/mismatched)'}"
                         for r in rungs)
        print(f"  {key:<10} {walk}")
    ratio = matched_ratio(ladders)
    if ratio is None:
        print("  a method did not meet the goal on the ladder: no ratio")
        return
    print(f"  ladder timings: cartsim {ratio:.2f} x libRoadRunner per core")
    if versus is None:
        return
    c, r = _point(ladders["cartsim"]), _point(ladders["roadrunner"])
    per_round = ", ".join(f"{versus.patients / a / versus.threads:.0f}/{versus.patients / b:.0f}"
                          for a, b in zip(versus.cartsim_seconds, versus.cartsim_1thread_seconds))
    print(f"  alternating, {len(versus.cartsim_seconds)} rounds (cartsim rtol {c.rtol:g}, libRoadRunner rtol "
          f"{r.rtol:g}; its endpoints again within {versus.roadrunner_accuracy.max_rel_error:.1e}, "
          f"{versus.roadrunner_accuracy.failed} failed):")
    print(f"    cartsim per core per round ({versus.threads} thr/1 thr): {per_round}")
    print("    libRoadRunner per round: "
          + ", ".join(f"{(hi - lo) / sec:.1f}" for (lo, hi), sec in
                      zip(_shares(versus.patients, len(versus.roadrunner_seconds)), versus.roadrunner_seconds)))
    print(f"    cartsim {versus.cartsim_per_core:.0f}/s per core on {versus.threads} threads, "
          f"{versus.cartsim_1thread:.0f}/s on 1; libRoadRunner {versus.roadrunner_per_core:.1f}/s")
    print(f"  cartsim at matched accuracy: {versus.ratio:.2f} x libRoadRunner per core "
          f"({versus.ratio_1thread:.2f} x on one thread each)")
    print(f"  libRoadRunner's median patient: {1e3 / versus.roadrunner_median_patient:.1f} ms "
          f"({versus.roadrunner_median_patient:.1f}/s); {versus.roadrunner_stalls} patient(s) took over "
          f"{STALL_FACTOR:g} times that; cartsim {versus.ratio_median_patient:.2f} x its median patient per core")
    if versus.retry_seconds:
        ra = versus.retry_accuracy
        print(f"  libRoadRunner re-running the patients CVODE failed on at the next tolerance, from the loosest rung "
              f"whose solved patients meet the goal: {versus.retry_per_core:.1f}/s (max rel err "
              f"{ra.max_rel_error:.1e}, {ra.failed} failed); cartsim {versus.ratio_retrying:.2f} x that per core")


def print_trial(name: str, t: dict | None) -> None:
    if t is None:
        return
    status = "completed" if t["completed"] else f"stopped (exit status {t['returncode']})"
    phases = [f"{phase} {t[key]:.0f} MB" for phase, key in (("simulating", "peak_rss_simulating_mb"),
                                                            ("finishing", "peak_rss_finishing_mb")) if t[key]]
    failed = f"; failed patients {t['failed']}" if t.get("failed") else ""
    print(f"{name}: {t['n_total']:,} patients ({t['arms']} arms, {t['workers']} worker(s)) {status} in "
          f"{t['wall_s']:.1f} s; peak memory {t['peak_rss_mb']:.0f} MB ({', '.join(phases)}){failed}")
    if "acceptance" in t:
        acc = t["acceptance"]
        print(f"  acceptance (<= {acc['wall_limit_s']:.0f} s, <= {acc['memory_limit_mb']:.0f} MB): "
              f"time {'ok' if acc['wall_ok'] else 'FAIL'}, memory {'ok' if acc['memory_ok'] else 'FAIL'}")


def print_million(m: dict | None) -> None:
    if m is None:
        return
    f = m["flatness"]
    print_trial("million-patient trial, simulating", m["simulation"])
    if "early_peak_mb" in f:
        (a0, a1), (b0, b1) = f["early_chunks"], f["late_chunks"]
        print(f"  memory over chunks {a0}-{a1}: median {f['early_median_mb']:.0f} MB, peak {f['early_peak_mb']:.0f} MB;"
              f" over chunks {b0}-{b1}: median {f['late_median_mb']:.0f} MB, peak {f['late_peak_mb']:.0f} MB; "
              f"trend of per-chunk peaks {f['slope_mb_per_1000_chunks']:+.1f} MB per 1000 chunks")
    if "finishing" in m:
        print_trial(f"  finishing phase over {m['n_total']:,} rows ({m['finishing']['copied_chunks']} copied chunks)",
                    m["finishing"])


def _finite(obj: object) -> object:
    """``obj`` with NaN and infinities as None (JSON has neither)."""
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    return obj


def payload(methods: list[Method], extra: dict, args: argparse.Namespace, trial_run: dict | None,
            million_run: dict | None) -> dict:
    by = {m.key: m for m in methods}
    matched_accuracy = matched_record(extra["ladders"], extra["head_to_head"])
    return {
        "cartsim_patients_per_s_per_core": by["cartsim"].per_core,
        "roadrunner_patients_per_s_per_core": by["roadrunner"].per_core,
        "scipy_patients_per_s_per_core": by["scipy"].per_core,
        "ratio_vs_roadrunner": by["cartsim"].per_core / by["roadrunner"].per_core,
        "ratio_vs_roadrunner_at_matched_accuracy": matched_accuracy["ratio_vs_roadrunner"],
        "ratio_vs_roadrunner_at_matched_accuracy_1thread": matched_accuracy["ratio_vs_roadrunner_1thread"],
        "ratio_vs_roadrunner_retrying_at_matched_accuracy": matched_accuracy["ratio_vs_roadrunner_retrying"],
        "ratio_vs_roadrunner_median_patient_at_matched_accuracy":
            matched_accuracy["ratio_vs_roadrunner_median_patient"],
        "cartsim_max_rel_error": by["cartsim"].accuracy.max_rel_error,
        "max_rel_error": {k: by[k].accuracy.max_rel_error for k in ("cartsim", "roadrunner", "scipy")},
        "methods": [{"name": m.name, "key": m.key, "patients": m.patients, "seconds": m.seconds,
                     "threads": m.threads, "patients_per_s_per_core": m.per_core,
                     "ratio_vs_roadrunner": m.per_core / by["roadrunner"].per_core, "note": m.note}
                    | _accuracy_record(m.accuracy) for m in methods],
        "matched_accuracy": matched_accuracy,
        "reference": extra["reference"],
        "cartsim_steps_per_patient": extra["cartsim_steps"],
        "cartsim_solver": DEFAULT_SOLVER,
        "solvers": extra["solvers"],
        "workload": {"therapy": "mb-cart19", "disease": "sle", "days": args.days, "outputs": "daily",
                     "columns": list(COLUMNS), "seed": args.seed},
        "n": args.n,
        "tolerances": {"rtol": RTOL, "atol": ATOL, "reference_rtol": REF_RTOL, "reference_atol": REF_ATOL,
                       "error_floor": FLOOR},
        "trial": trial_run,
        "million": million_run,
        "quick": args.quick,
        "machine": machine(extra["threads"], extra["load"]),
        "git_commit": _git_commit(),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": sys.argv,
    }


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true",
                    help="about two minutes: 100 patients, a 2,000-patient trial")
    ap.add_argument("--n", type=int, help="patients solved by every method (default 500; 100 with --quick)")
    ap.add_argument("--repeat", type=int, default=5,
                    help="cartsim timings (each well under a second on a shared machine); the median is reported")
    ap.add_argument("--rounds", type=int, default=10,
                    help="rounds of the alternating timing of cartsim and libRoadRunner at matched accuracy (0: skip)")
    ap.add_argument("--days", type=float, default=730)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--trial-n", type=int,
                    help="patients in the timed trial, both arms together (default 100000; 2000 with --quick; 0: skip)")
    ap.add_argument("--trial-workers", type=int, default=1, help="--workers of the timed trial")
    ap.add_argument("--million", action="store_true", help="also check memory flatness of a 1,000,000-patient trial")
    ap.add_argument("--million-n", type=int, default=1_000_000, help=argparse.SUPPRESS)   # smaller, to try it out
    ap.add_argument("--million-seconds", type=float, default=600,
                    help="stop simulating the million-patient trial after this long, then measure its finishing phase")
    ap.add_argument("--work", type=Path, help="directory for trial outputs (default: a temporary one, removed)")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    args.n = args.n or (100 if args.quick else 500)
    args.trial_n = args.trial_n if args.trial_n is not None else (2_000 if args.quick else 100_000)
    if args.n < 1 or args.repeat < 1 or args.trial_workers < 1:
        ap.error("--n, --repeat and --trial-workers must be at least 1")
    if not 0 <= args.rounds <= args.n:
        ap.error("--rounds must be between 0 and --n (each round times libRoadRunner on at least one patient)")
    return args


def main() -> None:
    args = parse_args()
    methods, extra = benchmark(args)
    print_table(methods, extra, args)
    print_matched(extra["ladders"], extra["head_to_head"])
    with tempfile.TemporaryDirectory(prefix="cartsim-bench-") as tmp:
        work = args.work or Path(tmp)
        trial_run = trial(args, work)
        print_trial("\ntrial" + (" (--quick: not the 100,000-patient acceptance run)"
                                 if trial_run and trial_run["n_total"] < 100_000 else ""), trial_run)
        million_run = (million(work, args.million_n, args.days, args.trial_workers, args.million_seconds)
                       if args.million else None)
        print_million(million_run)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    results = _finite(payload(methods, extra, args, trial_run, million_run))
    write_text_atomic(args.out, json.dumps(results, indent=2) + "\n")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
